/**
 * A test backend that authenticates connections with NTLM, as IIS does with Integrated
 * Windows Authentication: the handshake (type 1 → 401 with a type-2 challenge → type 3) and
 * every request after it must arrive on ONE TCP connection. NTLMv2 responses are verified
 * against known passwords (MS-NLMP §3.3.2); the fixture's crypto is proven by the
 * specification's own test values (ntlm-backend.spec.ts).
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

const SIGNATURE = Buffer.from('NTLMSSP\0', 'latin1');
const NEGOTIATE_UNICODE = 0x00000001;
const REQUEST_TARGET = 0x00000004;
const NEGOTIATE_NTLM = 0x00000200;
const TARGET_TYPE_DOMAIN = 0x00010000;
const EXTENDED_SESSION_SECURITY = 0x00080000;
const NEGOTIATE_TARGET_INFO = 0x00800000;

/**
 * MD4 (RFC 1320): NTOWF needs it and Node 24's OpenSSL 3 refuses `md4` (legacy provider).
 *
 * @example
 * md4(Buffer.from('abc')).toString('hex'); // 'a448017aaf21d8525fc10ae87aa6729d'
 */
export function md4(message: Buffer): Buffer {
  const bitLength = message.length * 8;
  const padded = Buffer.alloc((((message.length + 8) >> 6) + 1) * 64);
  message.copy(padded);
  padded[message.length] = 0x80;
  padded.writeUInt32LE(bitLength >>> 0, padded.length - 8);
  padded.writeUInt32LE(Math.floor(bitLength / 2 ** 32), padded.length - 4);
  let a = 0x67452301;
  let b = 0xefcdab89;
  let c = 0x98badcfe;
  let d = 0x10325476;
  const rotl = (x: number, s: number) => (x << s) | (x >>> (32 - s));
  const f = (x: number, y: number, z: number) => (x & y) | (~x & z);
  const g = (x: number, y: number, z: number) => (x & y) | (x & z) | (y & z);
  const h = (x: number, y: number, z: number) => x ^ y ^ z;
  const x = new Array<number>(16);
  for (let off = 0; off < padded.length; off += 64) {
    for (let i = 0; i < 16; i++) x[i] = padded.readUInt32LE(off + i * 4);
    const [aa, bb, cc, dd] = [a, b, c, d];
    for (const i of [0, 4, 8, 12]) {
      a = rotl((a + f(b, c, d) + x[i]!) | 0, 3);
      d = rotl((d + f(a, b, c) + x[i + 1]!) | 0, 7);
      c = rotl((c + f(d, a, b) + x[i + 2]!) | 0, 11);
      b = rotl((b + f(c, d, a) + x[i + 3]!) | 0, 19);
    }
    for (const i of [0, 1, 2, 3]) {
      a = rotl((a + g(b, c, d) + x[i]! + 0x5a827999) | 0, 3);
      d = rotl((d + g(a, b, c) + x[i + 4]! + 0x5a827999) | 0, 5);
      c = rotl((c + g(d, a, b) + x[i + 8]! + 0x5a827999) | 0, 9);
      b = rotl((b + g(c, d, a) + x[i + 12]! + 0x5a827999) | 0, 13);
    }
    for (const i of [0, 2, 1, 3]) {
      a = rotl((a + h(b, c, d) + x[i]! + 0x6ed9eba1) | 0, 3);
      d = rotl((d + h(a, b, c) + x[i + 8]! + 0x6ed9eba1) | 0, 9);
      c = rotl((c + h(d, a, b) + x[i + 4]! + 0x6ed9eba1) | 0, 11);
      b = rotl((b + h(c, d, a) + x[i + 12]! + 0x6ed9eba1) | 0, 15);
    }
    a = (a + aa) | 0;
    b = (b + bb) | 0;
    c = (c + cc) | 0;
    d = (d + dd) | 0;
  }
  const out = Buffer.alloc(16);
  [a, b, c, d].forEach((v, i) => out.writeInt32LE(v, i * 4));
  return out;
}

const hmacMd5 = (key: Buffer, ...data: Buffer[]) => {
  const mac = createHmac('md5', key);
  for (const d of data) mac.update(d);
  return mac.digest();
};
const utf16 = (s: string) => Buffer.from(s, 'utf16le');

/** NTOWFv2 (MS-NLMP §3.3.2): HMAC-MD5(MD4(UTF-16LE password), UTF-16LE(UPPER(user) + domain)). */
export function ntowfv2(password: string, user: string, domain: string): Buffer {
  return hmacMd5(md4(utf16(password)), utf16(user.toUpperCase() + domain));
}

/** NTProofStr: HMAC-MD5(NTOWFv2, server challenge + the client's blob ("temp")). */
export function ntProofStr(key: Buffer, serverChallenge: Buffer, blob: Buffer): Buffer {
  return hmacMd5(key, serverChallenge, blob);
}

/** The fields of an AUTHENTICATE (type 3) message the server needs. */
export interface Authenticate {
  user: string;
  domain: string;
  workstation: string;
  ntResponse: Buffer;
}

/** The NTLM message type of a token, or 0 when it is not NTLMSSP. */
export function messageType(token: Buffer): number {
  if (token.length < 12 || !token.subarray(0, 8).equals(SIGNATURE)) return 0;
  return token.readUInt32LE(8);
}

/** Parses an AUTHENTICATE message (MS-NLMP §2.2.1.3). */
export function parseAuthenticate(token: Buffer): Authenticate {
  if (messageType(token) !== 3 || token.length < 64) throw new Error('not an NTLM type-3 message');
  const field = (at: number) => {
    const len = token.readUInt16LE(at);
    const off = token.readUInt32LE(at + 4);
    if (off + len > token.length) throw new Error('NTLM field out of bounds');
    return token.subarray(off, off + len);
  };
  const flags = token.readUInt32LE(60);
  const text = (b: Buffer) => b.toString(flags & NEGOTIATE_UNICODE ? 'utf16le' : 'latin1');
  return {
    ntResponse: field(20),
    domain: text(field(28)),
    user: text(field(36)),
    workstation: text(field(44)),
  };
}

/**
 * Whether an NTLMv2 response proves `password` for the challenge (MS-NLMP §3.3.2): its
 * first 16 bytes are NTProofStr over the rest (the blob).
 */
export function verifyNtlmV2(
  auth: Pick<Authenticate, 'user' | 'domain' | 'ntResponse'>,
  password: string,
  serverChallenge: Buffer,
): boolean {
  if (auth.ntResponse.length <= 24) return false; // NTLMv1 (24 bytes) is not accepted
  const proof = auth.ntResponse.subarray(0, 16);
  const blob = auth.ntResponse.subarray(16);
  const expected = ntProofStr(ntowfv2(password, auth.user, auth.domain), serverChallenge, blob);
  return timingSafeEqual(proof, expected);
}

/** A CHALLENGE (type 2) message with target info, so clients answer with NTLMv2. */
export function challengeMessage(serverChallenge: Buffer, domain: string): Buffer {
  const target = utf16(domain);
  const avPair = (id: number, value: Buffer) => {
    const head = Buffer.alloc(4);
    head.writeUInt16LE(id, 0);
    head.writeUInt16LE(value.length, 2);
    return Buffer.concat([head, value]);
  };
  // MsvAvNbDomainName, MsvAvNbComputerName, MsvAvEOL.
  const info = Buffer.concat([
    avPair(2, target),
    avPair(1, utf16('NTLMTEST')),
    avPair(0, Buffer.alloc(0)),
  ]);
  const head = Buffer.alloc(48);
  SIGNATURE.copy(head, 0);
  head.writeUInt32LE(2, 8);
  head.writeUInt16LE(target.length, 12);
  head.writeUInt16LE(target.length, 14);
  head.writeUInt32LE(48, 16);
  head.writeUInt32LE(
    NEGOTIATE_UNICODE |
      REQUEST_TARGET |
      NEGOTIATE_NTLM |
      TARGET_TYPE_DOMAIN |
      EXTENDED_SESSION_SECURITY |
      NEGOTIATE_TARGET_INFO,
    20,
  );
  serverChallenge.copy(head, 24);
  head.writeUInt16LE(info.length, 40);
  head.writeUInt16LE(info.length, 42);
  head.writeUInt32LE(48 + target.length, 44);
  return Buffer.concat([head, target, info]);
}

export interface NtlmBackendOptions {
  /** user (case-insensitive) → password. */
  users: Record<string, string>;
  /** The NetBIOS domain in the challenge. @default 'CORP' */
  domain?: string;
}

export interface NtlmBackend {
  port: number;
  /** TCP connections accepted so far. */
  readonly connections: number;
  /** Requests received so far. */
  readonly requests: number;
  close(): Promise<void>;
}

interface ConnectionState {
  n: number;
  challenge?: Buffer;
  user?: string;
}

/**
 * Starts the backend on 127.0.0.1, port 0. Without authorization: 401 `WWW-Authenticate:
 * NTLM`. A type 1 → 401 with a type-2 challenge (random, remembered for this connection
 * only). A type 3 → 200 "authenticated as DOMAIN\user on connection N" when it proves the
 * user's password for this connection's challenge, else 401. Later requests on an
 * authenticated connection pass without headers. `GET /whoami` answers the same 200 text.
 */
export async function startNtlmBackend(opts: NtlmBackendOptions): Promise<NtlmBackend> {
  const domain = opts.domain ?? 'CORP';
  const users = new Map(Object.entries(opts.users).map(([u, p]) => [u.toLowerCase(), p]));
  const states = new WeakMap<Socket, ConnectionState>();
  let connections = 0;
  let requests = 0;
  const server: Server = createServer({ keepAliveTimeout: 60_000 }, (req, res) => handle(req, res));
  server.on('connection', (socket: Socket) => {
    states.set(socket, { n: ++connections });
  });
  const challenge = (res: ServerResponse, value = 'NTLM') => {
    res.writeHead(401, { 'www-authenticate': value, 'content-type': 'text/plain' });
    res.end('NTLM authentication required\n');
  };
  function handle(req: IncomingMessage, res: ServerResponse): void {
    requests++;
    req.resume();
    const state = states.get(req.socket)!;
    const ok = () => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end(`authenticated as ${state.user} on connection ${state.n}\n`);
    };
    const auth = /^NTLM\s+(\S+)$/i.exec(String(req.headers.authorization ?? ''));
    if (!auth) return state.user ? ok() : challenge(res);
    const token = Buffer.from(auth[1]!, 'base64');
    const type = messageType(token);
    if (type === 1) {
      state.user = undefined;
      state.challenge = randomBytes(8);
      return challenge(res, `NTLM ${challengeMessage(state.challenge, domain).toString('base64')}`);
    }
    if (type === 3 && state.challenge) {
      const serverChallenge = state.challenge;
      state.challenge = undefined;
      let parsed: Authenticate;
      try {
        parsed = parseAuthenticate(token);
      } catch {
        return challenge(res);
      }
      const password = users.get(parsed.user.toLowerCase());
      if (password !== undefined && verifyNtlmV2(parsed, password, serverChallenge)) {
        state.user = `${parsed.domain}\\${parsed.user}`;
        return ok();
      }
    }
    // A type 3 on a connection that sent no type 1 (another connection's handshake), a
    // wrong password, or garbage.
    state.user = undefined;
    return challenge(res);
  }
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    get connections() {
      return connections;
    },
    get requests() {
      return requests;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A NEGOTIATE (type 1) message, as a test client sends it. */
export function negotiateMessage(): Buffer {
  const type1 = Buffer.alloc(32);
  SIGNATURE.copy(type1, 0);
  type1.writeUInt32LE(1, 8);
  type1.writeUInt32LE(
    NEGOTIATE_UNICODE | REQUEST_TARGET | NEGOTIATE_NTLM | EXTENDED_SESSION_SECURITY,
    12,
  );
  return type1;
}

/**
 * An AUTHENTICATE (type 3) message with an NTLMv2 response to `challenge` (a type-2
 * message), as a test client: enough for this fixture, no signing or sealing keys.
 */
export function authenticateMessage(
  challenge: Buffer,
  user: string,
  domain: string,
  password: string,
): Buffer {
  if (messageType(challenge) !== 2) throw new Error('not an NTLM type-2 message');
  const serverChallenge = challenge.subarray(24, 32);
  const infoLength = challenge.readUInt16LE(40);
  const infoOffset = challenge.readUInt32LE(44);
  const info = challenge.subarray(infoOffset, infoOffset + infoLength);
  const time = Buffer.alloc(8);
  time.writeBigUInt64LE((BigInt(Date.now()) + 11_644_473_600_000n) * 10_000n);
  const blob = Buffer.concat([
    Buffer.from([1, 1, 0, 0, 0, 0, 0, 0]),
    time,
    randomBytes(8),
    Buffer.alloc(4),
    info,
    Buffer.alloc(4),
  ]);
  const nt = Buffer.concat([
    ntProofStr(ntowfv2(password, user, domain), serverChallenge, blob),
    blob,
  ]);
  const fields = [Buffer.alloc(24), nt, utf16(domain), utf16(user), utf16('WORKSTATION')];
  const head = Buffer.alloc(64);
  SIGNATURE.copy(head, 0);
  head.writeUInt32LE(3, 8);
  let at = 64;
  fields.forEach((b, i) => {
    head.writeUInt16LE(b.length, 12 + i * 8);
    head.writeUInt16LE(b.length, 14 + i * 8);
    head.writeUInt32LE(at, 16 + i * 8);
    at += b.length;
  });
  head.writeUInt32LE(at, 56); // empty session key
  head.writeUInt32LE(NEGOTIATE_UNICODE | NEGOTIATE_NTLM | EXTENDED_SESSION_SECURITY, 60);
  return Buffer.concat([head, ...fields]);
}
