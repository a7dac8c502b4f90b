import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { SsoError } from '../errors.js';
import { Der } from './der.js';
import {
  KerberosDelegator,
  kdcErrorToSsoError,
  type KerberosDelegatorOptions,
} from './delegator.js';
import {
  FAKE_PASSWORD,
  FAKE_REALM,
  FakeKdc,
  type FakeKdcOptions,
} from './__fixtures__/fake-kdc.js';

const dir = mkdtempSync(join(tmpdir(), 'appproxy-krb-unit-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const kdcs: FakeKdc[] = [];
const servers: Server[] = [];
const held = new Set<Socket>();
afterEach(async () => {
  for (const sock of held) sock.destroy();
  held.clear();
  await Promise.all(kdcs.splice(0).map((k) => k.stop()));
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
});

async function fakeKdc(opts: FakeKdcOptions = {}): Promise<FakeKdc> {
  const k = await new FakeKdc(opts).start();
  kdcs.push(k);
  return k;
}

function delegator(kdc: FakeKdc, extra: Partial<KerberosDelegatorOptions> = {}) {
  return new KerberosDelegator({
    principal: `svc@${FAKE_REALM}`,
    password: FAKE_PASSWORD,
    kdc: [kdc.address],
    ...extra,
  });
}

async function failure(p: Promise<unknown>): Promise<SsoError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(SsoError);
  return err as SsoError;
}

/** The AP-REQ inside a `Negotiate` header: SPNEGO → GSS token (OID, TOK_ID) → [APPLICATION 14]. */
function apReqOf(header: string): Der {
  const spnego = Der.parse(Buffer.from(header.replace(/^Negotiate /, ''), 'base64'));
  const init = spnego.children()[1]!.inner();
  const gss = Der.parse(init.need(2).octets());
  return Der.parse(gss.content.subarray(11 + 2));
}

describe('KerberosDelegator with a fake KDC', () => {
  it('logs in with pre-authentication, then S4U2Self and S4U2Proxy; caches the ticket', async () => {
    const kdc = await fakeKdc();
    const k = delegator(kdc);
    expect(k.realm).toBe(FAKE_REALM);
    const h1 = await k.authorization('alice', 'HTTP/web.fake.test');
    expect(h1).toMatch(/^Negotiate /);
    expect(kdc.log).toEqual(['as', 'as-preauth', 's4u2self', 's4u2proxy']);
    expect(k.stats).toEqual({ kdcExchanges: 4, ticketCacheHits: 0 });
    const h2 = await k.authorization('alice', 'HTTP/web.fake.test');
    expect(h2).not.toBe(h1);
    expect(k.stats).toEqual({ kdcExchanges: 4, ticketCacheHits: 1 });
    // Another user or SPN: the TGT is reused, two TGS exchanges.
    await k.authorization('carol', 'HTTP/web.fake.test');
    await k.authorization('alice', 'HTTP/other.fake.test');
    expect(k.stats.kdcExchanges).toBe(8);
    expect(kdc.pacOptionsSeen.every(Boolean)).toBe(true);
    // Every connection was closed: the KDC sees none left once the FINs are in.
    await expect.poll(() => kdc.openConnections, { timeout: 1000 }).toBe(0);
  });

  it('ticket(): the service ticket’s end time, from the KDC or the cache', async () => {
    const kdc = await fakeKdc({ lifetimeMs: 3600_000 });
    const k = delegator(kdc);
    const before = Date.now();
    const first = await k.ticket('alice', 'HTTP/web.fake.test');
    expect(first.cached).toBe(false);
    expect(first.endsAt.getTime()).toBeGreaterThanOrEqual(before + 3600_000 - 2000);
    expect(first.endsAt.getTime()).toBeLessThanOrEqual(Date.now() + 3600_000 + 2000);
    const again = await k.ticket('alice', 'HTTP/web.fake.test');
    expect(again).toStrictEqual({ endsAt: first.endsAt, cached: true });
    expect(kdc.log).toEqual(['as', 'as-preauth', 's4u2self', 's4u2proxy']);
    const unknown = await failure(
      delegator(await fakeKdc({ fail: (e) => (e === 's4u2self' ? 6 : undefined) })).ticket(
        'nobody',
        'HTTP/web.fake.test',
      ),
    );
    expect(unknown.code).toBe('SSO_USER_UNKNOWN');
  });

  it('gives each call a later (ctime, cusec), even with a stopped clock', async () => {
    const kdc = await fakeKdc();
    const t = Date.now();
    const k = delegator(kdc, { now: () => t });
    const headers = await Promise.all([1, 2, 3].map(() => k.authorization('alice', 'HTTP/w')));
    expect(new Set(headers).size).toBe(3);
    expect(k.stats.kdcExchanges).toBe(4); // concurrent calls shared one exchange
    for (const h of headers) expect(apReqOf(h).tag).toBe(14);
    const seen = headers.map((h) => kdc.acceptorView(h));
    for (const a of seen) {
      expect(a).toMatchObject({ ticketClient: 'alice', cname: 'alice', checksumType: 0x8003 });
      expect(a.checksum.toString('hex')).toBe('10000000' + '00'.repeat(16) + '3c000000');
    }
    const times = seen.map((a) => a.ctime * 1000 + a.cusec);
    expect(times[1]).toBeGreaterThan(times[0]!);
    expect(times[2]).toBeGreaterThan(times[1]!);
    expect(times[0]! - t * 1000).toBeLessThan(1_000_000);
  });

  it('keeps service tickets until 5 min before their end, then asks again', async () => {
    let now = Date.now();
    const kdc = await fakeKdc({ lifetimeMs: 3600_000, now: () => now });
    const k = delegator(kdc, { now: () => now });
    await k.authorization('alice', 'HTTP/w');
    now += 54 * 60_000;
    await k.authorization('alice', 'HTTP/w');
    expect(k.stats).toEqual({ kdcExchanges: 4, ticketCacheHits: 1 });
    now += 2 * 60_000; // 56 min: within 5 min of the end → S4U again; TGT (80 % = 48 min) renewed
    await k.authorization('alice', 'HTTP/w');
    expect(kdc.log).toEqual([
      'as',
      'as-preauth',
      's4u2self',
      's4u2proxy',
      'as',
      'as-preauth',
      's4u2self',
      's4u2proxy',
    ]);
  });

  it('keeps at most maxTickets tickets, dropping the least recently used', async () => {
    const kdc = await fakeKdc();
    const k = delegator(kdc, { maxTickets: 2 });
    await k.authorization('a', 'HTTP/w');
    await k.authorization('b', 'HTTP/w');
    await k.authorization('a', 'HTTP/w'); // a is now the most recent
    await k.authorization('c', 'HTTP/w'); // drops b
    expect(k.stats).toEqual({ kdcExchanges: 8, ticketCacheHits: 1 });
    await k.authorization('a', 'HTTP/w');
    await k.authorization('c', 'HTTP/w');
    expect(k.stats).toEqual({ kdcExchanges: 8, ticketCacheHits: 3 });
    await k.authorization('b', 'HTTP/w');
    expect(k.stats.kdcExchanges).toBe(10);
  });

  it('renews the TGT after 80 % of its life', async () => {
    let now = Date.now();
    const kdc = await fakeKdc({ lifetimeMs: 10 * 3600_000, now: () => now });
    const k = delegator(kdc, { now: () => now });
    await k.authorization('a', 'HTTP/w');
    now += 7.9 * 3600_000;
    await k.authorization('b', 'HTTP/w');
    expect(kdc.log.filter((e) => e === 'as-preauth')).toHaveLength(1);
    now += 0.2 * 3600_000;
    await k.authorization('c', 'HTTP/w');
    expect(kdc.log.filter((e) => e === 'as-preauth')).toHaveLength(2);
    // The old TGT still has 2 h: when the KDC is gone, S4U still tries with it (and says so).
    now += 7.9 * 3600_000;
    await kdc.stop();
    const err = await failure(k.authorization('d', 'HTTP/w'));
    expect(err.code).toBe('SSO_KDC_UNREACHABLE');
  });

  it('does not cache a failure', async () => {
    let deny = true;
    const kdc = await fakeKdc({ fail: (x) => (x === 's4u2proxy' && deny ? 13 : undefined) });
    const k = delegator(kdc);
    const err = await failure(k.authorization('alice', 'HTTP/w'));
    expect(err.code).toBe('SSO_DELEGATION_DENIED');
    expect(err.kdcError).toEqual({ code: 13, name: 'KDC_ERR_BADOPTION' });
    expect(err.message).toContain('allow svc to delegate to HTTP/w with any protocol');
    // Denied with and without PA-PAC-OPTIONS.
    expect(kdc.pacOptionsSeen).toEqual([true, false]);
    deny = false;
    await k.authorization('alice', 'HTTP/w');
    expect(k.stats.ticketCacheHits).toBe(0);
    // The KDC took PA-PAC-OPTIONS: a later refusal costs no second try.
    deny = true;
    await failure(k.authorization('bob', 'HTTP/w'));
    expect(kdc.pacOptionsSeen).toEqual([true, false, true, true]);
  });

  it('drops PA-PAC-OPTIONS for good when the KDC only takes S4U2Proxy without it', async () => {
    const kdc = await fakeKdc();
    const k = delegator(kdc);
    let calls = 0;
    kdc.opts.fail = (x) =>
      x === 's4u2proxy' && kdc.pacOptionsSeen.at(-1) && ++calls ? 13 : undefined;
    await k.authorization('alice', 'HTTP/w');
    await k.authorization('bob', 'HTTP/w');
    expect(kdc.pacOptionsSeen).toEqual([true, false, false]);
  });

  it.each([
    ['as', 24, 'SSO_SERVICE_LOGIN_FAILED'],
    ['as', 6, 'SSO_SERVICE_LOGIN_FAILED'],
    ['as', 18, 'SSO_SERVICE_LOGIN_FAILED'],
    ['as-preauth', 37, 'SSO_CLOCK_SKEW'],
    ['s4u2self', 6, 'SSO_USER_UNKNOWN'],
    ['s4u2self', 7, 'SSO_USER_UNKNOWN'],
    ['s4u2proxy', 12, 'SSO_DELEGATION_DENIED'],
    ['s4u2proxy', 7, 'SSO_SPN_UNKNOWN'],
    ['s4u2proxy', 60, 'SSO_KERBEROS_FAILED'],
  ] as const)('%s KRB-ERROR %i → %s', async (exchange, code, want) => {
    const kdc = await fakeKdc({ fail: (x) => (x === exchange ? code : undefined) });
    const err = await failure(delegator(kdc).authorization('alice', 'HTTP/w'));
    expect(err.code).toBe(want);
    expect(err.kdcError?.code).toBe(code);
  });

  it('a wrong password is SSO_SERVICE_LOGIN_FAILED and never appears in the message', async () => {
    const kdc = await fakeKdc();
    const err = await failure(
      delegator(kdc, { password: 'Not-The-Pass-9' }).authorization('alice', 'HTTP/w'),
    );
    expect(err.code).toBe('SSO_SERVICE_LOGIN_FAILED');
    expect(err.kdcError?.name).toBe('KDC_ERR_PREAUTH_FAILED');
    expect(JSON.stringify({ m: err.message, s: err.stack })).not.toContain('Not-The-Pass-9');
  });

  it('shows no password or key when inspected', async () => {
    const kdc = await fakeKdc();
    const k = delegator(kdc);
    await k.authorization('alice', 'HTTP/w');
    const shown = inspect(k, { depth: 10, showHidden: true }) + JSON.stringify(k);
    expect(shown).not.toContain(FAKE_PASSWORD);
    expect(shown).toContain('EncryptionKey(etype 18)');
    expect(shown).not.toMatch(/value: <Buffer/);
  });

  it('clock skew names both times', () => {
    const err = kdcErrorToSsoError(
      { code: 37, stime: Date.UTC(2026, 0, 1, 12), realm: 'R' },
      'as',
      { service: 'svc', realm: 'R', now: Date.UTC(2026, 0, 1, 13) },
    );
    expect(err.code).toBe('SSO_CLOCK_SKEW');
    expect(err.message).toContain(
      "the KDC's time is 2026-01-01T12:00:00.000Z, ours 2026-01-01T13:00:00.000Z",
    );
  });
});

describe('transport', () => {
  it('falls back to UDP when TCP cannot connect', async () => {
    const kdc = await fakeKdc({ tcp: false, udp: true });
    const k = delegator(kdc);
    await k.authorization('alice', 'HTTP/w');
    expect(kdc.log).toHaveLength(4);
  });

  it('goes back to TCP after KRB_ERR_RESPONSE_TOO_BIG on UDP (and fails if TCP still cannot)', async () => {
    const kdc = await fakeKdc({ tcp: false, udp: true, udpTooBig: true });
    const err = await failure(delegator(kdc).authorization('alice', 'HTTP/w'));
    expect(err.code).toBe('SSO_KDC_UNREACHABLE');
    expect(err.message).toContain('udp answer too big');
  });

  it('tries the next KDC when one accepts but never answers, within the timeout', async () => {
    const silent = createServer((sock) => held.add(sock));
    servers.push(silent);
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const stuck = `127.0.0.1:${(silent.address() as AddressInfo).port}`;
    const kdc = await fakeKdc();
    const k = delegator(kdc, { kdc: [stuck, kdc.address], timeoutMs: 200 });
    const started = Date.now();
    await k.authorization('alice', 'HTTP/w');
    // The first exchange waits 200 ms for the stuck KDC; the other three go to the one that answered.
    expect(Date.now() - started).toBeGreaterThanOrEqual(195);
    expect(Date.now() - started).toBeLessThan(600);
    expect(held.size).toBe(1);
    expect(kdc.log).toHaveLength(4);
  });

  it('no KDC answering → SSO_KDC_UNREACHABLE naming every address', async () => {
    const free = createServer();
    await new Promise<void>((r) => free.listen(0, '127.0.0.1', r));
    const port = (free.address() as AddressInfo).port;
    await new Promise((r) => free.close(r));
    const k = new KerberosDelegator({
      principal: 'svc@FAKE.TEST',
      password: 'x',
      kdc: [`127.0.0.1:${port}`, `[::1]:${port}`],
      timeoutMs: 300,
    });
    const started = Date.now();
    const err = await failure(k.authorization('alice', 'HTTP/w'));
    expect(err.code).toBe('SSO_KDC_UNREACHABLE');
    expect(err.kdcError).toBeUndefined();
    expect(err.message).toContain(`127.0.0.1:${port}`);
    expect(err.message).toContain(`[::1]:${port}`);
    expect(Date.now() - started).toBeLessThan(2000);
  });
});

describe('configuration', () => {
  const conf = join(dir, 'krb5.conf');
  writeFileSync(
    conf,
    `[libdefaults]\n  default_realm = FAKE.TEST\n[realms]\n  FAKE.TEST = {\n    kdc = 127.0.0.1:1\n  }\n`,
  );
  const invalid = (opts: KerberosDelegatorOptions) => {
    try {
      new KerberosDelegator(opts);
    } catch (err) {
      expect(err).toBeInstanceOf(SsoError);
      expect((err as SsoError).code).toBe('APPPROXY_SSO_KERBEROS_CONFIG_INVALID');
      return (err as SsoError).message;
    }
    throw new Error('no error');
  };

  it('takes the realm and KDCs from krb5.conf', () => {
    const k = new KerberosDelegator({ principal: 'svc', password: 'p', krb5Conf: conf });
    expect(k.realm).toBe('FAKE.TEST');
  });

  it('names the file and the problem', () => {
    expect(invalid({ principal: 'svc', password: 'p', krb5Conf: join(dir, 'none') })).toContain(
      join(dir, 'none'),
    );
    expect(invalid({ principal: 'svc@OTHER.TEST', password: 'p', krb5Conf: conf })).toMatch(
      /no KDC for OTHER\.TEST/,
    );
    expect(invalid({ principal: 'svc@R', kdc: ['h'] })).toMatch(
      /exactly one of keytab and password/,
    );
    expect(
      invalid({ principal: 'svc@R', kdc: ['h'], keytab: join(dir, 'missing.keytab') }),
    ).toContain('missing.keytab: ENOENT');
    const junk = join(dir, 'junk.keytab');
    writeFileSync(junk, 'junk');
    expect(invalid({ principal: 'svc@R', kdc: ['h'], keytab: junk })).toContain('junk.keytab');
  });
});
