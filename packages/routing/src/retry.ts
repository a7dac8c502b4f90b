/**
 * Methods RFC 9110 §9.2.2 (and RFC 4918 for WebDAV) define as idempotent: sending one twice
 * has the effect of sending it once, so a request that may have reached the backend can be
 * sent again.
 */
export const IDEMPOTENT_METHODS: ReadonlySet<string> = new Set([
  'GET',
  'HEAD',
  'OPTIONS',
  'TRACE',
  'PUT',
  'DELETE',
  'PROPFIND',
  'SEARCH',
  'REPORT',
]);

/** What happened to one attempt at forwarding a request through a connector. */
export interface FailedAttempt {
  method: string;
  /**
   * The connector refused the stream before handling it (RST_STREAM REFUSED_STREAM, or a
   * GOAWAY whose last stream id is below it): nothing reached the backend.
   */
  refused: boolean;
  /** Request body bytes already handed to the failed stream. */
  bodyBytesSent: number;
  /** The relay still holds every body byte sent so far and can send them again. */
  bodyReplayable: boolean;
  /** The client already has the response status (then nothing can be retried). */
  responseStarted: boolean;
}

/**
 * Whether a failed attempt may go to another connector. Only when it is safe: the stream was
 * refused before any byte reached the backend (and the body, if any, can be replayed), or
 * the method is idempotent and no body byte was sent.
 *
 * @example
 * canRetry({ method: 'POST', refused: false, bodyBytesSent: 0, bodyReplayable: true, responseStarted: false }) // false
 * canRetry({ method: 'GET', refused: false, bodyBytesSent: 0, bodyReplayable: true, responseStarted: false }) // true
 */
export function canRetry(a: FailedAttempt): boolean {
  if (a.responseStarted) return false;
  if (a.refused) return a.bodyBytesSent === 0 || a.bodyReplayable;
  return a.bodyBytesSent === 0 && IDEMPOTENT_METHODS.has(a.method.toUpperCase());
}
