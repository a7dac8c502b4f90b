// @peculiar/x509 (via tsyringe) needs the Reflect metadata polyfill loaded first.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { createPrivateKey, createPublicKey, webcrypto, type KeyObject } from 'node:crypto';

export type CryptoKey = webcrypto.CryptoKey;
export type CryptoKeyPair = webcrypto.CryptoKeyPair;
export type SigningAlgorithm = { name: string; hash?: string };

// @peculiar/x509 works on WebCrypto; Node's is complete.
x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

export { x509 };
const subtle = webcrypto.subtle;

/** ECDSA P-256 with SHA-256: small keys, fast handshakes, accepted everywhere. */
export const P256 = { name: 'ECDSA', namedCurve: 'P-256' } as const;
export const P256_SIGN = { name: 'ECDSA', hash: 'SHA-256' } as const;

/** A new extractable P-256 key pair (every key this package creates). */
export async function generateP256(): Promise<CryptoKeyPair> {
  return (await subtle.generateKey(P256, true, ['sign', 'verify'])) as CryptoKeyPair;
}

/** PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`), as Node's `tls` and OpenSSL read it. */
export async function exportKeyPem(key: CryptoKey): Promise<string> {
  const der = Buffer.from(await subtle.exportKey('pkcs8', key));
  const b64 = der.toString('base64').replace(/.{64}/g, '$&\n').replace(/\n$/, '');
  return `-----BEGIN PRIVATE KEY-----\n${b64}\n-----END PRIVATE KEY-----\n`;
}

/** A certificate as PEM with a trailing newline, so that PEMs concatenate into a chain. */
export function certToPem(cert: x509.X509Certificate): string {
  return cert.toString('pem') + '\n';
}

/** Curves we sign with, by OpenSSL name, each with the hash of matching strength. */
const EC_CURVES: Record<string, { namedCurve: string; hash: string }> = {
  prime256v1: { namedCurve: 'P-256', hash: 'SHA-256' },
  secp384r1: { namedCurve: 'P-384', hash: 'SHA-384' },
  secp521r1: { namedCurve: 'P-521', hash: 'SHA-512' },
};

/** A CA's private key, ready to sign, and the public key it must match. */
export interface CaSigner {
  key: CryptoKey;
  algorithm: SigningAlgorithm;
  /** DER SubjectPublicKeyInfo derived from the private key. */
  publicKeyDer: Buffer;
}

/**
 * Imports a CA key from PEM. Our CAs are P-256, but a CA made elsewhere (OpenSSL's SEC1
 * `EC PRIVATE KEY`, P-384, RSA) loads too, so operators can bring their own.
 */
export async function importCaKey(pem: string): Promise<CaSigner> {
  const keyObject = createPrivateKey(pem);
  const { importAlgorithm, algorithm } = signingParameters(keyObject);
  const key = await subtle.importKey(
    'pkcs8',
    keyObject.export({ type: 'pkcs8', format: 'der' }),
    importAlgorithm,
    false,
    ['sign'],
  );
  const publicKeyDer = createPublicKey(keyObject).export({ type: 'spki', format: 'der' });
  return { key, algorithm, publicKeyDer };
}

function signingParameters(key: KeyObject): {
  importAlgorithm: { name: string; namedCurve?: string; hash?: string };
  algorithm: SigningAlgorithm;
} {
  const type = key.asymmetricKeyType;
  if (type === 'ec') {
    const curve = EC_CURVES[key.asymmetricKeyDetails?.namedCurve ?? ''];
    if (curve) {
      return {
        importAlgorithm: { name: 'ECDSA', namedCurve: curve.namedCurve },
        algorithm: { name: 'ECDSA', hash: curve.hash },
      };
    }
  } else if (type === 'rsa') {
    return {
      importAlgorithm: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' },
      algorithm: { name: 'RSASSA-PKCS1-v1_5' },
    };
  }
  const detail = key.asymmetricKeyDetails?.namedCurve ?? '';
  throw new Error(`unsupported CA key type ${type} ${detail}`.trim());
}

/**
 * Whether a subject's public key is one we are willing to certify: the curves TLS
 * stacks accept, Ed25519, and RSA of at least 2048 bits.
 */
export function isAcceptablePublicKey(spkiDer: ArrayBuffer): boolean {
  const key = createPublicKey({ key: Buffer.from(spkiDer), format: 'der', type: 'spki' });
  const details = key.asymmetricKeyDetails ?? {};
  switch (key.asymmetricKeyType) {
    case 'ec':
      return (details.namedCurve ?? '') in EC_CURVES;
    case 'rsa':
      return (details.modulusLength ?? 0) >= 2048;
    case 'ed25519':
      return true;
    default:
      return false;
  }
}

/**
 * A positive 16-byte serial (RFC 5280 §4.1.2.2) with the first byte in 0x40–0x7f: never a
 * sign byte or leading zero, so its hex is always 32 digits, the same whether read here, by
 * Node's `X509Certificate` or by OpenSSL; 126 random bits remain.
 */
export function randomSerial(): string {
  const bytes = webcrypto.getRandomValues(new Uint8Array(16));
  bytes[0] = (bytes[0]! & 0x3f) | 0x40;
  return Buffer.from(bytes).toString('hex');
}
