import type { ConnectorErrorCode } from '@appproxy/tunnel';

const TLS_CODES = new Set([
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'CERT_REVOKED',
]);

/** Maps a backend-hop failure (undici or node:http) to the code the user will see. */
export function classifyBackendError(err: unknown): {
  code: ConnectorErrorCode;
  status: number;
  detail: string;
} {
  let e = err as (Error & { code?: string; cause?: unknown }) | undefined;
  const codes: string[] = [];
  for (let depth = 0; e && depth < 4; depth++) {
    if (e.code) codes.push(e.code);
    e = e.cause as typeof e;
  }
  const detail = `${codes[0] ?? 'ERROR'}: ${(err as Error)?.message ?? String(err)}`;
  if (codes.some((c) => c === 'UND_ERR_HEADERS_TIMEOUT' || c === 'ETIMEDOUT_BACKEND')) {
    return { code: 'BACKEND_TIMEOUT', status: 504, detail };
  }
  if (codes.some((c) => TLS_CODES.has(c)))
    return { code: 'BACKEND_TLS_INVALID', status: 502, detail };
  return { code: 'BACKEND_UNREACHABLE', status: 502, detail };
}

/** Exit code of `start` when the relay says this connector is deleted or unknown. */
export const EXIT_REVOKED = 3;

const NOT_RELAY_CA = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'ERR_SSL_TLSV1_ALERT_NO_APPLICATION_PROTOCOL',
]);

/**
 * What to do about a failed tunnel or registration connection, when the cause says it:
 * a relay certificate without the dialled name (`relay.tunnelHosts`), or a port that is not
 * the tunnel port (the public listener offers no tunnel ALPN and a certificate the relay's
 * connector CA did not issue).
 */
export function tunnelAdvice(err: unknown, relayUrl: string): { advice?: string } {
  const codes: string[] = [];
  let e = err as (Error & { code?: string; cause?: unknown }) | undefined;
  for (let depth = 0; e && depth < 4; depth++) {
    if (e.code) codes.push(e.code);
    e = e.cause as typeof e;
  }
  let host = relayUrl;
  try {
    host = new URL(relayUrl).hostname.replace(/^\[|\]$/g, '');
  } catch {
    // keep the text
  }
  if (codes.includes('ERR_TLS_CERT_ALTNAME_INVALID'))
    return {
      advice: `the relay's tunnel certificate does not name ${host}: add ${host} to relay.tunnelHosts in the relay's appproxy.yaml and restart it (or dial a name listed there)`,
    };
  if (codes.some((c) => c === 'APPPROXY_TUNNEL_WRONG_PORT' || NOT_RELAY_CA.has(c)))
    return {
      advice: `${relayUrl} is not the relay's tunnel port: use the address of relay.tunnelListen (e.g. :8443), not the public HTTPS port (relay.listen)`,
    };
  // Registration pins the relay's connector CA: the public listener's chain lacks it.
  if (
    codes.includes('APPPROXY_TUNNEL_RELAY_UNTRUSTED') &&
    /does not contain the CA/.test((err as Error).message)
  )
    return {
      advice: `${relayUrl} is not the relay's tunnel port (relay.tunnelListen, e.g. :8443; the public HTTPS port relay.listen answers like this), or the token is from another relay`,
    };
  return {};
}

/** The connector CLI's failures: one line on stderr, non-zero exit. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
  }
}

/** A certificate renewal the connector refused (answered to the relay with this code). */
export class RenewalError extends Error {
  readonly code:
    | 'APPPROXY_RENEWAL_NOT_REQUESTED'
    | 'APPPROXY_RENEWAL_CERT_INVALID'
    | 'APPPROXY_RENEWAL_MALFORMED';
  constructor(code: RenewalError['code'], message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'RenewalError';
    this.code = code;
  }
}
