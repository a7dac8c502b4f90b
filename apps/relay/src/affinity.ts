import type { ConnectorGroups, ConnectorTunnel } from '@appproxy/routing';
import type { Logger } from '@appproxy/telemetry';
import { CONTROL } from '@appproxy/tunnel';
import { randomBytes } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';

/**
 * `Authorization: NTLM …` or `Negotiate …`: a handshake that authenticates the TCP
 * connection, not the request.
 *
 * @example
 * isConnectionAuth('NTLM TlRMTVNTUAABAAAA'); // true
 * isConnectionAuth('Bearer eyJ…'); // false
 */
export function isConnectionAuth(authorization: string | undefined): boolean {
  return authorization !== undefined && /^\s*(?:ntlm|negotiate)(?:\s|$)/i.test(authorization);
}

/**
 * A backend's 401 that offers NTLM or Negotiate (`WWW-Authenticate: NTLM`, `Negotiate,
 * NTLM`, one field per scheme, …).
 *
 * @example
 * challengesConnectionAuth(401, { 'www-authenticate': ['Negotiate', 'NTLM'] }); // true
 * challengesConnectionAuth(401, { 'www-authenticate': 'Basic realm="x"' }); // false
 */
export function challengesConnectionAuth(status: number, headers: IncomingHttpHeaders): boolean {
  if (status !== 401) return false;
  const value = headers['www-authenticate'];
  if (value === undefined) return false;
  const text = Array.isArray(value) ? value.join(', ') : value;
  return /(?:^|,)\s*(?:ntlm|negotiate)(?=\s|,|$)/i.test(text);
}

/** One client connection's affinity: its id (tunnel metadata) and the connector holding it. */
export interface ConnectionPin {
  /** Random, base64url; the connector's key for the dedicated backend connection. */
  readonly id: string;
  /** The app's connector group: a pin never leaves it. */
  readonly group: string;
  /** Set by the first stream that carried the id; undefined until then. */
  connectorId: string | undefined;
}

/** What pinning needs of a tunnel: pick and the release control stream. */
export interface PinTunnel extends ConnectorTunnel {
  control(name: typeof CONTROL.release, body: { affinity: string }): Promise<unknown>;
}

/** A client connection: what its requests share (`req.socket` of HTTP/1.1). */
export interface ClientConnection {
  once(event: 'close', listener: () => void): unknown;
}

/**
 * NTLM and Negotiate passthrough (docs/tunnel-protocol.md §3.4): an HTTP/1.1 client
 * connection that starts such a handshake, or whose backend challenges with one, is pinned
 * to one connector and one affinity id; every later request on it carries that id to that
 * connector, which keeps a dedicated backend connection per id. When the client connection
 * closes, the connector is told to close the backend one (`release`). If the connector is
 * gone, the next request is pinned afresh (the handshake restarts with the backend's 401).
 */
export class ConnectionAffinity<T extends PinTunnel> {
  readonly #pins = new WeakMap<ClientConnection, ConnectionPin>();
  readonly #groups: ConnectorGroups<T>;
  readonly #log: Logger;
  #pinned = 0;

  constructor(deps: { groups: ConnectorGroups<T>; log: Logger }) {
    this.#groups = deps.groups;
    this.#log = deps.log;
  }

  /** Client connections pinned now. */
  get pinned(): number {
    return this.#pinned;
  }

  /**
   * The pin a request rides, or undefined (no affinity: the shared pool, any connector).
   * Costs a WeakMap lookup and, without a pin, a look at `Authorization`.
   */
  forRequest(
    connection: ClientConnection,
    group: string,
    authorization: string | undefined,
  ): ConnectionPin | undefined {
    const pin = this.#pins.get(connection);
    if (pin === undefined)
      return isConnectionAuth(authorization) ? this.#pin(connection, group) : undefined;
    if (pin.group === group && (pin.connectorId === undefined || this.#tunnel(pin) !== undefined))
      return pin;
    // Its connector is gone (or another app's group): a new id on another connector; the
    // backend there answers 401 and the client's handshake starts over.
    this.#log.info('client connection pinned afresh', {
      connector: pin.connectorId,
      reason: pin.group === group ? 'connector gone' : 'other connector group',
    });
    return this.#pin(connection, group);
  }

  /** The backend challenged an unpinned connection: pin it to the connector that answered. */
  pinChallenged(connection: ClientConnection, group: string, connectorId: string): void {
    if (this.#pins.has(connection)) return;
    this.#pin(connection, group).connectorId = connectorId;
  }

  #pin(connection: ClientConnection, group: string): ConnectionPin {
    const prior = this.#pins.get(connection);
    if (prior) this.#release(prior);
    else {
      this.#pinned++;
      connection.once('close', () => {
        this.#pinned--;
        const last = this.#pins.get(connection);
        this.#pins.delete(connection);
        if (last) this.#release(last);
      });
    }
    const pin: ConnectionPin = {
      id: randomBytes(16).toString('base64url'),
      group,
      connectorId: undefined,
    };
    this.#pins.set(connection, pin);
    return pin;
  }

  #tunnel(pin: ConnectionPin): T | undefined {
    const picked = this.#groups.pick(pin.group, { connectorId: pin.connectorId });
    return typeof picked === 'string' ? undefined : picked;
  }

  /** Tells the connector (any of its tunnels) to close the id's backend connection. */
  #release(pin: ConnectionPin): void {
    if (pin.connectorId === undefined) return;
    const tunnel = this.#tunnel(pin);
    // Connector gone: its connections went with it (or its idle timeout closes them).
    if (!tunnel) return;
    tunnel.control(CONTROL.release, { affinity: pin.id }).catch((err: unknown) =>
      this.#log.debug('affinity release not delivered', {
        connector: pin.connectorId,
        error: err,
      }),
    );
  }
}
