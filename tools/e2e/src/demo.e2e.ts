import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ROOT, freePort } from './harness.js';

const dir = mkdtempSync(join(tmpdir(), 'appproxy-demo-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('npm run demo', () => {
  it('publishes the sample app through relay and connector and stops cleanly on Ctrl-C', async () => {
    const ports = { public: await freePort(), tunnel: await freePort(), admin: await freePort() };
    const demo = spawn(process.execPath, [join(ROOT, 'tools/demo/demo.mjs')], {
      env: {
        ...process.env,
        APPPROXY_DEMO_DIR: dir,
        APPPROXY_DEMO_PUBLIC_PORT: String(ports.public),
        APPPROXY_DEMO_TUNNEL_PORT: String(ports.tunnel),
        APPPROXY_DEMO_ADMIN_PORT: String(ports.admin),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    demo.stderr.on('data', (c: Buffer) => (err += c.toString()));
    const ready = await new Promise<{ url: string; ca: string }>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`demo not ready: ${out} ${err}`)), 60_000);
      demo.stdout.on('data', (c: Buffer) => {
        out += c.toString();
        const line = out.split('\n').find((l) => l.startsWith('{"demo":"ready"'));
        if (line) {
          clearTimeout(timer);
          resolve(JSON.parse(line));
        }
      });
    });
    expect(out).toContain('curl --cacert');
    const url = new URL(ready.url);
    const body = await new Promise<string>((resolve, reject) => {
      const req = request(
        {
          host: '127.0.0.1',
          port: url.port,
          servername: url.hostname,
          headers: { host: url.host },
          ca: readFileSync(ready.ca),
          path: '/',
        },
        (res) => {
          let text = '';
          res.on('data', (c: Buffer) => (text += c.toString()));
          res.on('end', () =>
            res.statusCode === 200 ? resolve(text) : reject(new Error(`status ${res.statusCode}`)),
          );
        },
      );
      req.on('error', reject);
      req.end();
    });
    expect(body).toContain('Contoso');
    demo.kill('SIGINT');
    const [code] = await once(demo, 'exit');
    expect(code).toBe(0);
    expect(out).toContain('Stopping demo');
  });
});
