/**
 * The real connector CLI following a relay fleet's instance list (docs/tunnel-protocol.md
 * §3.6): the relays here are real TunnelListeners sharing one test CA (real relay instances
 * need the shared store to share a CA; the multi-instance e2e with real relays and HAProxy
 * builds on this).
 */
import { ConnectorCA, createKeyAndCsr } from '@appproxy/pki';
import { TunnelListener, type RelayInstance } from '@appproxy/tunnel';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CONNECTOR_BIN, LoggedProcess, freePort, until } from './harness.js';

const dirs: string[] = [];
const cleanups: Array<() => Promise<unknown>> = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => {});
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('connector CLI with a relay fleet', () => {
  it('dials every listed instance, persists the list, dials it at the next start', async () => {
    const caDir = mkdtempSync(join(tmpdir(), 'fleet-e2e-ca-'));
    const stateDir = mkdtempSync(join(tmpdir(), 'fleet-e2e-state-'));
    dirs.push(caDir, stateDir);
    const ca = await ConnectorCA.loadOrCreate(caDir);
    const server = await ca.issueServerCertificate({ hosts: ['127.0.0.1'] });
    const connectorId = randomUUID();
    const { keyPem, csrPem } = await createKeyAndCsr({ commonName: connectorId });
    const { certPem } = await ca.issueFromCsr(csrPem, { commonName: connectorId });

    let list: RelayInstance[] | undefined;
    const relays: Array<{ name: string; listener: TunnelListener; url: string }> = [];
    for (const name of ['a', 'b']) {
      const listener = new TunnelListener({
        host: '127.0.0.1',
        port: 0,
        cert: server.certPem + ca.certPem,
        key: server.keyPem,
        ca: ca.certPem,
        instances: () => list && { instance: { name }, instances: list },
      });
      const { port } = await listener.listen();
      cleanups.push(() => listener.close());
      relays.push({ name, listener, url: `https://127.0.0.1:${port}` });
    }
    const [a, b] = relays as [(typeof relays)[0], (typeof relays)[0]];
    const ready = (r: typeof a) => [...r.listener.sessions].filter((s) => s.state === 'ready');
    list = relays.map((r) => ({ name: r.name, tunnelUrl: r.url }));

    // The files `register` leaves, made here with the test CA.
    writeFileSync(
      join(stateDir, 'connector.json'),
      JSON.stringify({
        relayUrl: a.url,
        connectorId,
        group: 'Default',
        registeredAt: new Date().toISOString(),
      }),
    );
    writeFileSync(join(stateDir, 'connector-key.pem'), keyPem, { mode: 0o600 });
    writeFileSync(join(stateDir, 'connector.pem'), certPem);
    writeFileSync(join(stateDir, 'relay-ca.pem'), ca.certPem);

    const metricsPort = await freePort();
    const start = () => {
      const p = new LoggedProcess(CONNECTOR_BIN, [
        'start',
        '--state-dir',
        stateDir,
        '--tunnels',
        '2',
        '--metrics-listen',
        `127.0.0.1:${metricsPort}`,
      ]);
      cleanups.push(() => p.stop('SIGKILL'));
      return p;
    };

    const first = start();
    await until(() => ready(a).length === 2 && ready(b).length === 2, 'two tunnels at a and b');
    const changed = await first.waitFor((l) => l.msg === 'relay instances changed');
    expect(changed).toMatchObject({ added: ['a', 'b'], removed: [], from: 'a' });
    const file = join(stateDir, 'relay-instances.json');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(JSON.parse(readFileSync(file, 'utf8'))).toMatchObject({ instances: list });

    const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    expect(metrics).toContain('appproxy_connector_tunnels{instance="a"} 2');
    expect(metrics).toContain('appproxy_connector_tunnels{instance="b"} 2');
    expect(metrics).toMatch(/^appproxy_connector_tunnels_connected 4$/m);
    const health = (await (await fetch(`http://127.0.0.1:${metricsPort}/healthz`)).json()) as {
      tunnels: number;
      instances: Record<string, number>;
    };
    expect(health).toEqual({ tunnels: 4, instances: { a: 2, b: 2 } });

    // b leaves the list: its tunnels drain and close.
    const shorter = [list[0]!];
    await a.listener.announceInstances({ instance: { name: 'a' }, instances: shorter });
    await until(() => b.listener.sessions.size === 0, 'b’s tunnels closed');
    await first.waitFor(
      (l) => l.msg === 'relay instances changed' && l.from === 'a' && String(l.removed) === 'b',
    );
    // and comes back.
    await a.listener.announceInstances({ instance: { name: 'a' }, instances: list });
    await until(() => ready(b).length === 2, 'b dialled again');
    expect(await first.stop()).toBe(0);

    // The relays no longer send a list: only the saved one can name b.
    list = undefined;
    const second = start();
    await until(() => ready(a).length === 2 && ready(b).length === 2, 'both dialled at start');
    const fromState = await second.waitFor((l) => l.msg === 'relay instances changed');
    expect(fromState).toMatchObject({ added: ['a', 'b'], from: 'state' });
    expect(await second.stop()).toBe(0);
  });
});
