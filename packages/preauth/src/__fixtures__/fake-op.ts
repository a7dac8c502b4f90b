// A programmable OpenID provider on a real socket, for the tests that need to misbehave on
// purpose (forged ID tokens, wrong issuers, slow answers, key rotation). The full happy path
// against a real provider (oidc-provider) lives in tools/dev-idp.
import { createHash, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import {
  exportJWK,
  generateKeyPair,
  SignJWT,
  type CryptoKey,
  type JWK,
  type JWTPayload,
} from 'jose';
import { afterEach } from 'vitest';

export interface SigningKey {
  kid: string;
  alg: string;
  privateKey: CryptoKey;
  publicJwk: JWK;
}

export async function makeKey(
  alg = 'RS256',
  kid = randomBytes(6).toString('hex'),
): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const publicJwk = { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' };
  return { kid, alg, privateKey, publicJwk };
}

interface CodeGrant {
  clientId: string;
  redirectUri: string;
  nonce: string;
  challenge: string;
  method: string;
  claims: Record<string, unknown>;
}

export interface FakeOp {
  issuer: string;
  clientId: string;
  clientSecret: string;
  /** Keys whose public halves /jwks serves; `keys[0]` signs. */
  keys: SigningKey[];
  /** Claims of the next sign-ins (beyond iss/aud/sub/nonce/iat/exp). */
  user: Record<string, unknown>;
  /** Overrides the discovery document (merged over the default). */
  discovery: Record<string, unknown>;
  /** Replaces the ID token the token endpoint returns; gets the claims it would have signed. */
  forgeIdToken: ((claims: JWTPayload, op: FakeOp) => Promise<string> | string) | undefined;
  /** Requests by path. */
  hits: Record<string, number>;
  /** The last token request's headers and form. */
  lastTokenRequest: { headers: IncomingMessage['headers']; form: URLSearchParams } | undefined;
  /** Delay before answering, per path, in ms. */
  delays: Record<string, number>;
  /** Signs a JWT with `keys[0]` (or `key`). */
  sign(
    payload: JWTPayload,
    opts?: { key?: SigningKey; header?: Record<string, unknown> },
  ): Promise<string>;
  /** Adds a new signing key in front; old ones stay published unless `drop`. */
  rotate(opts?: { drop?: boolean }): Promise<SigningKey>;
  /** The authorization step: as if the user signed in at once; returns the redirect to the RP. */
  authorize(authorizationUrl: string): string;
  close(): Promise<void>;
}

/** Starts a fake provider on 127.0.0.1:0; closed after the test. */
export async function startFakeOp(
  opts: { clientSecret?: string; authMethods?: string[]; publicClient?: boolean } = {},
): Promise<FakeOp> {
  const codes = new Map<string, CodeGrant>();
  const sockets = new Set<Socket>();
  const server = createServer((req, res) => void route(req, res));
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const issuer = `http://127.0.0.1:${port}`;

  const op: FakeOp = {
    issuer,
    clientId: 'relay',
    clientSecret: opts.clientSecret ?? 'relay secret/with+specials',
    keys: [await makeKey()],
    user: {
      sub: 'user-1',
      email: 'alice@example.com',
      name: 'Alice Example',
      preferred_username: 'alice',
      groups: ['Staff', 'Finance'],
      amr: ['pwd', 'mfa'],
    },
    discovery: {},
    forgeIdToken: undefined,
    hits: {},
    lastTokenRequest: undefined,
    delays: {},
    async sign(payload, o = {}) {
      const key = o.key ?? op.keys[0]!;
      return new SignJWT(payload)
        .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: 'JWT', ...o.header })
        .sign(key.privateKey);
    },
    async rotate(o = {}) {
      const key = await makeKey();
      op.keys = o.drop ? [key] : [key, ...op.keys];
      return key;
    },
    authorize(authorizationUrl) {
      const u = new URL(authorizationUrl);
      const p = u.searchParams;
      const code = randomBytes(16).toString('base64url');
      codes.set(code, {
        clientId: p.get('client_id')!,
        redirectUri: p.get('redirect_uri')!,
        nonce: p.get('nonce')!,
        challenge: p.get('code_challenge')!,
        method: p.get('code_challenge_method')!,
        claims: { ...op.user },
      });
      const back = new URL(p.get('redirect_uri')!);
      back.searchParams.set('code', code);
      back.searchParams.set('state', p.get('state')!);
      back.searchParams.set('iss', issuer);
      return back.href;
    },
    close: () =>
      new Promise<void>((resolve) => {
        sockets.forEach((s) => s.destroy());
        server.close(() => resolve());
      }),
  };
  afterEach(() => op.close());

  async function route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url!, issuer);
    op.hits[url.pathname] = (op.hits[url.pathname] ?? 0) + 1;
    const delay = op.delays[url.pathname];
    if (delay) await new Promise((r) => setTimeout(r, delay));
    const json = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    };
    switch (url.pathname) {
      case '/.well-known/openid-configuration':
        return json(200, {
          issuer,
          authorization_endpoint: `${issuer}/authorize`,
          token_endpoint: `${issuer}/token`,
          jwks_uri: `${issuer}/jwks`,
          userinfo_endpoint: `${issuer}/userinfo`,
          end_session_endpoint: `${issuer}/logout`,
          token_endpoint_auth_methods_supported: opts.authMethods ?? [
            'client_secret_basic',
            'client_secret_post',
          ],
          code_challenge_methods_supported: ['S256'],
          authorization_response_iss_parameter_supported: true,
          ...op.discovery,
        });
      case '/jwks':
        return json(200, { keys: op.keys.map((k) => k.publicJwk) });
      case '/userinfo':
        return json(200, { ...op.user, userinfo_only: 'yes' });
      case '/token': {
        const chunks: Buffer[] = [];
        for await (const c of req) chunks.push(c as Buffer);
        const form = new URLSearchParams(Buffer.concat(chunks).toString());
        op.lastTokenRequest = { headers: req.headers, form };
        const grant = codes.get(form.get('code') ?? '');
        codes.delete(form.get('code') ?? '');
        if (!grant) return json(400, { error: 'invalid_grant' });
        const basic = /^Basic (.+)$/.exec(req.headers.authorization ?? '');
        const [id, secret] = basic
          ? Buffer.from(basic[1]!, 'base64')
              .toString()
              .split(':')
              .map((s) => decodeURIComponent(s.replace(/\+/g, ' ')))
          : [form.get('client_id'), form.get('client_secret')];
        const authOk = opts.publicClient
          ? id === op.clientId && secret == null
          : id === op.clientId && secret === op.clientSecret;
        if (!authOk) return json(401, { error: 'invalid_client' });
        const verifier = form.get('code_verifier') ?? '';
        const challenge = createHash('sha256').update(verifier).digest('base64url');
        if (grant.method !== 'S256' || challenge !== grant.challenge) {
          return json(400, { error: 'invalid_grant' });
        }
        if (form.get('redirect_uri') !== grant.redirectUri)
          return json(400, { error: 'invalid_grant' });
        const now = Math.floor(Date.now() / 1000);
        const claims: JWTPayload = {
          iss: issuer,
          aud: op.clientId,
          iat: now,
          exp: now + 300,
          nonce: grant.nonce,
          ...grant.claims,
        };
        const idToken = op.forgeIdToken ? await op.forgeIdToken(claims, op) : await op.sign(claims);
        return json(200, {
          access_token: 'opaque-at',
          token_type: 'Bearer',
          id_token: idToken,
          expires_in: 300,
        });
      }
      default:
        return json(404, { error: 'not_found' });
    }
  }
  return op;
}
