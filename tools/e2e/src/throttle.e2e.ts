import { startSampleApp } from '@appproxy/sample-app';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Stack, json, request, type StackApp } from './harness.js';

/**
 * Request rate limits through the real CLIs (issue 12 item 6): an app over its
 * `limits.requestsPerSecond` gets 429 THROTTLED with Retry-After while another app is
 * untouched; a per-user limit keys on the client address of a passthrough app; the
 * relay-wide `relay.limits.requestsPerSecond` covers all apps; a reload changes the limits.
 * Rates are far below what the test sends (one token per 10-100 s), so no refill can happen
 * during a run however slow the machine.
 */
let sample: Awaited<ReturnType<typeof startSampleApp>>;
let stack: Stack;

const SLOW = 'slow.apps.localhost';
const FAST = 'fast.apps.localhost';
const USERS = 'users.apps.localhost';
const get = (host: string, accept = 'application/json') =>
  request(stack, host, '/echo', {
    headers: { host: `${host}:${stack.ports.public}`, accept },
  });

async function throttledSeries(): Promise<Map<string, number>> {
  const text = await (await fetch(`http://127.0.0.1:${stack.ports.admin}/metrics`)).text();
  const out = new Map<string, number>();
  for (const line of text.split('\n'))
    if (line.startsWith('appproxy_requests_throttled_total{')) {
      const at = line.lastIndexOf(' ');
      out.set(line.slice(0, at), Number(line.slice(at + 1)));
    }
  return out;
}

let slow: StackApp;
let users: StackApp;

beforeAll(async () => {
  sample = await startSampleApp({ basePath: '/' });
  const internalUrl = `http://127.0.0.1:${sample.port}/`;
  slow = {
    name: 'Slow',
    internalUrl,
    externalUrl: `https://${SLOW}:{port}/`,
    extra: '    limits: { requestsPerSecond: 0.01, burst: 2 }\n',
  };
  users = {
    name: 'Users',
    internalUrl,
    externalUrl: `https://${USERS}:{port}/`,
    extra: '    limits: { perUserRequestsPerSecond: 0.01 }\n',
  };
  stack = new Stack({
    apps: [slow, { name: 'Fast', internalUrl, externalUrl: `https://${FAST}:{port}/` }, users],
  });
  await stack.start();
});

afterAll(async () => {
  await stack?.stop();
  await sample?.close();
});

describe('request rate limits', () => {
  it('an app over its limit gets 429 THROTTLED with Retry-After; another app does not', async () => {
    expect((await get(SLOW)).status).toBe(200);
    expect((await get(SLOW)).status).toBe(200);
    const refused = await get(SLOW);
    expect(refused.status).toBe(429);
    expect(json(refused).error).toMatchObject({
      code: 'THROTTLED',
      status: 429,
      app: 'Slow',
      reason: 'limit:app',
    });
    // One token per 100 s: whole seconds until the next one, never more than that.
    const retryAfter = Number(refused.headers['retry-after']);
    expect(Number.isInteger(retryAfter)).toBe(true);
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(100);
    // Browsers get the HTML page with the same code.
    const page = await get(SLOW, 'text/html');
    expect(page.status).toBe(429);
    expect(page.headers['x-appproxy-error']).toBe('THROTTLED');
    expect(page.headers['content-type']).toContain('text/html');
    expect(page.headers['retry-after']).toMatch(/^\d+$/);
    expect(page.body.toString()).toContain('THROTTLED');

    // The app next door is not limited.
    for (let i = 0; i < 20; i++) expect((await get(FAST)).status).toBe(200);

    const series = await throttledSeries();
    expect(series.get('appproxy_requests_throttled_total{app="Slow",scope="app"}')).toBe(2);
    expect([...series.keys()].some((k) => k.includes('app="Fast"'))).toBe(false);
  });

  it('per user: a passthrough app keys on the client address', async () => {
    expect((await get(USERS)).status).toBe(200);
    const refused = await get(USERS);
    expect(refused.status).toBe(429);
    expect(json(refused).error).toMatchObject({ code: 'THROTTLED', reason: 'limit:user' });
    expect(Number(refused.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    const series = await throttledSeries();
    expect(series.get('appproxy_requests_throttled_total{app="Users",scope="user"}')).toBe(1);
  });

  it('a reload changes the limits: the app freed, the relay-wide limit in force', async () => {
    expect((await get(SLOW)).status).toBe(429);
    slow.extra = '    limits: { requestsPerSecond: 1000 }\n';
    stack.configure({ relayExtra: '  limits: { requestsPerSecond: 0.01, burst: 5 }\n' });
    expect((await stack.reload()).msg).toBe('configuration reloaded');
    // Five requests across apps take the relay's five tokens; the sixth, to any app, is refused.
    for (const host of [SLOW, SLOW, FAST, FAST, USERS]) expect((await get(host)).status).toBe(200);
    const refused = await get(FAST);
    expect(refused.status).toBe(429);
    expect(json(refused).error).toMatchObject({ code: 'THROTTLED', reason: 'limit:relay' });
    expect((await get(SLOW)).status).toBe(429);

    // And the limits removed: nothing is throttled any more.
    stack.configure({ relayExtra: '' });
    slow.extra = '';
    expect((await stack.reload()).msg).toBe('configuration reloaded');
    for (let i = 0; i < 10; i++) expect((await get(SLOW)).status).toBe(200);
  });

  it('a bad limit is refused by a reload; the running limits keep serving', async () => {
    slow.extra = '    limits: { burst: 3 }\n';
    const answer = await stack.reload();
    expect(answer.msg).toBe(
      'configuration reload refused; the running configuration keeps serving',
    );
    expect(JSON.stringify(answer)).toContain('needs requestsPerSecond');
    expect((await get(SLOW)).status).toBe(200);
  });
});
