#!/usr/bin/env node
// http-proxy-translate --listen 127.0.0.1:8080 --internal http://expenses.corp.local:8080/ \
//   --external https://expenses.example.com/ [--also http://travel.corp.local/=https://travel.example.com/]
import { createServer } from 'node:http';
import { parseArgs } from 'node:util';
import { createTranslatingProxy } from './proxy.mjs';

const { values } = parseArgs({
  options: {
    listen: { type: 'string', default: '127.0.0.1:8080' },
    internal: { type: 'string' },
    external: { type: 'string' },
    also: { type: 'string', multiple: true, default: [] },
    'no-body': { type: 'boolean', default: false },
    scripts: { type: 'boolean', default: false },
    insecure: { type: 'boolean', default: false },
  },
});
if (!values.internal || !values.external) {
  process.stderr.write(
    'usage: http-proxy-translate --internal <url> --external <url> [--listen host:port] [--also internal=external]…\n',
  );
  process.exit(2);
}
const apps = [
  { name: 'app', internalUrl: values.internal, externalUrl: values.external },
  ...values.also.map((pair, i) => {
    const [internalUrl, externalUrl] = pair.split('=');
    return { name: `also${i}`, internalUrl, externalUrl };
  }),
];
const handler = createTranslatingProxy({
  apps,
  app: 'app',
  cookies: { secure: !values.insecure },
  translateBody: !values['no-body'],
  translateScripts: values.scripts,
});
const [host, port] = values.listen.split(/:(?=\d+$)/);
const server = createServer(handler);
server.listen(Number(port), host, () => {
  const { port: actual } = server.address();
  process.stdout.write(
    `${JSON.stringify({ listen: `${host}:${actual}`, external: values.external })}\n`,
  );
});
process.once('SIGTERM', () => server.close(() => process.exit(0)));
process.once('SIGINT', () => server.close(() => process.exit(0)));
