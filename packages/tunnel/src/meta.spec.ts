import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import { describe, expect, it } from 'vitest';
import {
  CONNECTOR_ERROR_CODES,
  META,
  decodeRequestMeta,
  encodeRequestMeta,
  backendTlsId,
  isConnectorErrorCode,
  type RequestMeta,
} from './index.js';

const full: RequestMeta = {
  target: new URL('https://wiki.corp.local:8443'),
  requestId: 'r-1',
  app: 'Wiki',
  timeoutMs: 180_000,
  verifyTls: false,
  backendProxy: 'http://proxy.corp:3128',
  keepAliveMs: 4000,
  identity: { sub: 'u1', issuer: 'https://idp', upn: 'alice@corp', groups: ['Finance'] },
  upgrade: 'websocket',
  affinity: 'Yk2c1dYQ9fN0m2hV3a8QxA',
  kerberos: { spn: 'HTTP/wiki.corp.local', user: 'zoë@corp.local' },
};

/** What the connector receives: the relay's headers as HTTP/2 delivers them. */
const wire = (h: OutgoingHttpHeaders) => h as IncomingHttpHeaders;

describe('request metadata', () => {
  it('round-trips every field, and the minimal set', () => {
    expect(decodeRequestMeta(wire(encodeRequestMeta(full, {})))).toEqual(full);
    const minimal: RequestMeta = {
      target: new URL('http://10.0.0.5'),
      requestId: 'r-2',
      app: 'Old',
      timeoutMs: 85_000,
      verifyTls: true,
    };
    const headers = encodeRequestMeta(minimal, { ':path': '/' });
    expect(Object.keys(headers).sort()).toEqual(
      [':path', META.target, META.requestId, META.app, META.timeout, META.tlsVerify].sort(),
    );
    expect(decodeRequestMeta(wire(headers))).toEqual(minimal);
  });

  it.each([
    ['no target', { [META.target]: undefined }, META.target],
    ['a target that is no URL', { [META.target]: 'wiki' }, META.target],
    ['a target of another scheme', { [META.target]: 'file:///etc' }, META.target],
    ['no timeout', { [META.timeout]: undefined }, META.timeout],
    ['a timeout that is no number', { [META.timeout]: '5s' }, META.timeout],
    ['a zero timeout', { [META.timeout]: '0' }, META.timeout],
    ['a keep-alive that is no number', { [META.backendKeepAlive]: '4s' }, META.backendKeepAlive],
    ['an identity that is no base64url JSON', { [META.identity]: '%%%' }, META.identity],
    ['an affinity id that is too short', { [META.affinity]: 'abc' }, META.affinity],
    ['an affinity id with other characters', { [META.affinity]: 'a b c d e f g h' }, META.affinity],
    ['a Kerberos SPN without the user', { [META.ssoUser]: undefined }, META.ssoUser],
    ['a Kerberos user that is no percent-encoding', { [META.ssoUser]: '%E0%A4%A' }, META.ssoUser],
    [
      'an identity without sub',
      { [META.identity]: Buffer.from('{"issuer":"x"}').toString('base64url') },
      META.identity,
    ],
  ])('refuses %s with APPPROXY_TUNNEL_META_INVALID naming the header', (_what, change, name) => {
    const headers = { ...encodeRequestMeta(full, {}), ...change };
    expect(() => decodeRequestMeta(wire(headers))).toThrow(
      expect.objectContaining({
        code: 'APPPROXY_TUNNEL_META_INVALID',
        message: expect.stringContaining(name) as string,
      }),
    );
  });

  it('knows the connector error codes, and nothing else', () => {
    for (const code of CONNECTOR_ERROR_CODES) expect(isConnectorErrorCode(code)).toBe(true);
    expect(isConnectorErrorCode('INTERNAL_ERROR')).toBe(false);
    expect(isConnectorErrorCode(undefined)).toBe(false);
  });
});

describe('backend TLS metadata', () => {
  const material = { ca: 'CA PEM', cert: 'CERT PEM', key: 'KEY PEM', serverName: 'pay.corp' };
  const base = {
    target: 'https://pay.corp:8443',
    requestId: 'r',
    app: 'Pay',
    timeoutMs: 1000,
    verifyTls: true,
  };

  it('round-trips the id with the material, and the id alone', () => {
    const id = backendTlsId(material);
    const withMaterial = decodeRequestMeta(
      wire(encodeRequestMeta({ ...base, backendTls: { id, material } }, {})),
    );
    expect(withMaterial.backendTls).toStrictEqual({ id, material });
    const idOnly = decodeRequestMeta(wire(encodeRequestMeta({ ...base, backendTls: { id } }, {})));
    expect(idOnly.backendTls).toStrictEqual({ id });
  });

  it('refuses material that does not hash to its id', () => {
    const h = encodeRequestMeta(
      { ...base, backendTls: { id: backendTlsId({ ca: 'other' }), material } },
      {},
    );
    expect(() => decodeRequestMeta(wire(h))).toThrow(/appproxy-backend-tls: does not match its id/);
    h[META.backendTlsId] = 'short';
    expect(() => decodeRequestMeta(wire(h))).toThrow(/appproxy-backend-tls-id/);
  });
});
