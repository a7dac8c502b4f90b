import type { Http2Session } from 'node:http2';

export interface LivenessOptions {
  /** How often a quiet tunnel is PINGed. `0` turns liveness off. */
  intervalMs: number;
  /** The peer is dead when nothing at all arrived from it for this long. */
  timeoutMs: number;
}

/**
 * Liveness of one side of a tunnel. The peer is alive while bytes arrive from it — any
 * frame counts, so a tunnel busy with a large transfer on a slow link is never mistaken for
 * a dead one because a PING ACK queued behind data. A quiet tunnel gets a PING every
 * `intervalMs`; when nothing arrived for `timeoutMs`, `onDead` is called (a frozen process
 * or a black-holed route is found this way; a closed TCP connection is found at once by the
 * socket itself). Time this process itself did not run (an event-loop stall, e.g. thousands
 * of client sockets closed at once) is not counted against the peer: its bytes wait in the
 * kernel until the loop reads them, after this check. Returns a stop function.
 *
 * @example
 * const stop = watchLiveness(session, socket, { intervalMs: 1000, timeoutMs: 2000 }, (why) => socket.destroy());
 */
/** A check this much later than its tick means the event loop was blocked. */
const STALL_MS = 50;

export function watchLiveness(
  h2: Http2Session,
  socket: { readonly bytesRead: number },
  opts: LivenessOptions,
  onDead: (reason: string) => void,
): () => void {
  const { intervalMs, timeoutMs } = opts;
  if (intervalMs <= 0) return () => {};
  let lastBytes = socket.bytesRead;
  let lastActivity = Date.now();
  let lastPing = 0;
  let pingOutstanding = false;
  // Check ten times per timeout, so a silent peer is found within ~1.1 × timeout.
  const tick = Math.max(10, Math.min(intervalMs, Math.floor(timeoutMs / 10)));
  let lastTick = lastActivity;
  const timer = setInterval(() => {
    if (h2.destroyed) return;
    const now = Date.now();
    // This check ran late by the time the event loop was blocked here: the peer's frames of
    // that time are unread yet, so the peer gets that time back.
    // A timer's usual lateness (a few ms on a busy machine, every tick) is no stall: credited
    // each time, it would add up to a late verdict.
    const stalled = now - lastTick - tick;
    lastTick = now;
    if (stalled > STALL_MS) lastActivity = Math.min(now, lastActivity + stalled);
    const bytes = socket.bytesRead;
    if (bytes !== lastBytes) {
      lastBytes = bytes;
      lastActivity = now;
    }
    const quietFor = now - lastActivity;
    if (quietFor >= timeoutMs) {
      stop();
      onDead(`nothing received for ${quietFor} ms (PING timeout ${timeoutMs} ms)`);
      return;
    }
    if (quietFor >= intervalMs && !pingOutstanding && now - lastPing >= intervalMs) {
      lastPing = now;
      try {
        pingOutstanding = h2.ping((err) => {
          pingOutstanding = false;
          if (!err) lastActivity = Date.now();
        });
      } catch {
        // Closing or too many PINGs in flight: the quiet-time check above still decides.
        pingOutstanding = false;
      }
    }
  }, tick);
  timer.unref();
  const stop = () => clearInterval(timer);
  return stop;
}
