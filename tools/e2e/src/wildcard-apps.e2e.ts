import { startSampleApp } from '@appproxy/sample-app';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  RELAY_BIN,
  Stack,
  json,
  request,
  runCli,
  type ClientResponse,
  type StackApp,
} from './harness.js';

/**
 * Wildcard apps through the real CLIs: `https://*.apps.localhost/` → `http://*.localhost:<port>/`.
 * Two concrete hosts reach two internal hosts (`alpha.localhost` on 127.0.0.1, `beta.localhost`
 * on 127.0.0.2: two sample apps on the same port), an exact app beside the wildcard wins,
 * Location and Referer are translated for each host, and what cannot work is refused.
 *
 * The connector resolves `*.localhost` to loopback through `localhost-names.mjs` (glibc with a
 * plain /etc/hosts does not).
 */
type SampleApp = Awaited<ReturnType<typeof startSampleApp>>;
let alpha: SampleApp;
let beta: SampleApp;
let exact: SampleApp;
let stack: Stack;

const PRELOAD = join(import.meta.dirname, 'localhost-names.mjs');
const env = {
  NODE_OPTIONS: `--import=${PRELOAD}`,
  APPPROXY_E2E_LOCALHOST_NAMES: 'beta=127.0.0.2',
};
const get = (host: string, path: string, headers: Record<string, string> = {}) =>
  request(stack, host, path, {
    headers: { host: `${host}:${stack.ports.public}`, accept: 'application/json', ...headers },
  });

let wildcardApp: StackApp;
let exactApp: StackApp;

beforeAll(async () => {
  alpha = await startSampleApp({ host: '127.0.0.1' });
  // The same port on another loopback address: a second internal host.
  beta = await startSampleApp({ host: '127.0.0.2', port: alpha.port });
  exact = await startSampleApp({ host: '127.0.0.1' });
  wildcardApp = {
    name: 'Sites',
    internalUrl: `http://*.localhost:${alpha.port}/`,
    externalUrl: 'https://*.apps.localhost:{port}/',
  };
  exactApp = {
    name: 'Exact',
    internalUrl: `http://127.0.0.1:${exact.port}/`,
    externalUrl: 'https://exact.apps.localhost:{port}/',
  };
  stack = new Stack({ apps: [exactApp], env });
  await stack.start();
});

afterAll(async () => {
  await stack?.stop();
  await Promise.all([alpha?.close(), beta?.close(), exact?.close()]);
});

const echoed = (res: ClientResponse) =>
  json(res) as { headers: Record<string, string>; url: string };

describe('wildcard apps', () => {
  it('a reload publishes the wildcard app: each host reaches its own internal host', async () => {
    // Before: no app for the wildcard's hosts.
    expect((await get('alpha.apps.localhost', '/echo')).status).toBe(404);
    stack.configure({ apps: [wildcardApp, exactApp] });
    expect((await stack.reload()).msg).toBe('configuration reloaded');

    const a = await get('alpha.apps.localhost', '/echo?x=1');
    expect(a.status).toBe(200);
    expect(echoed(a).headers.host).toBe(`alpha.localhost:${alpha.port}`);
    expect(echoed(a).headers['x-forwarded-host']).toBe(
      `alpha.apps.localhost:${stack.ports.public}`,
    );
    expect(echoed(a).url).toBe('/echo?x=1');
    const b = await get('beta.apps.localhost', '/echo');
    expect(b.status).toBe(200);
    expect(echoed(b).headers.host).toBe(`beta.localhost:${alpha.port}`);
    // Two internal hosts: each sample app saw only its own host's request.
    expect(alpha.requests.map((r) => r.headers.host)).toContain(`alpha.localhost:${alpha.port}`);
    expect(alpha.requests.map((r) => r.headers.host)).not.toContain(`beta.localhost:${alpha.port}`);
    expect(beta.requests.map((r) => r.headers.host)).toEqual([`beta.localhost:${alpha.port}`]);
  });

  it('an exact app beside the wildcard wins for its host', async () => {
    const res = await get('exact.apps.localhost', '/echo');
    expect(res.status).toBe(200);
    expect(echoed(res).headers.host).toBe(`127.0.0.1:${exact.port}`);
  });

  it('translates Location and Referer for each concrete host', async () => {
    for (const label of ['alpha', 'beta']) {
      const res = await get(`${label}.apps.localhost`, '/redirect');
      expect(res.status, label).toBe(302);
      expect(res.headers.location, label).toBe(
        `https://${label}.apps.localhost:${stack.ports.public}/page2`,
      );
      const referred = await get(`${label}.apps.localhost`, '/echo', {
        referer: `https://${label}.apps.localhost:${stack.ports.public}/from?q=1`,
      });
      expect(echoed(referred).headers.referer, label).toBe(
        `http://${label}.localhost:${alpha.port}/from?q=1`,
      );
    }
  });

  it('covers one label only: deeper names are not found', async () => {
    const res = await request(stack, 'a.b.apps.localhost', '/echo', {
      headers: { host: `a.b.apps.localhost:${stack.ports.public}`, accept: 'application/json' },
      extra: { rejectUnauthorized: false },
    });
    expect(res.status).toBe(404);
    expect((json(res) as { error: { code: string } }).error.code).toBe('APP_NOT_FOUND');
  });

  it('config check refuses what could never match, naming the setting', async () => {
    const file = join(stack.dir, 'wrong.yaml');
    writeFileSync(
      file,
      `relay:
  listen: 127.0.0.1:0
  tunnelListen: 127.0.0.1:0
  certificates: [{ cert: ${join(stack.tlsDir, 'site.pem')}, key: ${join(stack.tlsDir, 'site-key.pem')} }]
apps:
  - name: Half
    internalUrl: http://app*.localhost/
    externalUrl: https://*.apps.localhost/
    preAuthentication: passthrough
  - name: One-sided
    internalUrl: http://*.localhost/
    externalUrl: https://one.apps.localhost/
    preAuthentication: passthrough
`,
    );
    const res = await runCli(RELAY_BIN, ['config', 'check', '--config', file, '--offline']);
    expect(res.code).toBe(2);
    expect(res.stderr).toContain(
      'apps[0].internalUrl: * must be the whole first label of the host, as in http://*.corp.local/',
    );
    expect(res.stderr).toContain(
      'apps[1].internalUrl: a wildcard internalUrl needs a wildcard externalUrl (https://*.apps.example.com/): no external host says which label to use',
    );
  });
});
