import type { AcmeConfig, RelayConfig, StateStore } from '@appproxy/config';
import type { Logger } from '@appproxy/telemetry';
import * as acme from 'acme-client';
import { X509Certificate } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
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

interface HostState {
  context?: SecureContext;
  notAfter?: Date;
  timer?: NodeJS.Timeout;
  failures: number;
  /** Settles once the stored certificate (if any) is loaded. */
  loaded?: Promise<void>;
}

/**
 * Where the ACME account key and certificates live: files in `stateDir/acme` (one relay), or
 * the shared state store (several instances: one account, certificates issued once).
 * Names: `account-key.pem`, `<host>.pem`, `<host>-key.pem`.
 */
export interface AcmeStorage {
  read(name: string): Promise<string | undefined>;
  write(name: string, value: string): Promise<void>;
  /** Stores `value` unless `name` exists; returns what is stored (the first writer wins). */
  writeIfAbsent(name: string, value: string): Promise<string>;
}

/** Files in `dir` (0700), each 0600 and written atomically. */
export function acmeFileStorage(dir: string): AcmeStorage {
  const read = async (name: string) => {
    const path = join(dir, name);
    return existsSync(path) ? readFileSync(path, 'utf8') : undefined;
  };
  const write = async (name: string, value: string) => {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    writeAtomically(join(dir, name), value);
  };
  return {
    read,
    write,
    writeIfAbsent: async (name, value) => {
      const stored = await read(name);
      if (stored !== undefined) return stored;
      await write(name, value);
      return value;
    },
  };
}

/** Materials `acme/<name>` of the state store (sealed with relay.storeKey in PostgreSQL). */
export function acmeStoreStorage(store: StateStore): AcmeStorage {
  return {
    read: (name) => store.getMaterial(`acme/${name}`),
    write: (name, value) => store.putMaterial(`acme/${name}`, value),
    writeIfAbsent: (name, value) => store.putMaterialIfAbsent(`acme/${name}`, value),
  };
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
  readonly #storage: AcmeStorage;
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

  /** @param storage where keys and certificates live; a stateDir string: its `acme` folder */
  constructor(storage: AcmeStorage | string, log: Logger) {
    this.#storage = typeof storage === 'string' ? acmeFileStorage(join(storage, 'acme')) : storage;
    this.#log = log;
  }

  /** Settles when the stored certificates of the hosts configured so far are loaded. */
  async loaded(): Promise<void> {
    await Promise.all([...this.#hosts.values()].map((s) => s.loaded));
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
  }

  /** Stops renewing (relay shutdown). */
  stop(): void {
    this.#stopped = true;
    for (const state of this.#hosts.values()) clearTimeout(state.timer);
  }

  /**
   * The context for a TLS handshake naming `servername`: the TLS-ALPN-01 challenge
   * certificate while a challenge for it is pending, else its ACME certificate, if any.
   */
  context(servername: string): SecureContext | undefined {
    const name = servername.toLowerCase();
    return this.#alpn.get(name) ?? this.#hosts.get(name)?.context;
  }

  /**
   * Answers `GET /.well-known/acme-challenge/<token>` while `relay.acme` is set; false for
   * every other request (the redirect listener then redirects it).
   */
  answerHttp01(req: IncomingMessage, res: ServerResponse): boolean {
    const path = (req.url ?? '').split('?')[0]!;
    if (!this.#settings || !path.startsWith(CHALLENGE_PATH)) return false;
    const answer = this.#tokens.get(path.slice(CHALLENGE_PATH.length));
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
    return true;
  }

  #drop(host: string): void {
    clearTimeout(this.#hosts.get(host)?.timer);
    this.#hosts.delete(host);
  }

  #add(host: string): void {
    const state: HostState = { failures: 0 };
    this.#hosts.set(host, state);
    state.loaded = this.#load(host).then((stored) => {
      if (this.#stopped || this.#hosts.get(host) !== state) return;
      if (!stored) return this.#schedule(host, state, 0);
      state.context = stored.context;
      state.notAfter = stored.notAfter;
      this.#schedule(host, state, stored.renewAt.getTime() - Date.now());
      this.#log.info('acme certificate loaded', {
        host,
        notAfter: stored.notAfter.toISOString(),
        renewAt: stored.renewAt.toISOString(),
      });
    });
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
          if (challenge.type === 'http-01') this.#tokens.set(challenge.token, keyAuthorization);
          // acme-client's types know http-01 and dns-01 only; it does order tls-alpn-01.
          else if ((challenge.type as string) === 'tls-alpn-01') {
            const [alpnKey, alpnCert] = await acme.crypto.createAlpnCertificate(
              authz,
              keyAuthorization,
            );
            this.#alpn.set(
              authz.identifier.value.toLowerCase(),
              createSecureContext({ key: alpnKey, cert: alpnCert }),
            );
          }
        },
        challengeRemoveFn: async (authz, challenge) => {
          this.#tokens.delete(challenge.token);
          this.#alpn.delete(authz.identifier.value.toLowerCase());
        },
      });
      if (this.#hosts.get(host) !== state) return;
      const keyPem = key.toString();
      const x509 = new X509Certificate(cert);
      await this.#save(host, cert, keyPem);
      state.context = createSecureContext({ cert, key: keyPem, minVersion: 'TLSv1.2' });
      state.notAfter = new Date(x509.validTo);
      state.failures = 0;
      const renewAt = renewalTime(x509);
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
    // One account for every instance sharing the storage: the first one's key wins.
    const accountKey =
      (await this.#storage.read('account-key.pem')) ??
      (await this.#storage.writeIfAbsent(
        'account-key.pem',
        (await acme.crypto.createPrivateEcdsaKey()).toString(),
      ));
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

  async #save(host: string, cert: string, key: string): Promise<void> {
    // The key first: a certificate is never stored without its key.
    await this.#storage.write(`${host}-key.pem`, key);
    await this.#storage.write(`${host}.pem`, cert);
  }

  /** A stored certificate for `host` that is still valid, with when to renew it. */
  async #load(
    host: string,
  ): Promise<{ context: SecureContext; notAfter: Date; renewAt: Date } | undefined> {
    try {
      const cert = await this.#storage.read(`${host}.pem`);
      const key = await this.#storage.read(`${host}-key.pem`);
      if (cert === undefined || key === undefined) return undefined;
      const x509 = new X509Certificate(cert);
      const notAfter = new Date(x509.validTo);
      if (notAfter.getTime() <= Date.now() || !x509.checkHost(host)) return undefined;
      return {
        context: createSecureContext({ cert, key, minVersion: 'TLSv1.2' }),
        notAfter,
        renewAt: renewalTime(x509),
      };
    } catch (err) {
      this.#log.warn('acme certificate not loaded', { host, error: err });
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

/** 0600, via a temporary file and rename: a crash never leaves half a key. */
function writeAtomically(path: string, data: string): void {
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, data, { mode: 0o600 });
  renameSync(tmp, path);
}
