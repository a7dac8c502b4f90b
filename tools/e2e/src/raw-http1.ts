import { once } from 'node:events';
import { connect, type TLSSocket } from 'node:tls';

export interface RawResponse {
  status: number;
  headers: Record<string, string[]>;
  /** The body as framed on the wire, de-chunked but not decoded (gzip stays gzip). */
  body: Buffer;
}

/** The connection closed before the response was complete; `partial` holds what came. */
export class IncompleteResponseError extends Error {
  readonly code = 'INCOMPLETE_RESPONSE';
  constructor(
    readonly partial: Buffer,
    why: string,
  ) {
    super(`incomplete response: ${why} (${partial.length} body bytes received)`);
  }
}

/**
 * A strict HTTP/1.1 client over one TLS connection, for tests that must see the bytes as
 * sent: requests go one after another on the same connection (keep-alive), and each response
 * must begin exactly where the previous one ended — a byte left over from an earlier
 * response makes the next one fail to parse instead of being skipped, as a lenient client
 * might. Chunked bodies are checked chunk by chunk, the terminating chunk included.
 */
export class RawHttp1Connection {
  readonly #socket: TLSSocket;
  #buf: Buffer = Buffer.alloc(0);
  #closed = false;
  #wake: (() => void) | undefined;

  private constructor(socket: TLSSocket) {
    this.#socket = socket;
    socket.on('data', (chunk: Buffer) => {
      this.#buf = this.#buf.length === 0 ? chunk : Buffer.concat([this.#buf, chunk]);
      this.#wake?.();
    });
    const closed = () => {
      this.#closed = true;
      this.#wake?.();
    };
    socket.on('end', closed);
    socket.on('close', closed);
    socket.on('error', closed);
  }

  static async open(port: number, servername: string, ca: string): Promise<RawHttp1Connection> {
    const socket = connect({
      host: '127.0.0.1',
      port,
      servername,
      ca,
      ALPNProtocols: ['http/1.1'],
    });
    await once(socket, 'secureConnect');
    return new RawHttp1Connection(socket);
  }

  get socket(): TLSSocket {
    return this.#socket;
  }

  /** Bytes received that no response has claimed (must stay 0 between responses). */
  get pending(): number {
    return this.#buf.length;
  }

  close(): void {
    this.#socket.destroy();
  }

  /** Sends a request head; the body, if any, is written by the caller on `socket`. */
  sendHead(method: string, path: string, headers: Record<string, string>): void {
    let head = `${method} ${path} HTTP/1.1\r\n`;
    for (const [name, value] of Object.entries(headers)) head += `${name}: ${value}\r\n`;
    this.#socket.write(`${head}\r\n`);
  }

  /** Reads one whole response; throws on a malformed one or {@link IncompleteResponseError}. */
  async readResponse(method = 'GET'): Promise<RawResponse> {
    const head = (await this.#readUntil('\r\n\r\n', Buffer.alloc(0))).toString('latin1');
    const [statusLine, ...lines] = head.split('\r\n');
    const m = /^HTTP\/1\.1 (\d{3}) /.exec(statusLine!);
    if (!m)
      throw new Error(
        `response does not begin with a status line: ${JSON.stringify(head.slice(0, 60))}`,
      );
    const status = Number(m[1]);
    const headers: Record<string, string[]> = {};
    for (const line of lines) {
      const colon = line.indexOf(':');
      if (colon <= 0) throw new Error(`malformed header line ${JSON.stringify(line)}`);
      const name = line.slice(0, colon).toLowerCase();
      (headers[name] ??= []).push(line.slice(colon + 1).trim());
    }
    if (status < 200) return this.readResponse(method);
    if (method === 'HEAD' || status === 204 || status === 304)
      return { status, headers, body: Buffer.alloc(0) };
    const te = headers['transfer-encoding'];
    const cl = headers['content-length'];
    if (te !== undefined) {
      if (te.join(',').toLowerCase() !== 'chunked')
        throw new Error(`transfer-encoding ${te.join(',')}`);
      return { status, headers, body: await this.#readChunked() };
    }
    if (cl !== undefined) {
      if (cl.length !== 1 || !/^\d+$/.test(cl[0]!))
        throw new Error(`content-length ${cl.join(',')}`);
      return { status, headers, body: await this.#read(Number(cl[0]), []) };
    }
    // Delimited by the close.
    const parts: Buffer[] = [];
    while (!this.#closed || this.#buf.length > 0) {
      if (this.#buf.length > 0) parts.push(this.#take(this.#buf.length));
      else await this.#more(Buffer.concat(parts), 'unreachable');
    }
    return { status, headers, body: Buffer.concat(parts) };
  }

  async #readChunked(): Promise<Buffer> {
    const parts: Buffer[] = [];
    for (;;) {
      const sizeLine = (await this.#readUntil('\r\n', Buffer.concat(parts))).toString('latin1');
      if (!/^[0-9a-fA-F]+(;.*)?$/.test(sizeLine))
        throw new Error(`bad chunk size line ${JSON.stringify(sizeLine.slice(0, 40))}`);
      const size = parseInt(sizeLine, 16);
      if (size === 0) {
        // Trailers, then the empty line.
        while ((await this.#readUntil('\r\n', Buffer.concat(parts))).length > 0);
        return Buffer.concat(parts);
      }
      parts.push(await this.#read(size, parts));
      const crlf = await this.#read(2, parts);
      if (crlf.toString('latin1') !== '\r\n') throw new Error('chunk not followed by CRLF');
    }
  }

  async #read(n: number, sofar: Buffer[]): Promise<Buffer> {
    while (this.#buf.length < n)
      await this.#more(Buffer.concat([...sofar, this.#buf]), `${n} bytes`);
    return this.#take(n);
  }

  async #readUntil(delimiter: string, sofar: Buffer): Promise<Buffer> {
    for (;;) {
      const at = this.#buf.indexOf(delimiter, 0, 'latin1');
      if (at !== -1) {
        const out = this.#take(at);
        this.#take(delimiter.length);
        return out;
      }
      await this.#more(sofar, JSON.stringify(delimiter));
    }
  }

  #take(n: number): Buffer {
    const out = this.#buf.subarray(0, n);
    this.#buf = this.#buf.subarray(n);
    return out;
  }

  async #more(sofar: Buffer, waitingFor: string): Promise<void> {
    if (this.#closed)
      throw new IncompleteResponseError(sofar, `closed while waiting for ${waitingFor}`);
    await new Promise<void>((resolve) => (this.#wake = resolve));
    this.#wake = undefined;
  }
}
