import { FORWARD_BUFFER_BYTES, resetStream } from '@appproxy/tunnel';
import type { ClientHttp2Stream } from 'node:http2';
import type { Readable } from 'node:stream';

/** Body bytes kept so that a stream the connector refused can be sent again elsewhere. */
export const REPLAY_LIMIT = 64 * 1024;

/**
 * The client's request body on its way into a tunnel stream, with backpressure (the client
 * is paused while the stream holds {@link FORWARD_BUFFER_BYTES} or more). The first {@link REPLAY_LIMIT} bytes are
 * kept until the response begins, so a refused stream can be replayed into another one
 * (`into` again); past the limit the body is not replayable and nothing more is kept.
 */
export class RequestBody {
  readonly #source: Readable;
  #dest: ClientHttp2Stream | undefined;
  #kept: Buffer[] | undefined = [];
  #keptBytes = 0;
  #ended = false;
  #aborted = false;
  /** Bytes read from the client so far. */
  received = 0;
  /** Bytes written into the current stream. */
  sent = 0;

  constructor(source: Readable) {
    this.#source = source;
    source.on('data', (chunk: Buffer) => this.#onData(chunk));
    source.once('end', () => {
      // An HTTP/2 request the client reset still ends (after 'aborted'): a body cut short
      // must reach the connector as a reset, never as a complete body.
      if ((source as { aborted?: boolean }).aborted) return this.#abort();
      this.#ended = true;
      this.#dest?.end();
    });
    source.once('aborted', () => this.#abort());
    source.pause();
  }

  /** Every byte sent so far can be sent again. */
  get replayable(): boolean {
    return this.#kept !== undefined;
  }

  /** Sends the body (what was kept, then the rest as it arrives) into `stream`. */
  into(stream: ClientHttp2Stream): void {
    this.#dest = stream;
    if (this.#aborted) return resetStream(stream, 'client request body aborted');
    this.sent = 0;
    for (const chunk of this.#kept ?? []) {
      stream.write(chunk);
      this.sent += chunk.length;
    }
    if (this.#ended) {
      stream.end();
      return;
    }
    stream.on('drain', () => {
      if (this.#dest === stream) this.#source.resume();
    });
    this.#source.resume();
  }

  /** The response began: nothing will be replayed, drop what was kept. */
  release(): void {
    this.#kept = undefined;
  }

  #abort(): void {
    if (this.#ended) return;
    this.#aborted = true;
    if (this.#dest) resetStream(this.#dest, 'client request body aborted');
  }

  #onData(chunk: Buffer): void {
    this.received += chunk.length;
    if (this.#kept) {
      if (this.#keptBytes + chunk.length <= REPLAY_LIMIT) {
        this.#kept.push(chunk);
        this.#keptBytes += chunk.length;
      } else {
        this.#kept = undefined;
      }
    }
    const dest = this.#dest;
    if (!dest || dest.destroyed) return void this.#source.pause();
    this.sent += chunk.length;
    // Paused past a budget, not at the stream's high-water mark: a pause/resume round trip
    // every few 16 KiB chunks was most of an upload's cost here.
    if (!dest.write(chunk) && dest.writableLength >= FORWARD_BUFFER_BYTES) this.#source.pause();
  }
}
