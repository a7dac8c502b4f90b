import { openStateStore, type RelayConfig, type StateStore } from '@appproxy/config';
import { createDevCertificates } from '@appproxy/pki';
import { createLogger } from '@appproxy/telemetry';
import { X509Certificate } from 'node:crypto';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { AcmeCertificates, fleetLeader, renewalTime } from './acme.js';

const dir = mkdtempSync(join(tmpdir(), 'appproxy-acme-'));
const cleanups: Array<() => unknown> = [];
afterAll(() => {
  for (const c of cleanups) c();
  rmSync(dir, { recursive: true, force: true });
});

function config(hosts: string[], acme = true): RelayConfig {
  return {
    relay: {
      stateDir: dir,
      ...(acme && {
        acme: {
          // Nothing listens here: an order that starts fails, and no test waits for one.
          directoryUrl: 'https://127.0.0.1:1/dir',
          email: 'ops@example.com',
          challenge: 'http-01',
        },
      }),
    },
    apps: hosts.map((h) => ({ externalUrl: `https://${h}/` })),
  } as unknown as RelayConfig;
}

function manager() {
  const lines: Array<Record<string, unknown>> = [];
  const log = createLogger({
    name: 'test',
    write: (l) => lines.push(JSON.parse(l) as Record<string, unknown>),
    format: 'json',
  });
  const acme = new AcmeCertificates(dir, log);
  cleanups.push(() => acme.stop());
  return { acme, lines };
}

describe('renewalTime', () => {
  it('is two thirds into the lifetime', async () => {
    const certs = await createDevCertificates({ dir: join(dir, 'dev'), hosts: ['a.test'] });
    const cert = new X509Certificate(readFileSync(certs.certPath));
    const from = Date.parse(cert.validFrom);
    const to = Date.parse(cert.validTo);
    expect(renewalTime(cert).getTime()).toBe(from + ((to - from) * 2) / 3);
  });
});

describe('AcmeCertificates', () => {
  it('serves a stored certificate at once and schedules its renewal', async () => {
    const certs = await createDevCertificates({ dir: join(dir, 'dev'), hosts: ['stored.test'] });
    mkdirSync(join(dir, 'acme'), { recursive: true });
    copyFileSync(certs.certPath, join(dir, 'acme/stored.test.pem'));
    copyFileSync(certs.keyPath, join(dir, 'acme/stored.test-key.pem'));
    const { acme, lines } = manager();
    acme.configure(config(['stored.test', 'covered.test', '*.wild.test', '127.0.0.9']), (h) =>
      h.startsWith('covered'),
    );
    expect(acme.context('STORED.test')).toBeDefined();
    expect(acme.context('covered.test')).toBeUndefined();
    const loaded = lines.find((l) => l.msg === 'acme certificate loaded');
    expect(loaded).toMatchObject({ host: 'stored.test' });
    expect(Date.parse(String(loaded!.renewAt))).toBeGreaterThan(Date.now());
    // Nothing was ordered: the stored one is valid, covered, wildcard and IP hosts are skipped.
    await new Promise((r) => setTimeout(r, 100));
    expect(lines.filter((l) => l.msg === 'acme certificate requested')).toStrictEqual([]);

    // Without relay.acme (a reload that removes it), nothing is served or renewed.
    acme.configure(config(['stored.test'], false), () => false);
    expect(acme.context('stored.test')).toBeUndefined();
  });

  it('a failed order is logged with its reason and retried with backoff', async () => {
    const { acme, lines } = manager();
    acme.configure(config(['new.test']), () => false);
    await expect
      .poll(() => lines.find((l) => l.msg === 'acme certificate failed'), { timeout: 30_000 })
      .toMatchObject({
        host: 'new.test',
        failures: 1,
        retryInMs: 10_000,
        reason: 'the ACME directory https://127.0.0.1:1/dir cannot be reached: ECONNREFUSED',
      });
    expect(lines.find((l) => l.msg === 'acme certificate requested')).toMatchObject({
      host: 'new.test',
      challenge: 'http-01',
    });
    acme.stop();
  });

  it('a stored certificate for another name is ignored', async () => {
    const certs = await createDevCertificates({ dir: join(dir, 'dev2'), hosts: ['other.test'] });
    mkdirSync(join(dir, 'acme'), { recursive: true });
    copyFileSync(certs.certPath, join(dir, 'acme/mismatch.test.pem'));
    copyFileSync(certs.keyPath, join(dir, 'acme/mismatch.test-key.pem'));
    const { acme } = manager();
    acme.configure(config(['mismatch.test']), () => false);
    expect(acme.context('mismatch.test')).toBeUndefined();
    acme.stop();
  });

  describe('answerHttp01', () => {
    let server: Server;
    const get = async (path: string, host = 'on.test') => {
      if (!server) {
        const on = manager().acme;
        on.configure(config([]), () => false);
        const off = manager().acme;
        server = createServer((req, res) => {
          const acme = req.headers.host?.startsWith('off.') ? off : on;
          if (!acme.answerHttp01(req, res)) res.writeHead(301).end();
        });
        await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
        cleanups.push(() => server.close());
      }
      const { port } = server.address() as AddressInfo;
      return new Promise<number>((resolve, reject) =>
        request({ host: '127.0.0.1', port, path, headers: { host } }, (res) => {
          res.resume();
          resolve(res.statusCode!);
        })
          .on('error', reject)
          .end(),
      );
    };

    it('answers only challenge paths: unknown tokens 404, the rest is not its business', async () => {
      expect(await get('/.well-known/acme-challenge/nope')).toBe(404);
      expect(await get('/anything')).toBe(301);
      // Without relay.acme the redirect listener redirects challenge paths too.
      expect(await get('/.well-known/acme-challenge/nope', 'off.test')).toBe(301);
    });
  });
});

describe('AcmeCertificates of relay workers', () => {
  const shared = join(dir, 'workers');
  const until = async (check: () => boolean, what: string) => {
    for (let i = 0; !check(); i++) {
      if (i > 100) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  const answer = (acme: AcmeCertificates, token: string) => {
    const sent: { status?: number; body?: string } = {};
    const res = {
      writeHead(status: number) {
        sent.status = status;
        return res;
      },
      end(body?: string) {
        sent.body = body;
        return res;
      },
    };
    const req = { url: `/.well-known/acme-challenge/${token}` };
    acme.answerHttp01(req as never, res as never);
    return sent;
  };

  it('a follower orders nothing and serves what the leader writes, as it changes', async () => {
    const lines: Array<Record<string, unknown>> = [];
    const log = createLogger({
      name: 'test',
      write: (l) => lines.push(JSON.parse(l) as Record<string, unknown>),
      format: 'json',
    });
    const follower = new AcmeCertificates(shared, log, 'follower');
    cleanups.push(() => follower.stop());
    follower.configure(config(['w.test']), () => false);
    await new Promise((r) => setTimeout(r, 100));
    expect(lines.filter((l) => l.msg === 'acme certificate requested')).toStrictEqual([]);
    expect(follower.context('w.test')).toBeUndefined();

    // The leader's certificate appears: served from the next handshake on.
    const certs = await createDevCertificates({ dir: join(dir, 'dev3'), hosts: ['w.test'] });
    copyFileSync(certs.keyPath, join(shared, 'acme/w.test-key.pem'));
    copyFileSync(certs.certPath, join(shared, 'acme/w.test.pem'));
    await until(() => follower.context('w.test') !== undefined, 'the certificate loaded');
    expect(lines.find((l) => l.msg === 'acme certificate loaded')).toMatchObject({
      host: 'w.test',
    });

    // A pending HTTP-01 challenge of the leader is answered by the follower at once.
    expect(answer(follower, 'tok_1')).toStrictEqual({ status: 404, body: undefined });
    writeFileSync(join(shared, 'acme/challenges/http-01.tok_1'), 'tok_1.thumbprint');
    expect(answer(follower, 'tok_1')).toStrictEqual({ status: 200, body: 'tok_1.thumbprint' });
    expect(answer(follower, '..%2Fw.test.pem').status).toBe(404);

    // TLS-ALPN-01: the challenge certificate while the file is there.
    const alpn = JSON.stringify({
      cert: readFileSync(certs.certPath, 'utf8'),
      key: readFileSync(certs.keyPath, 'utf8'),
    });
    writeFileSync(join(shared, 'acme/challenges/tls-alpn-01.alpn.test'), alpn);
    await until(() => follower.context('alpn.test') !== undefined, 'the challenge certificate');
    rmSync(join(shared, 'acme/challenges/tls-alpn-01.alpn.test'));
    await until(() => follower.context('alpn.test') === undefined, 'the challenge gone');
  });
});

describe('fleetLeader', () => {
  it('is the live instance whose name sorts first, whatever the order of the list', () => {
    expect(fleetLeader(['relay-b', 'relay-a-1', 'relay-a-0'])).toBe('relay-a-0');
    expect(fleetLeader(['relay-a-0', 'relay-b'])).toBe(fleetLeader(['relay-b', 'relay-a-0']));
    expect(fleetLeader([])).toBeUndefined();
  });
});

describe('AcmeCertificates sharing a store (PostgreSQL)', () => {
  // Two connections to one SQLite state stand for two instances on one PostgreSQL store:
  // the same material calls, and `watch` tells of the other connection's writes.
  const stateDir = join(dir, 'shared-store');
  const stores: StateStore[] = [];
  afterAll(async () => {
    for (const s of stores) await s.close();
  });
  const open = async () => {
    const s = await openStateStore(stateDir);
    stores.push(s);
    return s;
  };
  const until = async (check: () => boolean, what: string) => {
    for (let i = 0; !check(); i++) {
      if (i > 100) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  const instance = (store: StateStore, leading: { now: boolean }) => {
    const lines: Array<Record<string, unknown>> = [];
    const log = createLogger({
      name: 'test',
      write: (l) => lines.push(JSON.parse(l) as Record<string, unknown>),
      format: 'json',
    });
    // Its own stateDir: nothing may be read from or written to files.
    const acme = new AcmeCertificates(join(stateDir, `files-${stores.length}`), log, 'leader', {
      store,
      isLeader: () => leading.now,
    });
    cleanups.push(() => acme.stop());
    return { acme, lines };
  };
  const answer = (acme: AcmeCertificates, token: string) =>
    new Promise<{ status: number; body?: string }>((resolve) => {
      let status = 0;
      const res = {
        writeHead(s: number) {
          status = s;
          return res;
        },
        end(body?: string) {
          resolve({ status, ...(body !== undefined && { body }) });
          return res;
        },
      };
      const handled = acme.answerHttp01(
        { url: `/.well-known/acme-challenge/${token}` } as never,
        res as never,
      );
      expect(handled).toBe(true);
    });
  const requested = (lines: Array<Record<string, unknown>>) =>
    lines.filter((l) => l.msg === 'acme certificate requested').map((l) => l.host);

  it('one instance orders; the other serves certificates and challenges from the store', async () => {
    const storeA = await open();
    const storeB = await open();
    const leaderSays = { now: true };
    const followerSays = { now: false };
    const a = instance(storeA, leaderSays);
    const b = instance(storeB, followerSays);
    const certs = await createDevCertificates({ dir: join(dir, 'dev4'), hosts: ['s.test'] });
    const pair = JSON.stringify({
      cert: readFileSync(certs.certPath, 'utf8'),
      key: readFileSync(certs.keyPath, 'utf8'),
    });
    await storeA.putMaterial('acme/cert/s.test', pair);

    for (const { acme } of [a, b]) {
      acme.configure(config(['s.test', 'new.test']), () => false);
      acme.fleetChanged();
      await acme.loaded();
    }
    // Both serve the stored certificate; only the leader orders, and only what is missing.
    expect(a.acme.context('s.test')).toBeDefined();
    expect(b.acme.context('s.test')).toBeDefined();
    await until(() => requested(a.lines).length > 0, 'the leader ordering');
    expect(requested(a.lines)).toStrictEqual(['new.test']);
    expect(requested(b.lines)).toStrictEqual([]);
    expect(existsSync(join(stateDir, 'files-2'))).toBe(false);

    // A pending HTTP-01 challenge stored by the leader is answered by the other instance.
    expect(await answer(b.acme, 'tok_1')).toStrictEqual({ status: 404 });
    await storeA.putMaterial('acme/http-01/tok_1', 'tok_1.thumbprint');
    await expect
      .poll(() => answer(b.acme, 'tok_1'), { timeout: 5000 })
      .toStrictEqual({ status: 200, body: 'tok_1.thumbprint' });
    await storeA.deleteMaterial('acme/http-01/tok_1');
    await expect
      .poll(() => answer(b.acme, 'tok_1'), { timeout: 5000 })
      .toStrictEqual({
        status: 404,
      });

    // A renewal stored by the leader is served by the other from its next handshake on.
    const before = b.acme.context('s.test');
    const renewed = await createDevCertificates({ dir: join(dir, 'dev5'), hosts: ['s.test'] });
    await storeA.putMaterial(
      'acme/cert/s.test',
      JSON.stringify({
        cert: readFileSync(renewed.certPath, 'utf8'),
        key: readFileSync(renewed.keyPath, 'utf8'),
      }),
    );
    await until(() => b.acme.context('s.test') !== before, 'the renewed certificate');

    // The leader leaves: the other takes over ordering, from what the store holds.
    leaderSays.now = false;
    a.acme.fleetChanged();
    followerSays.now = true;
    b.acme.fleetChanged();
    expect(b.lines.find((l) => l.msg === 'acme ordering here')).toBeDefined();
    await until(() => requested(b.lines).length > 0, 'the new leader ordering');
    expect(requested(b.lines)).toStrictEqual(['new.test']);
  });

  it('TLS-ALPN-01: the challenge certificate another instance stored is read on demand', async () => {
    const store = await open();
    const { acme } = instance(store, { now: false });
    const alpnConfig = config(['alpn.test']);
    alpnConfig.relay.acme!.challenge = 'tls-alpn-01';
    acme.configure(alpnConfig, () => false);
    await acme.loaded();
    expect(acme.sharedChallenge('elsewhere.test')).toBeUndefined();
    await acme.sharedChallenge('alpn.test');
    expect(acme.context('alpn.test')).toBeUndefined();
    const certs = await createDevCertificates({ dir: join(dir, 'dev6'), hosts: ['alpn.test'] });
    await (
      await open()
    ).putMaterial(
      'acme/tls-alpn-01/alpn.test',
      JSON.stringify({
        cert: readFileSync(certs.certPath, 'utf8'),
        key: readFileSync(certs.keyPath, 'utf8'),
      }),
    );
    await expect
      .poll(async () => {
        await acme.sharedChallenge('alpn.test');
        return acme.context('alpn.test');
      })
      .toBeDefined();
  });
});
