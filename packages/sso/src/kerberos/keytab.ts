/**
 * MIT keytab files (format 0x0502, and the older 0x0501 in host byte order), as written by
 * `ktutil`, `kadmin ktadd` and `samba-tool domain exportkeytab`.
 *
 * Layout: 2 octets version, then entries, each a signed 32-bit size (negative: a hole of
 * that many octets) and: component count (16 bits; in 0x0501 it counts the realm too),
 * realm, components (16-bit length + octets each), name type (32 bits, not in 0x0501),
 * timestamp (32), kvno (8), key type (16), key (16-bit length + octets), and, if the entry
 * has 4 octets left, a 32-bit kvno that replaces the 8-bit one when non-zero.
 */
import { EncryptionKey, isSupportedEtype } from './crypto.js';

export interface KeytabEntry {
  /** `name/instance@REALM`. */
  principal: string;
  realm: string;
  components: string[];
  nameType: number;
  timestamp: number;
  kvno: number;
  key: EncryptionKey;
}

export class KeytabError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'KeytabError';
  }
}

/** Parses a keytab's bytes into its entries (holes skipped). */
export function parseKeytab(buf: Buffer): KeytabEntry[] {
  if (buf.length < 2 || buf[0] !== 5 || (buf[1] !== 1 && buf[1] !== 2))
    throw new KeytabError('not an MIT keytab (version 0x0501/0x0502 expected)');
  const v1 = buf[1] === 1;
  // 0x0501 is in the writer's byte order; every such writer was little-endian x86/VAX.
  const u16 = (p: number) => (v1 ? buf.readUInt16LE(p) : buf.readUInt16BE(p));
  const u32 = (p: number) => (v1 ? buf.readUInt32LE(p) : buf.readUInt32BE(p));
  const i32 = (p: number) => (v1 ? buf.readInt32LE(p) : buf.readInt32BE(p));
  const entries: KeytabEntry[] = [];
  let p = 2;
  while (p + 4 <= buf.length) {
    const size = i32(p);
    p += 4;
    if (size === 0) break;
    if (size < 0) {
      p += -size;
      continue;
    }
    const end = p + size;
    if (end > buf.length) throw new KeytabError(`entry at offset ${p - 4} runs past the end`);
    let q = p;
    const need = (n: number) => {
      if (q + n > end) throw new KeytabError(`entry at offset ${p - 4} is truncated`);
    };
    const counted = () => {
      need(2);
      const n = u16(q);
      q += 2;
      need(n);
      const s = buf.toString('utf8', q, q + n);
      q += n;
      return s;
    };
    need(2);
    let count = u16(q);
    q += 2;
    if (v1) count -= 1;
    const realm = counted();
    const components: string[] = [];
    for (let i = 0; i < count; i++) components.push(counted());
    let nameType = 1;
    if (!v1) {
      need(4);
      nameType = u32(q);
      q += 4;
    }
    need(5);
    const timestamp = u32(q);
    let kvno = buf[q + 4]!;
    q += 5;
    need(2);
    const etype = u16(q);
    q += 2;
    need(2);
    const keyLen = u16(q);
    q += 2;
    need(keyLen);
    const key = Buffer.from(buf.subarray(q, q + keyLen));
    q += keyLen;
    if (end - q >= 4) {
      const kvno32 = u32(q);
      if (kvno32 !== 0) kvno = kvno32;
    }
    entries.push({
      principal: `${components.join('/')}@${realm}`,
      realm,
      components,
      nameType,
      timestamp,
      kvno,
      key: new EncryptionKey(etype, key),
    });
    p = end;
  }
  return entries;
}

/**
 * The keys for `principal` (`name@REALM`, case-insensitive realm) in the keytab: those of
 * the highest kvno, AES-256 first, only etypes this client supports.
 */
export function keysFor(entries: KeytabEntry[], principal: string): EncryptionKey[] {
  const [name, realm] = splitPrincipal(principal);
  const mine = entries.filter(
    (e) =>
      e.components.join('/') === name &&
      e.realm.toUpperCase() === realm.toUpperCase() &&
      isSupportedEtype(e.key.etype),
  );
  if (mine.length === 0) return [];
  const kvno = Math.max(...mine.map((e) => e.kvno));
  return mine
    .filter((e) => e.kvno === kvno)
    .map((e) => e.key)
    .sort((a, b) => b.etype - a.etype);
}

/** `name@REALM` → [name, REALM]; the last `@` separates the realm. */
export function splitPrincipal(principal: string): [string, string] {
  const at = principal.lastIndexOf('@');
  return at < 0 ? [principal, ''] : [principal.slice(0, at), principal.slice(at + 1)];
}
