import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CHROMIUM, launchChromium, newContext } from './browser.js';
import { ROOT, freePort } from './harness.js';

const dir = mkdtempSync(join(tmpdir(), 'appproxy-demo-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('npm run demo', () => {
  it('publishes the sample app behind sign-in through relay and connector; Ctrl-C stops it', async () => {
    const ports = {
      public: await freePort(),
      tunnel: await freePort(),
      admin: await freePort(),
      idp: await freePort(),
    };
    const demo = spawn(process.execPath, [join(ROOT, 'tools/demo/demo.mjs')], {
      env: {
        ...process.env,
        APPPROXY_DEMO_DIR: dir,
        APPPROXY_DEMO_PUBLIC_PORT: String(ports.public),
        APPPROXY_DEMO_TUNNEL_PORT: String(ports.tunnel),
        APPPROXY_DEMO_ADMIN_PORT: String(ports.admin),
        APPPROXY_DEMO_IDP_PORT: String(ports.idp),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    demo.stderr.on('data', (c: Buffer) => (err += c.toString()));
    const ready = await new Promise<{ url: string; ca: string; issuer: string }>(
      (resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`demo not ready: ${out} ${err}`)), 60_000);
        demo.stdout.on('data', (c: Buffer) => {
          out += c.toString();
          const line = out.split('\n').find((l) => l.startsWith('{"demo":"ready"'));
          if (line) {
            clearTimeout(timer);
            resolve(JSON.parse(line));
          }
        });
      },
    );
    expect(out).toContain('curl --cacert');
    expect(out).toContain('alice / alice-password');
    const url = new URL(ready.url);
    // An API client without a token: 401 with a stable code, not a redirect.
    const api = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = request(
        {
          host: '127.0.0.1',
          port: url.port,
          servername: url.hostname,
          headers: { host: url.host, accept: 'application/json' },
          ca: readFileSync(ready.ca),
          path: '/',
        },
        (res) => {
          let text = '';
          res.on('data', (c: Buffer) => (text += c.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
        },
      );
      req.on('error', reject);
      req.end();
    });
    expect(api.status).toBe(401);
    expect(JSON.parse(api.body).error.code).toBe('SIGN_IN_REQUIRED');
    // A person signs in with the printed test user and sees the intranet.
    if (CHROMIUM) {
      const browser = await launchChromium();
      try {
        const page = await (await newContext(browser)).newPage();
        await page.goto(ready.url);
        await page.waitForURL((u) => u.href.startsWith(ready.issuer), { timeout: 15_000 });
        await page.fill('#username', 'alice');
        await page.fill('#password', 'alice-password');
        await page.click('#sign-in');
        await page.waitForURL(ready.url, { timeout: 15_000 });
        expect(await page.textContent('h1')).toBe('Contoso Intranet');
      } finally {
        await browser.close();
      }
    }
    demo.kill('SIGINT');
    const [code] = await once(demo, 'exit');
    expect(code).toBe(0);
    expect(out).toContain('Stopping demo');
  });
});
