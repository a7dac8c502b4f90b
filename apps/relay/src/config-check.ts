import { stateDirProblem, type HostPort, type RelayConfig } from '@appproxy/config';
import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { PfxError, openPfx } from './pfx.js';
import { ssoProblems } from './single-sign-on.js';
import { isIP } from 'node:net';

/** One thing `config check` (and `start`) found, named by its path in appproxy.yaml. */
export interface ConfigProblem {
  /** `error`: `start` refuses to run; `warning`: it runs, but something will not work. */
  severity: 'error' | 'warning';
  /** e.g. `relay.certificates[0].key` */
  path: string;
  message: string;
}

export interface CheckOptions {
  /** Fetch the identity provider's discovery document. @default true */
  discovery?: boolean;
  /** For the discovery fetch. @default 5000 */
  timeoutMs?: number;
  /** @default globalThis.fetch */
  fetch?: typeof fetch;
}

/** `path: message` — how a problem is printed and logged. */
export const formatProblem = (p: ConfigProblem): string => `${p.path}: ${p.message}`;

/**
 * Everything `start` would refuse in a parsed configuration, without binding a port:
 * certificates and keys that do not parse or do not match, listeners that collide, a state
 * directory that cannot be created or written (errors); external hosts no certificate
 * covers and an identity provider whose discovery document cannot be fetched (warnings).
 *
 * @example
 * const problems = await checkConfig(await loadConfig('appproxy.yaml'), { discovery: false });
 * for (const p of problems) console.error(`${p.severity}: ${formatProblem(p)}`);
 */
export async function checkConfig(
  config: RelayConfig,
  opts: CheckOptions = {},
): Promise<ConfigProblem[]> {
  const problems: ConfigProblem[] = [];
  const certs = checkCertificates(config, problems);
  checkListeners(config, problems);
  const dir = stateDirProblem(config.relay.stateDir);
  if (dir) problems.push({ severity: 'error', path: 'relay.stateDir', message: dir });
  checkCoverage(config, certs, problems);
  for (const p of ssoProblems(config)) problems.push({ severity: 'error', ...p });
  if (opts.discovery !== false && config.identityProvider)
    await checkDiscovery(config.identityProvider.issuer, opts, problems);
  return problems;
}

function checkCertificates(config: RelayConfig, problems: ConfigProblem[]): X509Certificate[] {
  const usable: X509Certificate[] = [];
  config.relay.certificates.forEach((pair, i) => {
    const at = `relay.certificates[${i}]`;
    const error = (field: string, message: string) =>
      problems.push({ severity: 'error', path: `${at}.${field}`, message });
    if ('pfx' in pair) {
      const cert = pfxCertificate(pair, error);
      if (cert) usable.push(expiryWarning(cert, `${at}.pfx`, pair.pfx, problems));
      return;
    }
    let cert: X509Certificate | undefined;
    let key: KeyObject | undefined;
    try {
      cert = new X509Certificate(readFileSync(pair.cert));
    } catch (err) {
      error('cert', `${fileReason(err, 'not a PEM certificate')} (${pair.cert})`);
    }
    try {
      key = createPrivateKey(readFileSync(pair.key));
    } catch (err) {
      error('key', `${fileReason(err, 'not a PEM private key')} (${pair.key})`);
    }
    if (cert && key && !cert.checkPrivateKey(key)) {
      error('key', `does not match ${at}.cert (${pair.key})`);
      return;
    }
    if (cert) {
      expiryWarning(cert, `${at}.cert`, pair.cert, problems);
      if (key) usable.push(cert);
    }
  });
  return usable;
}

function expiryWarning(
  cert: X509Certificate,
  path: string,
  file: string,
  problems: ConfigProblem[],
): X509Certificate {
  if (Date.parse(cert.validTo) < Date.now())
    problems.push({
      severity: 'warning',
      path,
      message: `expired ${new Date(cert.validTo).toISOString()} (${file})`,
    });
  return cert;
}

function pfxCertificate(
  source: { pfx: string; passphrase?: string },
  error: (field: string, message: string) => void,
): X509Certificate | undefined {
  try {
    return openPfx(source).certificate;
  } catch (err) {
    if (!(err instanceof PfxError)) throw err;
    error(err.field, err.message);
    return undefined;
  }
}

function fileReason(err: unknown, otherwise: string): string {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return 'no such file';
  if (code === 'EACCES') return 'permission denied';
  if (code === 'EISDIR') return 'is a directory';
  return otherwise;
}

const LISTENERS = ['listen', 'tunnelListen', 'adminListen', 'redirectHttp'] as const;
const WILDCARD = new Set(['0.0.0.0', '::', '']);

/** Two listeners on one port collide when their addresses are equal or either is a wildcard. */
function checkListeners(config: RelayConfig, problems: ConfigProblem[]): void {
  const seen: Array<{ name: string; at: HostPort }> = [];
  for (const name of LISTENERS) {
    const at = config.relay[name];
    if (!at) continue;
    // Port 0: the system picks a free port each time; such listeners never collide.
    const other =
      at.port === 0
        ? undefined
        : seen.find(
            (s) =>
              s.at.port === at.port &&
              (s.at.host === at.host || WILDCARD.has(s.at.host) || WILDCARD.has(at.host)),
          );
    if (other)
      problems.push({
        severity: 'error',
        path: `relay.${name}`,
        message: `${fmt(at)} collides with relay.${other.name} ${fmt(other.at)}`,
      });
    seen.push({ name, at });
  }
  checkWorkerTunnels(config, seen, problems);
}

/** Workers 1…N−1 listen on `tunnelListen.port + i`: those ports must be free of the others. */
function checkWorkerTunnels(
  config: RelayConfig,
  listeners: Array<{ name: string; at: HostPort }>,
  problems: ConfigProblem[],
): void {
  const { tunnelListen: tunnel, workers = 1 } = config.relay;
  if (workers <= 1 || tunnel.port === 0) return;
  const last = tunnel.port + workers - 1;
  if (last > 65_535) {
    problems.push({
      severity: 'error',
      path: 'relay.workers',
      message: `${workers} workers need tunnel ports ${tunnel.port}–${last}: beyond 65535`,
    });
    return;
  }
  for (const other of listeners) {
    const i = other.at.port - tunnel.port;
    if (
      i >= 1 &&
      i < workers &&
      (other.at.host === tunnel.host || WILDCARD.has(other.at.host) || WILDCARD.has(tunnel.host))
    )
      problems.push({
        severity: 'error',
        path: 'relay.workers',
        message: `worker ${i}'s tunnel port ${fmt({ host: tunnel.host, port: other.at.port })} (tunnelListen + ${i}) collides with relay.${other.name} ${fmt(other.at)}`,
      });
  }
}

function checkCoverage(
  config: RelayConfig,
  certs: X509Certificate[],
  problems: ConfigProblem[],
): void {
  // With a certificate that is unusable, its error says enough.
  if (certs.length < config.relay.certificates.length) return;
  const sites = config.apps.map((app, i) => ({
    url: app.externalUrl,
    path: `apps[${i}].externalUrl`,
  }));
  // The portal's host needs a certificate like any app's.
  if (config.portal) sites.push({ url: config.portal.externalUrl, path: 'portal.externalUrl' });
  sites.forEach(({ url, path }) => {
    let host: string;
    try {
      host = new URL(url).hostname.replace(/^\[|\]$/g, '');
    } catch {
      return;
    }
    // A wildcard external host needs a wildcard certificate: try one name under it.
    const name = host.startsWith('*.') ? `appproxy-check${host.slice(1)}` : host;
    const covered = certs.some((c) =>
      isIP(name) ? c.checkIP(name) !== undefined : c.checkHost(name) !== undefined,
    );
    // relay.acme orders certificates for exact DNS names (apps/relay/src/acme.ts).
    const ordered = config.relay.acme !== undefined && !host.includes('*') && !isIP(host);
    if (!covered && !ordered)
      problems.push({
        severity: 'warning',
        path,
        message: `no certificate in relay.certificates covers ${host} (clients will see a certificate error)`,
      });
  });
}

async function checkDiscovery(
  issuer: string,
  opts: CheckOptions,
  problems: ConfigProblem[],
): Promise<void> {
  const url = `${issuer.replace(/\/+$/, '')}/.well-known/openid-configuration`;
  const warn = (message: string): void => {
    problems.push({ severity: 'warning', path: 'identityProvider.issuer', message });
  };
  try {
    const res = await (opts.fetch ?? fetch)(url, {
      signal: AbortSignal.timeout(opts.timeoutMs ?? 5000),
      headers: { accept: 'application/json' },
    });
    if (!res.ok) return warn(`discovery ${url} answered HTTP ${res.status}`);
    const doc = (await res.json()) as { issuer?: unknown };
    if (doc.issuer !== issuer)
      warn(`discovery ${url} names issuer ${JSON.stringify(doc.issuer)}, not ${issuer}`);
  } catch (err) {
    const e = err as Error & { cause?: { code?: string; message?: string } };
    const why =
      e.name === 'TimeoutError'
        ? `no answer within ${opts.timeoutMs ?? 5000} ms`
        : (e.cause?.code ?? e.cause?.message ?? e.message);
    warn(`discovery ${url} not reachable: ${why}`);
  }
}

function fmt(a: HostPort): string {
  return a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}
