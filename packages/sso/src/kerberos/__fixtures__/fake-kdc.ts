/**
 * A small in-process KDC for unit tests: AS with PA-ENC-TIMESTAMP pre-authentication,
 * TGS with PA-TGS-REQ, S4U2Self (PA-FOR-USER) and S4U2Proxy (additional ticket), over real
 * TCP and/or UDP sockets on 127.0.0.1. Tickets are opaque random blobs it remembers; it
 * checks the authenticator and PA-FOR-USER checksums, so a client that gets them wrong fails.
 * Stands in only for what the Samba end-to-end test covers for real.
 */
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { createServer, type Server, type Socket } from 'node:net';
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import {
  checksum,
  decrypt,
  encrypt,
  EncryptionKey,
  hmacMd5Checksum,
  KeyUsage,
  stringToKey,
} from '../crypto.js';
import { app, ctx, Der, flags, generalString, int, kerberosTime, octets, seq } from '../der.js';
import {
  decodeEncryptedData,
  decodePrincipal,
  encodeEncryptedData,
  encodePrincipal,
  PA_ENC_TIMESTAMP,
  PA_ETYPE_INFO2,
  PA_FOR_USER,
  PA_PAC_OPTIONS,
  PA_TGS_REQ,
  type PrincipalName,
} from '../messages.js';

export const FAKE_REALM = 'FAKE.TEST';
export const FAKE_SERVICE = 'svc';
export const FAKE_PASSWORD = 'Svc-Pass-1';
export const FAKE_SALT = 'FAKE.TESTsvc-salt';

export type Exchange = 'as' | 'as-preauth' | 's4u2self' | 's4u2proxy';

export interface FakeKdcOptions {
  tcp?: boolean;
  udp?: boolean;
  /** Ticket lifetime in ms (TGT and service tickets). @default 10 h */
  lifetimeMs?: number;
  /** The KDC's clock. @default Date.now */
  now?: () => number;
  /** Return an error code to answer an exchange with a KRB-ERROR. */
  fail?: (exchange: Exchange, req: { user?: string; spn?: string }) => number | undefined;
  /** Answer every UDP request with KRB_ERR_RESPONSE_TOO_BIG. */
  udpTooBig?: boolean;
}

interface Issued {
  key: EncryptionKey;
  cname: PrincipalName;
}

export class FakeKdc {
  readonly serviceKey = stringToKey(18, FAKE_PASSWORD, FAKE_SALT);
  readonly log: Exchange[] = [];
  readonly pacOptionsSeen: boolean[] = [];
  private readonly tickets = new Map<string, Issued>();
  private tcp?: Server;
  private udp?: UdpSocket;
  private readonly sockets = new Set<Socket>();
  tcpPort = 0;
  udpPort = 0;

  constructor(readonly opts: FakeKdcOptions = {}) {}

  /** TCP connections still open on the KDC's side. */
  get openConnections(): number {
    return this.sockets.size;
  }

  get address(): string {
    return `127.0.0.1:${this.tcpPort || this.udpPort}`;
  }

  async start(): Promise<this> {
    if (this.opts.tcp !== false) {
      this.tcp = createServer((s) => {
        this.sockets.add(s);
        s.on('close', () => this.sockets.delete(s));
        let buf = Buffer.alloc(0);
        s.on('data', (d) => {
          buf = Buffer.concat([buf, d]);
          if (buf.length >= 4 && buf.length >= 4 + buf.readUInt32BE(0)) {
            const reply = this.answer(buf.subarray(4, 4 + buf.readUInt32BE(0)));
            const len = Buffer.alloc(4);
            len.writeUInt32BE(reply.length, 0);
            s.end(Buffer.concat([len, reply]));
          }
        });
        s.on('error', () => {});
      });
      await new Promise<void>((r) => this.tcp!.listen(this.udpPort, '127.0.0.1', r));
      this.tcpPort = (this.tcp.address() as AddressInfo).port;
    }
    if (this.opts.udp) {
      const udp = createSocket('udp4');
      this.udp = udp;
      udp.on('message', (msg, from) => {
        const reply = this.opts.udpTooBig ? this.error(52) : this.answer(msg);
        udp.send(reply, from.port, from.address);
      });
      await new Promise<void>((r) => udp.bind(this.tcpPort, '127.0.0.1', r));
      this.udpPort = udp.address().port;
    }
    return this;
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await Promise.all([
      this.tcp && new Promise((r) => this.tcp!.close(r)),
      this.udp && new Promise<void>((r) => this.udp!.close(() => r())),
    ]);
  }

  private now(): number {
    return (this.opts.now ?? Date.now)();
  }

  private error(code: number, data?: Buffer): Buffer {
    const now = this.now();
    return app(
      30,
      seq(
        ctx(0, int(5)),
        ctx(1, int(30)),
        ctx(4, kerberosTime(now)),
        ctx(5, int((now % 1000) * 1000)),
        ctx(6, int(code)),
        ctx(9, generalString(FAKE_REALM)),
        ctx(10, encodePrincipal({ type: 2, components: ['krbtgt', FAKE_REALM] })),
        data === undefined ? undefined : ctx(12, octets(data)),
      ),
    );
  }

  private issue(cname: PrincipalName): { ticket: Buffer; key: EncryptionKey } {
    const blob = randomBytes(32);
    const key = new EncryptionKey(18, randomBytes(32));
    this.tickets.set(blob.toString('hex'), { key, cname });
    const ticket = app(
      1,
      seq(
        ctx(0, int(5)),
        ctx(1, generalString(FAKE_REALM)),
        ctx(2, encodePrincipal({ type: 2, components: ['krbtgt', FAKE_REALM] })),
        ctx(3, encodeEncryptedData({ etype: 18, kvno: 1, cipher: blob })),
      ),
    );
    return { ticket, key };
  }

  private rep(
    msgType: 11 | 13,
    cname: PrincipalName,
    sname: PrincipalName,
    nonce: number,
    replyKey: EncryptionKey,
    usage: number,
  ): Buffer {
    const { ticket, key } = this.issue(cname);
    const now = this.now();
    const enc = app(
      msgType === 11 ? 25 : 26,
      seq(
        ctx(0, seq(ctx(0, int(key.etype)), ctx(1, octets(key.value)))),
        ctx(1, seq()),
        ctx(2, int(nonce)),
        ctx(4, flags([1])),
        ctx(5, kerberosTime(now)),
        ctx(7, kerberosTime(now + (this.opts.lifetimeMs ?? 10 * 3600_000))),
        ctx(9, generalString(FAKE_REALM)),
        ctx(10, encodePrincipal(sname)),
      ),
    );
    return app(
      msgType,
      seq(
        ctx(0, int(5)),
        ctx(1, int(msgType)),
        ctx(3, generalString(FAKE_REALM)),
        ctx(4, encodePrincipal(cname)),
        ctx(5, ticket),
        ctx(
          6,
          encodeEncryptedData({ etype: replyKey.etype, cipher: encrypt(replyKey, usage, enc) }),
        ),
      ),
    );
  }

  private answer(msg: Buffer): Buffer {
    try {
      const top = Der.parse(msg);
      const s = top.inner();
      const padata = (s.field(3)?.children() ?? []).map((p) => ({
        type: p.need(1).int(),
        value: p.need(2).octets(),
      }));
      const bodyDer = s.need(4);
      const nonce = bodyDer.need(7).int();
      const sname = decodePrincipal(bodyDer.need(3));
      if (top.tag === 10) return this.as(padata, bodyDer, nonce);
      return this.tgs(padata, bodyDer, sname, nonce);
    } catch {
      return this.error(60);
    }
  }

  private as(padata: { type: number; value: Buffer }[], body: Der, nonce: number): Buffer {
    const cname = decodePrincipal(body.need(1));
    const ts = padata.find((p) => p.type === PA_ENC_TIMESTAMP);
    if (ts === undefined) {
      this.log.push('as');
      const code = this.opts.fail?.('as', {});
      if (code !== undefined) return this.error(code);
      if (cname.components.join('/') !== FAKE_SERVICE) return this.error(6);
      const info = seq(
        seq(
          ctx(0, int(18)),
          ctx(1, generalString(FAKE_SALT)),
          ctx(2, octets(Buffer.from([0, 0, 16, 0]))),
        ),
      );
      const methodData = seq(seq(ctx(1, int(PA_ETYPE_INFO2)), ctx(2, octets(info))));
      return this.error(25, methodData);
    }
    this.log.push('as-preauth');
    const code = this.opts.fail?.('as-preauth', {});
    if (code !== undefined) return this.error(code);
    try {
      decrypt(
        this.serviceKey,
        KeyUsage.AS_REQ_PA_ENC_TIMESTAMP,
        decodeEncryptedData(Der.parse(ts.value)).cipher,
      );
    } catch {
      return this.error(24);
    }
    return this.rep(
      11,
      cname,
      { type: 2, components: ['krbtgt', FAKE_REALM] },
      nonce,
      this.serviceKey,
      KeyUsage.AS_REP_ENC_PART,
    );
  }

  /**
   * What the backend would read from an `Authorization: Negotiate …` header: the
   * authenticator inside the AP-REQ, decrypted with the session key of a ticket it issued.
   */
  acceptorView(header: string) {
    const spnego = Der.parse(Buffer.from(header.replace(/^Negotiate /, ''), 'base64'));
    const gss = Der.parse(spnego.children()[1]!.inner().need(2).octets());
    const apReq = Der.parse(gss.content.subarray(13)).inner();
    const issued = this.ticketOf(apReq.need(3))!;
    const auth = Der.parse(
      decrypt(issued.key, KeyUsage.AP_REQ_AUTHENTICATOR, decodeEncryptedData(apReq.need(4)).cipher),
    ).inner();
    return {
      ticketClient: issued.cname.components.join('/'),
      cname: decodePrincipal(auth.need(2)).components.join('/'),
      ctime: auth.need(5).time(),
      cusec: auth.need(4).int(),
      checksumType: auth.need(3).need(0).int(),
      checksum: auth.need(3).need(1).octets(),
      seqNumber: auth.need(7).int(),
    };
  }

  private ticketOf(ticketDer: Der): Issued | undefined {
    const blob = decodeEncryptedData(ticketDer.inner().need(3)).cipher;
    return this.tickets.get(blob.toString('hex'));
  }

  private tgs(
    padata: { type: number; value: Buffer }[],
    body: Der,
    sname: PrincipalName,
    nonce: number,
  ): Buffer {
    const apReq = Der.parse(padata.find((p) => p.type === PA_TGS_REQ)!.value).inner();
    const tgt = this.ticketOf(apReq.need(3));
    if (tgt === undefined) return this.error(31);
    const auth = Der.parse(
      decrypt(tgt.key, KeyUsage.TGS_REQ_AUTHENTICATOR, decodeEncryptedData(apReq.need(4)).cipher),
    ).inner();
    const cksum = auth.need(3).need(1).octets();
    if (!cksum.equals(checksum(tgt.key, KeyUsage.TGS_REQ_AUTH_CKSUM, body.raw)))
      return this.error(41);

    const forUser = padata.find((p) => p.type === PA_FOR_USER);
    const spn = sname.components.join('/');
    if (forUser) {
      const f = Der.parse(forUser.value);
      const user = decodePrincipal(f.need(0));
      const realm = f.need(1).string();
      this.log.push('s4u2self');
      const nt = Buffer.alloc(4);
      nt.writeInt32LE(user.type, 0);
      const want = hmacMd5Checksum(
        tgt.key.value,
        17,
        Buffer.concat([nt, Buffer.from(user.components.join('') + realm + 'Kerberos')]),
      );
      if (!f.need(2).need(1).octets().equals(want)) return this.error(41);
      const name = user.components.join('/');
      const code = this.opts.fail?.('s4u2self', { user: name });
      if (code !== undefined) return this.error(code);
      return this.rep(13, user, sname, nonce, tgt.key, KeyUsage.TGS_REP_ENC_PART_SESSION_KEY);
    }
    this.log.push('s4u2proxy');
    this.pacOptionsSeen.push(padata.some((p) => p.type === PA_PAC_OPTIONS));
    const evidence = this.ticketOf(body.need(11).children()[0]!);
    if (evidence === undefined) return this.error(13);
    const code = this.opts.fail?.('s4u2proxy', {
      user: evidence.cname.components.join('/'),
      spn,
    });
    if (code !== undefined) return this.error(code);
    return this.rep(
      13,
      evidence.cname,
      sname,
      nonce,
      tgt.key,
      KeyUsage.TGS_REP_ENC_PART_SESSION_KEY,
    );
  }
}
