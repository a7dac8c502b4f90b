#!/usr/bin/env node
// appproxy-dev-idp: the development OpenID provider for `npm run demo` and the e2e tests.
// Prints ONE JSON line {"issuer": …, "audience": …, "users": [{username, password, …}]} on
// stdout when listening (port 0 allowed) and stops cleanly on SIGINT/SIGTERM (exit 0).
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { startDevIdp } from './server.mjs';

const USAGE = `Usage: appproxy-dev-idp [options]

  --host <addr>                     listen address and issuer host (default 127.0.0.1)
  --port <n>                        listen port, 0 for any free one (default 9000)
  --client-id <id>                  the relay's client id (default appproxy)
  --client-secret <secret>          its secret; or APPPROXY_DEV_IDP_CLIENT_SECRET (default: public client)
  --redirect-uri <url>              repeatable: https://<app host>/.appproxy/callback
  --post-logout-redirect-uri <url>  repeatable: https://<app host>/.appproxy/signed-out
  --native-client-id <id>           also register a public native client (loopback redirect, PKCE)
  --audience <uri>                  API audience of JWT access tokens (default api://appproxy)
  --cert <file> --key <file>        serve HTTPS with this PEM pair (issuer https://…)
  -h, --help
`;

/** @type {Record<string, any>} */
let values;
try {
  ({ values } = parseArgs({
    options: {
      host: { type: 'string', default: '127.0.0.1' },
      port: { type: 'string', default: '9000' },
      'client-id': { type: 'string', default: 'appproxy' },
      'client-secret': { type: 'string' },
      'redirect-uri': { type: 'string', multiple: true, default: [] },
      'post-logout-redirect-uri': { type: 'string', multiple: true, default: [] },
      'native-client-id': { type: 'string' },
      audience: { type: 'string', default: 'api://appproxy' },
      cert: { type: 'string' },
      key: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  }));
} catch (err) {
  process.stderr.write(`appproxy-dev-idp: ${/** @type {Error} */ (err).message}\n${USAGE}`);
  process.exit(2);
}
if (values.help) {
  process.stdout.write(USAGE);
  process.exit(0);
}
const port = Number(values.port);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  process.stderr.write(`appproxy-dev-idp: --port must be 0..65535, got ${values.port}\n`);
  process.exit(2);
}
if (Boolean(values.cert) !== Boolean(values.key)) {
  process.stderr.write('appproxy-dev-idp: --cert and --key go together\n');
  process.exit(2);
}
if (values['redirect-uri'].length === 0) {
  process.stderr.write('appproxy-dev-idp: give at least one --redirect-uri\n');
  process.exit(2);
}

const clientSecret = values['client-secret'] ?? process.env.APPPROXY_DEV_IDP_CLIENT_SECRET;
const clients = [
  {
    clientId: values['client-id'],
    ...(clientSecret && { clientSecret }),
    redirectUris: values['redirect-uri'],
    postLogoutRedirectUris: values['post-logout-redirect-uri'],
  },
];
if (values['native-client-id']) {
  clients.push({
    clientId: values['native-client-id'],
    redirectUris: ['http://127.0.0.1/callback'],
  });
}

/** @type {import('./server.mjs').DevIdp} */
let idp;
try {
  idp = await startDevIdp({
    host: values.host,
    port,
    clients,
    audience: values.audience,
    ...(values.cert && { tls: { cert: readFileSync(values.cert), key: readFileSync(values.key) } }),
  });
} catch (err) {
  process.stderr.write(`appproxy-dev-idp: ${/** @type {Error} */ (err).message}\n`);
  process.exit(1);
}
const users = idp.users.map((u) => ({
  username: u.username,
  password: u.password,
  email: u.email,
  groups: u.groups.length > 5 ? `${u.groups.length} groups` : u.groups,
  mfa: u.amr.includes('mfa'),
}));
process.stdout.write(`${JSON.stringify({ issuer: idp.issuer, audience: idp.audience, users })}\n`);

let stopping = false;
const stop = () => {
  if (stopping) return;
  stopping = true;
  setTimeout(() => process.exit(0), 3000).unref();
  idp.close().then(
    () => process.exit(0),
    () => process.exit(0),
  );
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
