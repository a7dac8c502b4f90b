import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createSecureContext, type SecureContext } from 'node:tls';

interface Entry {
  names: string[];
  context: SecureContext;
}

/**
 * The public listener's certificates, chosen by SNI: an exact SAN match first, then a
 * wildcard (`*.example.com` covers one label), then the first certificate.
 */
export class SniCertificates {
  readonly #entries: Entry[];
  readonly defaults: { cert: string; key: string };

  constructor(files: ReadonlyArray<{ cert: string; key: string }>) {
    const loaded = files.map((f) => ({
      cert: readFileSync(f.cert, 'utf8'),
      key: readFileSync(f.key, 'utf8'),
    }));
    this.defaults = loaded[0]!;
    this.#entries = loaded.map(({ cert, key }) => ({
      names: sanNames(cert),
      context: createSecureContext({ cert, key, minVersion: 'TLSv1.2' }),
    }));
  }

  /** For `SNICallback`. */
  select = (servername: string, cb: (err: Error | null, ctx?: SecureContext) => void): void => {
    cb(null, this.find(servername));
  };

  /** Whether a certificate names `host` (exactly or by wildcard), not just the fallback. */
  covers(host: string): boolean {
    const name = host.toLowerCase();
    const dot = name.indexOf('.');
    const wildcard = dot === -1 ? undefined : `*${name.slice(dot)}`;
    return this.#entries.some(
      (e) => e.names.includes(name) || (wildcard !== undefined && e.names.includes(wildcard)),
    );
  }

  find(servername: string): SecureContext | undefined {
    const name = servername.toLowerCase();
    const dot = name.indexOf('.');
    const wildcard = dot === -1 ? undefined : `*${name.slice(dot)}`;
    return (
      this.#entries.find((e) => e.names.includes(name))?.context ??
      (wildcard ? this.#entries.find((e) => e.names.includes(wildcard))?.context : undefined) ??
      this.#entries[0]?.context
    );
  }
}

function sanNames(pem: string): string[] {
  const cert = new X509Certificate(pem);
  const names = (cert.subjectAltName ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.startsWith('DNS:'))
    .map((s) => s.slice(4).toLowerCase());
  const cn = /CN=([^\n,]+)/.exec(cert.subject)?.[1];
  if (cn) names.push(cn.toLowerCase());
  return names;
}
