#!/usr/bin/env node
// `npm run demo`: publishes the sample intranet app through a relay and a connector on this
// machine, using the real CLIs exactly as ops would (token create → register → start), with
// sign-in at the development OpenID provider (tools/dev-idp). Ctrl-C stops everything cleanly.
import { createDevCertificates } from '@appproxy/pki';
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '../..');
const work = process.env.APPPROXY_DEMO_DIR ?? join(root, 'var/demo');
const ports = {
  public: Number(process.env.APPPROXY_DEMO_PUBLIC_PORT ?? 8443),
  tunnel: Number(process.env.APPPROXY_DEMO_TUNNEL_PORT ?? 9443),
  admin: Number(process.env.APPPROXY_DEMO_ADMIN_PORT ?? 9090),
  idp: Number(process.env.APPPROXY_DEMO_IDP_PORT ?? 9000),
};
const host = 'intranet.apps.localhost';
const relayBin = join(root, 'apps/relay/dist/bin.js');
const connectorBin = join(root, 'apps/connector/dist/bin.js');
const sampleBin = join(root, 'tools/sample-app/src/cli.mjs');
const idpBin = join(root, 'tools/dev-idp/src/cli.mjs');
const children = [];

const say = (line) => process.stdout.write(`${line}\n`);

function start(name, bin, args, { onLine, env } = {}) {
  const child = spawn(process.execPath, [bin, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  });
  children.push({ name, child });
  let buf = '';
  child.stdout.setEncoding('utf8').on('data', (chunk) => {
    buf += chunk;
    let nl;
    while ((nl = buf.indexOf('\n')) !== -1) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      onLine?.(line);
      if (process.env.APPPROXY_DEMO_VERBOSE) say(`[${name}] ${line}`);
    }
  });
  child.stderr.setEncoding('utf8').on('data', (c) => process.stderr.write(`[${name}] ${c}`));
  child.once('exit', (code, signal) => {
    if (!stopping) {
      process.stderr.write(`demo: ${name} exited unexpectedly (${signal ?? code}); stopping\n`);
      void stop(1);
    }
  });
  return child;
}

function waitForLine(name, bin, args, test, env) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name} did not start within 30 s`)), 30_000);
    start(name, bin, args, {
      env,
      onLine: (line) => {
        let parsed;
        try {
          parsed = JSON.parse(line);
        } catch {
          return;
        }
        if (test(parsed)) {
          clearTimeout(timer);
          resolve(parsed);
        }
      },
    });
  });
}

let stopping = false;
async function stop(code = 0) {
  if (stopping) return;
  stopping = true;
  say('\nStopping demo…');
  // Connector first (it drains), then relay, then the app.
  for (const name of ['connector', 'relay', 'sample-app', 'dev-idp']) {
    const entry = children.find((c) => c.name === name);
    if (!entry || entry.child.exitCode !== null) continue;
    entry.child.kill('SIGTERM');
    await new Promise((r) => entry.child.once('exit', r));
  }
  process.exit(code);
}
process.once('SIGINT', () => stop(0));
process.once('SIGTERM', () => stop(0));

async function main() {
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  const certs = await createDevCertificates({
    dir: join(work, 'tls'),
    hosts: ['localhost', '127.0.0.1', '*.apps.localhost'],
  });

  const app = await waitForLine(
    'sample-app',
    sampleBin,
    ['--host', '127.0.0.1', '--port', '0'],
    (l) => typeof l.url === 'string',
  );
  const url = `https://${host}:${ports.public}/`;
  // The client secret travels in the environment only (never on a command line).
  const clientSecret = randomBytes(24).toString('base64url');
  const idp = await waitForLine(
    'dev-idp',
    idpBin,
    [
      '--port',
      String(ports.idp),
      '--client-id',
      'appproxy',
      '--redirect-uri',
      `${url}.appproxy/callback`,
      '--post-logout-redirect-uri',
      `${url}.appproxy/signed-out`,
      // The admin console's sign-in (relay.admins) on the admin listener.
      '--redirect-uri',
      `http://127.0.0.1:${ports.admin}/console/callback`,
      '--post-logout-redirect-uri',
      `http://127.0.0.1:${ports.admin}/console/signed-out`,
      '--native-client-id',
      'appproxy-cli',
    ],
    (l) => typeof l.issuer === 'string',
    { APPPROXY_DEV_IDP_CLIENT_SECRET: clientSecret },
  );
  const config = join(work, 'appproxy.yaml');
  writeFileSync(
    config,
    `# Written by npm run demo. See README.md for every field.
relay:
  listen: 127.0.0.1:${ports.public}
  tunnelListen: 127.0.0.1:${ports.tunnel}
  adminListen: 127.0.0.1:${ports.admin}
  admins: { groups: [AppProxy Admins] }
  stateDir: ./relay
  certificates:
    - cert: ${certs.certPath}
      key: ${certs.keyPath}
identityProvider:
  issuer: ${idp.issuer}
  clientId: appproxy
  clientSecret: \${APPPROXY_CLIENT_SECRET}
  scopes: [openid, profile, email, groups]
  bearerAudiences: [${idp.audience}]
connectorGroups:
  - name: Default
apps:
  - name: Intranet
    internalUrl: ${app.url}
    externalUrl: ${url}
    connectorGroup: Default
    preAuthentication: oidc
`,
  );
  await waitForLine(
    'relay',
    relayBin,
    ['start', '--config', config],
    (l) => l.msg === 'relay listening',
    { APPPROXY_CLIENT_SECRET: clientSecret },
  );
  const token = execFileSync(
    process.execPath,
    [relayBin, 'token', 'create', '--config', config, '--group', 'Default'],
    { encoding: 'utf8', env: { ...process.env, APPPROXY_CLIENT_SECRET: clientSecret } },
  ).trim();
  const stateDir = join(work, 'connector');
  execFileSync(
    process.execPath,
    [
      connectorBin,
      'register',
      '--relay',
      `https://127.0.0.1:${ports.tunnel}`,
      '--token',
      token,
      '--state-dir',
      stateDir,
    ],
    { stdio: 'ignore' },
  );
  await waitForLine(
    'connector',
    connectorBin,
    ['start', '--state-dir', stateDir],
    (l) => l.msg === 'tunnel connected',
  );

  const users = idp.users.map((u) => `${u.username} / ${u.password}`).join(', ');
  say(`
AppProxy demo is running.

  External URL   ${url}   (asks for sign-in)
  Trust this CA  ${certs.caCertPath}
  Sign in as     ${users}
  Identity prov. ${idp.issuer}   (development only)
  Internal app   ${app.url}  (reached only through the connector)
  Admin          http://127.0.0.1:${ports.admin}/readyz, API /api/v1 (alice is an admin)

  Try it:
    curl --cacert ${certs.caCertPath} --resolve ${host}:${ports.public}:127.0.0.1 -H 'Accept: application/json' ${url}
    (an API client without a token gets 401 SIGN_IN_REQUIRED; open the URL in a browser to sign in)

  Browsers resolve *.localhost to this machine; import the CA above to trust the page.
  Press Ctrl-C to stop.
`);
  say(JSON.stringify({ demo: 'ready', url, ca: certs.caCertPath, issuer: idp.issuer }));
}

main().catch((err) => {
  process.stderr.write(`demo: ${err.message}\n`);
  void stop(1);
});
