import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { downloadChunks, expectedDownloadSha256, startSampleApp } from './server.mjs';

let app;
beforeAll(async () => {
  app = await startSampleApp({ basePath: '/app' });
});
afterAll(() => app.close());

describe('sample app', () => {
  it('mounts under its base path; /admin stands outside it for traversal tests', async () => {
    expect(app.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/app\/$/);
    expect((await fetch(`${app.origin}/admin`)).status).toBe(200);
    expect(await (await fetch(`${app.origin}/admin`)).text()).toBe('ADMIN SECRET');
    expect((await fetch(`${app.origin}/other`)).status).toBe(404);
    expect((await fetch(`${app.url}echo`)).status).toBe(200);
    expect(app.requests.map((r) => r.rawUrl)).toEqual(['/admin', '/admin', '/other', '/app/echo']);
  });

  it('download bytes are deterministic and match expectedDownloadSha256', async () => {
    const res = await fetch(`${app.url}download?mib=3`);
    expect(res.headers.get('content-length')).toBe(String(3 * 1024 * 1024));
    const body = Buffer.from(await res.arrayBuffer());
    expect(createHash('sha256').update(body).digest('hex')).toBe(expectedDownloadSha256(3));
    expect([...downloadChunks(2)]).toHaveLength(2);
    expect(expectedDownloadSha256(1)).not.toBe(expectedDownloadSha256(2));
  });

  it('upload answers the SHA-256 of what it received', async () => {
    const body = Buffer.alloc(300_000, 7);
    const res = await fetch(`${app.url}upload`, { method: 'POST', body });
    expect(await res.json()).toEqual({
      bytes: body.length,
      sha256: createHash('sha256').update(body).digest('hex'),
    });
  });

  it('home page has hard-coded internal links and two cookies', async () => {
    const res = await fetch(app.url);
    const html = await res.text();
    expect(html).toContain(`href="${app.url}page2"`);
    expect(html).toContain('http://expenses/');
    expect(res.headers.getSetCookie()).toHaveLength(2);
  });

  it('form POST echoes fields; status endpoint answers the asked code', async () => {
    const res = await fetch(`${app.url}form`, {
      method: 'POST',
      body: new URLSearchParams({ a: '1', b: 'two' }),
    });
    expect(await res.json()).toEqual({ fields: { a: '1', b: 'two' } });
    expect((await fetch(`${app.url}status/418`)).status).toBe(418);
  });
});
