/**
 * The ASN.1 DER subset Kerberos (RFC 4120 §5) and SPNEGO (RFC 4178) use: SEQUENCE /
 * SEQUENCE OF, `[n]` EXPLICIT context tags, `[APPLICATION n]`, INTEGER, BOOLEAN, OCTET
 * STRING, GeneralString, GeneralizedTime (KerberosTime), BIT STRING (KDCOptions, flags) and
 * OBJECT IDENTIFIER.
 *
 * Our own, not asn1js or `@peculiar/asn1-schema`: Kerberos needs only these few types, so
 * this file (≈300 lines, 11 kB of source, no dependency) is far smaller than asn1js 4 alone
 * (180 kB unpacked, plus `@peculiar/utils`; the schema layer adds asn1js, tslib and 110 kB),
 * decodes lazily (a node is a view on the message buffer, nothing is copied until read), and
 * encodes each TLV with one allocation and no intermediate object tree, which keeps a cached
 * `authorization()` call cheap.
 */

/** Tag classes, as the two high bits of the identifier octet. */
export const UNIVERSAL = 0x00;
export const APPLICATION = 0x40;
export const CONTEXT = 0x80;

const T_BOOLEAN = 0x01;
const T_INTEGER = 0x02;
const T_BIT_STRING = 0x03;
const T_OCTET_STRING = 0x04;
const T_OID = 0x06;
const T_SEQUENCE = 0x30;
const T_GENERALIZED_TIME = 0x18;
const T_GENERAL_STRING = 0x1b;

/** A malformed or unexpected DER structure. */
export class DerError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DerError';
  }
}

// ---------------------------------------------------------------------------------------------
// Encoding

/** Octets the definite length `n` takes. */
function lengthSize(n: number): number {
  return n < 0x80 ? 1 : n < 0x100 ? 2 : n < 0x10000 ? 3 : n < 0x1000000 ? 4 : 5;
}

/** Writes identifier and length at 0; returns the buffer and where the content starts. */
function header(id: number, n: number): [Buffer, number] {
  const l = lengthSize(n);
  const out = Buffer.allocUnsafe(1 + l + n);
  out[0] = id;
  if (l === 1) out[1] = n;
  else {
    out[1] = 0x80 | (l - 1);
    for (let i = l - 1, v = n; i >= 1; i--, v = Math.floor(v / 256)) out[1 + i] = v & 0xff;
  }
  return [out, 1 + l];
}

/** A TLV with identifier octet `id` (tag numbers ≤ 30) around `content`. */
export function tlv(id: number, content: Buffer): Buffer {
  const [out, at] = header(id, content.length);
  content.copy(out, at);
  return out;
}

/** SEQUENCE of already-encoded elements (`undefined` ones, i.e. absent OPTIONAL fields, skipped). */
export function seq(...elements: (Buffer | undefined)[]): Buffer {
  let n = 0;
  for (const e of elements) if (e !== undefined) n += e.length;
  const [out, at] = header(T_SEQUENCE, n);
  let p = at;
  for (const e of elements) if (e !== undefined) p += e.copy(out, p);
  return out;
}

/** `[n] EXPLICIT` around an encoded value; `undefined` stays `undefined` (absent OPTIONAL). */
export function ctx(n: number, inner: Buffer | undefined): Buffer | undefined {
  return inner === undefined ? undefined : tlv(CONTEXT | 0x20 | n, inner);
}

/** `[APPLICATION n]` (constructed, explicit) around an encoded value. */
export function app(n: number, inner: Buffer): Buffer {
  return tlv(APPLICATION | 0x20 | n, inner);
}

/** INTEGER, two's complement, minimal octets; safe integers only. */
export function int(value: number): Buffer {
  if (!Number.isSafeInteger(value)) throw new DerError(`INTEGER ${value} out of range`);
  if (value >= -0x80000000 && value <= 0x7fffffff) {
    // The common case without BigInt: drop redundant leading 0x00 / 0xff octets.
    const four = Buffer.allocUnsafe(4);
    four.writeInt32BE(value, 0);
    let i = 0;
    while (
      i < 3 &&
      ((four[i] === 0 && !(four[i + 1]! & 0x80)) || (four[i] === 0xff && four[i + 1]! & 0x80))
    )
      i++;
    return tlv(T_INTEGER, four.subarray(i));
  }
  const bytes: number[] = [];
  let v = BigInt(value);
  do {
    bytes.unshift(Number(v & 0xffn));
    v >>= 8n;
  } while (v !== 0n && v !== -1n);
  // A sign bit that disagrees with the value needs one more octet.
  if (value >= 0 && bytes[0]! & 0x80) bytes.unshift(0);
  if (value < 0 && !(bytes[0]! & 0x80)) bytes.unshift(0xff);
  return tlv(T_INTEGER, Buffer.from(bytes));
}

export function bool(value: boolean): Buffer {
  return tlv(T_BOOLEAN, Buffer.from([value ? 0xff : 0]));
}

export function octets(value: Buffer): Buffer {
  return tlv(T_OCTET_STRING, value);
}

/** GeneralString (KerberosString); Kerberos uses it for ASCII/UTF-8 text. */
export function generalString(value: string): Buffer {
  return tlv(T_GENERAL_STRING, Buffer.from(value, 'utf8'));
}

/** KerberosTime: GeneralizedTime `YYYYMMDDHHMMSSZ`, whole seconds (RFC 4120 §5.2.3). */
export function kerberosTime(ms: number): Buffer {
  const d = new Date(ms);
  const two = (n: number) => (n < 10 ? '0' : '') + n;
  const text =
    String(d.getUTCFullYear()).padStart(4, '0') +
    two(d.getUTCMonth() + 1) +
    two(d.getUTCDate()) +
    two(d.getUTCHours()) +
    two(d.getUTCMinutes()) +
    two(d.getUTCSeconds()) +
    'Z';
  return tlv(T_GENERALIZED_TIME, Buffer.from(text, 'latin1'));
}

/**
 * A 32-bit KerberosFlags BIT STRING with the given bit numbers set; bit 0 is the most
 * significant bit of the first octet (RFC 4120 §5.2.8).
 */
export function flags(bits: readonly number[]): Buffer {
  const v = Buffer.alloc(5);
  for (const b of bits) v[1 + (b >> 3)]! |= 0x80 >> (b & 7);
  return tlv(T_BIT_STRING, v);
}

/** OBJECT IDENTIFIER from dotted text. */
export function oid(dotted: string): Buffer {
  const arcs = dotted.split('.').map(Number);
  const bytes: number[] = [arcs[0]! * 40 + arcs[1]!];
  for (const arc of arcs.slice(2)) {
    const base128: number[] = [];
    let v = arc;
    do {
      base128.unshift((v & 0x7f) | (base128.length ? 0x80 : 0));
      v = Math.floor(v / 128);
    } while (v > 0);
    bytes.push(...base128);
  }
  return tlv(T_OID, Buffer.from(bytes));
}

// ---------------------------------------------------------------------------------------------
// Decoding

/** One decoded TLV: a view on the buffer it came from. */
export class Der {
  private constructor(
    /** The whole buffer. */
    readonly buffer: Buffer,
    /** Identifier octet. */
    readonly id: number,
    /** Offset of the first content octet. */
    readonly start: number,
    /** Offset after the last content octet. */
    readonly end: number,
    /** Offset of the identifier octet. */
    readonly begin: number,
  ) {}

  /** Decodes the TLV at `offset`; the whole input must be one TLV unless `offset` is given. */
  static parse(buffer: Buffer, offset = 0, whole = true): Der {
    if (offset >= buffer.length) throw new DerError('DER: truncated (no identifier)');
    const id = buffer[offset]!;
    if ((id & 0x1f) === 0x1f) throw new DerError('DER: high tag numbers are not used here');
    let p = offset + 1;
    if (p >= buffer.length) throw new DerError('DER: truncated (no length)');
    let len = buffer[p++]!;
    if (len & 0x80) {
      const n = len & 0x7f;
      if (n === 0 || n > 4) throw new DerError('DER: indefinite or huge length');
      if (p + n > buffer.length) throw new DerError('DER: truncated length');
      len = 0;
      for (let i = 0; i < n; i++) len = len * 256 + buffer[p++]!;
    }
    if (p + len > buffer.length) throw new DerError('DER: truncated content');
    if (whole && p + len !== buffer.length) throw new DerError('DER: trailing bytes');
    return new Der(buffer, id, p, p + len, offset);
  }

  get tagClass(): number {
    return this.id & 0xc0;
  }
  get constructed(): boolean {
    return (this.id & 0x20) !== 0;
  }
  get tag(): number {
    return this.id & 0x1f;
  }
  /** The content octets (a view, not a copy). */
  get content(): Buffer {
    return this.buffer.subarray(this.start, this.end);
  }
  /** The whole TLV's octets (a view). */
  get raw(): Buffer {
    return this.buffer.subarray(this.begin, this.end);
  }

  /** The elements of a constructed value. */
  children(): Der[] {
    if (!this.constructed) throw new DerError('DER: primitive value has no elements');
    const out: Der[] = [];
    for (let p = this.start; p < this.end;) {
      const child = Der.parse(this.buffer.subarray(0, this.end), p, false);
      out.push(child);
      p = child.end;
    }
    return out;
  }

  /** Asserts the identifier: `expect(APPLICATION, 30)`, `expect(UNIVERSAL, 16)`. */
  expect(tagClass: number, tag: number, what = 'value'): this {
    if (this.tagClass !== tagClass || this.tag !== tag)
      throw new DerError(`DER: ${what} has identifier 0x${this.id.toString(16)}`);
    return this;
  }

  /** The single value inside an `[APPLICATION n]` or `[n]` explicit wrapper. */
  inner(): Der {
    const c = this.children();
    if (c.length !== 1) throw new DerError('DER: explicit tag must hold one value');
    return c[0]!;
  }

  /** A SEQUENCE's `[n] EXPLICIT` field, or undefined. */
  field(n: number): Der | undefined {
    for (const c of this.children()) if (c.tagClass === CONTEXT && c.tag === n) return c.inner();
    return undefined;
  }

  /** A required `[n]` field. */
  need(n: number, what = `field [${n}]`): Der {
    const f = this.field(n);
    if (f === undefined) throw new DerError(`DER: ${what} missing`);
    return f;
  }

  int(): number {
    this.expect(UNIVERSAL, T_INTEGER, 'INTEGER');
    const c = this.content;
    if (c.length === 0 || c.length > 6) throw new DerError('DER: INTEGER length');
    return c.readIntBE(0, c.length);
  }

  bool(): boolean {
    return this.expect(UNIVERSAL, T_BOOLEAN, 'BOOLEAN').content[0] !== 0;
  }

  octets(): Buffer {
    return this.expect(UNIVERSAL, T_OCTET_STRING, 'OCTET STRING').content;
  }

  /** GeneralString (or any string type) as UTF-8 text. */
  string(): string {
    if (this.constructed) throw new DerError('DER: string is constructed');
    return this.content.toString('utf8');
  }

  /** KerberosTime as ms since the epoch. */
  time(): number {
    this.expect(UNIVERSAL, T_GENERALIZED_TIME, 'KerberosTime');
    const m = /^(\d{4})(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)(?:\.\d+)?Z$/.exec(this.content.toString());
    if (!m) throw new DerError('DER: KerberosTime format');
    const [y, mo, d, h, mi, s] = m.slice(1).map(Number) as [number, ...number[]];
    return Date.UTC(y, mo! - 1, d, h, mi, s);
  }

  /** A BIT STRING's bit numbers that are set (bit 0 = MSB of the first octet). */
  bits(): number[] {
    const c = this.expect(UNIVERSAL, T_BIT_STRING, 'BIT STRING').content;
    const out: number[] = [];
    for (let i = 1; i < c.length; i++)
      for (let b = 0; b < 8; b++) if (c[i]! & (0x80 >> b)) out.push((i - 1) * 8 + b);
    return out;
  }

  oid(): string {
    const c = this.expect(UNIVERSAL, T_OID, 'OBJECT IDENTIFIER').content;
    const arcs = [Math.floor(c[0]! / 40), c[0]! % 40];
    let v = 0;
    for (let i = 1; i < c.length; i++) {
      v = v * 128 + (c[i]! & 0x7f);
      if (!(c[i]! & 0x80)) {
        arcs.push(v);
        v = 0;
      }
    }
    return arcs.join('.');
  }
}
