/**
 * Kerberos cryptography on node:crypto: the simplified profile of RFC 3961 for
 * aes128-cts-hmac-sha1-96 (17) and aes256-cts-hmac-sha1-96 (18) from RFC 3962 — n-fold,
 * DK, PBKDF2 string-to-key, AES-CTS with a zero IV and a confounder, HMAC-SHA1-96 — and the
 * keyed HMAC-MD5 checksum (-138) that PA-FOR-USER requires whatever the key's type (MS-SFU
 * 2.2.1). rc4-hmac (23) is left out: OpenSSL 3 ships RC4 only in its legacy provider, and AD
 * since 2022 issues AES keys by default.
 */
import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createHmac,
  createSecretKey,
  pbkdf2Sync,
  type KeyObject,
  randomFillSync,
  timingSafeEqual,
} from 'node:crypto';

export const ETYPE_AES128_CTS_HMAC_SHA1_96 = 17;
export const ETYPE_AES256_CTS_HMAC_SHA1_96 = 18;
export const CKSUMTYPE_HMAC_SHA1_96_AES128 = 15;
export const CKSUMTYPE_HMAC_SHA1_96_AES256 = 16;
export const CKSUMTYPE_HMAC_MD5 = -138;

/** Key usage numbers (RFC 4120 §7.5.1). */
export const KeyUsage = {
  AS_REQ_PA_ENC_TIMESTAMP: 1,
  AS_REP_ENC_PART: 3,
  TGS_REQ_AUTH_CKSUM: 6,
  TGS_REQ_AUTHENTICATOR: 7,
  TGS_REP_ENC_PART_SESSION_KEY: 8,
  AP_REQ_AUTHENTICATOR: 11,
  /** MS-SFU 2.2.1: the PA-FOR-USER checksum. */
  PA_FOR_USER_CKSUM: 17,
} as const;

/** A Kerberos key: its etype and bytes. Never logged (see `toJSON`). */
export class EncryptionKey {
  constructor(
    readonly etype: number,
    readonly value: Buffer,
  ) {}
  /** Keys stay out of logs and error messages. */
  toJSON(): { etype: number } {
    return { etype: this.etype };
  }
  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return `EncryptionKey(etype ${this.etype})`;
  }
}

/** A decryption or integrity failure: wrong key, or tampered ciphertext. */
export class KerberosCryptoError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'KerberosCryptoError';
  }
}

export function isSupportedEtype(etype: number): boolean {
  return etype === ETYPE_AES128_CTS_HMAC_SHA1_96 || etype === ETYPE_AES256_CTS_HMAC_SHA1_96;
}

function keyLength(etype: number): number {
  if (etype === ETYPE_AES128_CTS_HMAC_SHA1_96) return 16;
  if (etype === ETYPE_AES256_CTS_HMAC_SHA1_96) return 32;
  throw new KerberosCryptoError(`unsupported encryption type ${etype}`);
}

/** The HMAC-SHA1-96 checksum type that goes with a key's etype. */
export function checksumTypeFor(etype: number): number {
  return etype === ETYPE_AES128_CTS_HMAC_SHA1_96
    ? CKSUMTYPE_HMAC_SHA1_96_AES128
    : CKSUMTYPE_HMAC_SHA1_96_AES256;
}

/**
 * n-fold (RFC 3961 §5.1): stretch or shrink `input` to `bytes` octets — concatenate copies
 * of the input, each rotated 13 bits more to the right, to the least common multiple of the
 * two lengths, then add the `bytes`-sized chunks with ones'-complement addition.
 */
export function nfold(input: Buffer, bytes: number): Buffer {
  const k = input.length;
  const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b));
  const lcm = (k * bytes) / gcd(k, bytes);
  const bits = k * 8;
  const big = Buffer.alloc(lcm);
  for (let copy = 0; copy < lcm / k; copy++) {
    const rot = (13 * copy) % bits;
    for (let i = 0; i < bits; i++) {
      // Output bit i of this copy is input bit (i - rot) mod bits.
      const src = (i - rot + bits) % bits;
      if (input[src >> 3]! & (0x80 >> (src & 7))) big[copy * k + (i >> 3)]! |= 0x80 >> (i & 7);
    }
  }
  const sum = new Array<number>(bytes).fill(0);
  for (let off = 0; off < lcm; off += bytes) {
    let carry = 0;
    for (let i = bytes - 1; i >= 0; i--) {
      const t = sum[i]! + big[off + i]! + carry;
      sum[i] = t & 0xff;
      carry = t >> 8;
    }
    // End-around carry, until none is left.
    for (let i = bytes - 1; carry && i >= 0; i--) {
      const t = sum[i]! + carry;
      sum[i] = t & 0xff;
      carry = t >> 8;
      if (i === 0 && carry) i = bytes;
    }
  }
  return Buffer.from(sum);
}

function aesEcb(key: Buffer, block: Buffer): Buffer {
  const c = createCipheriv(`aes-${key.length * 8}-ecb`, key, null);
  c.setAutoPadding(false);
  return Buffer.concat([c.update(block), c.final()]);
}

/** DR(Key, Constant) of RFC 3961 §5.1, for the AES block size: key-length octets. */
function derivedRandom(key: Buffer, constant: Buffer): Buffer {
  const out: Buffer[] = [];
  let block = constant.length === 16 ? constant : nfold(constant, 16);
  let len = 0;
  while (len < key.length) {
    block = aesEcb(key, block);
    out.push(block);
    len += block.length;
  }
  return Buffer.concat(out).subarray(0, key.length);
}

/** DK(Key, Constant); random-to-key is the identity for AES. */
export function deriveKey(key: Buffer, constant: Buffer): Buffer {
  return derivedRandom(key, constant);
}

function usageConstant(usage: number, kind: 0x99 | 0xaa | 0x55): Buffer {
  const c = Buffer.alloc(5);
  c.writeUInt32BE(usage >>> 0, 0);
  c[4] = kind;
  return c;
}

/** s2kparams of ETYPE-INFO2 for AES: a 4-octet big-endian iteration count; default 4096. */
export function iterationsFromParams(s2kparams: Buffer | undefined): number {
  if (s2kparams === undefined || s2kparams.length === 0) return 4096;
  if (s2kparams.length !== 4) throw new KerberosCryptoError('s2kparams must be 4 octets');
  const n = s2kparams.readUInt32BE(0);
  return n === 0 ? 2 ** 32 : n; // 0 means 2^32 (RFC 3962 §4); no KDC sends it.
}

/** string-to-key (RFC 3962 §4): DK(PBKDF2-HMAC-SHA1(password, salt, iterations), "kerberos"). */
export function stringToKey(
  etype: number,
  password: string,
  salt: string,
  iterations = 4096,
): EncryptionKey {
  const tkey = pbkdf2Sync(
    Buffer.from(password, 'utf8'),
    Buffer.from(salt, 'utf8'),
    iterations,
    keyLength(etype),
    'sha1',
  );
  return new EncryptionKey(etype, deriveKey(tkey, Buffer.from('kerberos')));
}

/** Raw bytes, or a KeyObject (node:crypto is several times faster with those on Node 24). */
type SecretKey = Buffer | KeyObject;
const aesBits = (key: SecretKey) => (Buffer.isBuffer(key) ? key.length : key.symmetricKeySize!) * 8;
const ZERO_IV = Buffer.alloc(16);

/** AES in CBC mode with ciphertext stealing (CS3, as RFC 3962 §5) and a zero IV. */
export function ctsEncrypt(key: SecretKey, plain: Buffer): Buffer {
  if (plain.length < 16) throw new KerberosCryptoError('CTS needs at least one block');
  const cipher = (data: Buffer) => {
    const c = createCipheriv(`aes-${aesBits(key)}-cbc`, key, ZERO_IV);
    c.setAutoPadding(false);
    return Buffer.concat([c.update(data), c.final()]);
  };
  if (plain.length === 16) return cipher(plain);
  const padded = Buffer.alloc(Math.ceil(plain.length / 16) * 16);
  plain.copy(padded);
  const c = cipher(padded);
  const n = c.length / 16;
  const tail = plain.length - (n - 1) * 16; // octets in the last plaintext block, 1..16
  // Swap the last two blocks and keep only `tail` octets of the (now) last one.
  return Buffer.concat([
    c.subarray(0, (n - 2) * 16),
    c.subarray((n - 1) * 16),
    c.subarray((n - 2) * 16, (n - 2) * 16 + tail),
  ]);
}

export function ctsDecrypt(key: SecretKey, data: Buffer): Buffer {
  if (data.length < 16) throw new KerberosCryptoError('ciphertext shorter than one block');
  const decipher = (d: Buffer) => {
    const c = createDecipheriv(`aes-${aesBits(key)}-cbc`, key, ZERO_IV);
    c.setAutoPadding(false);
    return Buffer.concat([c.update(d), c.final()]);
  };
  if (data.length === 16) return decipher(data);
  const n = Math.ceil(data.length / 16);
  const tail = data.length - (n - 1) * 16;
  const last = data.subarray((n - 2) * 16, (n - 1) * 16); // CBC's last block
  const partial = data.subarray((n - 1) * 16);
  const ecb = createDecipheriv(`aes-${aesBits(key)}-ecb`, key, null);
  ecb.setAutoPadding(false);
  const decLast = Buffer.concat([ecb.update(last), ecb.final()]);
  // CBC's second-to-last ciphertext block = the partial block + the stolen octets.
  const prev = Buffer.concat([partial, decLast.subarray(tail)]);
  const cbc = Buffer.concat([data.subarray(0, (n - 2) * 16), prev, last]);
  return decipher(cbc).subarray(0, data.length);
}

const derivedCache = new WeakMap<EncryptionKey, Map<number, KeyObject>>();
/** Ke / Ki / Kc for a usage, derived once per key object. */
function usageKey(key: EncryptionKey, usage: number, kind: 0x99 | 0xaa | 0x55): KeyObject {
  let m = derivedCache.get(key);
  if (m === undefined) derivedCache.set(key, (m = new Map()));
  const name = usage * 256 + kind;
  let k = m.get(name);
  if (k === undefined)
    m.set(name, (k = createSecretKey(deriveKey(key.value, usageConstant(usage, kind)))));
  return k;
}

const HMAC_LEN = 12;

/** Confounders come from a pool filled 4 KiB at a time (one syscall per 256 messages). */
const pool = Buffer.alloc(4096);
let poolAt = pool.length;
function confounder(): Buffer {
  if (poolAt + 16 > pool.length) {
    randomFillSync(pool);
    poolAt = 0;
  }
  const c = Buffer.from(pool.subarray(poolAt, poolAt + 16));
  pool.fill(0, poolAt, poolAt + 16); // used bytes do not stay in memory
  poolAt += 16;
  return c;
}

/** encrypt (RFC 3961 §5.3): confounder + plaintext under CTS, then HMAC-SHA1-96 of both. */
export function encrypt(
  key: EncryptionKey,
  usage: number,
  plain: Buffer,
  conf: Buffer = confounder(),
): Buffer {
  keyLength(key.etype);
  const data = Buffer.concat([conf, plain]);
  const ke = usageKey(key, usage, 0xaa);
  const ki = usageKey(key, usage, 0x55);
  const mac = createHmac('sha1', ki).update(data).digest().subarray(0, HMAC_LEN);
  return Buffer.concat([ctsEncrypt(ke, data), mac]);
}

/** decrypt: checks the HMAC, returns the plaintext without the confounder. */
export function decrypt(key: EncryptionKey, usage: number, cipher: Buffer): Buffer {
  keyLength(key.etype);
  if (cipher.length < 16 + HMAC_LEN) throw new KerberosCryptoError('ciphertext too short');
  const body = cipher.subarray(0, cipher.length - HMAC_LEN);
  const mac = cipher.subarray(cipher.length - HMAC_LEN);
  const data = ctsDecrypt(usageKey(key, usage, 0xaa), body);
  const want = createHmac('sha1', usageKey(key, usage, 0x55))
    .update(data)
    .digest()
    .subarray(0, HMAC_LEN);
  if (!timingSafeEqual(mac, want))
    throw new KerberosCryptoError('integrity check failed (wrong key or corrupted message)');
  return data.subarray(16);
}

/** get_mic: HMAC-SHA1-96 with Kc for the usage (checksum types 15/16). */
export function checksum(key: EncryptionKey, usage: number, data: Buffer): Buffer {
  keyLength(key.etype);
  return createHmac('sha1', usageKey(key, usage, 0x99))
    .update(data)
    .digest()
    .subarray(0, 12);
}

/**
 * KERB_CHECKSUM_HMAC_MD5 (-138, RFC 4757 §4): Ksign = HMAC-MD5(key, "signaturekey\0"),
 * then HMAC-MD5(Ksign, MD5(usage as 4 octets little-endian ‖ data)). Keyed with any key's
 * bytes, as MS-SFU uses it with AES session keys.
 */
export function hmacMd5Checksum(key: Buffer, usage: number, data: Buffer): Buffer {
  const ksign = createHmac('md5', key).update(Buffer.from('signaturekey\0', 'latin1')).digest();
  const u = Buffer.alloc(4);
  u.writeUInt32LE(usage >>> 0, 0);
  const tmp = createHash('md5').update(u).update(data).digest();
  return createHmac('md5', ksign).update(tmp).digest();
}
