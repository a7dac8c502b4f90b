import { createHash } from 'node:crypto';
import { TunnelError } from './errors.js';

/**
 * An app's `backendTls` as the connector needs it: the PEM texts (the connector runs on
 * another host and cannot read the relay's files) and the name to verify.
 */
export interface BackendTlsMaterial {
  /** PEM CA certificates the backend's chain must lead to. */
  ca?: string;
  /** PEM client certificate chain presented to the backend. */
  cert?: string;
  /** PEM private key of `cert`. */
  key?: string;
  /** SNI and the name the backend certificate must carry. */
  serverName?: string;
}

/** The metadata of a request of an app with `backendTls` (docs/tunnel-protocol.md §3.2). */
export interface BackendTlsMeta {
  /** Digest of the material: the connector's cache key and pool key. */
  id: string;
  /** Sent until the connector has answered a stream that carried it. */
  material?: BackendTlsMaterial;
}

/** 22 to 64 base64url characters (the relay sends 43: SHA-256). */
export const BACKEND_TLS_ID = /^[A-Za-z0-9_-]{22,64}$/;

/**
 * The id of `material`: SHA-256 of its canonical JSON, base64url.
 *
 * @example
 * backendTlsId({ serverName: 'payroll.corp' }).length; // 43
 */
export function backendTlsId(material: BackendTlsMaterial): string {
  const canonical = JSON.stringify([
    material.ca ?? null,
    material.cert ?? null,
    material.key ?? null,
    material.serverName ?? null,
  ]);
  return createHash('sha256').update(canonical).digest('base64url');
}

/** `material` as one header value: base64url of its JSON. */
export function encodeBackendTls(material: BackendTlsMaterial): string {
  return Buffer.from(JSON.stringify(material)).toString('base64url');
}

/**
 * Reads the `appproxy-backend-tls` value sent with `id`; throws a `TunnelError`
 * (`APPPROXY_TUNNEL_META_INVALID`) when it does not parse or does not hash to `id`.
 */
export function decodeBackendTls(header: string, value: string, id: string): BackendTlsMaterial {
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(value, 'base64url').toString('utf8'));
  } catch {
    throw new TunnelError('APPPROXY_TUNNEL_META_INVALID', `${header}: not base64url JSON`);
  }
  const m = parsed as Record<string, unknown> | null;
  const material: BackendTlsMaterial = {};
  if (!m || typeof m !== 'object')
    throw new TunnelError('APPPROXY_TUNNEL_META_INVALID', `${header}: not an object`);
  for (const k of ['ca', 'cert', 'key', 'serverName'] as const) {
    const v = m[k];
    if (v === undefined) continue;
    if (typeof v !== 'string')
      throw new TunnelError('APPPROXY_TUNNEL_META_INVALID', `${header}: ${k} is not text`);
    material[k] = v;
  }
  if (backendTlsId(material) !== id)
    throw new TunnelError('APPPROXY_TUNNEL_META_INVALID', `${header}: does not match its id`);
  return material;
}
