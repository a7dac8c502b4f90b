import { META, backendTlsId, encodeRequestMeta } from '@appproxy/tunnel';
import { describe, expect, it, onTestFinished } from 'vitest';
import type { PublishedAppConfig } from '@appproxy/config';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { backendTlsAnswered, backendTlsByApp, backendTlsHeaders } from './backend-tls.js';

describe('backend TLS material per tunnel', () => {
  const material = { ca: 'CA PEM', serverName: 'pay.corp' };
  const headers = encodeRequestMeta(
    {
      target: 'https://pay.corp',
      requestId: 'r',
      app: 'Pay',
      timeoutMs: 1000,
      verifyTls: true,
      backendTls: { id: backendTlsId(material), material },
    },
    {},
  );

  it('sends the material until the connector answered a stream that carried it', () => {
    const tunnel = {};
    expect(backendTlsHeaders(tunnel, headers)[META.backendTls]).toBeDefined();
    backendTlsAnswered(tunnel, headers, undefined);
    const next = backendTlsHeaders(tunnel, headers);
    expect(next[META.backendTls]).toBeUndefined();
    expect(next[META.backendTlsId]).toBe(backendTlsId(material));
    // Another tunnel (another connector, or this one reconnected) gets it again.
    expect(backendTlsHeaders({}, headers)[META.backendTls]).toBeDefined();
  });

  it('sends it again after BACKEND_TLS_INVALID (the connector may have evicted it)', () => {
    const tunnel = {};
    backendTlsAnswered(tunnel, headers, undefined);
    backendTlsAnswered(tunnel, { ...headers, [META.backendTls]: undefined }, 'BACKEND_TLS_INVALID');
    expect(backendTlsHeaders(tunnel, headers)[META.backendTls]).toBeDefined();
  });
});

describe('backendTlsByApp', () => {
  it('reads the files, and refuses material too large for a tunnel header', () => {
    const dir = mkdtempSync(join(tmpdir(), 'appproxy-backend-tls-'));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    writeFileSync(join(dir, 'ca.pem'), 'CA PEM');
    writeFileSync(join(dir, 'big.pem'), 'x'.repeat(200_000));
    const app = (ca: string) =>
      ({
        name: 'Pay',
        backendTls: { ca: join(dir, ca), serverName: 'pay.corp' },
      }) as PublishedAppConfig;
    expect(backendTlsByApp([app('ca.pem')]).get('Pay')).toStrictEqual({
      id: backendTlsId({ ca: 'CA PEM', serverName: 'pay.corp' }),
      material: { ca: 'CA PEM', serverName: 'pay.corp' },
    });
    expect(() => backendTlsByApp([app('big.pem')])).toThrow(/more than 131072/);
  });
});
