import {
  canRetry,
  type ConnectorGroups,
  type ConnectorTunnel,
  type FailedAttempt,
} from '@appproxy/routing';
import {
  CAPABILITY,
  META,
  isConnectorErrorCode,
  resetStream,
  type ConnectorErrorCode,
} from '@appproxy/tunnel';
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import { constants as h2constants, type ClientHttp2Stream } from 'node:http2';
import { backendTlsAnswered, backendTlsHeaders } from './backend-tls.js';
import type { RelayErrorCode } from './error-pages.js';
import type { RequestBody } from './request-body.js';

/** At most this many streams are opened for one request. */
export const MAX_ATTEMPTS = 3;
/** Extra time the relay waits beyond the app's backend timeout before it gives up itself. */
export const RELAY_GRACE_MS = 5_000;

/** What a dispatch needs of a tunnel: a `TunnelSession`, or a fake in unit tests. */
export interface DispatchTunnel extends ConnectorTunnel {
  readonly id: string;
  readonly state: string;
  request(headers: OutgoingHttpHeaders, opts?: { endStream?: boolean }): ClientHttp2Stream;
}

export interface DispatchRequest {
  /** The app's connector group. */
  group: string;
  /** `sticky`: keeps this client on one connector. */
  affinityKey?: string;
  /**
   * Only connectors that declare it (`websocket` for upgrades, `kerberos` for Kerberos
   * single sign-on), or all of these.
   */
  capability?: string | readonly string[];
  /** Connection affinity: only this connector's tunnels (it holds the backend connection). */
  connectorId?: string;
  /** The tunnel stream's headers, metadata included. */
  headers: OutgoingHttpHeaders;
  method: string;
  /** The request body; undefined when the request has none. */
  body: RequestBody | undefined;
  /**
   * END_STREAM with the headers. @default `body === undefined` — an upgrade's stream stays
   * open for the upgraded protocol's bytes.
   */
  endStream?: boolean;
  /** The app's backend timeout: the relay gives up {@link RELAY_GRACE_MS} after it. */
  timeoutMs: number;
  /**
   * Takes one of the client connection's tunnel-stream slots; returns how to give it back,
   * or undefined when none is free.
   */
  slot?: () => (() => void) | undefined;
}

export interface DispatchHandler<T> {
  /** The connector's response (a real one, not an error answer) and the stream of its body. */
  onResponse(headers: IncomingHttpHeaders, stream: ClientHttp2Stream, tunnel: T): void;
  /** No response will come: the code of the client's error page and a detail for the log. */
  onError(code: RelayErrorCode, detail: string): void;
  /** A stream is being opened on `tunnel`. */
  onAttempt?(tunnel: T): void;
  /** The stream on `tunnel` failed before a response; another connector is tried next. */
  onRetry?(tunnel: T, detail: string): void;
}

/**
 * One request's trip through the tunnels, shaped like an undici request: each attempt is
 * one tunnel stream ({@link TunnelAttempt}); wrapped around the attempts, the retry rule (another connector of the group,
 * only when nothing the client sent can be lost or done twice: a refused stream, an
 * idempotent request with no body byte sent, a body still within the replay buffer) and the
 * relay's own timeout. Ends with exactly one `onResponse` or `onError`, unless cancelled.
 *
 * @example
 * new Dispatch(groups, { group: 'Default', headers, method: 'GET', body: undefined, timeoutMs: 85_000 }, {
 *   onResponse: (headers, stream) => forwardBody(stream, res, () => res.destroy()),
 *   onError: (code) => sendErrorPage(code),
 * }).start();
 */
export class Dispatch<T extends DispatchTunnel> {
  readonly #groups: ConnectorGroups<T>;
  readonly #req: DispatchRequest;
  readonly #handler: DispatchHandler<T>;
  /** Tunnels that failed this request. */
  readonly #tried = new Set<T>();
  #attempts = 0;
  #stream: ClientHttp2Stream | undefined;
  #guard: NodeJS.Timeout | undefined;
  /** A response arrived, an error was reported, or the client left. */
  #settled = false;

  constructor(groups: ConnectorGroups<T>, req: DispatchRequest, handler: DispatchHandler<T>) {
    this.#groups = groups;
    this.#req = req;
    this.#handler = handler;
  }

  /** Opens the first stream; the relay's timeout starts now. */
  start(): void {
    this.#guard = setTimeout(() => {
      if (this.#stream) resetStream(this.#stream, 'backend timeout at the relay');
      this.#fail('BACKEND_TIMEOUT', 'no response from the connector within the backend timeout');
    }, this.#req.timeoutMs + RELAY_GRACE_MS);
    this.#guard.unref();
    this.#attempt();
  }

  /**
   * The client went away: the open stream is reset (so the connector aborts the backend
   * request) unless its response already ended, and nothing more is tried.
   */
  cancel(reason: string, resetOpenStream = true): void {
    this.#settle();
    if (this.#stream && resetOpenStream) resetStream(this.#stream, reason);
  }

  #settle(): boolean {
    if (this.#settled) return false;
    this.#settled = true;
    clearTimeout(this.#guard);
    return true;
  }

  #fail(code: RelayErrorCode, detail: string): void {
    if (this.#settle()) this.#handler.onError(code, detail);
  }

  #attempt(): void {
    if (this.#settled) return;
    const { group, affinityKey, capability, connectorId } = this.#req;
    const picked = this.#groups.pick(group, {
      affinityKey,
      capability,
      connectorId,
      exclude: this.#tried,
    });
    if (picked === 'NO_CAPABLE_CONNECTOR') {
      const needs = [capability ?? []].flat();
      return this.#fail(
        needs.includes(CAPABILITY.kerberos)
          ? 'SSO_NOT_CONFIGURED'
          : // An app's backendTls needs a connector that reads it: older ones would connect
            // without the client certificate.
            needs.includes(CAPABILITY.backendTls) && !needs.includes(CAPABILITY.websocket)
            ? 'CONNECTOR_UNAVAILABLE'
            : 'UPGRADE_UNSUPPORTED',
        `no connector in group ${group} has ${needs.join(' and ')}`,
      );
    }
    if (typeof picked === 'string') {
      return this.#attempts > 0
        ? this.#fail(
            'CONNECTOR_LOST',
            `no other connector in group ${group} after ${this.#attempts} attempt(s)`,
          )
        : this.#fail('CONNECTOR_UNAVAILABLE', `no ready connector in group ${group}`);
    }
    const tunnel = picked;
    const release = this.#req.slot ? this.#req.slot() : () => {};
    if (!release)
      return this.#fail('TOO_MANY_STREAMS', 'connection at maxStreamsPerConnection tunnel streams');
    let attempt: TunnelAttempt<T>;
    try {
      attempt = new TunnelAttempt(tunnel, this.#req, {
        response: (headers, stream) => {
          if (this.#settled) return void resetStream(stream, 'client went away');
          this.#settle();
          this.#handler.onResponse(headers, stream, tunnel);
        },
        connectorError: (code, detail) => this.#fail(code, detail),
        closedEarly: (failed, detail) => {
          if (this.#settled) return;
          this.#tried.add(tunnel);
          if (this.#attempts < MAX_ATTEMPTS && canRetry(failed)) {
            this.#handler.onRetry?.(tunnel, detail);
            return this.#attempt();
          }
          this.#fail('CONNECTOR_LOST', `connector ${tunnel.connectorId}: ${detail}`);
        },
      });
    } catch {
      release();
      // The tunnel stopped accepting between pick and request: nothing was sent.
      this.#tried.add(tunnel);
      return this.#attempt();
    }
    this.#stream = attempt.stream;
    this.#attempts++;
    attempt.stream.once('close', release);
    this.#handler.onAttempt?.(tunnel);
  }
}

interface AttemptHandler {
  /** The connector's response (not an error answer) and the stream of its body. */
  response(headers: IncomingHttpHeaders, stream: ClientHttp2Stream): void;
  /** The connector answered for a backend that never did (`appproxy-error`). */
  connectorError(code: ConnectorErrorCode | 'BACKEND_UNREACHABLE', detail: string): void;
  /** The stream closed before any response: the facts the retry rule decides on. */
  closedEarly(failed: FailedAttempt, detail: string): void;
}

/**
 * One tunnel stream of a request: opened on `tunnel` with the request's headers, the body
 * (what was kept, then the rest) sent into it; ends in exactly one of the handler's calls.
 * Throws when the tunnel no longer takes streams (nothing was sent).
 */
export class TunnelAttempt<T extends DispatchTunnel> {
  readonly stream: ClientHttp2Stream;

  constructor(
    tunnel: T,
    req: Pick<DispatchRequest, 'headers' | 'method' | 'body' | 'endStream'>,
    on: AttemptHandler,
  ) {
    const { body } = req;
    const stream = tunnel.request(backendTlsHeaders(tunnel, req.headers), {
      endStream: req.endStream ?? body === undefined,
    });
    this.stream = stream;
    stream.on('error', () => {});
    body?.into(stream);
    let responded = false;
    stream.once('response', (headers) => {
      responded = true;
      body?.release();
      const connectorError = headers[META.error];
      backendTlsAnswered(tunnel, req.headers, connectorError as string | undefined);
      if (connectorError === undefined) return on.response(headers, stream);
      stream.resume();
      on.connectorError(
        isConnectorErrorCode(connectorError) ? connectorError : 'BACKEND_UNREACHABLE',
        `connector ${tunnel.connectorId}: ${String(headers[META.errorDetail] ?? connectorError)}`,
      );
    });
    stream.once('close', () => {
      if (responded) return;
      on.closedEarly(
        {
          method: req.method,
          refused: stream.rstCode === h2constants.NGHTTP2_REFUSED_STREAM,
          bodyBytesSent: body ? body.sent : 0,
          bodyReplayable: body ? body.replayable : true,
          responseStarted: false,
        },
        `tunnel stream closed before a response (rst ${stream.rstCode}, tunnel ${tunnel.id} ${tunnel.state})`,
      );
    });
  }
}
