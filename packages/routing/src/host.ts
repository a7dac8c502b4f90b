/** A request's `Host` (or HTTP/2 `:authority`) split into its parts. */
export interface RequestHost {
  /** Lower-case; an IPv6 literal without its brackets. */
  hostname: string;
  /** Absent when the client sent none. */
  port?: number;
}

// `host[:digits]` and nothing else: a DNS name or IPv4 address (letters, digits, `-`, `_`,
// `.`) or a bracketed IPv6 literal. Userinfo (`@`), lists (`,`), paths, spaces and empty
// ports are refused: a backend or framework that reads Host differently than the router
// would otherwise see a host the relay never routed on.
const HOST = /^(?:([A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*\.?)|\[([0-9A-Fa-f:.]+)\])(?::(\d{1,5}))?$/;

/**
 * Parses a `Host` header value (or `:authority`); undefined unless it is exactly
 * `host[:port]`.
 *
 * @example
 * parseRequestHost('Exp.Example.com:8443') // { hostname: 'exp.example.com', port: 8443 }
 * parseRequestHost('[::1]')                // { hostname: '::1' }
 * parseRequestHost('exp.example.com:@evil.example') // undefined
 */
export function parseRequestHost(value: string): RequestHost | undefined {
  const m = HOST.exec(value);
  if (!m) return undefined;
  const hostname = (m[1] ?? m[2]!).toLowerCase();
  if (m[3] === undefined) return { hostname };
  const port = Number(m[3]);
  return port > 65535 ? undefined : { hostname, port };
}
