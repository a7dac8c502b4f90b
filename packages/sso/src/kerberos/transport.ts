/**
 * Sends a request to the realm's KDCs and returns the first answer (RFC 4120 §7.2): TCP
 * with a 4-octet big-endian length prefix to each KDC in turn; UDP to the same KDC when TCP
 * cannot connect, and TCP again when the UDP answer is KRB_ERR_RESPONSE_TOO_BIG. Every
 * socket is closed before the call returns; each attempt has the same time limit.
 */
import { createSocket } from 'node:dgram';
import { isIPv6 } from 'node:net';
import { connect } from 'node:net';

export interface KdcAddress {
  host: string;
  port: number;
}

/** No KDC answered. `attempts` says what happened at each, for the message. */
export class KdcUnreachableError extends Error {
  constructor(readonly attempts: string[]) {
    super(`no KDC answered: ${attempts.join('; ')}`);
    this.name = 'KdcUnreachableError';
  }
}

const MAX_REPLY = 1 << 20;
const KRB_ERR_RESPONSE_TOO_BIG = 52;

const show = (k: KdcAddress) => (isIPv6(k.host) ? `[${k.host}]:${k.port}` : `${k.host}:${k.port}`);

/** TCP: resolves with the reply; rejects with `connect` set when no connection was made. */
export function tcpExchange(kdc: KdcAddress, msg: Buffer, timeoutMs: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let connected = false;
    const socket = connect({ host: kdc.host, port: kdc.port });
    const fail = (why: string) => {
      socket.destroy();
      reject(Object.assign(new Error(why), { connect: !connected }));
    };
    const timer = setTimeout(() => fail(connected ? 'timed out' : 'connect timed out'), timeoutMs);
    socket.once('close', () => clearTimeout(timer));
    socket.on('error', (err: NodeJS.ErrnoException) => fail(err.code ?? err.message));
    socket.once('connect', () => {
      connected = true;
      const len = Buffer.alloc(4);
      len.writeUInt32BE(msg.length, 0);
      // write, not end: no half-close, which some KDCs take as the client going away
      socket.write(Buffer.concat([len, msg]));
    });
    let got = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      got = Buffer.concat([got, chunk]);
      if (got.length < 4) return;
      const n = got.readUInt32BE(0);
      if (n > MAX_REPLY) return fail('reply too large');
      if (got.length >= 4 + n) {
        clearTimeout(timer);
        socket.destroy();
        resolve(got.subarray(4, 4 + n));
      }
    });
    socket.once('end', () => fail('connection closed before the whole reply'));
  });
}

/** UDP: one datagram out, the first datagram back. */
export function udpExchange(kdc: KdcAddress, msg: Buffer, timeoutMs: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = createSocket(isIPv6(kdc.host) ? 'udp6' : 'udp4');
    let done = false;
    const finish = (err: Error | undefined, reply?: Buffer) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.close();
      if (err) reject(err);
      else resolve(reply!);
    };
    const timer = setTimeout(() => finish(new Error('timed out')), timeoutMs);
    socket.on('error', (err: NodeJS.ErrnoException) => finish(new Error(err.code ?? err.message)));
    socket.on('message', (reply) => finish(undefined, reply));
    socket.connect(kdc.port, kdc.host, () => {
      socket.send(msg, (err) => {
        if (err) finish(new Error((err as NodeJS.ErrnoException).code ?? err.message));
      });
    });
  });
}

/** A KRB-ERROR with error-code 52? Read without a full decode: [APPLICATION 30]…[6] INTEGER 52. */
function isResponseTooBig(reply: Buffer): boolean {
  if (reply[0] !== 0x7e) return false;
  // error-code is the only [6] INTEGER 52 a KRB-ERROR can hold before its strings.
  return reply.includes(Buffer.from([0xa6, 0x03, 0x02, 0x01, KRB_ERR_RESPONSE_TOO_BIG]));
}

/**
 * Tries each KDC in turn, starting with `kdcs[first]` (the one that answered last time);
 * resolves with the first reply and the index of the KDC that gave it.
 */
export async function kdcExchange(
  kdcs: readonly KdcAddress[],
  msg: Buffer,
  timeoutMs: number,
  first = 0,
): Promise<{ reply: Buffer; index: number }> {
  const attempts: string[] = [];
  for (let i = 0; i < kdcs.length; i++) {
    const index = (first + i) % kdcs.length;
    const kdc = kdcs[index]!;
    const answered = (reply: Buffer) => ({ reply, index });
    try {
      return answered(await tcpExchange(kdc, msg, timeoutMs));
    } catch (err) {
      const e = err as Error & { connect?: boolean };
      attempts.push(`${show(kdc)} tcp ${e.message}`);
      if (!e.connect) continue; // connected but no answer: this KDC is stuck, try the next
    }
    try {
      const reply = await udpExchange(kdc, msg, timeoutMs);
      if (!isResponseTooBig(reply)) return answered(reply);
      attempts.push(`${show(kdc)} udp answer too big`);
      return answered(await tcpExchange(kdc, msg, timeoutMs));
    } catch (err) {
      attempts.push(`${show(kdc)} udp ${(err as Error).message}`);
    }
  }
  throw new KdcUnreachableError(attempts.length ? attempts : ['no KDC address']);
}
