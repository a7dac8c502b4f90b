/**
 * GSS-API framing (RFC 2743 §3.1, RFC 4121 §4.1) and the SPNEGO NegTokenInit (RFC 4178
 * §4.2.1) around a Kerberos AP-REQ, and the RFC 4121 §4.1.1 authenticator checksum (0x8003).
 */
import { ctx, octets, oid, seq, tlv } from './der.js';

export const KRB5_OID = '1.2.840.113554.1.2.2';
/** The OID Windows clients list first (a historical mis-encoding of the krb5 OID). */
export const MS_KRB5_OID = '1.2.840.48018.1.2.2';
export const SPNEGO_OID = '1.3.6.1.5.5.2';

/** GSS context flags (RFC 2744 / RFC 4121 §4.1.1.1). */
export const GssFlag = {
  deleg: 1,
  mutual: 2,
  replay: 4,
  sequence: 8,
  conf: 16,
  integ: 32,
} as const;

export const CKSUMTYPE_GSSAPI = 0x8003;

/** The 0x8003 checksum: Lgth=16, Bnd (16 zero octets: no channel bindings), Flags; all LE. */
export function gssChecksum(gssFlags: number): Buffer {
  const c = Buffer.alloc(24);
  c.writeUInt32LE(16, 0);
  c.writeUInt32LE(gssFlags >>> 0, 20);
  return c;
}

/** The krb5 OID and TOK_ID 01 00 (KRB_AP_REQ), encoded once. */
const KRB5_AP_REQ_PREFIX = Buffer.concat([oid(KRB5_OID), Buffer.from([0x01, 0x00])]);
const SPNEGO_OID_DER = oid(SPNEGO_OID);
const DEFAULT_MECHS = [KRB5_OID, MS_KRB5_OID];
const DEFAULT_MECH_TYPES = ctx(0, seq(...DEFAULT_MECHS.map(oid)))!;

/** InitialContextToken: [APPLICATION 0] { krb5 OID, TOK_ID 01 00, AP-REQ }. */
export function gssKrb5InitialToken(apReq: Buffer): Buffer {
  return tlv(0x60, Buffer.concat([KRB5_AP_REQ_PREFIX, apReq]));
}

/** SPNEGO InitialContextToken with a NegTokenInit carrying `mechToken` optimistically. */
export function spnegoNegTokenInit(
  mechToken: Buffer,
  mechs: readonly string[] = DEFAULT_MECHS,
): Buffer {
  const mechTypes = mechs === DEFAULT_MECHS ? DEFAULT_MECH_TYPES : ctx(0, seq(...mechs.map(oid)));
  const negTokenInit = seq(mechTypes, ctx(2, octets(mechToken)));
  return tlv(0x60, Buffer.concat([SPNEGO_OID_DER, ctx(0, negTokenInit)!]));
}
