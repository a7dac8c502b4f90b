import type { TLSSocket } from 'node:tls';

/** Who is on the other end of an mTLS connection, read from its verified certificate. */
export interface PeerIdentity {
  commonName: string;
  /** SHA-256 of the certificate's DER, lowercase hex without colons. */
  fingerprint: string;
  serialNumber: string;
  validTo: Date;
}

export function peerIdentity(socket: TLSSocket): PeerIdentity | undefined {
  const cert = socket.getPeerX509Certificate();
  if (!cert) return undefined;
  const cn = /(?:^|\n)CN=([^\n]*)/.exec(cert.subject)?.[1] ?? '';
  return {
    commonName: cn,
    fingerprint: cert.fingerprint256.replaceAll(':', '').toLowerCase(),
    serialNumber: cert.serialNumber.toLowerCase(),
    validTo: new Date(cert.validTo),
  };
}
