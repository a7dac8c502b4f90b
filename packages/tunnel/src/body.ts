import { constants, type Http2Stream } from 'node:http2';
import type { Writable } from 'node:stream';

/**
 * Pipes a tunnel stream's body into `dest` (with backpressure) and ends `dest` only if the
 * stream ended cleanly. A stream reset mid-body (RST_STREAM with an error code, or a close
 * before END_STREAM) calls `onReset` instead, and the caller destroys `dest`: a reset must
 * never reach the other side as a complete-looking, truncated body.
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
  source.pipe(dest, { end: false });
  source.once('end', () => {
    ended = true;
    const code = source.rstCode;
    if (code !== undefined && code !== constants.NGHTTP2_NO_ERROR) onReset(code);
    else dest.end();
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
