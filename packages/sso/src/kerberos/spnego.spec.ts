import { describe, expect, it } from 'vitest';
import { Der } from './der.js';
import { gssChecksum, gssKrb5InitialToken, GssFlag, spnegoNegTokenInit } from './spnego.js';

describe('GSS-API and SPNEGO framing', () => {
  const apReq = Buffer.from('6e023000', 'hex'); // [APPLICATION 14] SEQUENCE {}

  it('frames the AP-REQ as a krb5 InitialContextToken (RFC 4121 §4.1)', () => {
    expect(gssKrb5InitialToken(apReq).toString('hex')).toBe(
      '60' + '11' + '06092a864886f712010202' + '0100' + '6e023000',
    );
  });

  it('wraps it in a NegTokenInit listing krb5 and MS krb5 (RFC 4178 §4.2.1)', () => {
    const token = gssKrb5InitialToken(apReq);
    const want =
      '60' +
      '3d' +
      '06062b0601050502' + // SPNEGO OID
      'a0' +
      '33' +
      '30' +
      '31' + // NegTokenInit
      'a0' +
      '18' +
      '30' +
      '16' +
      '06092a864886f712010202' +
      '06092a864882f712010202' + // mechTypes
      'a2' +
      '15' +
      '04' +
      '13' +
      token.toString('hex'); // mechToken
    expect(spnegoNegTokenInit(token).toString('hex')).toBe(want);
    const d = Der.parse(spnegoNegTokenInit(token));
    const init = d.children()[1]!.inner();
    expect(
      init
        .need(0)
        .children()
        .map((o) => o.oid()),
    ).toEqual(['1.2.840.113554.1.2.2', '1.2.840.48018.1.2.2']);
    expect(init.need(2).octets()).toEqual(token);
  });

  it('the 0x8003 checksum: Lgth 16, zero bindings, flags, little-endian', () => {
    const c = gssChecksum(GssFlag.replay | GssFlag.sequence | GssFlag.conf | GssFlag.integ);
    expect(c.toString('hex')).toBe('10000000' + '00'.repeat(16) + '3c000000');
  });
});
