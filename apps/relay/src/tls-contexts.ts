import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createSecureContext, type SecureContext } from 'node:tls';
import type { CertificateSource } from '@appproxy/config';
import { openPfx } from './pfx.js';

interface Entry {
  names: string[];
  context: SecureContext;
  notAfter: Date;
}

/** A certificate the public listener serves: its first name and when it expires. */
export interface CertificateExpiry {
  name: string;
  notAfter: Date;
}

/**
 * The public listener's certificates, chosen by SNI: an exact SAN match first, then a
 * wildcard (`*.example.com` covers one label), then the first certificate.
 */
export class SniCertificates {
  readonly #entries: Entry[];
  /** The first certificate's options: what clients that send no SNI get. */
  readonly defaults: { cert: string; key: string } | { pfx: Buffer; passphrase?: string };

  constructor(sources: ReadonlyArray<CertificateSource>) {
    const loaded = sources.map((source) => {
      if ('pfx' in source) {
        const opened = openPfx(source);
        return {
          options: opened.options,
          names: sanNames(opened.certificate),
          context: opened.context,
          notAfter: new Date(opened.certificate.validTo),
        };
      }
      const options = {
        cert: readFileSync(source.cert, 'utf8'),
        key: readFileSync(source.key, 'utf8'),
      };
      const x509 = new X509Certificate(options.cert);
      return {
        options,
        names: sanNames(x509),
        context: createSecureContext({ ...options, minVersion: 'TLSv1.2' }),
        notAfter: new Date(x509.validTo),
      };
    });
    this.defaults = loaded[0]!.options;
    this.#entries = loaded.map(({ names, context, notAfter }) => ({ names, context, notAfter }));
  }

  /** Each configured certificate, named by its first SAN (or CN), with its expiry. */
  expiries(): CertificateExpiry[] {
    return this.#entries.map((e) => ({ name: e.names[0] ?? '', notAfter: e.notAfter }));
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

function sanNames(cert: X509Certificate): string[] {
  const names = (cert.subjectAltName ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.startsWith('DNS:'))
    .map((s) => s.slice(4).toLowerCase());
  const cn = /CN=([^\n,]+)/.exec(cert.subject)?.[1];
  if (cn) names.push(cn.toLowerCase());
  return names;
}
