import { META, backendTlsId, encodeRequestMeta } from '@appproxy/tunnel';
import { describe, expect, it } from 'vitest';
import { backendTlsAnswered, backendTlsHeaders } from './backend-tls.js';

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
