import { describe, expect, it } from 'vitest';
import {
  app,
  bool,
  ctx,
  Der,
  DerError,
  flags,
  generalString,
  int,
  kerberosTime,
  octets,
  oid,
  seq,
} from './der.js';
import { decodePrincipal, encodePrincipal, encodeReqBody, KdcOption } from './messages.js';

const hex = (b: Buffer) => b.toString('hex');

describe('DER encoding: known bytes', () => {
  it.each([
    [0, '020100'],
    [5, '020105'],
    [127, '02017f'],
    [128, '02020080'],
    [256, '02020100'],
    [0x7fffffff, '02047fffffff'],
    [0x80000000, '02050080000000'],
    [-1, '0201ff'],
    [-128, '020180'],
    [-129, '0202ff7f'],
    [-138, '0202ff76'],
  ])('INTEGER %i', (n, want) => {
    expect(hex(int(n))).toBe(want);
    expect(Der.parse(int(n)).int()).toBe(n);
  });

  it('lengths: short, one octet, two octets', () => {
    expect(hex(octets(Buffer.alloc(3))).slice(0, 4)).toBe('0403');
    expect(hex(octets(Buffer.alloc(200))).slice(0, 6)).toBe('0481c8');
    expect(hex(octets(Buffer.alloc(300))).slice(0, 8)).toBe('0482012c');
    expect(Der.parse(octets(Buffer.alloc(300, 7))).octets()).toEqual(Buffer.alloc(300, 7));
  });

  it('KDCOptions forwardable + canonicalize + cname-in-addl-tkt (bits 1, 15, 14)', () => {
    const f = flags([KdcOption.forwardable, KdcOption.canonicalize, KdcOption.cnameInAddlTkt]);
    expect(hex(f)).toBe('03050040030000');
    expect(Der.parse(f).bits()).toEqual([1, 14, 15]);
  });

  it('KerberosTime is GeneralizedTime in whole seconds, Z', () => {
    const t = kerberosTime(Date.UTC(2026, 10, 30, 11, 5, 9, 999));
    expect(t.toString('latin1', 2)).toBe('20261130110509Z');
    expect(hex(t.subarray(0, 2))).toBe('180f');
    expect(Der.parse(t).time()).toBe(Date.UTC(2026, 10, 30, 11, 5, 9));
  });

  it('OIDs of krb5, MS krb5 and SPNEGO', () => {
    expect(hex(oid('1.2.840.113554.1.2.2'))).toBe('06092a864886f712010202');
    expect(hex(oid('1.2.840.48018.1.2.2'))).toBe('06092a864882f712010202');
    expect(hex(oid('1.3.6.1.5.5.2'))).toBe('06062b0601050502');
    expect(Der.parse(oid('1.2.840.113554.1.2.2')).oid()).toBe('1.2.840.113554.1.2.2');
  });

  it('BOOLEAN, GeneralString, [n] and [APPLICATION n]', () => {
    expect(hex(bool(true))).toBe('0101ff');
    expect(hex(generalString('CORP'))).toBe('1b04434f5250');
    expect(hex(ctx(3, int(1))!)).toBe('a303020101');
    expect(hex(app(14, seq()))).toBe('6e023000');
    expect(ctx(3, undefined)).toBeUndefined();
  });

  it('PrincipalName alice (NT-PRINCIPAL) is the bytes MIT sends', () => {
    const p = encodePrincipal({ type: 1, components: ['alice'] });
    expect(hex(p)).toBe('3010a003020101a1093007' + '1b05616c696365');
    expect(decodePrincipal(Der.parse(p))).toEqual({ type: 1, components: ['alice'] });
  });
});

describe('DER decoding', () => {
  it('round-trips a KDC-REQ-BODY and reads its fields', () => {
    const body = encodeReqBody({
      options: [KdcOption.forwardable],
      realm: 'CORP.TEST',
      sname: { type: 2, components: ['krbtgt', 'CORP.TEST'] },
      till: Date.UTC(2037, 8, 13, 2, 48, 5),
      nonce: 0x12345678,
      etypes: [18, 17],
    });
    const d = Der.parse(body);
    expect(d.need(0).bits()).toEqual([1]);
    expect(d.field(1)).toBeUndefined();
    expect(d.need(2).string()).toBe('CORP.TEST');
    expect(decodePrincipal(d.need(3)).components).toEqual(['krbtgt', 'CORP.TEST']);
    expect(d.need(5).time()).toBe(Date.UTC(2037, 8, 13, 2, 48, 5));
    expect(d.need(7).int()).toBe(0x12345678);
    expect(
      d
        .need(8)
        .children()
        .map((c) => c.int()),
    ).toEqual([18, 17]);
    expect(d.raw).toEqual(body);
  });

  it('refuses truncated, trailing and mistyped input', () => {
    const good = seq(int(1), octets(Buffer.from('ab')));
    expect(() => Der.parse(good.subarray(0, good.length - 1))).toThrow(DerError);
    expect(() => Der.parse(Buffer.concat([good, Buffer.from([0])]))).toThrow(DerError);
    expect(() => Der.parse(Buffer.from([0x30, 0x84, 0xff, 0xff, 0xff, 0xff]))).toThrow(DerError);
    expect(() => Der.parse(int(1)).octets()).toThrow(DerError);
    expect(() => Der.parse(seq()).need(0)).toThrow(/missing/);
    expect(() => Der.parse(Buffer.alloc(0))).toThrow(DerError);
  });
});
