import { X509Certificate, createPrivateKey, createPublicKey, webcrypto } from 'node:crypto';
import { existsSync, readFileSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { useCleanup } from './__fixtures__/cleanup.js';
import { ConnectorCA, PkiError, createKeyAndCsr } from './index.js';
import { x509 } from './internal/x509.js';

const { tempDir } = useCleanup();
const DAY = 86400_000;
const CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';
const SERVER_AUTH = '1.3.6.1.5.5.7.3.1';

const newCa = async () => ConnectorCA.loadOrCreate(await tempDir());
const der = (pem: string) =>
  Buffer.from(pem.replace(/-----[A-Z ]+-----/g, '').replace(/\s+/g, ''), 'base64');
const pem = (label: string, bytes: Buffer) =>
  `-----BEGIN ${label}-----\n${bytes.toString('base64')}\n-----END ${label}-----\n`;
const spki = (key: { export(o: { type: 'spki'; format: 'der' }): Buffer }) =>
  key.export({ type: 'spki', format: 'der' });

describe('ConnectorCA.issueFromCsr', () => {
  it('issues a client certificate for the CSR key, named by the CA, chained to it', async () => {
    const ca = await newCa();
    const { keyPem, csrPem } = await createKeyAndCsr({ commonName: 'laptop-7' });
    const now = new Date(Math.floor(Date.now() / 1000) * 1000);
    const issued = await ca.issueFromCsr(csrPem, {
      commonName: 'conn-42',
      validityMs: 3 * DAY,
      now,
    });

    const cert = new X509Certificate(issued.certPem);
    const caCert = new X509Certificate(ca.certPem);
    expect(cert.checkIssued(caCert)).toBe(true);
    expect(cert.verify(caCert.publicKey)).toBe(true);
    expect(spki(cert.publicKey).equals(spki(createPublicKey(keyPem)))).toBe(true);
    expect(cert.subject).toBe('CN=conn-42'); // not the CSR's 'laptop-7'
    expect(cert.subjectAltName).toBe('URI:urn:appproxy:connector:conn-42');
    expect(cert.keyUsage).toEqual([CLIENT_AUTH]); // Node lists the *extended* key usage here
    expect(cert.ca).toBe(false);
    const parsed = new x509.X509Certificate(issued.certPem);
    const keyUsage = parsed.getExtension(x509.KeyUsagesExtension)!;
    expect(keyUsage.usages).toBe(x509.KeyUsageFlags.digitalSignature);
    expect(keyUsage.critical).toBe(true);

    expect(cert.validFromDate.getTime()).toBe(now.getTime() - 5 * 60_000);
    expect(cert.validToDate.getTime()).toBe(now.getTime() + 3 * DAY);
    expect(issued).toMatchObject({
      commonName: 'conn-42',
      notBefore: cert.validFromDate,
      notAfter: cert.validToDate,
      serialNumber: cert.serialNumber.toLowerCase(),
      fingerprint: cert.fingerprint256.replaceAll(':', '').toLowerCase(),
    });
  });

  it('defaults to 365 days and draws a fresh positive 16-byte serial each time', async () => {
    const ca = await newCa();
    const { csrPem } = await createKeyAndCsr({ commonName: 'c' });
    const a = await ca.issueFromCsr(csrPem, { commonName: 'c' });
    const b = await ca.issueFromCsr(csrPem, { commonName: 'c' });
    expect(a.notAfter.getTime() - a.notBefore.getTime()).toBe(365 * DAY + 5 * 60_000);
    expect(Math.abs(a.notBefore.getTime() - (Date.now() - 5 * 60_000))).toBeLessThan(5_000);
    expect(a.serialNumber).toMatch(/^[4-7][0-9a-f]{31}$/);
    expect(b.serialNumber).not.toBe(a.serialNumber);
  });

  it('refuses a CSR whose content or signature was altered, and garbage', async () => {
    const ca = await newCa();
    const { csrPem } = await createKeyAndCsr({ commonName: 'laptop' });
    const renamed = der(csrPem);
    const at = renamed.indexOf('laptop');
    renamed.write('laptoq', at);
    const resigned = der(csrPem);
    resigned[resigned.length - 1]! ^= 0x01;

    for (const bad of [
      pem('CERTIFICATE REQUEST', renamed),
      pem('CERTIFICATE REQUEST', resigned),
      'garbage',
      '',
      ca.certPem, // a certificate is not a request
      undefined as unknown as string, // e.g. a JSON body without `csr`
    ]) {
      const err = await ca.issueFromCsr(bad, { commonName: 'x' }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(PkiError);
      expect(err).toMatchObject({ code: 'APPPROXY_PKI_CSR_INVALID' });
    }
  });

  it('refuses a well-signed CSR for a weak key', async () => {
    const ca = await newCa();
    const alg = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };
    const keys = (await webcrypto.subtle.generateKey(
      { ...alg, modulusLength: 1024, publicExponent: new Uint8Array([1, 0, 1]) },
      true,
      ['sign', 'verify'],
    )) as webcrypto.CryptoKeyPair;
    const csr = await x509.Pkcs10CertificateRequestGenerator.create({
      name: 'CN=weak',
      keys: keys as unknown as Parameters<
        typeof x509.Pkcs10CertificateRequestGenerator.create
      >[0]['keys'],
      signingAlgorithm: alg,
    });
    await expect(
      ca.issueFromCsr(csr.toString('pem'), { commonName: 'weak' }),
    ).rejects.toMatchObject({ code: 'APPPROXY_PKI_CSR_INVALID' });
  });

  it('refuses connector names that do not fit a CN or a URN', async () => {
    const ca = await newCa();
    const { csrPem } = await createKeyAndCsr({ commonName: 'c' });
    for (const commonName of ['', 'a b', 'x/y', '-x', 'é', 'c'.repeat(65)]) {
      await expect(ca.issueFromCsr(csrPem, { commonName })).rejects.toMatchObject({
        code: 'APPPROXY_PKI_NAME_INVALID',
      });
    }
    await expect(
      ca.issueFromCsr(csrPem, { commonName: '0f8fad5b-d9cb-469f-a165-70867728950e' }),
    ).resolves.toMatchObject({ commonName: '0f8fad5b-d9cb-469f-a165-70867728950e' });
  });
});

describe('ConnectorCA.issueServerCertificate', () => {
  it('names hosts as DNS and IP SANs, for serverAuth, with a new PKCS#8 P-256 key', async () => {
    const ca = await newCa();
    const issued = await ca.issueServerCertificate({
      hosts: ['relay.example.com', '127.0.0.1', '::1', '*.tunnel.example.com'],
      validityMs: 7 * DAY,
    });
    const cert = new X509Certificate(issued.certPem);
    expect(cert.checkIssued(new X509Certificate(ca.certPem))).toBe(true);
    expect(cert.checkHost('relay.example.com')).toBe('relay.example.com');
    expect(cert.checkHost('eu.tunnel.example.com')).toBeDefined();
    expect(cert.checkIP('127.0.0.1')).toBe('127.0.0.1');
    expect(cert.checkIP('::1')).toBe('::1');
    expect(cert.checkHost('127.0.0.1')).toBeUndefined(); // an IP SAN, not a DNS one
    expect(cert.keyUsage).toEqual([SERVER_AUTH]);
    expect(issued.commonName).toBe('relay.example.com');
    expect(issued.notAfter.getTime() - issued.notBefore.getTime()).toBe(7 * DAY + 5 * 60_000);
    expect(issued.keyPem).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
    const key = createPrivateKey(issued.keyPem);
    expect(key.asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
    expect(spki(createPublicKey(key)).equals(spki(cert.publicKey))).toBe(true);
  });

  it('refuses an empty or malformed host list', async () => {
    const ca = await newCa();
    for (const hosts of [[], ['bad host'], ['localhost', 'foo*.example.com']]) {
      await expect(ca.issueServerCertificate({ hosts })).rejects.toMatchObject({
        code: 'APPPROXY_PKI_NAME_INVALID',
      });
    }
  });
});

describe('ConnectorCA.verify', () => {
  it('accepts its own certificate within the window, bounds included', async () => {
    const ca = await newCa();
    const { csrPem } = await createKeyAndCsr({ commonName: 'c' });
    const good = await ca.issueFromCsr(csrPem, { commonName: 'conn-1', validityMs: DAY });
    expect(ca.verify(good.certPem)).toEqual({
      ok: true,
      commonName: 'conn-1',
      serialNumber: good.serialNumber,
      notAfter: good.notAfter,
      fingerprint: good.fingerprint,
    });
    expect(ca.verify(good.certPem, { now: good.notBefore }).ok).toBe(true);
    expect(ca.verify(good.certPem, { now: good.notAfter }).ok).toBe(true);
    expect(
      ca.verify(good.certPem, { now: new Date(good.notAfter.getTime() + 1000) }),
    ).toMatchObject({ ok: false, code: 'APPPROXY_PKI_CERT_EXPIRED' });
  });

  it('tells untrusted, expired, not-yet-valid and invalid apart, without throwing', async () => {
    const ca = await newCa();
    const other = await newCa(); // same default CN: only the signature tells them apart
    const { csrPem } = await createKeyAndCsr({ commonName: 'c' });
    const foreign = await other.issueFromCsr(csrPem, { commonName: 'c' });
    const expired = await ca.issueFromCsr(csrPem, {
      commonName: 'c',
      now: new Date(Date.now() - 10 * DAY),
      validityMs: DAY,
    });
    const future = await ca.issueFromCsr(csrPem, {
      commonName: 'c',
      now: new Date(Date.now() + 10 * DAY),
    });
    const check = (certPem: string) => {
      const result = ca.verify(certPem);
      return result.ok ? 'ok' : result.code;
    };
    expect(check(foreign.certPem)).toBe('APPPROXY_PKI_CERT_UNTRUSTED');
    expect(check(other.certPem)).toBe('APPPROXY_PKI_CERT_UNTRUSTED');
    expect(check(expired.certPem)).toBe('APPPROXY_PKI_CERT_EXPIRED');
    expect(check(future.certPem)).toBe('APPPROXY_PKI_CERT_NOT_YET_VALID');
    expect(check('garbage')).toBe('APPPROXY_PKI_CERT_INVALID');
    expect(check(csrPem)).toBe('APPPROXY_PKI_CERT_INVALID');
    expect(check(undefined as unknown as string)).toBe('APPPROXY_PKI_CERT_INVALID');
    const tampered = der(expired.certPem);
    tampered[tampered.length - 1]! ^= 0x01;
    expect(check(pem('CERTIFICATE', tampered))).toBe('APPPROXY_PKI_CERT_UNTRUSTED');
  });
});

describe('ConnectorCA.loadOrCreate', () => {
  it('creates the CA once (dir 0700, key 0600) and loads the same one after', async () => {
    const dir = join(await tempDir(), 'state', 'relay');
    const a = await ConnectorCA.loadOrCreate(dir);
    const b = await ConnectorCA.loadOrCreate(dir);
    expect(b.fingerprint).toBe(a.fingerprint);
    expect(b.certPem).toBe(a.certPem);
    expect(a.fingerprint).toMatch(/^[0-9a-f]{64}$/);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    expect(statSync(join(dir, 'connector-ca-key.pem')).mode & 0o777).toBe(0o600);
    expect(readFileSync(join(dir, 'connector-ca-key.pem'), 'utf8')).toMatch(
      /^-----BEGIN PRIVATE KEY-----\n/,
    );
    const cert = new X509Certificate(readFileSync(join(dir, 'connector-ca.pem')));
    expect(cert.ca).toBe(true);
    expect(cert.subject).toBe('CN=AppProxy Connector CA');
    expect(cert.fingerprint256.replaceAll(':', '').toLowerCase()).toBe(a.fingerprint);
  });

  it('uses commonName when creating', async () => {
    const ca = await ConnectorCA.loadOrCreate(await tempDir(), { commonName: 'Contoso Relay CA' });
    expect(new X509Certificate(ca.certPem).subject).toBe('CN=Contoso Relay CA');
  });

  it('refuses a corrupt or foreign key, a missing half, and a non-CA certificate', async () => {
    const setUp = async () => {
      const dir = await tempDir();
      const ca = await ConnectorCA.loadOrCreate(dir);
      return {
        dir,
        ca,
        key: join(dir, 'connector-ca-key.pem'),
        cert: join(dir, 'connector-ca.pem'),
      };
    };
    const expectCorrupt = (dir: string) =>
      expect(ConnectorCA.loadOrCreate(dir)).rejects.toMatchObject({
        name: 'PkiError',
        code: 'APPPROXY_PKI_CA_CORRUPT',
      });

    const garbageKey = await setUp();
    const garbage = '-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n';
    writeFileSync(garbageKey.key, garbage);
    await expectCorrupt(garbageKey.dir);
    expect(readFileSync(garbageKey.key, 'utf8')).toBe(garbage); // never replaced

    const foreignKey = await setUp();
    const other = await setUp();
    writeFileSync(foreignKey.key, readFileSync(other.key));
    await expectCorrupt(foreignKey.dir);

    const keyOnly = await setUp();
    unlinkSync(keyOnly.cert);
    await expectCorrupt(keyOnly.dir);
    expect(existsSync(keyOnly.cert)).toBe(false);

    const certOnly = await setUp();
    unlinkSync(certOnly.key);
    await expectCorrupt(certOnly.dir);
    expect(existsSync(certOnly.key)).toBe(false);

    const garbageCert = await setUp();
    writeFileSync(garbageCert.cert, 'not a certificate');
    await expectCorrupt(garbageCert.dir);

    const leaf = await setUp();
    const server = await leaf.ca.issueServerCertificate({ hosts: ['localhost'] });
    writeFileSync(leaf.cert, server.certPem);
    writeFileSync(leaf.key, server.keyPem);
    await expectCorrupt(leaf.dir);
  });

  it('loads a CA made elsewhere (RSA PKCS#8, P-384 SEC1, own SKI) and chains to it', async () => {
    const external = async (
      algorithm: Record<string, unknown>,
      signingAlgorithm: Record<string, unknown>,
      keyFormat: 'pkcs8' | 'sec1',
    ) => {
      const keys = (await webcrypto.subtle.generateKey(algorithm as never, true, [
        'sign',
        'verify',
      ])) as webcrypto.CryptoKeyPair;
      const cert = await x509.X509CertificateGenerator.createSelfSigned({
        name: 'CN=Corporate Issuing CA, O=Contoso',
        keys: keys as never,
        signingAlgorithm: signingAlgorithm as never,
        notBefore: new Date(Date.now() - DAY),
        notAfter: new Date(Date.now() + 365 * DAY),
        extensions: [
          new x509.BasicConstraintsExtension(true, undefined, true),
          new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign, true),
          // Not the SHA-1 of the key: issued certificates must copy it into their AKI.
          new x509.SubjectKeyIdentifierExtension('0102030405060708'),
        ],
      });
      const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
      const keyPem = createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' }).export({
        type: keyFormat,
        format: 'pem',
      }) as string;
      const dir = await tempDir();
      writeFileSync(join(dir, 'connector-ca.pem'), cert.toString('pem'));
      writeFileSync(join(dir, 'connector-ca-key.pem'), keyPem, { mode: 0o600 });
      return dir;
    };
    const rsa = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };
    const dirs = [
      await external(
        { ...rsa, modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]) },
        rsa,
        'pkcs8',
      ),
      await external(
        { name: 'ECDSA', namedCurve: 'P-384' },
        { name: 'ECDSA', hash: 'SHA-384' },
        'sec1',
      ),
    ];
    for (const dir of dirs) {
      const ca = await ConnectorCA.loadOrCreate(dir);
      const { csrPem } = await createKeyAndCsr({ commonName: 'c' });
      const issued = await ca.issueFromCsr(csrPem, { commonName: 'conn-1' });
      const caCert = new X509Certificate(ca.certPem);
      const cert = new X509Certificate(issued.certPem);
      expect(cert.issuer).toBe(caCert.subject);
      expect(cert.checkIssued(caCert)).toBe(true);
      expect(cert.verify(caCert.publicKey)).toBe(true);
      expect(ca.verify(issued.certPem).ok).toBe(true);
    }
  });
});

describe('ConnectorCA.create and fromPem', () => {
  it('creates a CA in memory that fromPem rebuilds, signing the same way', async () => {
    const dir = await tempDir();
    const { ca, certPem, keyPem } = await ConnectorCA.create({ commonName: 'Fleet CA' });
    expect(new X509Certificate(certPem).ca).toBe(true);
    expect(new X509Certificate(certPem).subject).toBe('CN=Fleet CA');
    expect(keyPem).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
    // Nothing written anywhere.
    expect(existsSync(join(dir, 'connector-ca.pem'))).toBe(false);
    const again = await ConnectorCA.fromPem(certPem, keyPem);
    expect(again.fingerprint).toBe(ca.fingerprint);
    const { csrPem } = await createKeyAndCsr({ commonName: 'c' });
    const issued = await again.issueFromCsr(csrPem, { commonName: 'conn-1' });
    expect(ca.verify(issued.certPem)).toMatchObject({ ok: true, commonName: 'conn-1' });
  });

  it('refuses a key that is not the certificate’s, naming the source', async () => {
    const a = await ConnectorCA.create();
    const b = await ConnectorCA.create();
    await expect(
      ConnectorCA.fromPem(a.certPem, b.keyPem, 'connector-ca in the store'),
    ).rejects.toMatchObject({
      code: 'APPPROXY_PKI_CA_CORRUPT',
      message:
        'connector-ca in the store key is not the key of connector-ca in the store certificate',
    });
    await expect(ConnectorCA.fromPem('nope', a.keyPem)).rejects.toMatchObject({
      code: 'APPPROXY_PKI_CA_CORRUPT',
    });
  });
});
