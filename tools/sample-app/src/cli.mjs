#!/usr/bin/env node
// appproxy-sample-app [--host 127.0.0.1] [--port 8080] [--base /] [--quiet]
// Prints ONE JSON line {"url": …} on stdout when listening (port 0 allowed), logs each request
// briefly on stderr, and stops cleanly on SIGINT/SIGTERM (exit 0).
import { parseArgs } from 'node:util';
import { startSampleApp } from './server.mjs';

const USAGE = `Usage: appproxy-sample-app [--host 127.0.0.1] [--port 8080] [--base /] [--quiet]

  --host   listen address (default 127.0.0.1)
  --port   listen port, 0 for any free one (default 8080)
  --base   path the app is mounted at (default /)
  --quiet  do not log requests on stderr
`;

/** @type {{ host?: string, port?: string, base?: string, quiet?: boolean, help?: boolean }} */
let values;
try {
  ({ values } = parseArgs({
    options: {
      host: { type: 'string', default: '127.0.0.1' },
      port: { type: 'string', default: '8080' },
      base: { type: 'string', default: '/' },
      quiet: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  }));
} catch (err) {
  process.stderr.write(`appproxy-sample-app: ${/** @type {Error} */ (err).message}\n${USAGE}`);
  process.exit(2);
}
if (values.help) {
  process.stdout.write(USAGE);
  process.exit(0);
}
const port = Number(values.port);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  process.stderr.write(`appproxy-sample-app: --port must be 0..65535, got ${values.port}\n`);
  process.exit(2);
}

/** @type {import('./server.mjs').SampleApp} */
let app;
try {
  app = await startSampleApp({
    host: String(values.host),
    port,
    basePath: String(values.base),
    onRequest: values.quiet
      ? undefined
      : (r) => process.stderr.write(`${new Date().toISOString()} ${r.method} ${r.rawUrl}\n`),
  });
} catch (err) {
  process.stderr.write(`appproxy-sample-app: ${/** @type {Error} */ (err).message}\n`);
  process.exit(1);
}
process.stdout.write(`${JSON.stringify({ url: app.url })}\n`);

let stopping = false;
const stop = () => {
  if (stopping) return;
  stopping = true;
  // close() ends every socket; the timer only guards against the unexpected.
  setTimeout(() => process.exit(0), 3000).unref();
  app.close().then(
    () => process.exit(0),
    () => process.exit(0),
  );
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
