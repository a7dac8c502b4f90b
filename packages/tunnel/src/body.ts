import { constants, type Http2Stream } from 'node:http2';
import type { Writable } from 'node:stream';

/**
 * What {@link forwardBody} lets a destination buffer before it pauses the tunnel stream
 * (plus the chunk in hand).
 */
export const FORWARD_BUFFER_BYTES = 256 * 1024;

/**
 * Pipes a tunnel stream's body into `dest` (with backpressure) and ends `dest` only if the
 * stream ended cleanly. A stream reset mid-body (RST_STREAM with an error code, or a close
 * before END_STREAM) calls `onReset` instead, and the caller destroys `dest`: a reset must
 * never reach the other side as a complete-looking, truncated body.
 *
 * `dest` is corked from the first chunk of an event-loop turn to the end of that turn, so
 * what arrived in one turn leaves in one write: the 16 KiB pieces a TLS tunnel delivers
 * merged into larger writes for a bulk transfer. `dest` is always uncorked before it is
 * ended: Node 24's `ServerResponse` sends the terminating chunk of a chunked body ahead of
 * data still corked, so `end()` on a corked response cut its tail off while looking
 * complete. The tunnel stream is paused while `dest` holds {@link FORWARD_BUFFER_BYTES} or
 * more.
 *
 * @example
 * forwardBody(tunnelStream, res, () => res.destroy());
 */
export function forwardBody(
  source: Http2Stream,
  dest: Writable,
  onReset: (rstCode: number) => void,
): void {
  let ended = false;
  let corked = false;
  let waitingForDrain = false;
  // Not every destination can cork (duck-typed ones); those get plain writes.
  const canCork = typeof dest.cork === 'function';
  const uncork = () => {
    if (!corked) return;
    corked = false;
    if (!dest.destroyed) dest.uncork();
  };
  const onDrain = () => {
    waitingForDrain = false;
    if (!ended && !dest.destroyed) source.resume();
  };
  source.on('data', (chunk: Buffer) => {
    // A destination gone (client closed) takes nothing more; the caller resets the stream.
    if (dest.destroyed) return;
    if (canCork && !corked) {
      corked = true;
      dest.cork();
      setImmediate(uncork);
    }
    // write() says false past the destination's high-water mark (16–64 KiB); pausing there
    // made a pause/resume round trip per tunnel chunk in bulk transfers. The budget bounds
    // what is buffered all the same.
    if (!dest.write(chunk) && dest.writableLength >= FORWARD_BUFFER_BYTES && !waitingForDrain) {
      waitingForDrain = true;
      source.pause();
      dest.once('drain', onDrain);
    }
  });
  source.once('end', () => {
    ended = true;
    const code = source.rstCode;
    // `aborted`: Node can emit 'end' for a stream the peer reset, before the reset is known
    // by its code.
    if (source.aborted || (code !== undefined && code !== constants.NGHTTP2_NO_ERROR))
      return onReset(code ?? constants.NGHTTP2_CANCEL);
    // Never end() a corked destination (see above): the data first, then the end.
    uncork();
    dest.end();
  });
  source.once('close', () => {
    if (!ended) onReset(source.rstCode ?? constants.NGHTTP2_INTERNAL_ERROR);
  });
}

/**
 * Aborts a tunnel stream so the peer sees RST_STREAM, never a clean end. (`stream.close(code)`
 * on a stream whose writable side is still open ends it first — the peer then reads a
 * complete-looking body before the reset arrives.)
 *
 * @example
 * resetStream(stream, 'client went away');
 */
export function resetStream(stream: Http2Stream, reason: string): void {
  if (stream.destroyed) return;
  stream.destroy(new Error(reason));
}
