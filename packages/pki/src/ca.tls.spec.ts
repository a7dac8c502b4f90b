import { once } from 'node:events';
import { connect, createServer, type SecureVersion, type TLSSocket } from 'node:tls';
import { beforeAll, describe, expect, it } from 'vitest';
import { useCleanup } from './__fixtures__/cleanup.js';
import { ConnectorCA, createKeyAndCsr } from './index.js';

// The whole point of the CA: a real mutual-TLS handshake, as the tunnel listener does it.
const { tempDir, listen } = useCleanup();
const DAY = 86400_000;

interface ClientCredentials {
  key?: string;
  cert?: string;
}

let ca: ConnectorCA;
let other: ConnectorCA;
beforeAll(async () => {
  ca = await ConnectorCA.loadOrCreate(await tempDir());
  other = await ConnectorCA.loadOrCreate(await tempDir());
});

async function connector(
  issuer: ConnectorCA,
  id: string,
  opts: { now?: Date; validityMs?: number } = {},
): Promise<ClientCredentials> {
  const { keyPem, csrPem } = await createKeyAndCsr({ commonName: id });
  const { certPem } = await issuer.issueFromCsr(csrPem, { commonName: id, ...opts });
  return { key: keyPem, cert: certPem };
}

/** A tunnel-like listener: greets authorized peers by CN, records refusals. */
async function tunnelListener() {
  const server = await ca.issueServerCertificate({ hosts: ['127.0.0.1', 'localhost'] });
  const accepted: Array<{ authorized: boolean; commonName: string }> = [];
  const tls = createServer(
    {
      cert: server.certPem,
      key: server.keyPem,
      ca: [ca.certPem],
      requestCert: true,
      rejectUnauthorized: true,
      minVersion: 'TLSv1.2',
    },
    (socket: TLSSocket) => {
      const commonName = socket.getPeerX509Certificate()?.subject.replace(/^CN=/, '') ?? '';
      accepted.push({ authorized: socket.authorized, commonName });
      socket.end(`welcome ${commonName}`);
    },
  );
  // Node completes the handshake, then drops an unauthorized peer; the reason is on the socket.
  const refused = once(tls, 'tlsClientError').then((args) => {
    const [error, socket] = args as [NodeJS.ErrnoException, TLSSocket];
    return { code: error.code, authorizationError: socket.authorizationError as unknown };
  });
  const port = await listen(tls);
  return { port, accepted, refused };
}

/** Connects and reads until the server closes. */
function dial(
  port: number,
  credentials: ClientCredentials,
  maxVersion: SecureVersion,
  servername?: string,
): Promise<{ authorized: boolean; protocol: string | null; received: string }> {
  return new Promise((resolve) => {
    const socket = connect({
      host: '127.0.0.1',
      port,
      servername,
      ca: [ca.certPem],
      maxVersion,
      ...credentials,
    });
    let received = '';
    let protocol: string | null = null;
    socket.on('secureConnect', () => (protocol = socket.getProtocol()));
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (received += chunk));
    // Refusals surface as ECONNRESET or a TLS alert, or (TLS 1.3) as a plain close.
    socket.on('error', () => {});
    socket.on('close', () => resolve({ authorized: socket.authorized, protocol, received }));
  });
}

describe.each(['TLSv1.2', 'TLSv1.3'] as const)('mutual TLS over %s', (version) => {
  it('accepts a connector certified by the CA, on the CA-issued server certificate', async () => {
    const listener = await tunnelListener();
    const result = await dial(listener.port, await connector(ca, 'conn-1'), version);
    expect(result).toEqual({ authorized: true, protocol: version, received: 'welcome conn-1' });
    expect(listener.accepted).toEqual([{ authorized: true, commonName: 'conn-1' }]);

    const byName = await dial(listener.port, await connector(ca, 'conn-2'), version, 'localhost');
    expect(byName.received).toBe('welcome conn-2');
  });

  it('refuses a connector certified by another CA', async () => {
    const listener = await tunnelListener();
    const result = await dial(listener.port, await connector(other, 'conn-1'), version);
    expect(result.received).toBe('');
    expect(await listener.refused).toMatchObject({
      authorizationError: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
    });
    expect(listener.accepted).toEqual([]);
  });

  it('refuses a client without a certificate', async () => {
    const listener = await tunnelListener();
    const result = await dial(listener.port, {}, version);
    expect(result.received).toBe('');
    expect(await listener.refused).toMatchObject({
      code: 'ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE',
    });
    expect(listener.accepted).toEqual([]);
  });

  it('refuses an expired connector certificate from the CA itself', async () => {
    const listener = await tunnelListener();
    const expired = await connector(ca, 'conn-1', {
      now: new Date(Date.now() - 10 * DAY),
      validityMs: DAY,
    });
    const result = await dial(listener.port, expired, version);
    expect(result.received).toBe('');
    expect(await listener.refused).toMatchObject({ authorizationError: 'CERT_HAS_EXPIRED' });
    expect(listener.accepted).toEqual([]);
  });
});
