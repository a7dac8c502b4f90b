import { META, resetStream, type ConnectorErrorCode } from '@appproxy/tunnel';
import type { ServerHttp2Stream } from 'node:http2';

/** Answers a tunnel stream for a backend that never answered; the relay renders the page. */
export function respondError(
  stream: ServerHttp2Stream,
  code: ConnectorErrorCode,
  status: number,
  detail: string,
): void {
  if (stream.destroyed || stream.closed) return;
  if (stream.headersSent) {
    resetStream(stream, detail);
    return;
  }
  stream.respond(
    {
      ':status': status,
      [META.error]: code,
      [META.errorDetail]: detail.replace(/[\r\n]/g, ' ').slice(0, 300),
    },
    { endStream: true },
  );
  // Drop whatever request body is still coming.
  stream.resume();
}
