import type { Logger } from '@appproxy/telemetry';
import {
  DIAGNOSE_CHECK_TIMEOUT_MS,
  DIAGNOSE_TOTAL_TIMEOUT_MS,
  parseDiagnoseRequest,
  type DiagnoseAnswer,
  type DiagnoseCheck,
  type DiagnoseRequest,
  type DiagnoseSso,
} from '@appproxy/tunnel';
import { lookup } from 'node:dns/promises';
import type { IncomingHttpHeaders } from 'node:http';
import { connect as netConnect, isIP, type Socket } from 'node:net';
import {
  checkServerIdentity,
  connect as tlsConnect,
  type DetailedPeerCertificate,
  type TLSSocket,
} from 'node:tls';
import type { Dispatcher } from 'undici';
import type { BackendTlsOptions } from './backend-tls.js';
import { classifyBackendError } from './errors.js';
import { kerberosFailure, rejectsTicket, type TicketSource } from './kerberos.js';

/** What the checks use of the connector: its backend client and its Kerberos delegator. */
export interface DiagnoseContext {
  /** `BackendForwarder.backendClient`: the traffic's TLS options and HTTP client. */
  backendClient(
    verifyTls: boolean,
    backendTls: DiagnoseRequest['backendTls'],
    proxy: string | undefined,
  ): { tls: BackendTlsOptions; dispatcher: Dispatcher } | undefined;
  /** Kerberos single sign-on, when the connector has it (`ticket` from `KerberosDelegator`). */
  kerberos?: TicketSource & {
    ticket?(user: string, spn: string): Promise<{ endsAt: Date; cached: boolean }>;
  };
  log: Logger;
}

/** A certificate that ends within this many days passes with a warning. */
const EXPIRY_WARNING_DAYS = 30;
/** Most response body bytes the GET reads before it lets the connection go. */
const BODY_PEEK_BYTES = 4096;
const DAY_MS = 86_400_000;

/** A time budget: each check gets its own limit, never past the deadline of all of them. */
class Budget {
  readonly #deadline: number;
  constructor(
    readonly checkMs: number,
    totalMs: number,
  ) {
    this.#deadline = Date.now() + totalMs;
  }
  /** Milliseconds the next check may take (0: out of time). */
  next(): number {
    return Math.max(0, Math.min(this.checkMs, this.#deadline - Date.now()));
  }
}

class CheckTimeout extends Error {
  readonly code = 'ETIMEDOUT';
}

/** `p`, or a CheckTimeout after `ms` (the work itself is left to finish or fail unseen). */
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new CheckTimeout(`${what}: no answer within ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

const elapsed = (start: bigint) => Math.round(Number(process.hrtime.bigint() - start) / 1e5) / 10;
const errCode = (err: unknown) =>
  (err as { code?: string } | undefined)?.code ?? (err as Error | undefined)?.name ?? 'ERROR';
const errText = (err: unknown) => (err as Error | undefined)?.message ?? String(err);

/** A check not run because `why`. */
function skipped(name: string, why: string, ok: boolean): DiagnoseCheck {
  return { name, ok, skipped: true, detail: why };
}

/**
 * Runs every check of a `diagnose` control (docs/tunnel-protocol.md §3.7, docs/diagnostics.md)
 * for one app from this connector: resolve, connect, TLS (https backends), the SSO dry run
 * and a GET of the internal URL through the traffic's own client. Each check is bounded by
 * `checkTimeoutMs`, all of them by `totalTimeoutMs`. Never throws: a failure is a check.
 *
 * @example
 * const { checks } = await diagnose({ app: 'Wiki', url: 'http://wiki.corp/', verifyTls: true }, ctx);
 * checks.map((c) => `${c.name}: ${c.ok}`); // ['resolve: true', 'connect: true', …]
 */
export async function diagnose(
  req: DiagnoseRequest,
  ctx: DiagnoseContext,
): Promise<DiagnoseAnswer> {
  const budget = new Budget(
    req.checkTimeoutMs ?? DIAGNOSE_CHECK_TIMEOUT_MS,
    req.totalTimeoutMs ?? DIAGNOSE_TOTAL_TIMEOUT_MS,
  );
  const url = new URL(req.url);
  const checks: DiagnoseCheck[] = [];
  const guard = async (name: string, run: () => Promise<DiagnoseCheck>) => {
    let check: DiagnoseCheck;
    try {
      check = budget.next() === 0 ? outOfTime(name) : await run();
    } catch (err) {
      check = { name, ok: false, detail: `the check failed: ${errCode(err)}: ${errText(err)}` };
    }
    checks.push(check);
    return check;
  };
  // Through a forward proxy the connector resolves and connects to the proxy, not the app.
  const proxy = req.backendProxy === undefined ? undefined : safeUrl(req.backendProxy);
  const hop = proxy ?? url;
  const host = hop.hostname.replace(/^\[|\]$/g, '');
  const port = Number(hop.port) || (hop.protocol === 'https:' ? 443 : 80);
  const via = proxy ? ` (the app's backendProxy ${host}:${port})` : '';

  const resolved = await guard('resolve', () => checkResolve(host, budget.next(), via));
  const addresses = (resolved.data?.addresses as string[] | undefined) ?? [];
  const connected = resolved.ok
    ? await guard('connect', () => checkConnect(host, addresses, port, budget.next(), via))
    : await guard('connect', async () =>
        skipped('connect', 'not run: the name did not resolve', false),
      );

  let client: ReturnType<DiagnoseContext['backendClient']>;
  let clientError: string | undefined;
  try {
    client = ctx.backendClient(req.verifyTls, req.backendTls, req.backendProxy);
  } catch (err) {
    // An unusable backendProxy URL, say: the checks that need the client say so.
    clientError = `${errCode(err)}: ${errText(err)}`;
  }
  const name = verifiedName(url, req.host, client?.tls.servername);
  if (url.protocol !== 'https:')
    await guard('tls', async () => skipped('tls', 'http backend: no TLS', true));
  else if (proxy)
    await guard('tls', async () =>
      skipped('tls', 'through the backendProxy: the http check covers TLS', true),
    );
  else if (!connected.ok)
    await guard('tls', async () => skipped('tls', 'not run: no connection', false));
  else if (clientError)
    await guard('tls', async () => ({
      name: 'tls',
      ok: false,
      detail: `the connector cannot make the app's backend client: ${clientError}`,
      fix: "check the app's backendProxy and backendTls settings",
    }));
  else if (!client)
    await guard('tls', async () => ({
      name: 'tls',
      ok: false,
      detail: 'this connector does not hold the backendTls material the relay named',
      fix: 'make one request through the app (the relay then sends the material), or test again',
    }));
  else
    await guard('tls', () =>
      checkTls(
        // The address that took the connection (the first may have refused it).
        (connected.data?.address as string | undefined) ?? host,
        port,
        name,
        client.tls,
        req.verifyTls,
        budget.next(),
      ),
    );

  let authorization: string | undefined;
  await guard('sso', async () => {
    const out = await checkSso(req.sso, ctx.kerberos, budget.next());
    authorization = out.authorization;
    return out.check;
  });

  if (!connected.ok)
    await guard('http', async () => skipped('http', 'not run: no connection', false));
  else if (!client)
    await guard('http', async () => ({
      name: 'http',
      ok: false,
      detail: clientError
        ? `the connector cannot make the app's backend client: ${clientError}`
        : 'not run: no backend TLS material',
      ...(clientError && { fix: "check the app's backendProxy and backendTls settings" }),
    }));
  else
    await guard('http', () =>
      checkHttp(client.dispatcher, client.tls, url, {
        host: req.host ?? url.host,
        headers: req.headers ?? {},
        authorization,
        timeoutMs: budget.next(),
      }),
    );
  const failed = checks.filter((c) => !c.ok).map((c) => c.name);
  ctx.log.info('app diagnosed', { app: req.app, ok: failed.length === 0, failed });
  return { checks };
}

function outOfTime(name: string): DiagnoseCheck {
  return {
    name,
    ok: false,
    skipped: true,
    detail: 'not run: the checks before it used up the time of the test',
  };
}

function safeUrl(text: string): URL | undefined {
  try {
    return new URL(text);
  } catch {
    return undefined;
  }
}

/**
 * The name the backend certificate must carry, as undici picks it for traffic: the app's
 * `backendTls.serverName`, else the Host header's name, else the internal URL's host; an IP
 * address is checked against the certificate's IP entries.
 */
function verifiedName(url: URL, hostHeader: string | undefined, serverName?: string): string {
  if (serverName) return serverName;
  const fromHost = hostHeader?.replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
  if (fromHost && isIP(fromHost) === 0) return fromHost;
  return url.hostname.replace(/^\[|\]$/g, '');
}

/** DNS as the connector's connections use it (`dns.lookup`: hosts file, then resolvers). */
async function checkResolve(host: string, timeoutMs: number, via = ''): Promise<DiagnoseCheck> {
  if (isIP(host) !== 0)
    return {
      ...skipped('resolve', `${host} is an address: nothing to resolve`, true),
      data: { addresses: [host] },
    };
  const start = process.hrtime.bigint();
  try {
    const found = await within(lookup(host, { all: true }), timeoutMs, `resolve ${host}`);
    const addresses = found.map((a) => a.address);
    return {
      name: 'resolve',
      ok: true,
      ms: elapsed(start),
      detail: `${host}${via} → ${addresses.join(', ')}`,
      data: { addresses },
    };
  } catch (err) {
    const code = errCode(err);
    return {
      name: 'resolve',
      ok: false,
      ms: elapsed(start),
      detail: `${host}${via}: ${code}`,
      fix:
        code === 'ENOTFOUND'
          ? `the connector host cannot resolve ${host}: check its DNS (resolvers, search domains, hosts file), or put a name it resolves in internalUrl`
          : `the connector host's DNS did not answer for ${host} (${code}): check its DNS`,
      data: { code },
    };
  }
}

/** A TCP connection to the first address that takes one; closed at once. */
async function checkConnect(
  host: string,
  addresses: string[],
  port: number,
  timeoutMs: number,
  via = '',
): Promise<DiagnoseCheck> {
  const start = process.hrtime.bigint();
  let last: unknown;
  for (const address of addresses.length ? addresses : [host]) {
    const left = timeoutMs - Number(process.hrtime.bigint() - start) / 1e6;
    if (left <= 0) break;
    try {
      await tcp(address, port, left);
      return {
        name: 'connect',
        ok: true,
        ms: elapsed(start),
        detail: `${host}:${port}${via} (${address}) accepted the connection`,
        data: { address, port },
      };
    } catch (err) {
      last = err;
    }
  }
  const code = last ? errCode(last) : 'ETIMEDOUT';
  const where = `${host}:${port}`;
  const fix =
    code === 'ECONNREFUSED'
      ? `nothing listens on ${where} as seen from the connector host: start the app, or correct the port in internalUrl${via ? ' (backendProxy)' : ''}`
      : code === 'ETIMEDOUT'
        ? `no answer from ${where} within ${Math.round(timeoutMs / 1000)} s: a firewall between the connector host and the app drops the connection, or the host is down`
        : code === 'EHOSTUNREACH' || code === 'ENETUNREACH'
          ? `the connector host has no route to ${where}: check its network and routing`
          : `the connection to ${where} failed (${code}): check that the app is up and reachable from the connector host`;
  return {
    name: 'connect',
    ok: false,
    ms: elapsed(start),
    detail: `${where}${via}: ${code === 'ETIMEDOUT' ? 'timed out' : code === 'ECONNREFUSED' ? 'connection refused' : code}`,
    fix,
    data: { code, port },
  };
}

function tcp(host: string, port: number, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket: Socket = netConnect({ host, port });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new CheckTimeout('connect timed out'));
    }, timeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.destroy();
      resolve();
    });
    socket.once('error', (err) => {
      clearTimeout(timer);
      socket.destroy();
      reject(err);
    });
  });
}

/** Verify errors that mean: the connector does not trust who issued the certificate. */
const UNTRUSTED = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
]);

const cn = (subject: DetailedPeerCertificate['subject'] | undefined): string => {
  const v = subject?.CN;
  return (Array.isArray(v) ? v[0] : v) ?? '';
};

/**
 * The TLS handshake with the options traffic uses (the app's CA, client certificate and
 * server name), then the checks undici makes — chain verification and the name — done
 * here so that each is reported (subject, issuer, notAfter, days left, name, verify code).
 */
async function checkTls(
  address: string,
  port: number,
  name: string,
  tls: BackendTlsOptions,
  verify: boolean,
  timeoutMs: number,
): Promise<DiagnoseCheck> {
  const start = process.hrtime.bigint();
  let socket: TLSSocket | undefined;
  try {
    socket = await within(
      new Promise<TLSSocket>((resolve, reject) => {
        const s = tlsConnect({
          host: address,
          port,
          ...(isIP(name) === 0 && { servername: name }),
          ...(tls.ca !== undefined && { ca: tls.ca }),
          ...(tls.cert !== undefined && { cert: tls.cert }),
          ...(tls.key !== undefined && { key: tls.key }),
          // Verified below, so that every finding is reported rather than the first.
          rejectUnauthorized: false,
        });
        socket = s;
        s.once('secureConnect', () => resolve(s));
        s.once('error', reject);
      }),
      timeoutMs,
      'TLS handshake',
    );
  } catch (err) {
    socket?.destroy();
    const code = errCode(err);
    return {
      name: 'tls',
      ok: false,
      ms: elapsed(start),
      detail: `TLS handshake with ${name}:${port} failed: ${code}: ${errText(err)}`,
      fix:
        err instanceof CheckTimeout
          ? `${name}:${port} accepted the connection but did not complete a TLS handshake: is it an https port? (internalUrl says https)`
          : `the app did not complete a TLS handshake: check that ${port} is its https port (internalUrl says https), and its TLS settings`,
      data: { code },
    };
  }
  const ms = elapsed(start);
  const cert = socket.getPeerCertificate(true);
  const protocol = socket.getProtocol();
  // Node keeps the verify error's code (a string, typed Error); the name check's too, but
  // the name is checked (and reported) below.
  const verifyError = socket.authorizationError as unknown as string | undefined;
  const chainError =
    verifyError && String(verifyError) !== 'ERR_TLS_CERT_ALTNAME_INVALID'
      ? String(verifyError)
      : undefined;
  socket.destroy();
  const notAfter = new Date(cert.valid_to);
  const daysLeft = Math.floor((notAfter.getTime() - Date.now()) / DAY_MS);
  const nameError = checkServerIdentity(name, cert);
  const subject = cn(cert.subject) || JSON.stringify(cert.subject);
  const issuer = cn(cert.issuer) || JSON.stringify(cert.issuer);
  const data = {
    subject,
    issuer,
    notAfter: notAfter.toISOString(),
    daysLeft,
    name,
    nameMatch: nameError === undefined,
    chain: chainError ?? 'ok',
    subjectAltName: cert.subjectaltname ?? null,
    protocol: protocol ?? null,
  };
  const facts = `subject ${subject}, issuer ${issuer}, ends ${data.notAfter.slice(0, 10)} (${daysLeft} days)`;
  const fixes: string[] = [];
  if (chainError === 'CERT_HAS_EXPIRED')
    fixes.push(
      `the app's certificate expired on ${data.notAfter.slice(0, 10)}: renew it on the app's server`,
    );
  else if (chainError === 'CERT_NOT_YET_VALID')
    fixes.push(
      `the app's certificate is not valid yet: check its dates and the clocks of both hosts`,
    );
  else if (chainError && UNTRUSTED.has(chainError))
    fixes.push(
      `the connector does not trust the certificate's issuer (${issuer}): give the app backendTls.ca with that CA's certificate${chainError === 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' ? ', or make the app send its intermediate certificates' : ''}`,
    );
  else if (chainError) fixes.push(`the certificate chain does not verify (${chainError})`);
  if (nameError)
    fixes.push(
      `the certificate does not name ${name} (it names ${cert.subjectaltname || subject}): give the app a certificate for ${name}, or set backendTls.serverName to a name it carries`,
    );
  const valid = !chainError && !nameError;
  if (!verify)
    return {
      name: 'tls',
      ok: true,
      warn: true,
      ms,
      detail: `${facts}; ${valid ? 'it verifies' : `it does not verify (${[chainError, nameError && 'name mismatch'].filter(Boolean).join(', ')})`}, but validateBackendTls is off`,
      fix: valid
        ? 'turn validateBackendTls on: the certificate verifies'
        : `validateBackendTls is off, so traffic flows; to turn it on: ${fixes.join('; ')}`,
      data,
    };
  if (!valid)
    return {
      name: 'tls',
      ok: false,
      ms,
      detail: `${facts}; ${chainError ? `chain: ${chainError}` : 'chain ok'}; name ${name}: ${nameError ? 'no match' : 'match'}`,
      fix: fixes.join('; '),
      data,
    };
  if (daysLeft < EXPIRY_WARNING_DAYS)
    return {
      name: 'tls',
      ok: true,
      warn: true,
      ms,
      detail: `${facts}; verifies for ${name}, but ends within ${EXPIRY_WARNING_DAYS} days`,
      fix: `renew the app's certificate before ${data.notAfter.slice(0, 10)}`,
      data,
    };
  return { name: 'tls', ok: true, ms, detail: `${facts}; verifies for ${name}`, data };
}

/** What the docs (kerberos.md §4) tell the admin to do about each Kerberos failure. */
function kerberosFix(code: string, user: string, spn: string): string {
  switch (code) {
    case 'SSO_KDC_UNREACHABLE':
      return 'the connector reached no KDC: check --kerberos-kdc or krb5.conf [realms], DNS, and TCP/UDP 88 from the connector host';
    case 'SSO_SERVICE_LOGIN_FAILED':
      return "the connector's own account cannot sign in: export its keytab again (the password changed), check the principal, or enable the account";
    case 'SSO_USER_UNKNOWN':
      return `the domain has no account ${user}: check the app's sso.loginIdentity, or the user has no on-premises account`;
    case 'SSO_DELEGATION_DENIED':
      return `allow the connector's account to delegate to ${spn} with any protocol (msDS-AllowedToDelegateTo + TrustedToAuthForDelegation, or samba-tool delegation); a user marked sensitive or in Protected Users cannot be delegated`;
    case 'SSO_SPN_UNKNOWN':
      return `no account has the SPN ${spn}: setspn -S ${spn} <app account>, or correct sso.kerberos.spn`;
    case 'SSO_CLOCK_SKEW':
      return "the connector host's clock is too far from the KDC's: run NTP on the connector host";
    default:
      return 'see the KDC error in the detail, and docs/kerberos.md';
  }
}

/**
 * The SSO dry run: the login identity the relay mapped, and for Kerberos apps a service
 * ticket for it by constrained delegation (the S4U code traffic uses); its `Negotiate`
 * value then goes with the GET.
 */
async function checkSso(
  sso: DiagnoseSso | undefined,
  kerberos: DiagnoseContext['kerberos'],
  timeoutMs: number,
): Promise<{ check: DiagnoseCheck; authorization?: string }> {
  if (!sso || sso.mode === 'none')
    return { check: skipped('sso', 'the app has no single sign-on', true) };
  if (sso.refused)
    return {
      check: {
        name: 'sso',
        ok: false,
        detail: `${sso.refused.code}: ${sso.refused.message}`,
        fix: sso.refused.fix,
      },
    };
  if (sso.skip || sso.loginIdentity === undefined)
    return { check: skipped('sso', `${sso.mode}: ${sso.skip ?? 'no user named'}`, true) };
  const login = sso.loginIdentity;
  const mapped = `${sso.user ?? login} → login identity ${login}${sso.loginIdentityKind ? ` (${sso.loginIdentityKind})` : ''}`;
  const data: DiagnoseCheck['data'] = {
    mode: sso.mode,
    loginIdentity: login,
    ...(sso.loginIdentityKind && { loginIdentityKind: sso.loginIdentityKind }),
  };
  if (sso.mode !== 'kerberos' || sso.spn === undefined)
    return {
      check: {
        name: 'sso',
        ok: true,
        detail: `${sso.mode}: ${mapped}${sso.headers?.length ? `; the relay sends ${sso.headers.join(', ')}` : ''}`,
        data,
      },
    };
  const spn = sso.spn;
  data.spn = spn;
  if (!kerberos)
    return {
      check: {
        name: 'sso',
        ok: false,
        detail: `kerberos: ${mapped}; SSO_NOT_CONFIGURED: this connector has no Kerberos settings`,
        fix: 'start the connector with --kerberos-keytab and --kerberos-principal (docs/kerberos.md)',
        data,
      },
    };
  const start = process.hrtime.bigint();
  try {
    const ticket = kerberos.ticket
      ? await within(kerberos.ticket(login, spn), timeoutMs, 'Kerberos')
      : undefined;
    const authorization = await within(kerberos.authorization(login, spn), timeoutMs, 'Kerberos');
    const ends = ticket ? `, valid until ${ticket.endsAt.toISOString()}` : '';
    return {
      authorization,
      check: {
        name: 'sso',
        ok: true,
        ms: elapsed(start),
        detail: `kerberos: ${mapped}; service ticket for ${spn}${ends}${ticket?.cached ? ' (cached)' : ''}`,
        data: {
          ...data,
          ...(ticket && { ticketEndsAt: ticket.endsAt.toISOString(), cached: ticket.cached }),
        },
      },
    };
  } catch (err) {
    const failure =
      err instanceof CheckTimeout
        ? { code: 'SSO_KDC_UNREACHABLE', detail: err.message }
        : kerberosFailure(err);
    return {
      check: {
        name: 'sso',
        ok: false,
        ms: elapsed(start),
        detail: `kerberos: ${mapped}; ${failure.code}: ${failure.detail}`,
        fix: kerberosFix(failure.code, login, spn),
        data: { ...data, code: failure.code },
      },
    };
  }
}

/**
 * A GET of the internal URL through the client traffic uses (a fresh connection, closed
 * after): status and time to the response head; at most a few KiB of body are read, none kept.
 */
function checkHttp(
  dispatcher: Dispatcher,
  tls: BackendTlsOptions,
  url: URL,
  o: { host: string; headers: Record<string, string>; authorization?: string; timeoutMs: number },
): Promise<DiagnoseCheck> {
  const start = process.hrtime.bigint();
  const path = `${url.pathname}${url.search}`;
  return new Promise<DiagnoseCheck>((resolve) => {
    let done = false;
    let controller: Dispatcher.DispatchController | undefined;
    const finish = (check: DiagnoseCheck) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      controller?.abort(new Error('diagnostics: enough read'));
      resolve(check);
    };
    const timer = setTimeout(
      () =>
        finish({
          name: 'http',
          ok: false,
          ms: elapsed(start),
          detail: `GET ${path}: no response within ${o.timeoutMs} ms`,
          fix: `the app took longer than ${Math.round(o.timeoutMs / 1000)} s to answer: look at the app (load, logs) and the backendTimeout of the app`,
          data: { code: 'BACKEND_TIMEOUT' },
        }),
      o.timeoutMs,
    );
    let head: { status: number; ms: number; headers: IncomingHttpHeaders } | undefined;
    let bytes = 0;
    const answered = () => finish(httpVerdict(path, head!, o.authorization !== undefined));
    const handler: Dispatcher.DispatchHandler = {
      onRequestStart(c) {
        controller = c;
        if (done) c.abort(new Error('diagnostics: timed out'));
      },
      onResponseStart(_c, statusCode, headers) {
        if (statusCode < 200) return;
        head = { status: statusCode, ms: elapsed(start), headers: headers as IncomingHttpHeaders };
      },
      onResponseData(_c, chunk: Buffer) {
        bytes += chunk.length;
        if (bytes >= BODY_PEEK_BYTES) answered();
      },
      onResponseEnd() {
        if (head) answered();
      },
      onResponseError(_c, err) {
        if (head) return answered();
        const failure = classifyBackendError(err);
        finish({
          name: 'http',
          ok: false,
          ms: elapsed(start),
          detail: `GET ${path}: ${failure.code}: ${failure.detail}`,
          fix:
            failure.code === 'BACKEND_TLS_INVALID'
              ? 'the backend certificate does not verify: see the tls check'
              : failure.code === 'BACKEND_TIMEOUT'
                ? 'the app did not answer in time: look at the app'
                : 'the app closed or refused the request: look at the app and at the connect check',
          data: { code: failure.code },
        });
      },
    };
    dispatcher.dispatch(
      {
        origin: url.origin,
        ...(tls.servername !== undefined && { servername: tls.servername }),
        path,
        method: 'GET',
        headers: {
          ...o.headers,
          host: o.host,
          accept: '*/*',
          'user-agent': 'appproxy-connector (diagnostics)',
          ...(o.authorization && { authorization: o.authorization }),
        },
        headersTimeout: o.timeoutMs,
        bodyTimeout: o.timeoutMs,
        reset: true,
      },
      handler,
    );
  });
}

function httpVerdict(
  path: string,
  head: { status: number; ms: number; headers: IncomingHttpHeaders },
  delegated: boolean,
): DiagnoseCheck {
  const { status, ms, headers } = head;
  const location = typeof headers.location === 'string' ? headers.location : undefined;
  const data = { status, ttfbMs: ms, ...(location && { location }) };
  const detail = `GET ${path} → ${status}${location ? ` (Location: ${location})` : ''}, first byte after ${ms} ms`;
  if (delegated && rejectsTicket(status, headers['www-authenticate']))
    return {
      name: 'http',
      ok: false,
      ms,
      detail: `${detail}; SSO_BACKEND_REJECTED: the app refused the delegated ticket`,
      fix: "the app's keytab lacks the SPN or has an old key version (kvno), or the app negotiates NTLM only",
      data,
    };
  if (status >= 500)
    return {
      name: 'http',
      ok: false,
      ms,
      detail,
      fix: `the app answered ${status}: look at the app's own logs`,
      data,
    };
  if (status >= 400)
    return {
      name: 'http',
      ok: true,
      warn: true,
      ms,
      detail,
      fix:
        status === 401 || status === 403
          ? 'the app asks for its own sign-in or refuses anonymous requests: expected for apps that authenticate users themselves'
          : status === 404
            ? `the app has nothing at ${path}: check the path of internalUrl`
            : `the app answered ${status} to a plain GET`,
      data,
    };
  return { name: 'http', ok: true, ms, detail, data };
}

/**
 * The `diagnose` control (§3.7): the relay's body checked, then {@link diagnose}. A body
 * that lacks what the checks need is refused `APPPROXY_TUNNEL_CONTROL_MALFORMED`.
 */
export async function diagnoseControl(
  body: unknown,
  ctx: DiagnoseContext,
): Promise<DiagnoseAnswer> {
  const req = parseDiagnoseRequest(body);
  if (!req)
    throw Object.assign(new Error('diagnose: the body lacks app, url or verifyTls'), {
      code: 'APPPROXY_TUNNEL_CONTROL_MALFORMED',
    });
  return diagnose(req, ctx);
}
