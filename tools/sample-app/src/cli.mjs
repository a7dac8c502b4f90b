#!/usr/bin/env node
// appproxy-sample-app [--host 127.0.0.1] [--port 8080] [--base /]
// Prints one JSON line {"url": …} when listening; SIGINT/SIGTERM stop it (exit 0).
import { parseArgs } from 'node:util';
import { startSampleApp } from './server.mjs';

const { values } = parseArgs({
  options: {
    host: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string', default: '8080' },
    base: { type: 'string', default: '/' },
    help: { type: 'boolean', default: false },
  },
});
if (values.help) {
  process.stdout.write('Usage: appproxy-sample-app [--host 127.0.0.1] [--port 8080] [--base /]\n');
  process.exit(0);
}
const app = await startSampleApp({
  host: values.host,
  port: Number(values.port),
  basePath: values.base,
});
process.stdout.write(`${JSON.stringify({ url: app.url })}\n`);
const stop = () => app.close().then(() => process.exit(0));
process.once('SIGINT', stop);
process.once('SIGTERM', stop);
