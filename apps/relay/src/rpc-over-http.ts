import type { Server as TlsServer, TLSSocket } from 'node:tls';

/**
 * The RPC-over-HTTP methods: `RPC_IN_DATA` / `RPC_OUT_DATA` (Outlook Anywhere, legacy RD
 * Gateway) and `RDG_IN_DATA` / `RDG_OUT_DATA` (RD Gateway's HTTP transport). Each opens a
 * long-lived channel with a huge (often 1 GiB) or absent Content-Length. Node's HTTP/1.1
 * parser (llhttp) knows a fixed list of methods and answers these 400 HPE_INVALID_METHOD, so
 * the relay reads their request head itself.
 */
export const RPC_METHODS: ReadonlySet<string> = new Set([
  'RPC_IN_DATA',
  'RPC_OUT_DATA',
  'RDG_IN_DATA',
  'RDG_OUT_DATA',
]);

/** The extended CONNECT `:protocol` that carries such a request through the tunnel. */
export const RPC_TUNNEL_PROTOCOL = 'appproxy-rpc-over-http';

/**
 * The client's `Content-Length` on that stream (HTTP/2 would hold the stream's DATA to it);
 * the connector writes it back into the request head for the backend.
 */
export const RPC_CONTENT_LENGTH = 'appproxy-rpc-content-length';

/** Largest request head read (Node's own default `maxHeaderSize`). */
export const MAX_RPC_HEAD_BYTES = 16 * 1024;

export interface RpcRequestHead {
  method: string;
  target: string;
  /** `1` or `0`: HTTP/1.1 or HTTP/1.0. */
  minor: number;
  /** Names as sent and values, alternating (like `IncomingMessage.rawHeaders`). */
  rawHeaders: string[];
}

export type RpcHeadResult =
  | { head: RpcRequestHead; rest: Buffer }
  | 'incomplete'
  | { refused: 'MALFORMED_REQUEST' | 'REQUEST_HEADERS_TOO_LARGE'; detail: string };

const LONGEST_METHOD = Math.max(...[...RPC_METHODS].map((m) => m.length));
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
/** Field values: visible ASCII, obs-text, space and tab; no CR, LF or NUL. */
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;
const REQUEST_LINE = /^([A-Z_]+) ([\x21-\x7e]+) HTTP\/1\.([01])$/;

/**
 * What the first bytes of an HTTP/1.1 connection say: `rpc` when they begin with one of
 * {@link RPC_METHODS} and a space, `other` when they cannot, `more` when too few arrived.
 *
 * @example
 * rpcPrefix(Buffer.from('RPC_IN_DATA /rpc/rpcproxy.dll HTTP/1.1\r\n')); // 'rpc'
 * rpcPrefix(Buffer.from('GET / HTTP/1.1\r\n')); // 'other'
 * rpcPrefix(Buffer.from('RDG_')); // 'more'
 */
export function rpcPrefix(bytes: Buffer): 'rpc' | 'other' | 'more' {
  const text = bytes.subarray(0, LONGEST_METHOD + 1).toString('latin1');
  for (const method of RPC_METHODS) {
    const word = `${method} `;
    if (text.startsWith(word)) return 'rpc';
    if (text.length < word.length && word.startsWith(text)) return 'more';
  }
  return 'other';
}

/**
 * Parses an RPC method's request head, strictly: CRLF line ends only, no obsolete line
 * folding, one request line of an RPC method, token header names, and neither
 * `Transfer-Encoding` (the body is streamed raw, unframed) nor a repeated or malformed
 * `Content-Length` or `Host`.
 */
export function parseRpcHead(bytes: Buffer): RpcHeadResult {
  const end = bytes.indexOf('\r\n\r\n');
  if (end < 0) {
    if (bytes.length > MAX_RPC_HEAD_BYTES)
      return { refused: 'REQUEST_HEADERS_TOO_LARGE', detail: 'request head too large' };
    return 'incomplete';
  }
  if (end + 4 > MAX_RPC_HEAD_BYTES)
    return { refused: 'REQUEST_HEADERS_TOO_LARGE', detail: 'request head too large' };
  const malformed = (detail: string) => ({ refused: 'MALFORMED_REQUEST' as const, detail });
  const lines = bytes.subarray(0, end).toString('latin1').split('\r\n');
  const line = REQUEST_LINE.exec(lines[0]!);
  if (!line || !RPC_METHODS.has(line[1]!)) return malformed('bad request line');
  const rawHeaders: string[] = [];
  const seen = new Map<string, number>();
  for (const field of lines.slice(1)) {
    if (field.includes('\n') || field.includes('\r')) return malformed('bare CR or LF');
    const colon = field.indexOf(':');
    if (colon <= 0) return malformed('header line without a name');
    const name = field.slice(0, colon);
    if (!TOKEN.test(name)) return malformed('bad header name');
    const value = field.slice(colon + 1).replace(/^[ \t]+|[ \t]+$/g, '');
    if (!FIELD_VALUE.test(value)) return malformed('bad header value');
    const lower = name.toLowerCase();
    seen.set(lower, (seen.get(lower) ?? 0) + 1);
    rawHeaders.push(name, value);
  }
  if (seen.has('transfer-encoding')) return malformed('Transfer-Encoding on an RPC method');
  if ((seen.get('content-length') ?? 0) > 1 || (seen.get('host') ?? 0) > 1)
    return malformed('repeated Content-Length or Host');
  const length = rawHeaders.findIndex(
    (v, i) => i % 2 === 0 && v.toLowerCase() === 'content-length',
  );
  if (length >= 0 && !/^\d{1,15}$/.test(rawHeaders[length + 1]!))
    return malformed('bad Content-Length');
  return {
    head: { method: line[1]!, target: line[2]!, minor: Number(line[3]), rawHeaders },
    rest: bytes.subarray(end + 4),
  };
}

export interface RpcDiversion {
  /** A whole RPC request head arrived: the socket is the caller's from now on. */
  onRequest: (socket: TLSSocket, head: RpcRequestHead, rest: Buffer) => void;
  /** The head was refused: the caller answers and closes. */
  onRefused: (
    socket: TLSSocket,
    code: 'MALFORMED_REQUEST' | 'REQUEST_HEADERS_TOO_LARGE' | 'REQUEST_TIMEOUT',
    detail: string,
  ) => void;
  /** How long the first request head may take (`relay.limits.headersTimeout`). */
  headersTimeoutMs: () => number;
}

/**
 * Looks at the first bytes of every HTTP/1.1 connection (ALPN `http/1.1` or none) of the
 * public server before Node's HTTP parser does: one that starts with an RPC method is taken
 * out of Node's hands and its head read here; any other is given back untouched (the bytes
 * read are put back with `unshift` before the server's own `secureConnection` listeners run).
 * HTTP/2 and other ALPN protocols (`acme-tls/1`) are not looked at.
 */
export function divertRpcConnections(server: TlsServer, on: RpcDiversion): void {
  const own = server.listeners('secureConnection') as Array<(socket: TLSSocket) => void>;
  server.removeAllListeners('secureConnection');
  const handOver = (socket: TLSSocket) => {
    for (const listener of own) listener.call(server, socket);
  };
  server.on('secureConnection', (socket: TLSSocket) => {
    // HTTP/1.1 only (ALPN http/1.1 or none); h2 and others (acme-tls/1) go on as they were.
    if (socket.alpnProtocol !== 'http/1.1' && socket.alpnProtocol !== false)
      return handOver(socket);
    let buffered: Buffer = Buffer.alloc(0);
    let rpc = false;
    const timer = setTimeout(() => {
      stop();
      if (rpc) on.onRefused(socket, 'REQUEST_TIMEOUT', 'request head not in time');
      else socket.destroy();
    }, on.headersTimeoutMs());
    const stop = () => {
      clearTimeout(timer);
      socket.off('readable', onReadable);
      socket.off('end', onEnd);
      socket.off('error', onError);
    };
    // Nobody else listens yet: an unhandled 'error' would end the process.
    const onError = () => {
      stop();
      socket.destroy();
    };
    const onEnd = () => {
      stop();
      socket.destroy();
    };
    const onReadable = () => {
      let chunk: Buffer | null;
      while ((chunk = socket.read() as Buffer | null) !== null) {
        buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
        if (!rpc) {
          const kind = rpcPrefix(buffered);
          if (kind === 'more') continue;
          if (kind === 'other') {
            stop();
            socket.unshift(buffered);
            return handOver(socket);
          }
          rpc = true;
        }
        const parsed = parseRpcHead(buffered);
        if (parsed === 'incomplete') continue;
        stop();
        if ('refused' in parsed) return on.onRefused(socket, parsed.refused, parsed.detail);
        return on.onRequest(socket, parsed.head, parsed.rest);
      }
    };
    socket.on('readable', onReadable);
    socket.on('end', onEnd);
    socket.on('error', onError);
  });
}
