import { ConnectorGroups } from '@appproxy/routing';
import { createLogger } from '@appproxy/telemetry';
import { EventEmitter } from 'node:events';
import type { IncomingHttpHeaders } from 'node:http';
import { describe, expect, it } from 'vitest';
import {
  ConnectionAffinity,
  challengesConnectionAuth,
  isConnectionAuth,
  type PinTunnel,
} from './affinity.js';

class FakeTunnel implements PinTunnel {
  inFlight = 0;
  accepting = true;
  readonly released: string[] = [];
  constructor(readonly connectorId: string) {}
  hasCapability(): boolean {
    return true;
  }
  control(_name: 'release', body: { affinity: string }): Promise<unknown> {
    this.released.push(body.affinity);
    return Promise.resolve({ status: 204 });
  }
}

function setup() {
  const groups = new ConnectorGroups<FakeTunnel>();
  const a = new FakeTunnel('a');
  const b = new FakeTunnel('b');
  groups.add('G', a);
  groups.add('G', b);
  const lines: string[] = [];
  const log = createLogger({ name: 'test', write: (l) => lines.push(l), format: 'json' });
  return { groups, a, b, affinity: new ConnectionAffinity({ groups, log }), lines };
}

describe('connection-bound authentication headers', () => {
  it.each([
    ['NTLM TlRMTVNTUAABAAAA', true],
    ['Negotiate YIIGhgYJKoZIhvcSAQICAQBuggZ1', true],
    ['ntlm abc', true],
    ['  NTLM abc', true],
    ['NTLM', true],
    ['Bearer eyJ', false],
    ['Basic YWxpY2U6cw==', false],
    ['NTLMv2 x', false],
    ['Negotiated x', false],
  ])('Authorization %j → %s', (value, expected) => {
    expect(isConnectionAuth(value)).toBe(expected);
  });

  it('no Authorization', () => expect(isConnectionAuth(undefined)).toBe(false));

  it.each([
    [401, 'NTLM', true],
    [401, 'Negotiate', true],
    [401, 'Negotiate, NTLM', true],
    [401, ['Negotiate', 'NTLM'], true],
    [401, 'Basic realm="x", NTLM', true],
    [401, 'NTLM TlRMTVNTUAACAAAA', true],
    [401, 'Basic realm="intranet"', false],
    [401, 'Bearer realm="x"', false],
    [200, 'NTLM', false],
    [407, 'NTLM', false],
  ] as Array<[number, string | string[], boolean]>)(
    '%i with WWW-Authenticate %j → %s',
    (status, value, expected) => {
      expect(
        challengesConnectionAuth(status, { 'www-authenticate': value } as IncomingHttpHeaders),
      ).toBe(expected);
    },
  );
});

describe('ConnectionAffinity', () => {
  it('pins a connection that starts a handshake; later requests ride the same id', () => {
    const { affinity } = setup();
    const connection = new EventEmitter();
    expect(affinity.forRequest(connection, 'G', undefined)).toBeUndefined();
    const pin = affinity.forRequest(connection, 'G', 'NTLM abc')!;
    expect(pin.id).toMatch(/^[A-Za-z0-9_-]{22}$/);
    pin.connectorId = 'a';
    // Without headers now, as after the handshake.
    expect(affinity.forRequest(connection, 'G', undefined)).toBe(pin);
    expect(affinity.pinned).toBe(1);
    // Another connection: its own id.
    const other = affinity.forRequest(new EventEmitter(), 'G', 'Negotiate x')!;
    expect(other.id).not.toBe(pin.id);
  });

  it('pins a connection the backend challenged, to the connector that answered', () => {
    const { affinity } = setup();
    const connection = new EventEmitter();
    affinity.pinChallenged(connection, 'G', 'b');
    const pin = affinity.forRequest(connection, 'G', undefined)!;
    expect(pin.connectorId).toBe('b');
    // A second challenge keeps the pin.
    affinity.pinChallenged(connection, 'G', 'a');
    expect(affinity.forRequest(connection, 'G', undefined)).toBe(pin);
  });

  it('releases the id at its connector when the client connection closes', async () => {
    const { affinity, a, b } = setup();
    const connection = new EventEmitter();
    const pin = affinity.forRequest(connection, 'G', 'NTLM abc')!;
    pin.connectorId = 'b';
    connection.emit('close');
    await Promise.resolve();
    expect(b.released).toEqual([pin.id]);
    expect(a.released).toEqual([]);
    expect(affinity.pinned).toBe(0);
  });

  it('re-pins with a new id when the pinned connector is gone', () => {
    const { affinity, groups, b } = setup();
    const connection = new EventEmitter();
    const pin = affinity.forRequest(connection, 'G', 'NTLM abc')!;
    pin.connectorId = 'b';
    groups.remove(b);
    const again = affinity.forRequest(connection, 'G', undefined)!;
    expect(again.id).not.toBe(pin.id);
    expect(again.connectorId).toBeUndefined();
    expect(affinity.pinned).toBe(1);
  });

  it('re-pins (and releases the old id) when the connection reaches another group', () => {
    const { affinity, groups, a } = setup();
    groups.add('H', new FakeTunnel('h'));
    const connection = new EventEmitter();
    const pin = affinity.forRequest(connection, 'G', 'NTLM abc')!;
    pin.connectorId = 'a';
    const other = affinity.forRequest(connection, 'H', undefined)!;
    expect(other.group).toBe('H');
    expect(a.released).toEqual([pin.id]);
  });

  it('nothing to release for a pin that never reached a connector', () => {
    const { affinity, a, b } = setup();
    const connection = new EventEmitter();
    affinity.forRequest(connection, 'G', 'NTLM abc');
    connection.emit('close');
    expect([...a.released, ...b.released]).toEqual([]);
  });
});
