import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { get } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createDevCertificates } from '@appproxy/pki';
import { describe, expect, it, onTestFinished } from 'vitest';
import { DEV_USERS, startDevIdp } from './server.mjs';

const cli = new URL('./cli.mjs', import.meta.url).pathname;
const client = {
  clientId: 'relay',
  clientSecret: 'relay-secret',
  redirectUris: ['https://app.example.com/.appproxy/callback'],
  postLogoutRedirectUris: ['https://app.example.com/.appproxy/signed-out'],
};

async function started(opts: Parameters<typeof startDevIdp>[0] = {}) {
  const idp = await startDevIdp({ clients: [client], ...opts });
  onTestFinished(() => idp.close());
  return idp;
}

describe('startDevIdp', () => {
  it('publishes discovery for code + PKCE (S256), RP-initiated logout, groups and amr', async () => {
    const idp = await started();
    expect(idp.issuer).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const doc = (await (
      await fetch(`${idp.issuer}/.well-known/openid-configuration`)
    ).json()) as Record<string, unknown>;
    expect(doc).toMatchObject({
      issuer: idp.issuer,
      code_challenge_methods_supported: ['S256'],
      end_session_endpoint: `${idp.issuer}/session/end`,
      authorization_response_iss_parameter_supported: true,
      id_token_signing_alg_values_supported: ['RS256'],
    });
    expect(doc.scopes_supported).toEqual(
      expect.arrayContaining(['openid', 'profile', 'email', 'groups']),
    );
    expect(doc.claims_supported).toEqual(expect.arrayContaining(['groups', 'roles', 'amr', 'upn']));
  });

  it('refuses an authorization request without PKCE', async () => {
    const idp = await started();
    const url = new URL(`${idp.issuer}/auth`);
    url.search = new URLSearchParams({
      client_id: 'relay',
      response_type: 'code',
      redirect_uri: client.redirectUris[0]!,
      scope: 'openid',
      state: 's',
    }).toString();
    const res = await fetch(url, { redirect: 'manual' });
    expect(res.status).toBe(303);
    const back = new URL(res.headers.get('location')!);
    expect(back.searchParams.get('error')).toBe('invalid_request');
    expect(back.searchParams.get('error_description')).toMatch(/PKCE/);
  });

  it('rotates signing keys: the new kid signs, both stay published unless dropped', async () => {
    const idp = await started();
    const jwks = async () =>
      (
        (await (await fetch(`${idp.issuer}/jwks`)).json()) as {
          keys: { kid: string; d?: string }[];
        }
      ).keys;
    const first = idp.currentKeyId();
    expect((await jwks()).map((k) => k.kid)).toEqual([first]);
    const second = await idp.rotateSigningKey();
    expect(idp.currentKeyId()).toBe(second);
    expect((await jwks()).map((k) => k.kid)).toEqual([second, first]);
    const third = await idp.rotateSigningKey({ dropOld: true });
    const keys = await jwks();
    expect(keys.map((k) => k.kid)).toEqual([third]);
    expect(keys[0]!.d).toBeUndefined(); // public halves only
  });

  it('has the documented test users: MFA, password only, many groups', () => {
    expect(DEV_USERS.map((u) => [u.username, u.amr, u.groups.length])).toEqual([
      ['alice', ['pwd', 'mfa'], 3],
      ['bob', ['pwd'], 1],
      ['carol', ['pwd', 'mfa'], 201],
    ]);
  });

  it('serves HTTPS with a given certificate', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'appproxy-dev-idp-'));
    onTestFinished(() => rm(dir, { recursive: true, force: true }));
    const certs = await createDevCertificates({ dir, hosts: ['127.0.0.1', 'localhost'] });
    const idp = await started({
      tls: { cert: await readFile(certs.certPath), key: await readFile(certs.keyPath) },
    });
    expect(idp.issuer).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const ca = await readFile(certs.caCertPath);
    const doc = await new Promise<Record<string, unknown>>((resolve, reject) => {
      get(`${idp.issuer}/.well-known/openid-configuration`, { ca }, (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (c: string) => (body += c));
        res.on('end', () => resolve(JSON.parse(body) as Record<string, unknown>));
      }).on('error', reject);
    });
    expect(doc.issuer).toBe(idp.issuer);
    expect(doc.token_endpoint).toBe(`${idp.issuer}/token`);
  });
});

describe('appproxy-dev-idp CLI', () => {
  function run(args: string[]) {
    const child = spawn(process.execPath, [cli, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    onTestFinished(() => {
      if (child.exitCode === null) child.kill('SIGKILL');
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    const firstLine = new Promise<string>((resolve, reject) => {
      child.stdout.on('data', () => {
        const nl = stdout.indexOf('\n');
        if (nl !== -1) resolve(stdout.slice(0, nl));
      });
      void exited.then(() => reject(new Error(`exited: ${stderr}`)));
    });
    firstLine.catch(() => {}); // awaited only by the tests that expect a start
    return { child, firstLine, exited, stderr: () => stderr };
  }

  it('prints one JSON line, serves, and stops cleanly on SIGTERM', async () => {
    const { child, firstLine, exited } = run([
      '--port',
      '0',
      '--client-secret',
      'demo-secret',
      '--redirect-uri',
      'https://intranet.apps.localhost:8443/.appproxy/callback',
      '--native-client-id',
      'appproxy-cli',
    ]);
    const info = JSON.parse(await firstLine) as {
      issuer: string;
      audience: string;
      users: { username: string }[];
    };
    expect(info.audience).toBe('api://appproxy');
    expect(info.users.map((u) => u.username)).toEqual(['alice', 'bob', 'carol']);
    const doc = (await (await fetch(`${info.issuer}/.well-known/openid-configuration`)).json()) as {
      issuer: string;
    };
    expect(doc.issuer).toBe(info.issuer);
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
  });

  it('exits 2 with a one-line reason on bad arguments', async () => {
    const bad = run(['--port', 'x', '--redirect-uri', 'https://a/']);
    expect(await bad.exited).toBe(2);
    expect(bad.stderr()).toMatch(/^appproxy-dev-idp: --port must be 0\.\.65535/);
    const none = run(['--port', '0']);
    expect(await none.exited).toBe(2);
    expect(none.stderr()).toMatch(/--redirect-uri/);
  });
});
