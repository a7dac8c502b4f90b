import type { Http2Session } from 'node:http2';

/**
 * Liveness for one side of a tunnel: a PING every `intervalMs`; no ACK within `timeoutMs`
 * calls `onDead` (a silent peer — frozen process, black-holed route — is found this way;
 * a closed TCP connection is found at once by the socket itself). Returns a stop function.
 */
export function startPings(
  h2: Http2Session,
  intervalMs: number,
  timeoutMs: number,
  onDead: (reason: string) => void,
): () => void {
  if (intervalMs <= 0) return () => {};
  let outstanding = false;
  let deadline: NodeJS.Timeout | undefined;
  const timer = setInterval(() => {
    if (outstanding || h2.destroyed || h2.closed) return;
    outstanding = true;
    deadline = setTimeout(() => onDead(`no PING ack within ${timeoutMs} ms`), timeoutMs);
    const sent = h2.ping((err) => {
      clearTimeout(deadline);
      outstanding = false;
      if (err && !h2.destroyed) onDead(`PING failed: ${err.message}`);
    });
    if (!sent) {
      clearTimeout(deadline);
      outstanding = false;
    }
  }, intervalMs);
  timer.unref();
  return () => {
    clearInterval(timer);
    clearTimeout(deadline);
  };
}
