import { X509Certificate, createHash } from 'node:crypto';
import { request } from 'node:http';
import {
  checkServerIdentity,
  type DetailedPeerCertificate,
  type PeerCertificate,
  type TLSSocket,
} from 'node:tls';
import { TunnelError } from './errors.js';
import { ALPN_REGISTRATION } from './protocol.js';
import { connectToRelay, relayAddress } from './relay-address.js';

/** Where a connector trades its token and CSR for a certificate (HTTP/1.1 on the tunnel port). */
export const REGISTRATION_PATH = '/v1/connectors/register';

/** A one-time registration token: which row to redeem, its secret, and the relay CA to pin. */
export interface RegistrationToken {
  id: string;
  secret: string;
  /** SHA-256 of the relay CA certificate's DER, lowercase hex. */
  caFingerprint: string;
}

const TOKEN_PREFIX = 'ap1';

/**
 * `ap1.<id>.<secret>.<ca-fingerprint>` — like `kubeadm join`'s token + CA hash, in one
 * string, so `register` needs no other flag to trust the relay on first contact.
 *
 * @example
 * formatRegistrationToken({ id: 'k3x9a2b1', secret: 's3cr3t', caFingerprint: 'ab12…' })
 */
export function formatRegistrationToken(token: RegistrationToken): string {
  const fp = Buffer.from(token.caFingerprint, 'hex').toString('base64url');
  return `${TOKEN_PREFIX}.${token.id}.${token.secret}.${fp}`;
}

export function parseRegistrationToken(text: string): RegistrationToken {
  const parts = text.trim().split('.');
  if (parts.length !== 4 || parts[0] !== TOKEN_PREFIX || !parts[1] || !parts[2]) {
    throw new TunnelError(
      'APPPROXY_TUNNEL_TOKEN_MALFORMED',
      'registration token is malformed (expected ap1.<id>.<secret>.<fingerprint>)',
    );
  }
  const fp = Buffer.from(parts[3]!, 'base64url');
  if (fp.length !== 32) {
    throw new TunnelError(
      'APPPROXY_TUNNEL_TOKEN_MALFORMED',
      'registration token carries no valid CA fingerprint',
    );
  }
  return { id: parts[1], secret: parts[2], caFingerprint: fp.toString('hex') };
}

export interface RegistrationRequest {
  tokenId: string;
  secret: string;
  csr: string;
  hostname: string;
  version: string;
}

export interface RegistrationResult {
  connectorId: string;
  group: string;
  certificate: string;
  /** The relay CA (pinned: its fingerprint matched the token's). */
  caCertificate: string;
}

/**
 * Connector side of registration. Connects to the relay, accepts its certificate only if
 * the chain's CA has the token's fingerprint and the leaf names the relay host, then posts
 * the CSR with the token.
 */
export async function registerWithRelay(opts: {
  relayUrl: string;
  token: string;
  csrPem: string;
  hostname: string;
  version: string;
  timeoutMs?: number;
}): Promise<RegistrationResult> {
  const token = parseRegistrationToken(opts.token);
  const url = new URL(opts.relayUrl);
  const { host, port } = relayAddress(opts.relayUrl);
  const timeoutMs = opts.timeoutMs ?? 15_000;
  // Trust is decided by the pinned fingerprint below, not by a system CA store.
  const socket = await connectToRelay(
    host,
    port,
    { rejectUnauthorized: false, ALPNProtocols: [ALPN_REGISTRATION] },
    timeoutMs,
  );
  try {
    // The public listener (or anything else) does not speak the registration protocol.
    if (socket.alpnProtocol !== ALPN_REGISTRATION)
      throw new TunnelError(
        'APPPROXY_TUNNEL_WRONG_PORT',
        `${host}:${port} does not accept ${ALPN_REGISTRATION}: not a relay's tunnel port`,
      );
    checkPinnedRelay(socket, host, token.caFingerprint);
  } catch (err) {
    socket.destroy();
    throw err;
  }
  const body = JSON.stringify({
    tokenId: token.id,
    secret: token.secret,
    csr: opts.csrPem,
    hostname: opts.hostname,
    version: opts.version,
  } satisfies RegistrationRequest);
  const { status, json } = await new Promise<{ status: number; json: unknown }>(
    (resolve, reject) => {
      const req = request(
        {
          createConnection: () => socket,
          method: 'POST',
          path: REGISTRATION_PATH,
          headers: {
            host: url.host,
            'content-type': 'application/json',
            'content-length': Buffer.byteLength(body),
          },
          timeout: timeoutMs,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            socket.destroy();
            try {
              resolve({
                status: res.statusCode ?? 0,
                json: JSON.parse(Buffer.concat(chunks).toString('utf8')),
              });
            } catch (err) {
              reject(
                new TunnelError(
                  'APPPROXY_TUNNEL_REGISTRATION_REFUSED',
                  `relay answered ${res.statusCode} with no JSON`,
                  { cause: err },
                ),
              );
            }
          });
        },
      );
      req.once('timeout', () => req.destroy(new Error('registration timed out')));
      req.once('error', (err) =>
        reject(
          new TunnelError('APPPROXY_TUNNEL_REGISTRATION_REFUSED', err.message, { cause: err }),
        ),
      );
      req.end(body);
    },
  );
  if (status !== 200) {
    const error = (json as { error?: { code?: string; message?: string } }).error;
    throw new TunnelError(
      'APPPROXY_TUNNEL_REGISTRATION_REFUSED',
      `relay refused registration: ${error?.code ?? status}${error?.message ? ` (${error.message})` : ''}`,
    );
  }
  const result = json as RegistrationResult;
  if (fingerprintOf(result.caCertificate) !== token.caFingerprint) {
    throw new TunnelError(
      'APPPROXY_TUNNEL_RELAY_UNTRUSTED',
      'relay returned a CA that does not match the token',
    );
  }
  return result;
}

function fingerprintOf(pemOrDer: string | Buffer): string {
  const der = typeof pemOrDer === 'string' ? new X509Certificate(pemOrDer).raw : pemOrDer;
  return createHash('sha256').update(der).digest('hex');
}

/** Finds the relay CA in the presented chain by fingerprint and checks that it signed the leaf for `host`. */
function checkPinnedRelay(socket: TLSSocket, host: string, expected: string): void {
  const leafInfo = socket.getPeerCertificate(true);
  let issuer: PeerCertificate | undefined = leafInfo;
  let ca: X509Certificate | undefined;
  for (let depth = 0; issuer && issuer.raw && depth < 5; depth++) {
    if (fingerprintOf(issuer.raw) === expected) {
      ca = new X509Certificate(issuer.raw);
      break;
    }
    const next: PeerCertificate | undefined = (issuer as DetailedPeerCertificate).issuerCertificate;
    issuer = next && next !== issuer ? next : undefined;
  }
  if (!ca) {
    throw new TunnelError(
      'APPPROXY_TUNNEL_RELAY_UNTRUSTED',
      "the relay's certificate chain does not contain the CA named by the token",
    );
  }
  const leaf = new X509Certificate(leafInfo.raw);
  if (!leaf.verify(ca.publicKey)) {
    throw new TunnelError(
      'APPPROXY_TUNNEL_RELAY_UNTRUSTED',
      "the relay's certificate was not signed by the pinned CA",
    );
  }
  const identityError = checkServerIdentity(host, leafInfo);
  if (identityError) {
    throw new TunnelError(
      'APPPROXY_TUNNEL_RELAY_UNTRUSTED',
      `the relay's certificate does not name ${host}: ${identityError.message}`,
      { cause: identityError },
    );
  }
}
