import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, expect, it, vi } from 'vitest';
import { startFakeOp } from './__fixtures__/fake-op.js';
import { pathOf } from './__fixtures__/rp.js';

const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
const blocks = [...readme.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]!);
const dir = mkdtempSync(join(tmpdir(), 'appproxy-preauth-readme-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const ENV = ['OIDC_ISSUER', 'OIDC_CLIENT_ID', 'OIDC_CLIENT_SECRET', 'SESSION_SECRET', 'PORT'];
afterEach(() => {
  vi.restoreAllMocks();
  for (const name of ENV) delete process.env[name];
});

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as AddressInfo;
  await new Promise((r) => s.close(r));
  return port;
}

it('has the two examples', () => {
  expect(blocks).toHaveLength(2);
});

it('the server example signs a browser in, end to end, with a session too big for one cookie', async () => {
  const op = await startFakeOp();
  // 200 group ids make a session of several cookies: the example must split and join it.
  op.user.groups = ['Finance', ...Array.from({ length: 200 }, () => randomUUID())];
  const port = await freePort();
  Object.assign(process.env, {
    OIDC_ISSUER: op.issuer,
    OIDC_CLIENT_ID: op.clientId,
    OIDC_CLIENT_SECRET: op.clientSecret,
    SESSION_SECRET: 'readme-session-secret-0123456789abcdef',
    PORT: String(port),
  });
  writeFileSync(join(dir, 'server.ts'), blocks[0]!);
  const { server } = (await import(join(dir, 'server.ts'))) as { server: Server };
  try {
    if (!server.listening) await new Promise((r) => server.once('listening', r));
    const origin = `http://127.0.0.1:${port}`;
    const html = { accept: 'text/html' };

    const anonymous = await fetch(`${origin}/reports`, { headers: html });
    expect(anonymous.status).toBe(401);
    expect(await anonymous.text()).toContain('/.appproxy/signin?rd=%2Freports');
    const api = await fetch(`${origin}/reports`, { headers: { accept: 'application/json' } });
    expect(api.status).toBe(401);
    expect(await api.text()).toMatch(/^APPPROXY_PREAUTH_SIGN_IN_REQUIRED: /);

    const signIn = await fetch(`${origin}/.appproxy/signin?rd=%2Freports%23%2Fq3`, {
      headers: html,
      redirect: 'manual',
    });
    expect(signIn.status).toBe(302);
    const txn = signIn.headers.getSetCookie()[0]!.split(';')[0]!;
    const callback = await fetch(
      `${origin}${pathOf(op.authorize(signIn.headers.get('location')!))}`,
      {
        headers: { ...html, cookie: txn },
        redirect: 'manual',
      },
    );
    expect(callback.status).toBe(302);
    expect(callback.headers.get('location')).toBe('/reports#/q3');
    const sessionCookies = callback.headers
      .getSetCookie()
      .filter((c) => c.startsWith('appproxy_session'))
      .map((c) => c.split(';')[0]!);
    expect(sessionCookies[0]).toMatch(/^appproxy_session=chunks-[2-9]$/);
    const session = sessionCookies.reverse().join('; ');
    const page = await fetch(`${origin}/reports`, {
      headers: { ...html, cookie: `${session}; theme=dark` },
    });
    expect(page.status).toBe(200);
    expect(await page.text()).toBe('Hello alice (session); app cookies: theme');
  } finally {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  }
});

it('the building blocks example prints what it says', async () => {
  const log = vi.spyOn(console, 'log').mockImplementation(() => {});
  writeFileSync(join(dir, 'blocks.ts'), blocks[1]!);
  await import(join(dir, 'blocks.ts'));
  expect(log.mock.calls).toEqual([['/reports?y=2025#/q3'], ['/'], [false], [true]]);
});
