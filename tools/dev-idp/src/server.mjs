// The development OpenID provider: oidc-provider with a few test users, a plain HTML login
// form, PKCE required, RP-initiated logout, JWT access tokens for one API audience (resource
// indicators) and signing-key rotation. For the demo and the tests — never for production
// (accounts, sessions and grants live in memory).
import { createHash, randomBytes, generateKeyPairSync } from 'node:crypto';
import { createServer as createHttpServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import Provider, { errors } from 'oidc-provider';

/**
 * A test user.
 * @typedef {object} DevUser
 * @property {string} sub stable subject identifier
 * @property {string} username what the login form takes (also `preferred_username`)
 * @property {string} password
 * @property {string} name
 * @property {string} email
 * @property {string} upn
 * @property {string[]} groups
 * @property {string[]} roles
 * @property {string[]} amr authentication methods the sign-in reports (`['pwd', 'mfa']`)
 * @property {Record<string, string>} [extra] more profile claims, as an on-premises directory
 *   sync adds them (`onprem_sam`, `employee_id`); a user may lack some (single sign-on tests)
 */

/**
 * A client (relying party) registered at the provider.
 * @typedef {object} DevClient
 * @property {string} clientId
 * @property {string} [clientSecret] absent: a public client (PKCE only; native apps, CLIs)
 * @property {string[]} redirectUris e.g. `https://app.example.com/.appproxy/callback`; for a public
 *   native client `http://127.0.0.1/callback` (any port, RFC 8252)
 * @property {string[]} [postLogoutRedirectUris] e.g. `https://app.example.com/.appproxy/signed-out`
 */

/**
 * @typedef {object} DevIdpOptions
 * @property {string} [host] listen address, also the issuer's host (default 127.0.0.1)
 * @property {number} [port] default 0: any free port
 * @property {DevClient[]} [clients]
 * @property {DevUser[]} [users] default {@link DEV_USERS}
 * @property {string} [audience] the API whose JWT access tokens native clients get with
 *   `resource=<audience>` (default `api://appproxy`)
 * @property {number} [accessTokenTtl] seconds (default 600)
 * @property {number} [idTokenTtl] seconds (default 600)
 * @property {boolean} [conformIdTokenClaims] true: ID tokens carry only `sub` & co., profile
 *   claims come from userinfo (strict OIDC); default false: ID tokens carry them (like Entra ID,
 *   Keycloak, Okta)
 * @property {{ cert: string | Buffer, key: string | Buffer }} [tls] serve HTTPS with this PEM pair
 */

/**
 * A running development provider.
 * @typedef {object} DevIdp
 * @property {string} issuer e.g. `http://127.0.0.1:41234`
 * @property {number} port
 * @property {DevUser[]} users
 * @property {string} audience
 * @property {Record<string, number>} hits requests by path (`/jwks`, `/token`, …)
 * @property {() => string} currentKeyId kid that signs now
 * @property {(opts?: { dropOld?: boolean }) => Promise<string>} rotateSigningKey a new RS256 key
 *   signs from now on; the old ones stay published unless `dropOld`. Returns the new kid.
 * @property {() => Promise<void>} close
 */

/** Carol's groups: stable, GUID-like, as Entra ID sends them (for the large-session tests). */
const manyGroups = Array.from({ length: 200 }, (_, i) => {
  const h = createHash('sha256').update(`carol-group-${i}`).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-8${h.slice(17, 20)}-${h.slice(20, 32)}`;
});

/** @type {DevUser[]} */
export const DEV_USERS = [
  {
    sub: '0f6a8b3c-7d51-4b9e-9a2f-a11ce0000001',
    username: 'alice',
    password: 'alice-password',
    name: 'Alice Admin',
    email: 'alice@example.com',
    upn: 'alice@corp.example.com',
    groups: ['Staff', 'Finance', 'AppProxy Admins'],
    roles: ['Expenses.Approver'],
    amr: ['pwd', 'mfa'],
    extra: { onprem_sam: 'ALICE', employee_id: 'E-1001' },
  },
  {
    sub: '0f6a8b3c-7d51-4b9e-9a2f-b0b000000002',
    username: 'bob',
    password: 'bob-password',
    name: 'Bob Builder',
    email: 'bob@example.com',
    upn: 'bob@corp.example.com',
    groups: ['Staff'],
    roles: [],
    amr: ['pwd'],
    extra: { onprem_sam: 'BOB', employee_id: 'E-1002' },
  },
  {
    sub: '0f6a8b3c-7d51-4b9e-9a2f-ca7010000003',
    username: 'carol',
    password: 'carol-password',
    name: 'Carol Many-Groups',
    email: 'carol@example.com',
    upn: 'carol@corp.example.com',
    groups: ['Staff', ...manyGroups],
    roles: ['Expenses.Reader'],
    amr: ['pwd', 'mfa'],
  },
];

const SCOPES = ['openid', 'offline_access', 'profile', 'email', 'groups'];
const CLAIMS = {
  // amr with openid: every ID token says how the user signed in (MFA policies read it).
  openid: ['sub', 'amr'],
  // onprem_sam and employee_id: what directory sync adds for some users (not carol).
  profile: ['name', 'preferred_username', 'upn', 'onprem_sam', 'employee_id'],
  email: ['email', 'email_verified'],
  groups: ['groups', 'roles'],
};

/**
 * Starts the provider. `issuer` is `http://<host>:<port>` (or https with `tls`); discovery at
 * `<issuer>/.well-known/openid-configuration`.
 *
 * @param {DevIdpOptions} [opts]
 * @returns {Promise<DevIdp>}
 */
export async function startDevIdp(opts = {}) {
  const host = opts.host ?? '127.0.0.1';
  const users = opts.users ?? DEV_USERS;
  const audience = opts.audience ?? 'api://appproxy';
  const store = new Map();
  const cookieKeys = [randomBytes(32).toString('base64url')];
  /** @type {Array<Record<string, unknown>>} private JWKs, [0] signs */
  let keys = [newSigningKey()];
  /** @type {Record<string, number>} */
  const hits = {};

  /** @type {import('oidc-provider').default} */
  let provider;
  /** @type {(req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse) => void} */
  let callback;

  const handler = (req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    hits[path] = (hits[path] ?? 0) + 1;
    if (path.startsWith('/interaction/')) {
      interaction(provider, users, req, res).catch((err) => fail(res, err));
      return;
    }
    callback(req, res);
  };
  const server = opts.tls ? createHttpsServer(opts.tls, handler) : createHttpServer(handler);
  const sockets = new Set();
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, host, () => {
      server.off('error', reject);
      resolve(undefined);
    });
  });
  const port = /** @type {import('node:net').AddressInfo} */ (server.address()).port;
  const issuer = `${opts.tls ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${port}`;

  const build = () => {
    provider = new Provider(issuer, {
      adapter: (name) => new MemoryAdapter(name, store),
      clients: (opts.clients ?? []).map(toClientMetadata),
      findAccount: (_ctx, sub) => {
        const user = users.find((u) => u.sub === sub);
        if (!user) return undefined;
        return { accountId: user.sub, claims: () => userClaims(user) };
      },
      scopes: SCOPES,
      claims: CLAIMS,
      conformIdTokenClaims: opts.conformIdTokenClaims ?? false,
      jwks: { keys },
      cookies: { keys: cookieKeys },
      pkce: { required: () => true },
      interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
      // First-party clients: no consent screen; the grant covers what the client asked for.
      loadExistingGrant: async (ctx) => {
        const grantId =
          ctx.oidc.result?.consent?.grantId ??
          ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
        if (grantId) {
          const existing = await ctx.oidc.provider.Grant.find(grantId);
          if (existing) return grantForRequest(ctx, existing);
        }
        const grant = new ctx.oidc.provider.Grant({
          clientId: ctx.oidc.client.clientId,
          accountId: ctx.oidc.session.accountId,
        });
        return grantForRequest(ctx, grant);
      },
      extraTokenClaims: (ctx, token) => {
        if (token.kind !== 'AccessToken' || !token.accountId) return undefined;
        const user = users.find((u) => u.sub === token.accountId);
        if (!user) return undefined;
        const amr = ctx.oidc.entities.AuthorizationCode?.amr ?? ctx.oidc.entities.RefreshToken?.amr;
        return {
          preferred_username: user.username,
          email: user.email,
          name: user.name,
          groups: user.groups,
          roles: user.roles,
          ...(amr && { amr }),
        };
      },
      ttl: {
        AccessToken: opts.accessTokenTtl ?? 600,
        AuthorizationCode: 60,
        IdToken: opts.idTokenTtl ?? 600,
        Interaction: 600,
        Session: 86_400,
        Grant: 86_400,
        RefreshToken: 86_400,
      },
      clientBasedCORS: () => true,
      renderError: async (ctx, out) => {
        ctx.type = 'html';
        ctx.body = page(
          'Sign-in error',
          `<h1>Sign-in error</h1>${Object.entries(out)
            .map(([k, v]) => `<p><b>${escapeHtml(k)}</b>: ${escapeHtml(String(v))}</p>`)
            .join('')}`,
        );
      },
      features: {
        devInteractions: { enabled: false },
        rpInitiatedLogout: {
          enabled: true,
          logoutSource: async (ctx, form) => {
            ctx.body = page(
              'Sign out',
              `<h1>Sign out of the dev identity provider?</h1>${form}
<button autofocus type="submit" form="op.logoutForm" value="yes" name="logout">Yes, sign me out</button>
<button type="submit" form="op.logoutForm">No, stay signed in</button>`,
            );
          },
          postLogoutSuccessSource: async (ctx) => {
            ctx.body = page('Signed out', '<h1>Signed out</h1><p>You have signed out.</p>');
          },
        },
        resourceIndicators: {
          enabled: true,
          defaultResource: (_ctx, _client, oneOf) => oneOf,
          useGrantedResource: () => true,
          getResourceServerInfo: (_ctx, resource) => {
            if (resource !== audience) throw new errors.InvalidTarget();
            return {
              audience,
              scope: 'openid profile email groups offline_access',
              accessTokenFormat: 'jwt',
              accessTokenTTL: opts.accessTokenTtl ?? 600,
              jwt: { sign: { alg: 'RS256' } },
            };
          },
        },
        revocation: { enabled: true },
      },
    });
    callback = provider.callback();
  };
  build();

  return {
    issuer,
    port,
    users,
    audience,
    hits,
    currentKeyId: () => /** @type {string} */ (keys[0].kid),
    async rotateSigningKey({ dropOld = false } = {}) {
      const key = newSigningKey();
      keys = dropOld ? [key] : [key, ...keys];
      build();
      return /** @type {string} */ (key.kid);
    },
    close: () =>
      new Promise((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve(undefined));
      }),
  };
}

/** The claims of a user; oidc-provider keeps those of the granted scopes. */
function userClaims(user) {
  return {
    sub: user.sub,
    name: user.name,
    preferred_username: user.username,
    upn: user.upn,
    email: user.email,
    email_verified: true,
    groups: user.groups,
    roles: user.roles,
    ...user.extra,
  };
}

function grantForRequest(ctx, grant) {
  const requested = [...(ctx.oidc.requestParamScopes ?? [])];
  const oidcScopes = requested.filter((s) => SCOPES.includes(s));
  if (oidcScopes.length) grant.addOIDCScope(oidcScopes.join(' '));
  for (const resource of Object.keys(ctx.oidc.resourceServers ?? {})) {
    grant.addResourceScope(resource, requested.join(' '));
  }
  return grant.save().then(() => grant);
}

/** @param {DevClient} c */
function toClientMetadata(c) {
  const base = {
    client_id: c.clientId,
    redirect_uris: c.redirectUris,
    post_logout_redirect_uris: c.postLogoutRedirectUris ?? [],
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
  };
  if (c.clientSecret) {
    return {
      ...base,
      client_secret: c.clientSecret,
      token_endpoint_auth_method: 'client_secret_basic',
    };
  }
  return { ...base, token_endpoint_auth_method: 'none', application_type: 'native' };
}

function newSigningKey() {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = privateKey.export({ format: 'jwk' });
  return { ...jwk, kid: randomBytes(8).toString('hex'), alg: 'RS256', use: 'sig' };
}

// --- the login interaction -------------------------------------------------------------

async function interaction(provider, users, req, res) {
  res.setHeader('cache-control', 'no-store');
  const [, , uid, action] = (req.url ?? '').split('?')[0].split('/');
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) throw new errors.SessionNotFound('interaction mismatch');
  if (req.method === 'GET' && action === 'abort') {
    const result = { error: 'access_denied', error_description: 'The user cancelled the sign-in' };
    return provider.interactionFinished(req, res, result, { mergeWithLastSubmission: false });
  }
  if (details.prompt.name === 'consent') {
    // No consent screen (first-party clients): grant what is missing. Native clients always
    // come here once (oidc-provider asks them for an explicit consent result).
    const grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({
          accountId: details.session.accountId,
          clientId: details.params.client_id,
        });
    const missing = details.prompt.details;
    if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
    if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
    for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes ?? {})) {
      grant.addResourceScope(indicator, scopes.join(' '));
    }
    const grantId = await grant.save();
    const consent = details.grantId ? {} : { grantId };
    return provider.interactionFinished(req, res, { consent }, { mergeWithLastSubmission: true });
  }
  if (details.prompt.name !== 'login') {
    return provider.interactionFinished(req, res, {}, { mergeWithLastSubmission: true });
  }
  if (req.method === 'POST' && action === 'login') {
    const form = new URLSearchParams(await readBody(req, 16 * 1024));
    const user = users.find((u) => u.username === form.get('username'));
    if (!user || !safeEqual(user.password, form.get('password') ?? '')) {
      return loginPage(res, uid, users, details, 'Wrong username or password.');
    }
    const result = { login: { accountId: user.sub, amr: user.amr, remember: false } };
    return provider.interactionFinished(req, res, result, { mergeWithLastSubmission: false });
  }
  return loginPage(res, uid, users, details);
}

function loginPage(res, uid, users, details, error) {
  const client = escapeHtml(String(details.params.client_id ?? ''));
  res.writeHead(error ? 401 : 200, {
    'content-type': 'text/html; charset=utf-8',
    // No form-action: browsers apply it to the redirects after the submit too, and the sign-in
    // ends with a redirect to the relying party's callback on another origin.
    'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'",
  });
  res.end(
    page(
      'Sign in',
      `<h1>Sign in</h1>
<p>to continue to <b>${client}</b> (AppProxy development identity provider)</p>
${error ? `<p class="error" role="alert">${escapeHtml(error)}</p>` : ''}
<form method="post" action="/interaction/${escapeHtml(uid)}/login" autocomplete="off">
<label>Username <input id="username" name="username" required autofocus></label>
<label>Password <input id="password" name="password" type="password" required></label>
<button id="sign-in" type="submit">Sign in</button>
</form>
<p><a href="/interaction/${escapeHtml(uid)}/abort">Cancel</a></p>
<details><summary>Test users</summary><ul>${users
        .map(
          (u) =>
            `<li><code>${escapeHtml(u.username)}</code> / <code>${escapeHtml(u.password)}</code> — ${escapeHtml(u.amr.includes('mfa') ? 'MFA' : 'password only')}, ${u.groups.length} group(s)</li>`,
        )
        .join('')}</ul></details>`,
    ),
  );
}

function page(title, body) {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>${escapeHtml(title)}</title>
<style>body{font:16px/1.5 system-ui,sans-serif;margin:3rem auto;max-width:28rem;padding:0 1rem}label{display:block;margin:.5rem 0}input{display:block;width:100%;padding:.4rem}button{margin-top:1rem;padding:.5rem 1rem}.error{color:#b00020}</style>
</head><body>${body}</body></html>`;
}

function fail(res, err) {
  if (res.headersSent) return void res.destroy();
  const status = err instanceof errors.SessionNotFound ? 400 : 500;
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8' });
  res.end(
    page(
      'Sign-in error',
      `<h1>Sign-in error</h1><p>${status === 400 ? 'This sign-in has expired or is not yours. Start again from the app.' : 'Unexpected error.'}</p>`,
    ),
  );
}

function readBody(req, limit) {
  return new Promise((resolve, reject) => {
    let size = 0;
    const chunks = [];
    req.on('data', (c) => {
      size += c.length;
      if (size > limit) {
        reject(new Error('body too large'));
        req.destroy();
      } else chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function safeEqual(a, b) {
  const x = createHash('sha256').update(a).digest();
  const y = createHash('sha256').update(b).digest();
  return x.equals(y);
}

function escapeHtml(v) {
  return v.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

// --- storage ---------------------------------------------------------------------------

/** oidc-provider's storage contract, in memory, one store per provider instance. */
class MemoryAdapter {
  /** @param {string} model @param {Map<string, { payload: any, expiresAt: number }>} store */
  constructor(model, store) {
    this.model = model;
    this.store = store;
  }
  key(id) {
    return `${this.model}:${id}`;
  }
  get(key) {
    const entry = this.store.get(key);
    if (!entry) return undefined;
    if (entry.expiresAt <= Date.now()) {
      this.store.delete(key);
      return undefined;
    }
    return entry.payload;
  }
  set(key, payload, expiresIn) {
    const expiresAt = typeof expiresIn === 'number' ? Date.now() + expiresIn * 1000 : Infinity;
    this.store.set(key, { payload, expiresAt });
  }
  async upsert(id, payload, expiresIn) {
    if (this.model === 'Session') this.set(`sessionUid:${payload.uid}`, id, expiresIn);
    if (payload.userCode) this.set(`userCode:${payload.userCode}`, id, expiresIn);
    if (payload.grantId) {
      const members = this.get(`grant:${payload.grantId}`) ?? [];
      members.push(this.key(id));
      this.set(`grant:${payload.grantId}`, members, expiresIn);
    }
    this.set(this.key(id), payload, expiresIn);
  }
  async find(id) {
    return this.get(this.key(id));
  }
  async findByUid(uid) {
    const id = this.get(`sessionUid:${uid}`);
    return id === undefined ? undefined : this.find(id);
  }
  async findByUserCode(userCode) {
    const id = this.get(`userCode:${userCode}`);
    return id === undefined ? undefined : this.find(id);
  }
  async consume(id) {
    const payload = this.get(this.key(id));
    if (payload) payload.consumed = Math.floor(Date.now() / 1000);
  }
  async destroy(id) {
    this.store.delete(this.key(id));
  }
  async revokeByGrantId(grantId) {
    for (const key of this.get(`grant:${grantId}`) ?? []) this.store.delete(key);
    this.store.delete(`grant:${grantId}`);
  }
}
