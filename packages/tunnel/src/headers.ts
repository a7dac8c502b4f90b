import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import { META_PREFIX } from './protocol.js';

/** RFC 9110 §7.6.1 hop-by-hop headers, plus the non-standard ones proxies still see. */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'http2-settings',
]);

/**
 * Copies `headers` without hop-by-hop headers (the fixed list and every name the
 * `Connection` header lists), pseudo-headers, AppProxy metadata headers and the names in
 * `drop` (lower-case), in one pass.
 *
 * @example
 * endToEndHeaders({ connection: 'close, x-a', 'x-a': '1', 'x-b': '2', host: 'h' }, { drop: new Set(['host']) }) // { 'x-b': '2' }
 */
export function endToEndHeaders(
  headers: IncomingHttpHeaders,
  opts: { keepMeta?: boolean; drop?: { has(name: string): boolean } } = {},
): OutgoingHttpHeaders {
  const connection = headers.connection;
  let listed: Set<string> | undefined;
  if (connection) {
    listed = new Set();
    for (const name of String(connection).split(',')) listed.add(name.trim().toLowerCase());
  }
  const { keepMeta, drop } = opts;
  const out: OutgoingHttpHeaders = {};
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined) continue;
    if (name.charCodeAt(0) === 58 /* ':' */) continue;
    if (HOP_BY_HOP.has(name) || listed?.has(name) || drop?.has(name)) continue;
    if (!keepMeta && name.startsWith(META_PREFIX)) continue;
    out[name] = value;
  }
  return out;
}

/** True when the header name is hop-by-hop in itself (not counting `Connection`-listed ones). */
export function isHopByHop(name: string): boolean {
  return HOP_BY_HOP.has(name.toLowerCase());
}
