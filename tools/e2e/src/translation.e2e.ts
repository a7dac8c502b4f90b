import { startSampleApp } from '@appproxy/sample-app';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Stack, json, request } from './harness.js';

/**
 * Link translation through the real relay and connector: the sample intranet app (internal
 * `http://127.0.0.1:<port>/intranet/`) published as `https://portal.apps.localhost/hr/` —
 * another host and another path — with hard-coded internal links, redirects and cookies.
 */
type SampleApp = Awaited<ReturnType<typeof startSampleApp>>;
let sample: SampleApp;
let stack: Stack;
const PORTAL = 'portal.apps.localhost';
const RAW = 'raw.apps.localhost';

beforeAll(async () => {
  sample = await startSampleApp({ basePath: '/intranet/' });
  stack = await new Stack({
    apps: [
      {
        name: 'Intranet',
        internalUrl: `http://127.0.0.1:${sample.port}/intranet/`,
        externalUrl: `https://${PORTAL}:{port}/hr/`,
        extra: '    translateBody: true\n',
      },
      {
        // Published, never reached here: links to it must become its external URL.
        name: 'Expenses',
        internalUrl: 'http://expenses.corp.local/',
        externalUrl: 'https://expenses.apps.localhost/',
      },
      {
        name: 'Raw',
        internalUrl: `http://127.0.0.1:${sample.port}/intranet/`,
        externalUrl: `https://${RAW}:{port}/`,
        extra: '    translateHeaders: false\n',
      },
    ],
  }).start();
});

afterAll(async () => {
  await stack?.stop();
  await sample?.close();
});

const host = (h: string) => `${h}:${stack.ports.public}`;
const ext = () => `https://${host(PORTAL)}/hr/`;

describe('link translation through the relay', () => {
  it('redirects: an internal Location becomes the external URL', async () => {
    const res = await request(stack, PORTAL, '/hr/redirect', { headers: { host: host(PORTAL) } });
    expect(res.status).toBe(302);
    expect(res.headers.location).toBe(`${ext()}page2`);
  });

  it('pages: internal links, form actions and links to other published apps become external', async () => {
    const res = await request(stack, PORTAL, '/hr/', { headers: { host: host(PORTAL) } });
    expect(res.status).toBe(200);
    const html = res.body.toString();
    expect(html).toContain(`<a href="${ext()}page2">Page 2</a>`);
    expect(html).toContain(`<link rel="stylesheet" href="${ext()}style.css">`);
    expect(html).toContain(`<img src="${ext()}logo.png"`);
    expect(html).toContain(`<form method="post" action="${ext()}form">`);
    // The NetBIOS short name of a published app's internal host.
    expect(html).toContain('<a href="https://expenses.apps.localhost/">');
    expect(html).not.toContain(`127.0.0.1:${sample.port}`);
    // The body changed length: no stale Content-Length.
    expect(res.headers['content-length']).toBeUndefined();
  });

  it('CSS: url(...) is translated', async () => {
    const res = await request(stack, PORTAL, '/hr/style.css', { headers: { host: host(PORTAL) } });
    expect(res.body.toString()).toContain(`url(${ext()}logo.png)`);
  });

  it('cookies: the backend’s Path becomes the external path, Secure is added', async () => {
    const res = await request(stack, PORTAL, '/hr/', { headers: { host: host(PORTAL) } });
    const cookies = res.headers['set-cookie'] ?? [];
    const session = cookies.find((c) => c.startsWith('sample_session='))!;
    expect(session).toMatch(/; Path=\/hr\/(;|$)/);
    expect(session).toMatch(/; Secure/);
    expect(session).toMatch(/; HttpOnly/);
    // Non-HTML bodies and untranslated parts pass byte for byte.
    const png = await request(stack, PORTAL, '/hr/logo.png', { headers: { host: host(PORTAL) } });
    expect(png.status).toBe(200);
    expect(png.body.subarray(0, 8).toString('latin1')).toBe('\x89PNG\r\n\x1a\n');
  });

  it('requests: Host, Origin and Referer reach the backend in their internal form', async () => {
    const res = await request(stack, PORTAL, '/hr/headers', {
      headers: {
        host: host(PORTAL),
        origin: `https://${host(PORTAL)}`,
        referer: `${ext()}page2?x=1`,
      },
    });
    const seen = json(res).headers as Record<string, string>;
    expect(seen.host).toBe(`127.0.0.1:${sample.port}`);
    expect(seen.origin).toBe(`http://127.0.0.1:${sample.port}`);
    expect(seen.referer).toBe(`http://127.0.0.1:${sample.port}/intranet/page2?x=1`);
  });

  it('translateHeaders: false keeps the external Host and leaves links alone', async () => {
    const res = await request(stack, RAW, '/headers', { headers: { host: host(RAW) } });
    expect((json(res).headers as Record<string, string>).host).toBe(host(RAW));
    const page = await request(stack, RAW, '/', { headers: { host: host(RAW) } });
    // The app built its links from the Host it saw: the external one.
    expect(page.body.toString()).toContain(`href="http://${host(RAW)}/intranet/page2"`);
  });
});
