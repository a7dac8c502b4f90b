import type { PublishedAppConfig } from '@appproxy/config';
import {
  META,
  backendTlsId,
  encodeBackendTls,
  type BackendTlsMaterial,
  type BackendTlsMeta,
} from '@appproxy/tunnel';
import { readFileSync } from 'node:fs';
import type { OutgoingHttpHeaders } from 'node:http';

/** Largest encoded material: half the tunnel's header list limit. */
export const MAX_MATERIAL_BYTES = 128 * 1024;

/**
 * Each app's `backendTls`, read from its files (at start and on every reload: a file that
 * cannot be read fails the reload, which keeps the previous configuration).
 *
 * @example
 * const tls = backendTlsByApp(config.apps);
 * tls.get('Payroll'); // { id: 'k3…', material: { ca: '-----BEGIN…', serverName: 'pay.corp' } }
 */
export function backendTlsByApp(
  apps: readonly PublishedAppConfig[],
): ReadonlyMap<string, Required<BackendTlsMeta>> {
  const out = new Map<string, Required<BackendTlsMeta>>();
  for (const app of apps) {
    const t = app.backendTls;
    if (!t) continue;
    const material: BackendTlsMaterial = {};
    for (const k of ['ca', 'cert', 'key'] as const)
      if (t[k] !== undefined) material[k] = readFileSync(t[k], 'utf8');
    if (t.serverName !== undefined) material.serverName = t.serverName;
    // It travels as one tunnel header; the tunnel takes 256 KiB of headers per stream.
    const size = encodeBackendTls(material).length;
    if (size > MAX_MATERIAL_BYTES)
      throw new Error(
        `apps "${app.name}" backendTls: ${size} bytes encoded, more than ${MAX_MATERIAL_BYTES} (a CA bundle that large?)`,
      );
    out.set(app.name, { id: backendTlsId(material), material });
  }
  return out;
}

/**
 * Which backend TLS ids each tunnel's connector has cached: the material is sent on a
 * tunnel until the connector has answered a stream that carried it, then the id alone
 * (docs/tunnel-protocol.md §3.2). Per tunnel session object, so a reconnected connector
 * (a new session) gets it again.
 */
const known = new WeakMap<object, Set<string>>();
/** More ids than this on one tunnel (reload after reload): forget them all and resend. */
const MAX_IDS_PER_TUNNEL = 256;

/** The headers to open a stream on `tunnel` with: without the material it already has. */
export function backendTlsHeaders(
  tunnel: object,
  headers: OutgoingHttpHeaders,
): OutgoingHttpHeaders {
  const id = headers[META.backendTlsId];
  if (typeof id !== 'string' || headers[META.backendTls] === undefined) return headers;
  if (!known.get(tunnel)?.has(id)) return headers;
  return { ...headers, [META.backendTls]: undefined };
}

/**
 * The connector answered a stream opened with `headers`: it holds the id now — unless it
 * said `BACKEND_TLS_INVALID` (which it also says for an id it does not know): then the
 * material goes with the next request again.
 */
export function backendTlsAnswered(
  tunnel: object,
  headers: OutgoingHttpHeaders,
  connectorError: string | undefined,
): void {
  const id = headers[META.backendTlsId];
  if (typeof id !== 'string') return;
  let ids = known.get(tunnel);
  if (connectorError === 'BACKEND_TLS_INVALID') {
    ids?.delete(id);
    return;
  }
  if (headers[META.backendTls] === undefined) return;
  if (!ids) known.set(tunnel, (ids = new Set()));
  if (ids.size >= MAX_IDS_PER_TUNNEL) ids.clear();
  ids.add(id);
}
