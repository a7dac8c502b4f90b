import { readFileSync } from 'node:fs';
import { randomInt } from 'node:crypto';
import { SsoError, type KdcErrorInfo, type SsoErrorCode } from '../errors.js';
import {
  EncryptionKey,
  ETYPE_AES128_CTS_HMAC_SHA1_96,
  ETYPE_AES256_CTS_HMAC_SHA1_96,
  isSupportedEtype,
  iterationsFromParams,
  KerberosCryptoError,
  KeyUsage,
  stringToKey,
} from './crypto.js';
import { KDC_ERR, kdcErrorName } from './kdc-errors.js';
import { keysFor, parseKeytab, splitPrincipal } from './keytab.js';
import { krb5ConfPath, parseKdcAddress, parseKrb5Conf, type Krb5Conf } from './krb5-conf.js';
import {
  decodeEncKdcRepPart,
  decodeReply,
  encodeApReq,
  encodeKdcReq,
  encodeReqBody,
  etypeInfo2,
  KdcOption,
  methodData,
  NT_ENTERPRISE,
  NT_PRINCIPAL,
  NT_SRV_INST,
  PacOption,
  paEncTimestamp,
  paForUser,
  paPacOptions,
  paPacRequest,
  paTgsReq,
  type EncKdcRepPart,
  type KdcRep,
  type KdcReqBody,
  type KrbError,
  type PaData,
  type PrincipalName,
} from './messages.js';
import {
  CKSUMTYPE_GSSAPI,
  GssFlag,
  gssChecksum,
  gssKrb5InitialToken,
  spnegoNegTokenInit,
} from './spnego.js';
import { kdcExchange, KdcUnreachableError, type KdcAddress } from './transport.js';

export interface KerberosDelegatorOptions {
  /** The service account: `'appproxy$@CORP.TEST'` or `'appproxy@CORP.TEST'`; without `@REALM`, krb5.conf's `default_realm`. */
  principal: string;
  /** Keytab file path (MIT format). One of `keytab` / `password`. */
  keytab?: string;
  /** The service account's password. One of `keytab` / `password`. */
  password?: string;
  /** KDC addresses, `host[:port]` (port 88 by default); else krb5.conf's `[realms]` entry. */
  kdc?: string[];
  /** krb5.conf path. @default `KRB5_CONFIG`, then `/etc/krb5.conf` */
  krb5Conf?: string;
  /** Time limit of one request to one KDC. @default 5000 */
  timeoutMs?: number;
  /** Clock in ms (tests shift it). @default Date.now */
  now?: () => number;
  /** Most (user, SPN) service tickets kept; the least recently used goes first. @default 10000 */
  maxTickets?: number;
}

/** A ticket and what goes with it, as this client keeps it. */
interface Credential {
  ticket: Buffer;
  key: EncryptionKey;
  cname: PrincipalName;
  crealm: string;
  flags: number[];
  /** Our clock: when to get a new one (TGT) / until when to use it (service tickets). */
  refreshAt: number;
  expiresAt: number;
  /** Our clock: the ticket's end time (as the KDC set it, shifted to our clock). */
  endsAt: number;
}

/** Service tickets are reused until this long before they expire. */
const TICKET_MARGIN_MS = 5 * 60_000;
/** The service TGT is renewed after this share of its life. */
const TGT_RENEW_AT = 0.8;
const REQUEST_LIFETIME_MS = 24 * 3600_000;

const AS_OPTIONS = [KdcOption.forwardable, KdcOption.renewableOk, KdcOption.canonicalize];
const S4U2SELF_OPTIONS = [KdcOption.forwardable, KdcOption.canonicalize];
const S4U2PROXY_OPTIONS = [KdcOption.forwardable, KdcOption.canonicalize, KdcOption.cnameInAddlTkt];
/** The flags in the 0x8003 checksum: no delegation, no mutual authentication (no AP-REP read). */
const GSS_CHECKSUM = {
  type: CKSUMTYPE_GSSAPI,
  value: gssChecksum(GssFlag.replay | GssFlag.sequence | GssFlag.conf | GssFlag.integ),
};

type Phase = 'as' | 's4u2self' | 's4u2proxy';

function parseName(name: string): PrincipalName {
  const components = name.split('/');
  return { type: components.length > 1 ? NT_SRV_INST : NT_PRINCIPAL, components };
}

/**
 * Kerberos constrained delegation with protocol transition (MS-SFU), for a service account:
 * it logs in (AS exchange, keytab or password), asks the KDC for a ticket to itself on behalf
 * of a user (S4U2Self), trades that for a ticket to the backend's SPN (S4U2Proxy), and wraps
 * an AP-REQ in SPNEGO for `Authorization: Negotiate …`. Tickets are cached per (user, SPN);
 * each call makes a fresh authenticator.
 *
 * @example
 * const kerberos = new KerberosDelegator({
 *   principal: 'appproxy@CORP.TEST',
 *   keytab: '/etc/appproxy/appproxy.keytab',
 *   kdc: ['dc1.corp.test'],
 * });
 * const header = await kerberos.authorization('alice@CORP.TEST', 'HTTP/intranet.corp.test');
 * // 'Negotiate YIIG…'
 */
export class KerberosDelegator {
  /** The service account's realm. */
  readonly realm: string;
  /** KDC round trips made and cached tickets used, for tests and metrics. */
  readonly stats = { kdcExchanges: 0, ticketCacheHits: 0 };

  private readonly service: PrincipalName;
  /** The service account's name without its realm, for messages. */
  private readonly serviceText: string;
  private readonly keytabKeys: EncryptionKey[] | undefined;
  /** A true private field: util.inspect and JSON.stringify never see the password. */
  readonly #password: string | undefined;
  private readonly passwordKeys = new Map<string, EncryptionKey>();
  private readonly kdcs: KdcAddress[];
  private kdcIndex = 0;
  private readonly timeoutMs: number;
  private readonly now: () => number;
  private readonly maxTickets: number;

  private tgt: Credential | undefined;
  private tgtPending: Promise<Credential> | undefined;
  private readonly tickets = new Map<string, Credential>();
  private readonly pending = new Map<string, Promise<Credential>>();
  /** Microseconds of the last authenticator: each gets a later (ctime, cusec). */
  private lastAuthUs = 0;
  /**
   * PA-PAC-OPTIONS (resource-based delegation) goes with every S4U2Proxy: AD needs it for
   * RBCD, and Samba 4.17 grants classic constrained delegation with it too. A KDC that
   * refuses a request with it gets the request once more without; if that succeeds, it is
   * left out from then on. Once a request with it succeeded, a refusal is final.
   */
  private pacOptions: 'send' | 'omit' | 'confirmed' = 'send';

  constructor(opts: KerberosDelegatorOptions) {
    const invalid = (what: string) =>
      new SsoError('APPPROXY_SSO_KERBEROS_CONFIG_INVALID', `Kerberos settings: ${what}`);
    if (typeof opts.principal !== 'string' || opts.principal.trim() === '')
      throw invalid('principal is required');
    if ((opts.keytab === undefined) === (opts.password === undefined))
      throw invalid('give exactly one of keytab and password');
    if (opts.password !== undefined && opts.password === '') throw invalid('password is empty');
    this.timeoutMs = opts.timeoutMs ?? 5000;
    if (!(this.timeoutMs > 0)) throw invalid('timeoutMs must be positive');
    this.now = opts.now ?? Date.now;
    this.maxTickets = opts.maxTickets ?? 10_000;
    if (!(this.maxTickets >= 0)) throw invalid('maxTickets must be 0 or more');

    const [name, principalRealm] = splitPrincipal(opts.principal.trim());
    if (name === '') throw invalid(`principal ${opts.principal} has no name`);
    const needConf = principalRealm === '' || !opts.kdc?.length || opts.krb5Conf !== undefined;
    let conf: Krb5Conf = { kdcs: new Map() };
    let confPath = '';
    if (needConf) {
      confPath = krb5ConfPath(opts.krb5Conf);
      let text: string;
      try {
        text = readFileSync(confPath, 'utf8');
      } catch (err) {
        throw new SsoError(
          'APPPROXY_SSO_KERBEROS_CONFIG_INVALID',
          `Kerberos settings: cannot read krb5.conf ${confPath}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
        );
      }
      try {
        conf = parseKrb5Conf(text);
      } catch (err) {
        throw invalid(`krb5.conf ${confPath}: ${(err as Error).message}`);
      }
    }
    const realm = principalRealm || conf.defaultRealm;
    if (!realm)
      throw invalid(`principal ${opts.principal} has no @REALM and ${confPath} no default_realm`);
    this.realm = realm;
    this.service = parseName(name);
    this.serviceText = name;

    const kdcList = opts.kdc?.length
      ? opts.kdc
      : (conf.kdcs.get(realm) ??
        [...conf.kdcs].find(([r]) => r.toUpperCase() === realm.toUpperCase())?.[1]);
    if (!kdcList?.length)
      throw invalid(`no KDC for ${realm} (kdc option or [realms] in ${confPath})`);
    try {
      this.kdcs = kdcList.map(parseKdcAddress);
    } catch (err) {
      throw invalid((err as Error).message);
    }

    if (opts.keytab !== undefined) {
      let keys: EncryptionKey[];
      try {
        keys = keysFor(parseKeytab(readFileSync(opts.keytab)), `${name}@${realm}`);
      } catch (err) {
        const e = err as NodeJS.ErrnoException;
        throw invalid(`keytab ${opts.keytab}: ${e.code ?? e.message}`);
      }
      if (keys.length === 0)
        throw invalid(`keytab ${opts.keytab} has no AES key for ${name}@${realm}`);
      this.keytabKeys = keys;
      this.#password = undefined;
    } else {
      this.keytabKeys = undefined;
      this.#password = opts.password;
    }
  }

  /**
   * `Negotiate <base64 SPNEGO AP-REQ>` for `user` towards `spn` (`HTTP/host`). `user` with an
   * `@` is an enterprise name (a UPN, sent as given); without, a name in the service's realm.
   * Throws `SsoError` with a Kerberos `SSO_*` code.
   */
  async authorization(user: string, spn: string): Promise<string> {
    const cred = await this.serviceTicket(user, spn);
    const us = Math.max(Math.floor(this.now() * 1000), this.lastAuthUs + 1);
    this.lastAuthUs = us;
    const apReq = encodeApReq(
      cred.ticket,
      cred.key,
      {
        crealm: cred.crealm,
        cname: cred.cname,
        ctimeMs: Math.floor(us / 1000),
        cusec: us % 1_000_000,
        checksum: GSS_CHECKSUM,
        seqNumber: randomInt(0, 2 ** 31 - 1),
      },
      KeyUsage.AP_REQ_AUTHENTICATOR,
    );
    return `Negotiate ${spnegoNegTokenInit(gssKrb5InitialToken(apReq)).toString('base64')}`;
  }

  /**
   * The service ticket for `user` towards `spn` (from the cache, or S4U2Self + S4U2Proxy),
   * described: when it ends (this host's clock) and whether it came from the cache — for
   * diagnostics (`appproxy-relay apps test --user`). Throws as {@link authorization} does.
   *
   * @example
   * const t = await kerberos.ticket('alice@CORP.TEST', 'HTTP/intranet.corp.test');
   * t.endsAt; // Date, ~10 h from now
   */
  async ticket(user: string, spn: string): Promise<{ endsAt: Date; cached: boolean }> {
    const hits = this.stats.ticketCacheHits;
    const pending = this.serviceTicket(user, spn);
    // A cache hit is counted before serviceTicket's first await.
    const cached = this.stats.ticketCacheHits > hits;
    return { endsAt: new Date((await pending).endsAt), cached };
  }

  /** Drops every cached ticket. The delegator keeps no timers; it can still be used after. */
  close(): void {
    this.tickets.clear();
    this.tgt = undefined;
  }

  // -------------------------------------------------------------------------------------------

  private async serviceTicket(user: string, spn: string): Promise<Credential> {
    if (user === '') throw new SsoError('SSO_USER_UNKNOWN', 'Kerberos: empty user name');
    const target = splitPrincipal(spn)[1] ? splitPrincipal(spn)[0] : spn;
    const cacheKey = `${user}\0${target}`;
    const hit = this.tickets.get(cacheKey);
    if (hit && this.now() < hit.expiresAt) {
      this.tickets.delete(cacheKey);
      this.tickets.set(cacheKey, hit);
      this.stats.ticketCacheHits++;
      return hit;
    }
    if (hit) this.tickets.delete(cacheKey);
    let p = this.pending.get(cacheKey);
    if (p === undefined) {
      p = this.delegate(user, target).then(
        (cred) => {
          this.pending.delete(cacheKey);
          this.tickets.set(cacheKey, cred);
          if (this.tickets.size > this.maxTickets)
            this.tickets.delete(this.tickets.keys().next().value!);
          return cred;
        },
        (err: unknown) => {
          this.pending.delete(cacheKey);
          throw err;
        },
      );
      this.pending.set(cacheKey, p);
    }
    return p;
  }

  private async delegate(user: string, spn: string): Promise<Credential> {
    try {
      return await this.delegateOnce(user, spn);
    } catch (err) {
      // A TGT the KDC no longer takes (expired, or the account's key changed): log in again once.
      const code = err instanceof SsoError ? err.kdcError?.code : undefined;
      if (code === 32 /* TKT_EXPIRED */ || code === KDC_ERR.MODIFIED) {
        this.tgt = undefined;
        return this.delegateOnce(user, spn);
      }
      throw err;
    }
  }

  private async delegateOnce(user: string, spn: string): Promise<Credential> {
    const tgt = await this.serviceTgt();
    // S4U2Self: a ticket from `user` to the service itself.
    const userName: PrincipalName = user.includes('@')
      ? { type: NT_ENTERPRISE, components: [user] }
      : { type: NT_PRINCIPAL, components: [user] };
    const self = await this.tgsExchange(
      tgt,
      {
        options: S4U2SELF_OPTIONS,
        realm: tgt.crealm,
        sname: tgt.cname,
        till: this.now() + REQUEST_LIFETIME_MS,
        nonce: randomInt(0, 2 ** 31 - 1),
        etypes: [ETYPE_AES256_CTS_HMAC_SHA1_96, ETYPE_AES128_CTS_HMAC_SHA1_96],
      },
      [paForUser(userName, tgt.crealm, tgt.key)],
      's4u2self',
      { user, spn },
    );
    // S4U2Proxy: that ticket, as evidence, for a ticket from `user` to the SPN.
    const body: KdcReqBody = {
      options: S4U2PROXY_OPTIONS,
      realm: tgt.crealm,
      sname: parseName(spn),
      till: this.now() + REQUEST_LIFETIME_MS,
      nonce: randomInt(0, 2 ** 31 - 1),
      etypes: [ETYPE_AES256_CTS_HMAC_SHA1_96, ETYPE_AES128_CTS_HMAC_SHA1_96],
      additionalTickets: [self.rep.ticket],
    };
    const proxy = async (pacOptions: boolean) =>
      this.tgsExchange(
        tgt,
        { ...body, nonce: randomInt(0, 2 ** 31 - 1) },
        pacOptions ? [paPacOptions([PacOption.rbcd])] : [],
        's4u2proxy',
        { user, spn },
      );
    let got: { rep: KdcRep; part: EncKdcRepPart };
    const withPacOptions = this.pacOptions !== 'omit';
    try {
      got = await proxy(withPacOptions);
      if (withPacOptions) this.pacOptions = 'confirmed';
    } catch (err) {
      const code = err instanceof SsoError ? err.kdcError?.code : undefined;
      if (this.pacOptions !== 'send' || (code !== KDC_ERR.BADOPTION && code !== KDC_ERR.POLICY))
        throw err;
      got = await proxy(false);
      this.pacOptions = 'omit';
    }
    return this.credential(got.rep, got.part, 'ticket');
  }

  private credential(rep: KdcRep, part: EncKdcRepPart, kind: 'tgt' | 'ticket'): Credential {
    const now = this.now();
    const life = part.endtime - (part.starttime ?? part.authtime);
    return {
      ticket: rep.ticket,
      key: part.key,
      cname: rep.cname,
      crealm: rep.crealm,
      flags: part.flags,
      refreshAt: kind === 'tgt' ? now + life * TGT_RENEW_AT : now + life - TICKET_MARGIN_MS,
      expiresAt: kind === 'tgt' ? now + life : now + life - TICKET_MARGIN_MS,
      endsAt: now + life,
    };
  }

  /** The service account's TGT: cached, renewed by a fresh login after 80 % of its life. */
  private async serviceTgt(): Promise<Credential> {
    const now = this.now();
    const tgt = this.tgt;
    if (tgt && now < tgt.refreshAt) return tgt;
    if (this.tgtPending === undefined) {
      this.tgtPending = this.login().then(
        (cred) => {
          this.tgtPending = undefined;
          this.tgt = cred;
          return cred;
        },
        (err: unknown) => {
          this.tgtPending = undefined;
          throw err;
        },
      );
    }
    try {
      return await this.tgtPending;
    } catch (err) {
      // Renewal failed but the old TGT is still good: keep using it.
      if (tgt && this.now() < tgt.expiresAt - 60_000) return tgt;
      throw err;
    }
  }

  /** AS exchange: first without pre-authentication, then with PA-ENC-TIMESTAMP as asked. */
  private async login(): Promise<Credential> {
    const etypes = this.keytabKeys?.map((k) => k.etype) ?? [
      ETYPE_AES256_CTS_HMAC_SHA1_96,
      ETYPE_AES128_CTS_HMAC_SHA1_96,
    ];
    const defaultSalt = this.realm + this.service.components.join('');
    const request = (padata: PaData[]) => {
      const nonce = randomInt(0, 2 ** 31 - 1);
      const body = encodeReqBody({
        options: AS_OPTIONS,
        cname: this.service,
        realm: this.realm,
        sname: { type: NT_SRV_INST, components: ['krbtgt', this.realm] },
        till: this.now() + REQUEST_LIFETIME_MS,
        nonce,
        etypes,
      });
      return { nonce, msg: encodeKdcReq(10, [...padata, paPacRequest()], body) };
    };
    const keyFor = (etype: number, salt: string | undefined, params: Buffer | undefined) => {
      if (this.keytabKeys) return this.keytabKeys.find((k) => k.etype === etype);
      if (!isSupportedEtype(etype)) return undefined;
      // PBKDF2 (4096 rounds by default) once per salt, not at every renewal.
      const iterations = iterationsFromParams(params);
      const id = `${etype}\0${iterations}\0${salt ?? defaultSalt}`;
      let key = this.passwordKeys.get(id);
      if (key === undefined) {
        key = stringToKey(etype, this.#password!, salt ?? defaultSalt, iterations);
        this.passwordKeys.clear();
        this.passwordKeys.set(id, key);
      }
      return key;
    };

    let req = request([]);
    let reply = await this.send(req.msg, 'as');
    let key: EncryptionKey | undefined;
    if (reply.kind === 'error') {
      const e = reply.error;
      if (e.code !== KDC_ERR.PREAUTH_REQUIRED) throw this.kdcFailure(e, 'as');
      const info = etypeInfo2(methodData(e.data));
      const entry =
        info.find((i) => etypes.includes(i.etype)) ??
        (info.length ? undefined : { etype: etypes[0]! });
      if (entry === undefined)
        throw new SsoError(
          'SSO_SERVICE_LOGIN_FAILED',
          `Kerberos: the KDC offers no AES key for ${this.serviceText}@${this.realm} (etypes ${info.map((i) => i.etype).join(', ')})`,
        );
      key = keyFor(entry.etype, entry.salt, entry.s2kparams);
      if (key === undefined)
        throw new SsoError('SSO_SERVICE_LOGIN_FAILED', `Kerberos: no key of etype ${entry.etype}`);
      req = request([paEncTimestamp(key, this.now())]);
      reply = await this.send(req.msg, 'as');
      if (reply.kind === 'error') throw this.kdcFailure(reply.error, 'as');
    }
    const rep = reply.rep;
    if (rep.msgType !== 11)
      throw this.failure('SSO_KERBEROS_FAILED', 'the KDC answered an AS-REQ with a TGS-REP');
    // The reply's enc-part may use another etype than pre-authentication did.
    if (key === undefined || key.etype !== rep.encPart.etype) {
      const info = etypeInfo2(rep.padata).find((i) => i.etype === rep.encPart.etype);
      key = keyFor(rep.encPart.etype, info?.salt, info?.s2kparams);
    }
    if (key === undefined)
      throw this.failure(
        'SSO_SERVICE_LOGIN_FAILED',
        `no key of etype ${rep.encPart.etype} for ${this.serviceText}@${this.realm}`,
      );
    let part: EncKdcRepPart;
    try {
      part = decodeEncKdcRepPart(key, KeyUsage.AS_REP_ENC_PART, rep.encPart);
      if (part.nonce !== req.nonce) throw new Error('nonce mismatch');
    } catch (err) {
      if (err instanceof KerberosCryptoError)
        throw this.failure(
          'SSO_SERVICE_LOGIN_FAILED',
          `the KDC's answer does not decrypt with the key of ${this.serviceText}@${this.realm} (wrong password or keytab)`,
        );
      throw this.failure(
        'SSO_KERBEROS_FAILED',
        `unreadable AS-REP: ${(err as Error).message}`,
        err,
      );
    }
    return this.credential(rep, part, 'tgt');
  }

  /** A TGS exchange with the service TGT; returns the reply and its decrypted part. */
  private async tgsExchange(
    tgt: Credential,
    body: KdcReqBody,
    padata: PaData[],
    phase: Phase,
    about: { user: string; spn: string },
  ): Promise<{ rep: KdcRep; part: EncKdcRepPart }> {
    const bodyDer = encodeReqBody(body);
    const pa = [
      paTgsReq(tgt.ticket, tgt.key, { realm: tgt.crealm, name: tgt.cname }, bodyDer, this.now()),
      ...padata,
    ];
    const reply = await this.send(encodeKdcReq(12, pa, bodyDer), phase);
    if (reply.kind === 'error') throw this.kdcFailure(reply.error, phase, about);
    try {
      const part = decodeEncKdcRepPart(
        tgt.key,
        KeyUsage.TGS_REP_ENC_PART_SESSION_KEY,
        reply.rep.encPart,
      );
      if (part.nonce !== body.nonce) throw new Error('nonce mismatch');
      return { rep: reply.rep, part };
    } catch (err) {
      throw this.failure(
        'SSO_KERBEROS_FAILED',
        `unreadable TGS-REP (${phase}): ${(err as Error).message}`,
        err,
      );
    }
  }

  private async send(msg: Buffer, phase: Phase) {
    this.stats.kdcExchanges++;
    let answer: Buffer;
    try {
      const got = await kdcExchange(this.kdcs, msg, this.timeoutMs, this.kdcIndex);
      answer = got.reply;
      this.kdcIndex = got.index; // a KDC that did not answer is not asked first next time
    } catch (err) {
      if (err instanceof KdcUnreachableError)
        throw new SsoError(
          'SSO_KDC_UNREACHABLE',
          `Kerberos: no KDC for ${this.realm} answered (${err.attempts.join('; ')})`,
          { cause: err },
        );
      throw err;
    }
    try {
      return decodeReply(answer);
    } catch (err) {
      throw this.failure(
        'SSO_KERBEROS_FAILED',
        `unreadable KDC answer (${phase}): ${(err as Error).message}`,
        err,
      );
    }
  }

  private failure(code: SsoErrorCode, what: string, cause?: unknown): SsoError {
    return new SsoError(code, `Kerberos: ${what}`, cause === undefined ? {} : { cause });
  }

  /** Maps a KRB-ERROR to the SsoError that tells the admin what to fix. */
  private kdcFailure(e: KrbError, phase: Phase, about?: { user: string; spn: string }): SsoError {
    return kdcErrorToSsoError(e, phase, {
      service: this.serviceText,
      realm: this.realm,
      now: this.now(),
      ...about,
    });
  }
}

/** The `SsoError` for a KDC's KRB-ERROR in a phase of the exchange (exported for tests). */
export function kdcErrorToSsoError(
  e: KrbError,
  phase: Phase,
  ctx: { service: string; realm: string; now: number; user?: string; spn?: string },
): SsoError {
  const kdcError: KdcErrorInfo = {
    code: e.code,
    name: kdcErrorName(e.code),
    ...(e.text ? { text: e.text } : {}),
  };
  const said = `${kdcError.name}${e.text ? `: ${e.text}` : ''}`;
  const make = (code: SsoErrorCode, message: string) =>
    new SsoError(code, `Kerberos: ${message} (${said})`, { kdcError });
  const who = `${ctx.service}@${ctx.realm}`;
  if (e.code === KDC_ERR.SKEW)
    return make(
      'SSO_CLOCK_SKEW',
      `clock skew: the KDC's time is ${new Date(e.stime).toISOString()}, ours ${new Date(ctx.now).toISOString()}`,
    );
  if (phase === 'as') {
    if (
      [
        KDC_ERR.C_PRINCIPAL_UNKNOWN,
        KDC_ERR.PREAUTH_FAILED,
        KDC_ERR.BAD_INTEGRITY,
        KDC_ERR.CLIENT_REVOKED,
        KDC_ERR.KEY_EXPIRED,
        KDC_ERR.ETYPE_NOSUPP,
      ].includes(e.code as 6)
    )
      return make('SSO_SERVICE_LOGIN_FAILED', `the service account ${who} cannot log in`);
    return make('SSO_KERBEROS_FAILED', `logging in as ${who} failed`);
  }
  if (phase === 's4u2self') {
    if (e.code === KDC_ERR.C_PRINCIPAL_UNKNOWN || e.code === KDC_ERR.S_PRINCIPAL_UNKNOWN)
      return make('SSO_USER_UNKNOWN', `the KDC does not know the user ${ctx.user}`);
    if (e.code === KDC_ERR.CLIENT_REVOKED)
      return make('SSO_USER_UNKNOWN', `the user ${ctx.user} is disabled or locked out`);
    return make('SSO_KERBEROS_FAILED', `S4U2Self for ${ctx.user} failed`);
  }
  if (e.code === KDC_ERR.BADOPTION || e.code === KDC_ERR.POLICY)
    return make(
      'SSO_DELEGATION_DENIED',
      `constrained delegation denied: allow ${ctx.service} to delegate to ${ctx.spn} with any protocol`,
    );
  if (e.code === KDC_ERR.S_PRINCIPAL_UNKNOWN)
    return make('SSO_SPN_UNKNOWN', `no account has the SPN ${ctx.spn} in ${ctx.realm}`);
  if (e.code === KDC_ERR.C_PRINCIPAL_UNKNOWN)
    return make('SSO_USER_UNKNOWN', `the KDC does not know the user ${ctx.user}`);
  return make('SSO_KERBEROS_FAILED', `S4U2Proxy for ${ctx.user} to ${ctx.spn} failed`);
}
