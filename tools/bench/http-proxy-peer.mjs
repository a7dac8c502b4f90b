// node-http-proxy as a single-hop reverse proxy (keep-alive to the origin).
import { createServer, Agent } from 'node:http';
import httpProxy from 'http-proxy';

const [port, target] = [Number(process.argv[2]), process.argv[3]];
const proxy = httpProxy.createProxyServer({
  target,
  agent: new Agent({ keepAlive: true, maxSockets: 256 }),
  xfwd: true,
});
proxy.on('error', (_err, _req, res) => {
  if (!res.headersSent) res.writeHead?.(502);
  res.end?.();
});
const server = createServer((req, res) => proxy.web(req, res));
server.keepAliveTimeout = 60_000;
server.listen(port, '127.0.0.1', () => process.stdout.write(`${JSON.stringify({ port })}\n`));
process.once('SIGTERM', () => process.exit(0));
