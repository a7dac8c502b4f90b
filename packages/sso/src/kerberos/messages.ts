/**
 * Kerberos messages (RFC 4120 §5, MS-SFU 2.2, MS-KILE 2.2) built and read with `der.ts`.
 * Builders take plain values and return DER; readers return plain values. Tickets stay as
 * their DER bytes: a client never opens them, only passes them on.
 */
import {
  checksum,
  checksumTypeFor,
  CKSUMTYPE_HMAC_MD5,
  decrypt,
  encrypt,
  EncryptionKey,
  hmacMd5Checksum,
  KeyUsage,
} from './crypto.js';
import {
  app,
  APPLICATION,
  bool,
  ctx,
  Der,
  DerError,
  flags,
  generalString,
  int,
  kerberosTime,
  octets,
  seq,
} from './der.js';

export const NT_PRINCIPAL = 1;
export const NT_SRV_INST = 2;
export const NT_SRV_HST = 3;
export const NT_ENTERPRISE = 10;

export const PA_TGS_REQ = 1;
export const PA_ENC_TIMESTAMP = 2;
export const PA_ETYPE_INFO2 = 19;
export const PA_PAC_REQUEST = 128;
export const PA_FOR_USER = 129;
export const PA_PAC_OPTIONS = 167;

/** KDCOptions bit numbers (RFC 4120 §5.4.1, MS-SFU 2.2.5 for cname-in-addl-tkt). */
export const KdcOption = {
  forwardable: 1,
  renewable: 8,
  cnameInAddlTkt: 14,
  canonicalize: 15,
  renewableOk: 27,
} as const;

/** TicketFlags bit numbers. */
export const TicketFlag = { forwardable: 1, forwarded: 2, renewable: 8 } as const;

/** PA-PAC-OPTIONS flag bits (MS-KILE 2.2.10). */
export const PacOption = { claims: 0, branchAware: 1, forwardToFullDc: 2, rbcd: 3 } as const;

export interface PrincipalName {
  type: number;
  components: string[];
}

export interface PaData {
  type: number;
  value: Buffer;
}

export interface EncryptedData {
  etype: number;
  kvno?: number;
  cipher: Buffer;
}

/** `name@REALM` for messages; components joined with `/`. */
export function principalText(name: PrincipalName, realm: string): string {
  return `${name.components.join('/')}@${realm}`;
}

// ---------------------------------------------------------------------------------------------
// Encoders of the shared types

export function encodePrincipal(p: PrincipalName): Buffer {
  return seq(ctx(0, int(p.type)), ctx(1, seq(...p.components.map(generalString))));
}

export function encodePaData(pa: PaData): Buffer {
  return seq(ctx(1, int(pa.type)), ctx(2, octets(pa.value)));
}

export function encodeEncryptedData(e: EncryptedData): Buffer {
  return seq(
    ctx(0, int(e.etype)),
    e.kvno === undefined ? undefined : ctx(1, int(e.kvno)),
    ctx(2, octets(e.cipher)),
  );
}

function encodeChecksum(type: number, value: Buffer): Buffer {
  return seq(ctx(0, int(type)), ctx(1, octets(value)));
}

// ---------------------------------------------------------------------------------------------
// Decoders of the shared types

export function decodePrincipal(d: Der): PrincipalName {
  return {
    type: d.need(0).int(),
    components: d
      .need(1)
      .children()
      .map((c) => c.string()),
  };
}

export function decodeEncryptedData(d: Der): EncryptedData {
  const kvno = d.field(1);
  return {
    etype: d.need(0).int(),
    ...(kvno === undefined ? {} : { kvno: kvno.int() }),
    cipher: d.need(2).octets(),
  };
}

function decodePaDataList(d: Der | undefined): PaData[] {
  if (d === undefined) return [];
  return d.children().map((p) => ({ type: p.need(1).int(), value: p.need(2).octets() }));
}

// ---------------------------------------------------------------------------------------------
// KDC-REQ

export interface KdcReqBody {
  options: number[];
  cname?: PrincipalName;
  realm: string;
  sname: PrincipalName;
  till: number;
  nonce: number;
  etypes: number[];
  additionalTickets?: Buffer[];
}

export function encodeReqBody(b: KdcReqBody): Buffer {
  return seq(
    ctx(0, flags(b.options)),
    b.cname === undefined ? undefined : ctx(1, encodePrincipal(b.cname)),
    ctx(2, generalString(b.realm)),
    ctx(3, encodePrincipal(b.sname)),
    ctx(5, kerberosTime(b.till)),
    ctx(7, int(b.nonce)),
    ctx(8, seq(...b.etypes.map(int))),
    b.additionalTickets === undefined ? undefined : ctx(11, seq(...b.additionalTickets)),
  );
}

/** AS-REQ ([APPLICATION 10]) or TGS-REQ ([APPLICATION 12]) around an encoded req-body. */
export function encodeKdcReq(msgType: 10 | 12, padata: PaData[], body: Buffer): Buffer {
  return app(
    msgType,
    seq(
      ctx(1, int(5)),
      ctx(2, int(msgType)),
      padata.length ? ctx(3, seq(...padata.map(encodePaData))) : undefined,
      ctx(4, body),
    ),
  );
}

/** KERB-PA-PAC-REQUEST: ask for a PAC (AD puts the user's groups there). */
export function paPacRequest(include = true): PaData {
  return { type: PA_PAC_REQUEST, value: seq(ctx(0, bool(include))) };
}

/** PA-ENC-TIMESTAMP: the client's time encrypted with its long-term key (usage 1). */
export function paEncTimestamp(key: EncryptionKey, nowMs: number): PaData {
  const ts = seq(ctx(0, kerberosTime(nowMs)), ctx(1, int((nowMs % 1000) * 1000)));
  return {
    type: PA_ENC_TIMESTAMP,
    value: encodeEncryptedData({
      etype: key.etype,
      cipher: encrypt(key, KeyUsage.AS_REQ_PA_ENC_TIMESTAMP, ts),
    }),
  };
}

/**
 * PA-FOR-USER (MS-SFU 2.2.1): the user the service asks a ticket for, with a keyed
 * HMAC-MD5 checksum (usage 17) under the TGT session key over name-type (4 octets
 * little-endian) ‖ name components ‖ realm ‖ auth-package.
 */
export function paForUser(user: PrincipalName, realm: string, tgtKey: EncryptionKey): PaData {
  const authPackage = 'Kerberos';
  const nameType = Buffer.alloc(4);
  nameType.writeInt32LE(user.type, 0);
  const data = Buffer.concat([
    nameType,
    ...user.components.map((c) => Buffer.from(c, 'utf8')),
    Buffer.from(realm, 'utf8'),
    Buffer.from(authPackage, 'utf8'),
  ]);
  const cksum = hmacMd5Checksum(tgtKey.value, KeyUsage.PA_FOR_USER_CKSUM, data);
  return {
    type: PA_FOR_USER,
    value: seq(
      ctx(0, encodePrincipal(user)),
      ctx(1, generalString(realm)),
      ctx(2, encodeChecksum(CKSUMTYPE_HMAC_MD5, cksum)),
      ctx(3, generalString(authPackage)),
    ),
  };
}

/** PA-PAC-OPTIONS (MS-KILE 2.2.10) with the given flag bits. */
export function paPacOptions(bits: number[]): PaData {
  return { type: PA_PAC_OPTIONS, value: seq(ctx(0, flags(bits))) };
}

export interface Authenticator {
  crealm: string;
  cname: PrincipalName;
  /** ms since the epoch: ctime is its whole seconds. */
  ctimeMs: number;
  /** microseconds within the second (0..999999). */
  cusec: number;
  checksum?: { type: number; value: Buffer };
  seqNumber?: number;
  subkey?: EncryptionKey;
}

export function encodeAuthenticator(a: Authenticator): Buffer {
  return app(
    2,
    seq(
      ctx(0, int(5)),
      ctx(1, generalString(a.crealm)),
      ctx(2, encodePrincipal(a.cname)),
      a.checksum === undefined
        ? undefined
        : ctx(3, encodeChecksum(a.checksum.type, a.checksum.value)),
      ctx(4, int(a.cusec)),
      ctx(5, kerberosTime(a.ctimeMs)),
      a.subkey === undefined
        ? undefined
        : ctx(6, seq(ctx(0, int(a.subkey.etype)), ctx(1, octets(a.subkey.value)))),
      a.seqNumber === undefined ? undefined : ctx(7, int(a.seqNumber)),
    ),
  );
}

/** AP-REQ ([APPLICATION 14]) with the ticket and an authenticator encrypted under `usage`. */
export function encodeApReq(
  ticket: Buffer,
  sessionKey: EncryptionKey,
  authenticator: Authenticator,
  usage: number,
  apOptions: number[] = [],
): Buffer {
  const enc = encrypt(sessionKey, usage, encodeAuthenticator(authenticator));
  return app(
    14,
    seq(
      ctx(0, int(5)),
      ctx(1, int(14)),
      ctx(2, flags(apOptions)),
      ctx(3, ticket),
      ctx(4, encodeEncryptedData({ etype: sessionKey.etype, cipher: enc })),
    ),
  );
}

/**
 * PA-TGS-REQ: an AP-REQ with the TGT whose authenticator (usage 7) carries a checksum
 * (usage 6, the session key's HMAC-SHA1-96 type) over the DER req-body.
 */
export function paTgsReq(
  tgt: Buffer,
  sessionKey: EncryptionKey,
  client: { realm: string; name: PrincipalName },
  reqBody: Buffer,
  nowMs: number,
): PaData {
  const authenticator: Authenticator = {
    crealm: client.realm,
    cname: client.name,
    ctimeMs: nowMs,
    cusec: (nowMs % 1000) * 1000,
    checksum: {
      type: checksumTypeFor(sessionKey.etype),
      value: checksum(sessionKey, KeyUsage.TGS_REQ_AUTH_CKSUM, reqBody),
    },
  };
  return {
    type: PA_TGS_REQ,
    value: encodeApReq(tgt, sessionKey, authenticator, KeyUsage.TGS_REQ_AUTHENTICATOR),
  };
}

// ---------------------------------------------------------------------------------------------
// Replies

export interface KrbError {
  code: number;
  /** KDC time, ms. */
  stime: number;
  realm: string;
  sname?: PrincipalName;
  text?: string;
  data?: Buffer;
}

export interface KdcRep {
  msgType: 11 | 13;
  padata: PaData[];
  crealm: string;
  cname: PrincipalName;
  /** The Ticket's DER, as it goes into an AP-REQ or additional-tickets. */
  ticket: Buffer;
  encPart: EncryptedData;
}

export interface EncKdcRepPart {
  key: EncryptionKey;
  nonce: number;
  flags: number[];
  authtime: number;
  starttime?: number;
  endtime: number;
  renewTill?: number;
  srealm: string;
  sname: PrincipalName;
}

/** Reads a KDC's answer: a KDC-REP or a KRB-ERROR. */
export function decodeReply(
  buf: Buffer,
): { kind: 'error'; error: KrbError } | { kind: 'rep'; rep: KdcRep } {
  const top = Der.parse(buf);
  if (top.tagClass !== APPLICATION) throw new DerError('not a Kerberos message');
  if (top.tag === 30) return { kind: 'error', error: decodeKrbError(top.inner()) };
  if (top.tag !== 11 && top.tag !== 13)
    throw new DerError(`unexpected Kerberos message [APPLICATION ${top.tag}]`);
  const s = top.inner();
  return {
    kind: 'rep',
    rep: {
      msgType: top.tag,
      padata: decodePaDataList(s.field(2)),
      crealm: s.need(3).string(),
      cname: decodePrincipal(s.need(4)),
      ticket: s.need(5).raw,
      encPart: decodeEncryptedData(s.need(6)),
    },
  };
}

function decodeKrbError(s: Der): KrbError {
  const sname = s.field(10);
  const text = s.field(11);
  const data = s.field(12);
  return {
    code: s.need(6).int(),
    stime: s.need(4).time() + Math.floor((s.field(5)?.int() ?? 0) / 1000),
    realm: s.need(9).string(),
    ...(sname === undefined ? {} : { sname: decodePrincipal(sname) }),
    ...(text === undefined ? {} : { text: text.string() }),
    ...(data === undefined ? {} : { data: data.octets() }),
  };
}

/** Decrypts and reads EncASRepPart / EncTGSRepPart (either tag: some KDCs mix them up). */
export function decodeEncKdcRepPart(key: EncryptionKey, usage: number, enc: EncryptedData) {
  const plain = decrypt(key, usage, enc.cipher);
  const top = Der.parse(plain);
  if (top.tagClass !== APPLICATION || (top.tag !== 25 && top.tag !== 26))
    throw new DerError('not an EncKDCRepPart');
  const s = top.inner();
  const k = s.need(0);
  const start = s.field(6);
  const renew = s.field(8);
  const part: EncKdcRepPart = {
    key: new EncryptionKey(k.need(0).int(), Buffer.from(k.need(1).octets())),
    nonce: s.need(2).int(),
    flags: s.need(4).bits(),
    authtime: s.need(5).time(),
    ...(start === undefined ? {} : { starttime: start.time() }),
    endtime: s.need(7).time(),
    ...(renew === undefined ? {} : { renewTill: renew.time() }),
    srealm: s.need(9).string(),
    sname: decodePrincipal(s.need(10)),
  };
  return part;
}

export interface EtypeInfo2Entry {
  etype: number;
  salt?: string;
  s2kparams?: Buffer;
}

/** ETYPE-INFO2 from a METHOD-DATA (KRB-ERROR e-data) or an AS-REP's padata. */
export function etypeInfo2(padata: PaData[]): EtypeInfo2Entry[] {
  const pa = padata.find((p) => p.type === PA_ETYPE_INFO2);
  if (pa === undefined) return [];
  return Der.parse(pa.value)
    .children()
    .map((e) => {
      const salt = e.field(1);
      const params = e.field(2);
      return {
        etype: e.need(0).int(),
        ...(salt === undefined ? {} : { salt: salt.string() }),
        ...(params === undefined ? {} : { s2kparams: params.octets() }),
      };
    });
}

/** METHOD-DATA (a KRB-ERROR's e-data when pre-authentication is required). */
export function methodData(data: Buffer | undefined): PaData[] {
  if (data === undefined || data.length === 0) return [];
  try {
    return decodePaDataList(Der.parse(data));
  } catch {
    return []; // Some errors carry other e-data (TYPED-DATA, NTSTATUS): not ours to read.
  }
}
