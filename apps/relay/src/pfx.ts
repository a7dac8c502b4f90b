import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { TLSSocket, createSecureContext, type SecureContext } from 'node:tls';

/** A PKCS#12 file of `relay.certificates[]`, opened. */
export interface OpenedPfx {
  /** What `createSecureContext` / `setSecureContext` take. */
  options: { pfx: Buffer; passphrase?: string };
  context: SecureContext;
  /** The leaf certificate inside. */
  certificate: X509Certificate;
}

/** Why a pfx entry cannot serve, by the field of the entry to blame. */
export class PfxError extends Error {
  readonly code = 'APPPROXY_PFX_UNUSABLE';
  constructor(
    readonly field: 'pfx' | 'passphrase',
    message: string,
  ) {
    super(message);
    this.name = 'PfxError';
  }
}

/**
 * Opens a PKCS#12 file as the public listener will: the file, the passphrase, a leaf
 * certificate with its key. Messages name the file, never the passphrase.
 *
 * @throws {PfxError} unreadable file, wrong or missing passphrase, not PKCS#12, no certificate
 * @example
 * const { certificate } = openPfx({ pfx: '/etc/appproxy/site.pfx', passphrase: process.env.PFX_PASS });
 * certificate.subjectAltName; // 'DNS:apps.example.com, DNS:*.apps.example.com'
 */
export function openPfx(source: { pfx: string; passphrase?: string }): OpenedPfx {
  let pfx: Buffer;
  try {
    pfx = readFileSync(source.pfx);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why =
      code === 'ENOENT'
        ? 'no such file'
        : code === 'EACCES'
          ? 'permission denied'
          : code === 'EISDIR'
            ? 'is a directory'
            : `cannot read file (${code ?? 'error'})`;
    throw new PfxError('pfx', `${why} (${source.pfx})`);
  }
  const options = {
    pfx,
    ...(source.passphrase !== undefined && { passphrase: source.passphrase }),
  };
  let context: SecureContext;
  try {
    context = createSecureContext({ ...options, minVersion: 'TLSv1.2' });
  } catch (err) {
    const reason = (err as Error).message;
    // OpenSSL checks the passphrase with the file's MAC: a wrong one and a missing one look alike.
    if (/mac verify failure/i.test(reason))
      throw source.passphrase === undefined
        ? new PfxError('pfx', `is protected by a passphrase; set passphrase (${source.pfx})`)
        : new PfxError('passphrase', `does not open ${source.pfx} (wrong passphrase)`);
    throw new PfxError(
      'pfx',
      `not a PKCS#12 file with a certificate and key: ${reason} (${source.pfx})`,
    );
  }
  // The leaf as OpenSSL will serve it; TLSSocket is the only door to a context's certificate.
  const socket = new TLSSocket(null as never, { isServer: true, secureContext: context });
  const raw = socket.getCertificate() as { raw?: Buffer } | null;
  socket.destroy();
  if (!raw?.raw) throw new PfxError('pfx', `holds no certificate with its key (${source.pfx})`);
  return { options, context, certificate: new X509Certificate(raw.raw) };
}
