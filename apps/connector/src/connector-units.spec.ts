import { describe, expect, it } from 'vitest';
import { classifyBackendError } from './errors.js';

describe('classifyBackendError', () => {
  const withCause = (code: string) =>
    Object.assign(new Error('fetch failed'), { cause: Object.assign(new Error(code), { code }) });
  it.each([
    ['ECONNREFUSED', 'BACKEND_UNREACHABLE', 502],
    ['ENOTFOUND', 'BACKEND_UNREACHABLE', 502],
    ['UND_ERR_HEADERS_TIMEOUT', 'BACKEND_TIMEOUT', 504],
    ['DEPTH_ZERO_SELF_SIGNED_CERT', 'BACKEND_TLS_INVALID', 502],
    ['ERR_TLS_CERT_ALTNAME_INVALID', 'BACKEND_TLS_INVALID', 502],
  ])('%s → %s', (code, expected, status) => {
    expect(classifyBackendError(withCause(code))).toMatchObject({ code: expected, status });
    expect(classifyBackendError(Object.assign(new Error('x'), { code }))).toMatchObject({
      code: expected,
    });
  });
});

describe('undici, loaded by its dispatcher modules', () => {
  it('gives the very classes undici exports', async () => {
    const undici = await import('undici');
    const { Agent, proxyAgent } = await import('./undici.js');
    expect(Agent).toBe(undici.Agent);
    expect(proxyAgent()).toBe(undici.ProxyAgent);
  });
});
