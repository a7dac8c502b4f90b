// The benchmark origin: a 1 KiB response, an N MiB download and an upload sink; for the soak,
// random bodies with their SHA-256 in a header and uploads answered with theirs.
import { createHash, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import { WebSocketServer } from 'ws';

const ONE_KIB = Buffer.alloc(1024, 'a');
const BLOCK = Buffer.alloc(1024 * 1024, 'b');

// For the body-translation variant: HTML whose links name this origin (the internal URL),
// which the relay rewrites to the external one. Made once the port is known.
let html1k;
let htmlBlock;
function makeHtml(origin) {
  const line = `<p><a href="${origin}/docs/page.html">internal link</a> text</p>\n`;
  const fill = (size, head) => {
    let s = head;
    while (s.length + line.length <= size) s += line;
    return Buffer.from(s.padEnd(size, ' '));
  };
  html1k = fill(1024, '<!doctype html><title>bench</title>\n');
  htmlBlock = fill(1024 * 1024, '');
}

const server = createServer((req, res) => {
  const url = new URL(req.url, 'http://origin');
  if (url.pathname === '/1k') {
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': ONE_KIB.length });
    return res.end(ONE_KIB);
  }
  if (url.pathname === '/1k.html') {
    res.writeHead(200, { 'content-type': 'text/html', 'content-length': html1k.length });
    return res.end(html1k);
  }
  if (url.pathname === '/download') {
    const mib = Number(url.searchParams.get('mib') ?? 1);
    const html = url.searchParams.has('html');
    const block = html ? htmlBlock : BLOCK;
    res.writeHead(200, {
      'content-type': html ? 'text/html' : 'application/octet-stream',
      'content-length': mib * block.length,
    });
    let sent = 0;
    const pump = () => {
      while (sent < mib) {
        sent++;
        if (!res.write(block)) return res.once('drain', pump);
      }
      res.end();
    };
    return pump();
  }
  if (url.pathname === '/blob') {
    // `bytes` random bytes (at most 64 MiB); `x-body-sha256` is their SHA-256, in hex.
    const body = randomBytes(Math.min(64 * 2 ** 20, Number(url.searchParams.get('bytes') ?? 0)));
    res.writeHead(200, {
      'content-type': 'application/octet-stream',
      'content-length': body.length,
      'x-body-sha256': createHash('sha256').update(body).digest('hex'),
    });
    return res.end(body);
  }
  if (url.pathname === '/upload') {
    // `?sha256`: the answer carries the body's SHA-256 too (not in the bench's bulk upload,
    // whose MB/s would count the hashing).
    const hash = url.searchParams.has('sha256') ? createHash('sha256') : undefined;
    let bytes = 0;
    req.on('data', (c) => ((bytes += c.length), hash?.update(c)));
    req.on('end', () => {
      const body = JSON.stringify({ bytes, ...(hash && { sha256: hash.digest('hex') }) });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length });
      res.end(body);
    });
    return;
  }
  res.writeHead(404).end();
});
server.keepAliveTimeout = 60_000;
// /ws: an echo WebSocket, for the idle-WebSocket memory measurement.
const wss = new WebSocketServer({ server, path: '/ws' });
wss.on('connection', (ws) => {
  ws.on('message', (d, binary) => ws.send(d, { binary }));
  ws.on('error', () => {});
});
server.listen(Number(process.argv[2] ?? 0), '127.0.0.1', () => {
  makeHtml(`http://127.0.0.1:${server.address().port}`);
  process.stdout.write(`${JSON.stringify({ port: server.address().port })}\n`);
});
process.once('SIGTERM', () => process.exit(0));
