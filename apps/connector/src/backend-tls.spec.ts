import { backendTlsId } from '@appproxy/tunnel';
import { describe, expect, it } from 'vitest';
import { BackendTlsCache } from './backend-tls.js';

describe('BackendTlsCache', () => {
  const material = { ca: 'CA', cert: 'CERT', key: 'KEY', serverName: 'pay.corp' };
  const id = backendTlsId(material);

  it('keeps material sent once and serves it by id', () => {
    const cache = new BackendTlsCache();
    expect(cache.options(true, { id })).toBeUndefined();
    const sent = cache.options(true, { id, material });
    expect(sent).toStrictEqual({
      rejectUnauthorized: true,
      ca: 'CA',
      cert: 'CERT',
      key: 'KEY',
      servername: 'pay.corp',
    });
    expect(cache.options(false, { id })).toStrictEqual({ ...sent, rejectUnauthorized: false });
    expect(cache.options(true, undefined)).toStrictEqual({ rejectUnauthorized: true });
  });

  it('evicts the oldest id past its bound', () => {
    const cache = new BackendTlsCache(1);
    const other = { serverName: 'other.corp' };
    cache.options(true, { id, material });
    cache.options(true, { id: backendTlsId(other), material: other });
    expect(cache.options(true, { id })).toBeUndefined();
    expect(cache.options(true, { id: backendTlsId(other) })).toMatchObject({
      servername: 'other.corp',
    });
  });
});
