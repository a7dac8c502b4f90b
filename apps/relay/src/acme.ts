import type { AcmeConfig, RelayConfig, StateStore } from '@appproxy/config';
import type { Logger } from '@appproxy/telemetry';
import * as acme from 'acme-client';
import { X509Certificate } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  watch,
  writeFileSync,
  type FSWatcher,
} from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Agent, get as httpsGet } from 'node:https';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { createSecureContext, type SecureContext } from 'node:tls';

/** The TLS-ALPN-01 protocol (RFC 8737). */
export const ACME_TLS_ALPN = 'acme-tls/1';
const CHALLENGE_PATH = '/.well-known/acme-challenge/';
/** First retry after a failed order; doubled each time up to {@link BACKOFF_MAX_MS}. */
const BACKOFF_MIN_MS = 10_000;
const BACKOFF_MAX_MS = 3_600_000;
/** Timers longer than this (setTimeout's limit) are re-armed in steps. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Relay workers share one `stateDir`: the `leader` (worker 0) orders and renews, and also
 * writes pending challenges there, since the CA's validation may reach any worker; the
 * `followers` order nothing and serve what the leader wrote, re-read when the files change.
 * `alone`: a relay of one process.
 */
export type AcmeRole = 'alone' | 'leader' | 'follower';
/** Followers re-read the files this often as well, should a change event be missed. */
const FOLLOW_POLL_MS = 60_000;
/** Shared store: how long a follower keeps a challenge (or its absence) read from the store. */
const CHALLENGE_CACHE_MS = 1_000;

/**
 * Relay instances sharing a PostgreSQL store: the ACME material lives there (sealed), as
 * materials `acme/account-key`, `acme/cert/<host>` (JSON `{cert, key}`), and pending
 * challenges `acme/http-01/<token>` and `acme/tls-alpn-01/<host>` (JSON `{cert, key}`), so any
 * instance answers a validation. One instance orders: {@link isLeader} (the live instance
 * whose name sorts first, {@link fleetLeader}); the others serve what the store holds.
 */
export interface AcmeShared {
  store: Pick<
    StateStore,
    'getMaterial' | 'putMaterial' | 'putMaterialIfAbsent' | 'deleteMaterial' | 'watch'
  >;
  /** Whether this instance orders and renews now; asked again on {@link AcmeCertificates.fleetChanged}. */
  isLeader: () => boolean;
}

/** The instance that orders: of the live instances, the one whose name sorts first. */
export function fleetLeader(names: readonly string[]): string | undefined {
  return [...names].sort()[0];
}

interface HostState {
  /** The certificate file's mtime when a follower loaded it. */
  loadedMtimeMs?: number;
  /** Shared store: the material loaded (to notice another instance's renewal). */
  loadedText?: string;
  /** Shared store: when the certificate loaded is due for renewal. */
  renewAt?: Date;
  /** Shared store: settles once the stored certificate was read. */
  loaded?: Promise<void>;
  context?: SecureContext;
  notAfter?: Date;
  timer?: NodeJS.Timeout;
  failures: number;
}

/**
 * Automatic certificates (`relay.acme`): obtains a certificate from an ACME CA for every
 * external host that no configured certificate covers, keeps it (and the account key) in
 * `stateDir/acme` (0600, written atomically), renews it when two thirds of its lifetime
 * have passed, retries failures with exponential backoff, and answers the CA's challenges:
 * HTTP-01 on the `redirectHttp` listener ({@link answerHttp01}), TLS-ALPN-01 on the public
 * listener ({@link context} hands out the challenge certificate while one is pending).
 * New certificates are served from the next handshake on, without a restart.
 */
export class AcmeCertificates {
  readonly #dir: string;
  readonly #log: Logger;
  #settings: AcmeConfig | undefined;
  #client: acme.Client | undefined;
  readonly #hosts = new Map<string, HostState>();
  /** HTTP-01: token → key authorization. */
  readonly #tokens = new Map<string, string>();
  /** TLS-ALPN-01: host → the challenge certificate's context. */
  readonly #alpn = new Map<string, SecureContext>();
  /** Orders run one at a time (the CA's rate limits, and logs that read in order). */
  #queue: Promise<void> = Promise.resolve();
  #stopped = false;
  readonly #role: AcmeRole;
  #watcher: FSWatcher | undefined;
  #poll: NodeJS.Timeout | undefined;
  readonly #shared: AcmeShared | undefined;
  /** Shared store: whether this instance orders (the fleet's leader) now. */
  #leading = false;
  #unwatch: (() => void) | undefined;
  /** Shared store, a follower: challenges read from the store, briefly cached. */
  readonly #asked = new Map<string, { at: number; value: Promise<string | undefined> }>();
  readonly #alpnShared = new Map<string, SecureContext | undefined>();

  /**
   * @param role the workers of one host sharing `stateDir` (ignored with `shared`)
   * @param shared a PostgreSQL store shared by several instances: the material lives there
   */
  constructor(stateDir: string, log: Logger, role: AcmeRole = 'alone', shared?: AcmeShared) {
    this.#dir = join(stateDir, 'acme');
    this.#log = log;
    this.#role = role;
    this.#shared = shared;
  }

  /** Shared store: settles once the stored certificates of the hosts configured are read. */
  async loaded(): Promise<void> {
    await Promise.all([...this.#hosts.values()].map((s) => s.loaded));
  }

  /**
   * Shared store: the live instances changed; this instance starts ordering when it became
   * the leader (from the certificates in the store) and stops when it no longer is.
   */
  fleetChanged(): void {
    const shared = this.#shared;
    if (!shared || this.#stopped) return;
    const leading = shared.isLeader();
    if (leading === this.#leading) return;
    this.#leading = leading;
    if (!this.#settings) return;
    this.#log.info(leading ? 'acme ordering here' : 'acme ordering left to another instance', {
      hosts: [...this.#hosts.keys()],
    });
    for (const [host, state] of this.#hosts) {
      if (!leading) clearTimeout(state.timer);
      else void state.loaded?.then(() => this.#scheduleShared(host, state));
    }
  }

  /** Shared store, the leader: the next order, from the certificate loaded (if any). */
  #scheduleShared(host: string, state: HostState): void {
    if (this.#stopped || !this.#leading || this.#hosts.get(host) !== state) return;
    this.#schedule(host, state, state.renewAt ? state.renewAt.getTime() - Date.now() : 0);
  }

  get #challengeDir(): string {
    return join(this.#dir, 'challenges');
  }

  /**
   * Applies a configuration (at start and on every reload): the hosts wanted are the exact
   * external host names of the apps for which `covered` is false. Hosts no longer wanted
   * stop renewing; their files stay.
   */
  configure(config: RelayConfig, covered: (host: string) => boolean): void {
    const settings = config.relay.acme;
    if (JSON.stringify(settings) !== JSON.stringify(this.#settings)) {
      this.#settings = settings;
      this.#client = undefined;
      // New account settings: every host is considered anew.
      for (const host of [...this.#hosts.keys()]) this.#drop(host);
    }
    const wanted = new Set<string>();
    if (settings)
      for (const app of config.apps) {
        const host = new URL(app.externalUrl).hostname.toLowerCase();
        // Exact DNS names: wildcards need DNS-01, IP addresses are left to certificates.
        if (!host.includes('*') && isIP(host.replace(/^\[|\]$/g, '')) === 0 && !covered(host))
          wanted.add(host);
      }
    for (const host of [...this.#hosts.keys()]) if (!wanted.has(host)) this.#drop(host);
    for (const host of wanted) if (!this.#hosts.has(host)) this.#add(host);
    if (this.#shared) {
      if (settings && !this.#unwatch && !this.#stopped) this.#followShared();
      return;
    }
    if (this.#role === 'follower' && settings && !this.#watcher && !this.#stopped) this.#follow();
  }

  /** Shared store: certificates re-read on the store's change events and a slow poll. */
  #followShared(): void {
    const sync = () => {
      this.#asked.clear();
      this.#alpnShared.clear();
      if (!this.#stopped) void this.#syncShared();
    };
    this.#unwatch = this.#shared!.store.watch(sync);
    this.#poll = setInterval(sync, FOLLOW_POLL_MS);
    this.#poll.unref();
  }

  /** Shared store: certificates another instance stored (issued or renewed) are loaded. */
  async #syncShared(): Promise<void> {
    for (const [host, state] of this.#hosts) {
      const text = await this.#shared!.store.getMaterial(`acme/cert/${host}`).catch(
        () => undefined,
      );
      if (text === undefined || text === state.loadedText || this.#hosts.get(host) !== state)
        continue;
      if (this.#useShared(host, state, text) && this.#leading) this.#scheduleShared(host, state);
    }
  }

  /** Shared store: serves the stored `{cert, key}` if it is valid for `host`. */
  #useShared(host: string, state: HostState, text: string): boolean {
    try {
      const { cert, key } = JSON.parse(text) as { cert: string; key: string };
      const x509 = new X509Certificate(cert);
      const notAfter = new Date(x509.validTo);
      if (notAfter.getTime() <= Date.now() || !x509.checkHost(host)) return false;
      state.context = createSecureContext({ cert, key, minVersion: 'TLSv1.2' });
      state.notAfter = notAfter;
      state.loadedText = text;
      state.renewAt = renewalTime(x509);
      this.#log.info('acme certificate loaded', {
        host,
        notAfter: notAfter.toISOString(),
        renewAt: state.renewAt.toISOString(),
      });
      return true;
    } catch (err) {
      this.#log.warn('acme certificate not loaded', { host, error: err });
      return false;
    }
  }

  /** A follower: what the leader writes is read again when the files change. */
  #follow(): void {
    mkdirSync(this.#challengeDir, { recursive: true, mode: 0o700 });
    const sync = () => {
      if (!this.#stopped) this.#sync();
    };
    this.#watcher = watch(this.#dir, { recursive: true }, sync);
    this.#watcher.on('error', () => {});
    this.#poll = setInterval(sync, FOLLOW_POLL_MS);
    this.#poll.unref();
    this.#sync();
  }

  /** A follower: pending challenges and changed certificates from the files. */
  #sync(): void {
    const dir = this.#challengeDir;
    const files = (() => {
      try {
        return readdirSync(dir);
      } catch {
        return [];
      }
    })();
    this.#tokens.clear();
    this.#alpn.clear();
    for (const file of files) {
      try {
        const text = readFileSync(join(dir, file), 'utf8');
        if (file.startsWith('http-01.')) this.#tokens.set(file.slice('http-01.'.length), text);
        else if (file.startsWith('tls-alpn-01.')) {
          const { cert, key } = JSON.parse(text) as { cert: string; key: string };
          this.#alpn.set(file.slice('tls-alpn-01.'.length), createSecureContext({ cert, key }));
        }
      } catch {
        // Removed or half-written meanwhile: the next change event reads it again.
      }
    }
    for (const [host, state] of this.#hosts) {
      let mtimeMs: number;
      try {
        mtimeMs = statSync(this.#paths(host).cert).mtimeMs;
      } catch {
        continue;
      }
      if (mtimeMs === state.loadedMtimeMs) continue;
      const stored = this.#load(host);
      if (!stored) continue;
      state.loadedMtimeMs = mtimeMs;
      state.context = stored.context;
      state.notAfter = stored.notAfter;
      this.#log.info('acme certificate loaded', {
        host,
        notAfter: stored.notAfter.toISOString(),
      });
    }
  }

  /** The leader: a pending challenge in the files (or the shared store), for the followers. */
  async #share(name: string, content: string | undefined): Promise<void> {
    if (this.#shared) {
      // Stored before the CA is told to validate: any instance may be asked.
      const material = `acme/${name.replace('.', '/')}`;
      if (content !== undefined) return this.#shared.store.putMaterial(material, content);
      await this.#shared.store.deleteMaterial(material).catch((err: unknown) => {
        this.#log.warn('acme challenge not removed from the store', { error: err });
      });
      return;
    }
    if (this.#role !== 'leader') return;
    const path = join(this.#challengeDir, name);
    try {
      if (content === undefined) return void rmSync(path, { force: true });
      mkdirSync(this.#challengeDir, { recursive: true, mode: 0o700 });
      writeAtomically(path, content);
    } catch (err) {
      this.#log.warn('acme challenge not shared with the other workers', { error: err });
    }
  }

  /** Stops renewing (relay shutdown). */
  stop(): void {
    this.#stopped = true;
    this.#watcher?.close();
    this.#unwatch?.();
    clearInterval(this.#poll);
    for (const state of this.#hosts.values()) clearTimeout(state.timer);
  }

  /** The certificates obtained and served now, by host, with their expiry. */
  expiries(): Array<{ name: string; notAfter: Date }> {
    const out: Array<{ name: string; notAfter: Date }> = [];
    for (const [name, state] of this.#hosts)
      if (state.context && state.notAfter) out.push({ name, notAfter: state.notAfter });
    return out;
  }

  /**
   * The context for a TLS handshake naming `servername`: the TLS-ALPN-01 challenge
   * certificate while a challenge for it is pending, else its ACME certificate, if any.
   */
  context(servername: string): SecureContext | undefined {
    const name = servername.toLowerCase();
    return this.#alpn.get(name) ?? this.#alpnShared.get(name) ?? this.#hosts.get(name)?.context;
  }

  /**
   * Shared store, an instance that does not order: a TLS-ALPN-01 challenge certificate the
   * leader stored for `servername` is read (cached briefly) before {@link context} answers.
   * Undefined when nothing needs reading (call {@link context} at once).
   */
  sharedChallenge(servername: string): Promise<void> | undefined {
    const name = servername.toLowerCase();
    if (!this.#shared || this.#leading || !this.#settings || !this.#hosts.has(name)) return;
    if (this.#settings.challenge !== 'tls-alpn-01') return;
    return this.#ask(`tls-alpn-01/${name}`).then((text) => {
      try {
        const pair =
          text === undefined ? undefined : (JSON.parse(text) as { cert: string; key: string });
        if (pair) this.#alpnShared.set(name, createSecureContext(pair));
        else this.#alpnShared.delete(name);
      } catch {
        this.#alpnShared.delete(name);
      }
    });
  }

  /** Shared store: a challenge material, read at most once per {@link CHALLENGE_CACHE_MS}. */
  #ask(name: string): Promise<string | undefined> {
    const now = Date.now();
    const cached = this.#asked.get(name);
    if (cached && now - cached.at < CHALLENGE_CACHE_MS) return cached.value;
    if (this.#asked.size > 1000) this.#asked.clear();
    const value = this.#shared!.store.getMaterial(`acme/${name}`).catch(() => undefined);
    this.#asked.set(name, { at: now, value });
    return value;
  }

  /**
   * Answers `GET /.well-known/acme-challenge/<token>` while `relay.acme` is set; false for
   * every other request (the redirect listener then redirects it).
   */
  answerHttp01(req: IncomingMessage, res: ServerResponse): boolean {
    const path = (req.url ?? '').split('?')[0]!;
    if (!this.#settings || !path.startsWith(CHALLENGE_PATH)) return false;
    const token = path.slice(CHALLENGE_PATH.length);
    if (this.#shared && !this.#tokens.has(token) && /^[A-Za-z0-9_-]{1,256}$/.test(token)) {
      // Another instance ordered: the key authorization is in the store.
      void this.#ask(`http-01/${token}`).then((answer) => respondHttp01(res, answer));
      return true;
    }
    // A follower may be asked before the change event of the leader's file arrived.
    respondHttp01(res, this.#tokens.get(token) ?? this.#sharedToken(token));
    return true;
  }

  #sharedToken(token: string): string | undefined {
    if (this.#role !== 'follower' || !/^[A-Za-z0-9_-]{1,256}$/.test(token)) return undefined;
    try {
      return readFileSync(join(this.#challengeDir, `http-01.${token}`), 'utf8');
    } catch {
      return undefined;
    }
  }

  #drop(host: string): void {
    clearTimeout(this.#hosts.get(host)?.timer);
    this.#hosts.delete(host);
  }

  #add(host: string): void {
    const state: HostState = { failures: 0 };
    this.#hosts.set(host, state);
    if (this.#shared) {
      // Shared store: served from the store; the leader also orders when it holds none.
      state.loaded = this.#shared.store
        .getMaterial(`acme/cert/${host}`)
        .then((text) => {
          if (text !== undefined && this.#hosts.get(host) === state)
            this.#useShared(host, state, text);
        })
        .catch((err: unknown) =>
          this.#log.warn('acme certificate not loaded', { host, error: err }),
        )
        .then(() => this.#scheduleShared(host, state));
      return;
    }
    // A follower orders nothing: it takes the leader's files (#sync).
    if (this.#role === 'follower') return void (this.#watcher && this.#sync());
    const stored = this.#load(host);
    if (stored) {
      state.context = stored.context;
      state.notAfter = stored.notAfter;
      this.#schedule(host, state, stored.renewAt.getTime() - Date.now());
      this.#log.info('acme certificate loaded', {
        host,
        notAfter: stored.notAfter.toISOString(),
        renewAt: stored.renewAt.toISOString(),
      });
    } else {
      this.#schedule(host, state, 0);
    }
  }

  #schedule(host: string, state: HostState, inMs: number): void {
    clearTimeout(state.timer);
    const wait = Math.max(0, inMs);
    state.timer = setTimeout(
      () => {
        if (wait > MAX_TIMER_MS) return this.#schedule(host, state, wait - MAX_TIMER_MS);
        this.#queue = this.#queue.then(() => this.#order(host, state));
      },
      Math.min(wait, MAX_TIMER_MS),
    );
    state.timer.unref();
  }

  /** One order for `host`; on failure, retried with backoff (the old certificate serves on). */
  async #order(host: string, state: HostState): Promise<void> {
    if (this.#stopped || this.#hosts.get(host) !== state || !this.#settings) return;
    if (this.#shared && !this.#leading) return;
    const settings = this.#settings;
    const renewing = state.context !== undefined;
    this.#log.info(renewing ? 'acme certificate renewing' : 'acme certificate requested', {
      host,
      directoryUrl: settings.directoryUrl,
      challenge: settings.challenge,
    });
    try {
      const client = await this.#account();
      const [key, csr] = await acme.crypto.createCsr({ commonName: host, altNames: [host] });
      const cert = await client.auto({
        csr,
        email: settings.email,
        termsOfServiceAgreed: true,
        challengePriority: [settings.challenge],
        // The relay may not reach its own public address (no hairpin NAT); the CA checks.
        skipChallengeVerification: true,
        challengeCreateFn: async (authz, challenge, keyAuthorization) => {
          if (challenge.type === 'http-01') {
            this.#tokens.set(challenge.token, keyAuthorization);
            await this.#share(`http-01.${challenge.token}`, keyAuthorization);
          }
          // acme-client's types know http-01 and dns-01 only; it does order tls-alpn-01.
          else if ((challenge.type as string) === 'tls-alpn-01') {
            const [alpnKey, alpnCert] = await acme.crypto.createAlpnCertificate(
              authz,
              keyAuthorization,
            );
            const name = authz.identifier.value.toLowerCase();
            this.#alpn.set(name, createSecureContext({ key: alpnKey, cert: alpnCert }));
            await this.#share(
              `tls-alpn-01.${name}`,
              JSON.stringify({ key: alpnKey.toString(), cert: alpnCert.toString() }),
            );
          }
        },
        challengeRemoveFn: async (authz, challenge) => {
          this.#tokens.delete(challenge.token);
          this.#alpn.delete(authz.identifier.value.toLowerCase());
          if (challenge.type === 'http-01')
            await this.#share(`http-01.${challenge.token}`, undefined);
          else await this.#share(`tls-alpn-01.${authz.identifier.value.toLowerCase()}`, undefined);
        },
      });
      if (this.#hosts.get(host) !== state) return;
      const keyPem = key.toString();
      const x509 = new X509Certificate(cert);
      if (this.#shared) {
        const text = JSON.stringify({ cert, key: keyPem });
        await this.#shared.store.putMaterial(`acme/cert/${host}`, text);
        state.loadedText = text;
      } else this.#store(host, cert, keyPem);
      state.context = createSecureContext({ cert, key: keyPem, minVersion: 'TLSv1.2' });
      state.notAfter = new Date(x509.validTo);
      state.failures = 0;
      const renewAt = renewalTime(x509);
      state.renewAt = renewAt;
      this.#schedule(host, state, renewAt.getTime() - Date.now());
      this.#log.info(renewing ? 'acme certificate renewed' : 'acme certificate issued', {
        host,
        serial: x509.serialNumber,
        notAfter: state.notAfter.toISOString(),
        renewAt: renewAt.toISOString(),
      });
    } catch (err) {
      if (this.#hosts.get(host) !== state) return;
      const reason = await failureReason(err as Error, settings.directoryUrl);
      const retryInMs = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** state.failures);
      state.failures += 1;
      this.#schedule(host, state, retryInMs);
      this.#log.warn('acme certificate failed', {
        host,
        reason,
        failures: state.failures,
        retryInMs,
        ...(state.notAfter && { certificateExpires: state.notAfter.toISOString() }),
      });
    }
  }

  async #account(): Promise<acme.Client> {
    if (this.#client) return this.#client;
    const settings = this.#settings!;
    const keyPath = join(this.#dir, 'account-key.pem');
    let accountKey: string;
    if (this.#shared) {
      // One account for the fleet: the first instance's key wins.
      const store = this.#shared.store;
      accountKey =
        (await store.getMaterial('acme/account-key')) ??
        (await store.putMaterialIfAbsent(
          'acme/account-key',
          (await acme.crypto.createPrivateEcdsaKey()).toString(),
        ));
    } else {
      mkdirSync(this.#dir, { recursive: true, mode: 0o700 });
      if (existsSync(keyPath)) accountKey = readFileSync(keyPath, 'utf8');
      else {
        accountKey = (await acme.crypto.createPrivateEcdsaKey()).toString();
        writeAtomically(keyPath, accountKey);
      }
    }
    // acme-client speaks HTTP through its one axios instance; the relay has one ACME CA.
    acme.axios.defaults.httpsAgent = settings.caBundle
      ? new Agent({ ca: readFileSync(settings.caBundle, 'utf8') })
      : undefined;
    // Its own retries of a CA that does not answer take 75 s; the relay's backoff retries.
    (
      acme.axios.defaults as unknown as { acmeSettings: { retryMaxAttempts: number } }
    ).acmeSettings.retryMaxAttempts = 1;
    this.#client = new acme.Client({ directoryUrl: settings.directoryUrl, accountKey });
    return this.#client;
  }

  #paths(host: string): { cert: string; key: string } {
    return { cert: join(this.#dir, `${host}.pem`), key: join(this.#dir, `${host}-key.pem`) };
  }

  #store(host: string, cert: string, key: string): void {
    mkdirSync(this.#dir, { recursive: true, mode: 0o700 });
    const paths = this.#paths(host);
    writeAtomically(paths.key, key);
    writeAtomically(paths.cert, cert);
  }

  /** A stored certificate for `host` that is still valid, with when to renew it. */
  #load(host: string): { context: SecureContext; notAfter: Date; renewAt: Date } | undefined {
    const paths = this.#paths(host);
    try {
      const cert = readFileSync(paths.cert, 'utf8');
      const key = readFileSync(paths.key, 'utf8');
      const x509 = new X509Certificate(cert);
      const notAfter = new Date(x509.validTo);
      if (notAfter.getTime() <= Date.now() || !x509.checkHost(host)) return undefined;
      return {
        context: createSecureContext({ cert, key, minVersion: 'TLSv1.2' }),
        notAfter,
        renewAt: renewalTime(x509),
      };
    } catch {
      return undefined;
    }
  }
}

/**
 * The reason of a failed order for the log. acme-client turns a CA it cannot reach into a
 * TypeError of its own; the directory is asked once more to name the network error.
 */
async function failureReason(err: Error, directoryUrl: string): Promise<string> {
  if (!(err instanceof TypeError)) return err.message;
  const agent = acme.axios.defaults.httpsAgent as Agent | undefined;
  const problem = await new Promise<string | undefined>((resolve) => {
    const req = httpsGet(directoryUrl, { agent, timeout: 10_000 }, (res) => {
      res.resume();
      resolve(undefined);
    });
    req.on('timeout', () => req.destroy(new Error('no answer within 10 s')));
    req.on('error', (e: Error & { code?: string }) => resolve(e.code ?? e.message));
  });
  return problem ? `the ACME directory ${directoryUrl} cannot be reached: ${problem}` : err.message;
}

/** Two thirds into the certificate's lifetime. */
export function renewalTime(cert: X509Certificate): Date {
  const from = new Date(cert.validFrom).getTime();
  const to = new Date(cert.validTo).getTime();
  return new Date(from + ((to - from) * 2) / 3);
}

/** The answer to an HTTP-01 validation: the key authorization, or 404. */
function respondHttp01(res: ServerResponse, answer: string | undefined): void {
  if (answer === undefined) {
    res.writeHead(404, { 'content-type': 'text/plain', 'content-length': 0 }).end();
  } else {
    res
      .writeHead(200, {
        'content-type': 'text/plain',
        'content-length': Buffer.byteLength(answer),
        'cache-control': 'no-store',
      })
      .end(answer);
  }
}

/** 0600, via a temporary file and rename: a crash never leaves half a key. */
function writeAtomically(path: string, data: string): void {
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, data, { mode: 0o600 });
  renameSync(tmp, path);
}
