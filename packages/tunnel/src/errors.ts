/** Stable codes of everything the tunnel can refuse or lose. */
export type TunnelErrorCode =
  | 'APPPROXY_TUNNEL_HANDSHAKE_FAILED'
  | 'APPPROXY_TUNNEL_UNAUTHORIZED'
  /** The relay no longer knows this connector's certificate (deleted, replaced, another CA): register again. */
  | 'APPPROXY_TUNNEL_REVOKED'
  /** What answered is not a relay's tunnel port (no tunnel ALPN): e.g. its public HTTPS port. */
  | 'APPPROXY_TUNNEL_WRONG_PORT'
  | 'APPPROXY_TUNNEL_CLOSED'
  | 'APPPROXY_TUNNEL_PING_TIMEOUT'
  | 'APPPROXY_TUNNEL_CONTROL_FAILED'
  | 'APPPROXY_TUNNEL_PROXY_FAILED'
  | 'APPPROXY_TUNNEL_TOKEN_MALFORMED'
  | 'APPPROXY_TUNNEL_RELAY_UNTRUSTED'
  | 'APPPROXY_TUNNEL_REGISTRATION_REFUSED'
  /** A tunnel stream's `appproxy-*` metadata is missing or malformed. */
  | 'APPPROXY_TUNNEL_META_INVALID';

export class TunnelError extends Error {
  readonly code: TunnelErrorCode;
  constructor(code: TunnelErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TunnelError';
    this.code = code;
  }
}
