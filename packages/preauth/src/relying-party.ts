import { createHash, randomBytes } from 'node:crypto';
import {
  sessionCookieName,
  sessionSameSite,
  transactionCookieName,
  transactionCookiePrefix,
  type AppCookiePolicy,
  type CookieToSet,
} from './cookies.js';
import { PreauthError, asPreauthError } from './errors.js';
import { identityFromClaims, type ClaimNames, type Identity } from './identity.js';
import { Keyring, type SealPurpose, type SealingSecret } from './keyring.js';
import {
  CALLBACK_PATH,
  SIGNED_OUT_PATH,
  SIGNIN_PATH,
  SIGNOUT_PATH,
  bearerChallenge,
  continuePage,
  interstitialPage,
  signedOutPage,
} from './pages.js';
import { AccessPolicy, type AccessDecision, type AccessRules, type Assignment } from './policy.js';
import { OidcProvider, safeEqual, type OidcProviderOptions } from './provider.js';
import { LruCache } from './internal/lru.js';
import { bearerToken, header, isApiRequest, type PreauthRequest } from './request.js';
import { safeReturnUrl } from './return-url.js';

/** Session lifetime settings. */
export interface SessionOptions {
  /** Absolute lifetime from sign-in; never extended. @default 28800000 (8 h) */
  lifetimeMs: number;
  /**
   * Sign-in again after this long without a request. The cookie is re-issued (sliding) once a
   * quarter of this has passed since it was last issued, not on every request, so the
   * effective idle limit lies between ¾ of it and all of it. @default 3600000 (1 h)
   */
  idleTimeoutMs: number;
}

/** Everything the relay knows about one identity provider, and its own secrets. */
export interface RelyingPartyOptions extends OidcProviderOptions {
  /** Must include `openid`. @default ['openid', 'profile', 'email'] */
  scopes?: string[];
  /** Secrets sealing sessions and sign-in transactions; the first one seals. */
  sessionSecrets: readonly SealingSecret[];
  /** Where the provider puts name, email, groups, roles, … */
  claims?: Partial<ClaimNames>;
  /**
   * Claims kept in the session as they are (dotted paths), for single sign-on settings such
   * as `claim:employee_id`: strings, numbers, booleans, lists of strings. @default []
   */
  keepClaims?: string[];
  /** Also fetch the userinfo endpoint at sign-in (providers that put only `sub` in ID tokens). @default false */
  userinfo?: boolean;
  /** Default session lifetimes; apps may override them. */
  session?: Partial<SessionOptions>;
  /**
   * Accept `Authorization: Bearer <JWT access token>` from native and API clients whose `aud`
   * is one of these. Absent or empty: bearer tokens are not accepted. Apps may override.
   */
  bearerAudiences?: string[];
  /** Issuers accepted in access tokens. @default [issuer] */
  bearerIssuers?: string[];
  /**
   * Keep the ID token in the session, to send as `id_token_hint` at sign-out (Okta requires
   * it). Only ID tokens up to {@link MAX_ID_TOKEN_HINT_LENGTH} characters are kept; bigger ones
   * (many groups) would double the cookie, and sign-out then sends `client_id` alone.
   * @default true
   */
  idTokenHint?: boolean;
  /**
   * Most groups (and as many roles) kept in a session. Beyond it, the groups named in any
   * protected app's assignment are kept first and the identity is marked `groupsTruncated`.
   * About 28 bytes of cookie per GUID group: 250 groups ≈ 7.5 KB. @default 250
   */
  maxSessionGroups?: number;
  /** Memory for opened sessions (see {@link KeyringOptions.cacheBytes}). @default 16777216 */
  sessionCacheBytes?: number;
  /**
   * Memory for verified bearer tokens, keyed by the token's SHA-256 and the audiences: a
   * native client reuses one token for its lifetime, and a hit skips the signature check
   * (`exp` is still checked every time). `0` disables it. @default 4194304 (4 MiB)
   */
  bearerCacheBytes?: number;
  /** Extra authorization request parameters, e.g. `{ domain_hint: 'example.com' }`. @default {} */
  authorizationParams?: Record<string, string>;
  /** How long a started sign-in stays valid. @default 600000 (10 min) */
  signInTimeoutMs?: number;
  /** Sign-ins in flight per browser (one transaction cookie each); older ones are dropped. @default 5 */
  maxConcurrentSignIns?: number;
}

/** One published app with `preAuthentication: oidc`. */
export interface ProtectedAppOptions {
  /** The app's external URL; sessions are bound to its origin, the path is its home. */
  externalUrl: string;
  /** Shown on pages. @default the external host */
  name?: string;
  cookies?: AppCookiePolicy;
  assignment?: Assignment;
  rules?: AccessRules;
  /** Overrides the relying party's session lifetimes. */
  session?: Partial<SessionOptions>;
  /** Overrides the relying party's `bearerAudiences`. */
  bearerAudiences?: string[];
  /**
   * Where sign-in returns when no return URL was kept (the app's "custom home page"): a path
   * on the app's origin. @default the external URL's path
   */
  homePath?: string;
  /**
   * Where the sign-in paths live on the app's origin: `<prefix>signin`, `callback`,
   * `signout`, `signed-out` (the admin console uses `/console/`). @default '/.appproxy/'
   */
  reservedPrefix?: string;
  /**
   * The session cookie's name and sealing purpose, for a sign-in kept apart from the apps'
   * (the admin console). @default { name: sessionCookieName(secure), purpose: 'session' }
   */
  sessionCookie?: { name: string; purpose: Exclude<SealPurpose, 'transaction'> };
}

/**
 * What the relay sends: a page (`body`), a redirect (`headers.location`, empty body), or — when
 * `error` is set — a refusal it renders with its own error page (HTML, or JSON for API
 * clients) using `status`, `error.code` and `error.description`, adding `headers` (e.g.
 * `WWW-Authenticate`). `cookies` are set in every case.
 */
export interface PreauthResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
  cookies: CookieToSet[];
  error?: PreauthError;
}

/** The outcome of {@link ProtectedApp.authenticate}. */
export type Authentication =
  | {
      ok: true;
      identity: Identity;
      via: 'session' | 'bearer';
      /** Set these on the app's response (a refreshed session cookie); often empty. */
      cookies: CookieToSet[];
      /** The request's `Authorization` header carried the relay's bearer token: remove it before forwarding. */
      stripAuthorization: boolean;
      /**
       * A session: when it was signed in (seconds since the epoch), the same for the whole
       * session however often its cookie is re-issued; tells it from the person's next one.
       * Absent for a bearer token.
       */
      signedInAt?: number;
    }
  | { ok: false; response: PreauthResponse };

/** Longest ID token kept in the session for `id_token_hint`. */
export const MAX_ID_TOKEN_HINT_LENGTH = 4096;

const DEFAULT_SESSION: SessionOptions = { lifetimeMs: 8 * 3_600_000, idleTimeoutMs: 3_600_000 };
const SESSION_VERSION = 1;
const TXN_ID_LENGTH = 12;

/**
 * The relay as an OpenID Connect relying party: one per identity provider, shared by every
 * protected app. Holds the provider (discovery, keys), the sealing keyring and a small replay
 * cache of used sign-in states.
 *
 * @example
 * const rp = new RelyingParty({
 *   issuer: 'https://login.example.com',
 *   clientId: 'appproxy',
 *   clientSecret: process.env.APPPROXY_CLIENT_SECRET,
 *   sessionSecrets: [{ id: 'k1', secret: process.env.APPPROXY_SESSION_SECRET! }],
 * });
 * const expenses = rp.protectApp({ externalUrl: 'https://expenses.example.com/' });
 */
export class RelyingParty {
  readonly provider: OidcProvider;
  readonly keyring: Keyring;
  readonly scopes: string[];
  readonly claims: Partial<ClaimNames>;
  readonly keepClaims: readonly string[];
  readonly session: SessionOptions;
  /** Verified bearer tokens: identity and `exp`, by SHA-256 of token and audiences. */
  readonly bearerCache: LruCache<{ identity: Identity; exp: number }> | undefined;
  readonly #opts: RelyingPartyOptions;
  readonly #clock: () => number;
  readonly #usedStates = new Map<string, number>();
  /** Groups named in any protected app's assignment (folded): kept first when trimming. */
  readonly #assignedGroups = new Set<string>();

  constructor(opts: RelyingPartyOptions) {
    this.#opts = opts;
    this.#clock = opts.clock ?? Date.now;
    this.provider = new OidcProvider(opts);
    this.keyring = new Keyring(opts.sessionSecrets, {
      ...(opts.sessionCacheBytes !== undefined && { cacheBytes: opts.sessionCacheBytes }),
    });
    const bearerCacheBytes = opts.bearerCacheBytes ?? 4 * 1024 * 1024;
    this.bearerCache = bearerCacheBytes > 0 ? new LruCache(bearerCacheBytes) : undefined;
    this.scopes = opts.scopes ?? ['openid', 'profile', 'email'];
    if (!this.scopes.includes('openid')) {
      throw new PreauthError('APPPROXY_PREAUTH_CONFIG_INVALID', 'scopes must include "openid"');
    }
    this.claims = { ...opts.claims };
    this.keepClaims = [...new Set(opts.keepClaims ?? [])];
    this.session = checkSession({ ...DEFAULT_SESSION, ...opts.session });
  }

  /** The options it was made with (the relay reads defaults from here). */
  get options(): Readonly<RelyingPartyOptions> {
    return this.#opts;
  }

  /** Milliseconds since the epoch, from the injectable clock. */
  now(): number {
    return this.#clock();
  }

  /**
   * Fetches the provider's discovery document and keys now (for readiness checks), instead of
   * at the first sign-in.
   * @throws PreauthError `APPPROXY_PREAUTH_DISCOVERY_FAILED`, `…_JWKS_FAILED`
   */
  async ready(): Promise<void> {
    await this.provider.metadata();
    await this.provider.jwks!.refresh();
  }

  /**
   * Compiles one app's settings (origin, cookie policy, assignment, rules).
   * @throws PreauthError `APPPROXY_PREAUTH_CONFIG_INVALID`
   */
  protectApp(opts: ProtectedAppOptions): ProtectedApp {
    const app = new ProtectedApp(this, opts);
    for (const g of opts.assignment?.groups ?? []) this.#assignedGroups.add(g.toLowerCase());
    return app;
  }

  /**
   * The identity as a session keeps it: at most `maxSessionGroups` groups and roles, those
   * named in an app's assignment first.
   */
  trimForSession(identity: Identity): Identity {
    const max = this.#opts.maxSessionGroups ?? 250;
    if (identity.groups.length <= max && identity.roles.length <= max) return identity;
    const trim = (list: string[]) => {
      if (list.length <= max) return list;
      const wanted = list.filter((g) => this.#assignedGroups.has(g.toLowerCase()));
      const rest = list.filter((g) => !this.#assignedGroups.has(g.toLowerCase()));
      return [...wanted, ...rest].slice(0, max);
    };
    return {
      ...identity,
      groups: trim(identity.groups),
      roles: trim(identity.roles),
      groupsTruncated: true,
    };
  }

  /** Marks a sign-in state used; false when it already was (a replayed callback). */
  useState(state: string, expiresAt: number): boolean {
    const now = this.#clock();
    for (const [s, exp] of this.#usedStates) {
      if (exp > now && this.#usedStates.size < 10_000) break;
      this.#usedStates.delete(s);
    }
    if (this.#usedStates.has(state)) return false;
    this.#usedStates.set(state, expiresAt);
    return true;
  }
}

/**
 * One protected app: what the relay calls per request. `handle` answers the reserved
 * `/.appproxy/…` paths; `authenticate` then `authorize` gate everything else.
 *
 * @example
 * const reserved = await app.handle(request);          // /.appproxy/signin, callback, signout, signed-out
 * if (reserved) return send(reserved);
 * const auth = await app.authenticate(request);        // session cookie or bearer token
 * if (!auth.ok) return send(auth.response);            // sign-in page, or 401 for API clients
 * const decision = app.authorize(auth.identity, request);
 * if (!decision.ok) return forbidden(decision.code, decision.reason, auth.identity);
 * forward(request, auth.identity, auth.cookies);
 */
export class ProtectedApp {
  readonly rp: RelyingParty;
  /** `https://host[:port]` */
  readonly origin: string;
  /** The external URL's path, ending with `/`: where sign-in returns by default. */
  readonly homePath: string;
  readonly name: string;
  readonly cookiePolicy: Required<Omit<AppCookiePolicy, 'sameSite'>> &
    Pick<AppCookiePolicy, 'sameSite'>;
  readonly session: SessionOptions;
  readonly policy: AccessPolicy;
  readonly bearerAudiences: string[];
  /** Name of the session cookie (to parse, re-join and strip). */
  readonly sessionCookieName: string;
  /** `<origin>/.appproxy/callback`: register it at the provider. */
  readonly redirectUri: string;
  /** `<origin>/.appproxy/signed-out`: register it as a post-logout redirect URI. */
  readonly postLogoutRedirectUri: string;
  /** The reserved paths (`/.appproxy/signin` … unless `reservedPrefix` says otherwise). */
  readonly paths: { signIn: string; callback: string; signOut: string; signedOut: string };
  readonly #sealPurpose: Exclude<SealPurpose, 'transaction'>;

  constructor(rp: RelyingParty, opts: ProtectedAppOptions) {
    let url: URL;
    try {
      url = new URL(opts.externalUrl);
      if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new Error('scheme');
    } catch {
      throw new PreauthError(
        'APPPROXY_PREAUTH_CONFIG_INVALID',
        'externalUrl must be an absolute http(s) URL',
      );
    }
    this.rp = rp;
    this.origin = url.origin;
    const basePath = url.pathname.endsWith('/') ? url.pathname : `${url.pathname}/`;
    this.homePath = safeReturnUrl(opts.homePath, url.origin, basePath);
    this.name = opts.name ?? url.host;
    const c = opts.cookies ?? {};
    this.cookiePolicy = {
      httpOnly: c.httpOnly ?? true,
      secure: c.secure ?? true,
      persistent: c.persistent ?? false,
      ...(c.sameSite && { sameSite: c.sameSite }),
    };
    if (this.cookiePolicy.sameSite === 'None' && !this.cookiePolicy.secure) {
      throw new PreauthError(
        'APPPROXY_PREAUTH_CONFIG_INVALID',
        'cookies.sameSite None requires secure',
      );
    }
    this.session = checkSession({ ...rp.session, ...opts.session });
    this.policy = new AccessPolicy({
      ...(opts.assignment && { assignment: opts.assignment }),
      ...(opts.rules && { rules: opts.rules }),
    });
    this.bearerAudiences = opts.bearerAudiences ?? rp.options.bearerAudiences ?? [];
    this.sessionCookieName =
      opts.sessionCookie?.name ?? sessionCookieName(this.cookiePolicy.secure);
    this.#sealPurpose = opts.sessionCookie?.purpose ?? 'session';
    const prefix = opts.reservedPrefix;
    // The sign-in path goes into the interstitial's script: a plain path, checked here once.
    if (prefix !== undefined && !/^\/(?:[A-Za-z0-9._~-]+\/)*$/.test(prefix))
      throw new PreauthError(
        'APPPROXY_PREAUTH_CONFIG_INVALID',
        `reservedPrefix must be a plain path ending in "/": ${JSON.stringify(prefix)}`,
      );
    this.paths =
      prefix === undefined
        ? {
            signIn: SIGNIN_PATH,
            callback: CALLBACK_PATH,
            signOut: SIGNOUT_PATH,
            signedOut: SIGNED_OUT_PATH,
          }
        : {
            signIn: `${prefix}signin`,
            callback: `${prefix}callback`,
            signOut: `${prefix}signout`,
            signedOut: `${prefix}signed-out`,
          };
    this.redirectUri = `${this.origin}${this.paths.callback}`;
    this.postLogoutRedirectUri = `${this.origin}${this.paths.signedOut}`;
  }

  // --- per request -------------------------------------------------------------------

  /**
   * Answers the reserved paths this package owns — `/.appproxy/signin`, `/.appproxy/callback`,
   * `/.appproxy/signout`, `/.appproxy/signed-out` — or `undefined` for any other path.
   * Never throws.
   */
  async handle(req: PreauthRequest): Promise<PreauthResponse | undefined> {
    const path = req.url.split('?', 1)[0];
    switch (path) {
      case this.paths.signIn:
        return this.signIn(req);
      case this.paths.callback:
        return this.callback(req);
      case this.paths.signOut:
        return this.signOut(req);
      case this.paths.signedOut: {
        const page = signedOutPage(this.name, this.homePath);
        return { ...page, cookies: [] };
      }
      default:
        return undefined;
    }
  }

  /**
   * Who is making the request: the session cookie, else an `Authorization: Bearer` access
   * token (when bearer audiences are configured). Anonymous browsers get the sign-in
   * interstitial; API clients get 401 with `WWW-Authenticate: Bearer`. A session that is
   * forged, tampered, of another app, expired or idle counts as absent and is expired.
   * Never throws.
   */
  async authenticate(req: PreauthRequest): Promise<Authentication> {
    const cookies: CookieToSet[] = [];
    const sealed = req.cookies[this.sessionCookieName];
    if (sealed !== undefined) {
      const read = await this.readSession(sealed);
      if (read.ok) {
        if (read.refresh) cookies.push(await this.#sessionCookie(read.payload));
        return {
          ok: true,
          identity: read.identity,
          via: 'session',
          cookies,
          stripAuthorization: false,
          ...(typeof read.payload.iat === 'number' && { signedInAt: read.payload.iat }),
        };
      }
      cookies.push(
        this.#expire(this.sessionCookieName, this.#sessionSameSite(), this.cookiePolicy.httpOnly),
      );
    }
    const token = bearerToken(req);
    if (token !== undefined && this.bearerAudiences.length > 0) {
      try {
        const identity = await this.verifyBearer(token);
        return { ok: true, identity, via: 'bearer', cookies, stripAuthorization: true };
      } catch (err) {
        const error = asPreauthError(err, 'APPPROXY_PREAUTH_BEARER_INVALID');
        const headers: Record<string, string> = { 'cache-control': 'no-store' };
        if (error.code === 'APPPROXY_PREAUTH_BEARER_INVALID') {
          headers['www-authenticate'] = bearerChallenge(
            this.origin,
            'invalid_token',
            error.reason === 'expired'
              ? 'The access token expired'
              : 'The access token is not valid for this app',
          );
        }
        return { ok: false, response: refusal(error, cookies, headers) };
      }
    }
    return { ok: false, response: this.challenge(req, cookies) };
  }

  /**
   * Whether an authenticated identity may use this app from the request's client IP:
   * assignment (`NOT_ASSIGNED`) then rules (`POLICY_DENIED`). Never throws.
   */
  authorize(identity: Identity, req: Pick<PreauthRequest, 'clientIp'> = {}): AccessDecision {
    return this.policy.check(
      identity,
      req.clientIp === undefined ? {} : { clientIp: req.clientIp },
    );
  }

  /**
   * What an anonymous request gets: the interstitial page for a browser, 401 +
   * `WWW-Authenticate: Bearer realm="<origin>"` (code `APPPROXY_PREAUTH_SIGN_IN_REQUIRED`) for
   * an API client.
   */
  challenge(req: PreauthRequest, cookies: CookieToSet[] = []): PreauthResponse {
    if (isApiRequest(req)) {
      return refusal(new PreauthError('APPPROXY_PREAUTH_SIGN_IN_REQUIRED'), cookies, {
        'www-authenticate': bearerChallenge(this.origin),
        'cache-control': 'no-store',
      });
    }
    const page = interstitialPage(req.url, this.origin, this.paths.signIn);
    return { ...page, cookies };
  }

  /**
   * `/.appproxy/signin?rd=<path?query#fragment>`: starts the authorization code flow with
   * PKCE (S256), `state` and `nonce`, bound to this browser by a sealed transaction cookie.
   * `rd` is kept only when it is a path on this origin. Never throws.
   */
  async signIn(req: PreauthRequest): Promise<PreauthResponse> {
    const query = new URLSearchParams(req.url.split('?')[1] ?? '');
    const returnTo = safeReturnUrl(query.get('rd'), this.origin, this.homePath);
    let metadata;
    try {
      metadata = await this.rp.provider.metadata();
    } catch (err) {
      return refusal(asPreauthError(err, 'APPPROXY_PREAUTH_DISCOVERY_FAILED'), []);
    }
    const state = random();
    const nonce = random();
    const verifier = random();
    const challenge = createHash('sha256').update(verifier).digest('base64url');
    const now = this.rp.now();
    const ttl = this.rp.options.signInTimeoutMs ?? 600_000;
    const txn = await this.rp.keyring.seal('transaction', {
      v: SESSION_VERSION,
      aud: this.origin,
      st: state,
      n: nonce,
      cv: verifier,
      rd: returnTo,
      iat: now,
      exp: now + ttl,
    });
    const auth = new URL(metadata.authorization_endpoint);
    for (const [k, v] of Object.entries(this.rp.options.authorizationParams ?? {})) {
      auth.searchParams.set(k, v);
    }
    auth.searchParams.set('response_type', 'code');
    auth.searchParams.set('client_id', this.rp.provider.clientId);
    auth.searchParams.set('redirect_uri', this.redirectUri);
    auth.searchParams.set('scope', this.rp.scopes.join(' '));
    auth.searchParams.set('state', state);
    auth.searchParams.set('nonce', nonce);
    auth.searchParams.set('code_challenge', challenge);
    auth.searchParams.set('code_challenge_method', 'S256');

    const cookies = await this.#pruneTransactions(req);
    cookies.push({
      name: transactionCookieName(this.cookiePolicy.secure, state.slice(0, TXN_ID_LENGTH)),
      value: txn,
      maxAge: Math.ceil(ttl / 1000),
      ...this.#transactionFlags(),
    });
    return redirect(auth.href, cookies);
  }

  /**
   * `/.appproxy/callback?code&state[&iss]`: checks the transaction cookie (present — the
   * callback CSRF defence —, same state, unused, not expired), exchanges the code, verifies
   * the ID token, then sets the session and returns to the URL the user asked for, fragment
   * included. The transaction cookie is expired whatever happens. Never throws.
   */
  async callback(req: PreauthRequest): Promise<PreauthResponse> {
    const query = new URLSearchParams(req.url.split('?')[1] ?? '');
    const state = query.get('state') ?? '';
    const cookies: CookieToSet[] = [];
    const fail = (
      code: ConstructorParameters<typeof PreauthError>[0],
      message?: string,
      cause?: unknown,
    ) => refusal(new PreauthError(code, message, cause === undefined ? {} : { cause }), cookies);

    if (!/^[A-Za-z0-9_-]{43}$/.test(state)) {
      return fail('APPPROXY_PREAUTH_STATE_MISMATCH', 'callback without a well-formed state');
    }
    const name = transactionCookieName(this.cookiePolicy.secure, state.slice(0, TXN_ID_LENGTH));
    const sealed = req.cookies[name];
    if (sealed === undefined) {
      return fail(
        'APPPROXY_PREAUTH_TRANSACTION_MISSING',
        'callback without its transaction cookie',
      );
    }
    cookies.push(this.#expire(name, 'Lax', true));
    let txn: Record<string, unknown>;
    try {
      ({ payload: txn } = await this.rp.keyring.unseal('transaction', sealed));
    } catch (err) {
      return fail('APPPROXY_PREAUTH_TRANSACTION_MISSING', 'transaction cookie refused', err);
    }
    const now = this.rp.now();
    if (txn.v !== SESSION_VERSION || txn.aud !== this.origin || typeof txn.st !== 'string') {
      return fail('APPPROXY_PREAUTH_TRANSACTION_MISSING', 'transaction cookie of another app');
    }
    if (typeof txn.exp !== 'number' || txn.exp <= now) {
      return fail('APPPROXY_PREAUTH_TRANSACTION_MISSING', 'transaction expired');
    }
    if (!safeEqual(txn.st, state)) {
      return fail('APPPROXY_PREAUTH_STATE_MISMATCH', 'state differs from this browser’s sign-in');
    }
    if (!this.rp.useState(state, txn.exp)) {
      return fail('APPPROXY_PREAUTH_STATE_REUSED', 'this state was already used');
    }

    let metadata;
    try {
      metadata = await this.rp.provider.metadata();
    } catch (err) {
      return refusal(asPreauthError(err, 'APPPROXY_PREAUTH_DISCOVERY_FAILED'), cookies);
    }
    const iss = query.get('iss');
    if (
      iss !== null
        ? iss !== this.rp.provider.issuer
        : metadata.authorization_response_iss_parameter_supported
    ) {
      return fail(
        'APPPROXY_PREAUTH_ISSUER_MISMATCH',
        'authorization response iss is not the configured issuer',
      );
    }
    const idpError = query.get('error');
    if (idpError !== null) {
      const code = /^[A-Za-z0-9_.-]{1,64}$/.test(idpError) ? idpError : 'invalid';
      return fail('APPPROXY_PREAUTH_IDP_ERROR', `the provider answered error=${code}`);
    }
    const code = query.get('code');
    if (!code)
      return fail('APPPROXY_PREAUTH_IDP_ERROR', 'the provider answered neither code nor error');

    let identity: Identity;
    let idToken: string;
    try {
      const tokens = await this.rp.provider.exchangeCode({
        code,
        redirectUri: this.redirectUri,
        codeVerifier: String(txn.cv),
      });
      idToken = tokens.idToken;
      let claims: Record<string, unknown> = await this.rp.provider.verifyIdToken(idToken, {
        nonce: String(txn.n),
      });
      if (this.rp.options.userinfo && tokens.accessToken) {
        const extra = await this.rp.provider.userinfo(tokens.accessToken, String(claims.sub));
        claims = { ...extra, ...claims };
      }
      identity = identityFromClaims(
        claims,
        this.rp.provider.issuer,
        this.rp.claims,
        this.rp.keepClaims,
      );
    } catch (err) {
      return refusal(asPreauthError(err, 'APPPROXY_PREAUTH_TOKEN_EXCHANGE_FAILED'), cookies);
    }

    const nowSec = Math.floor(this.rp.now() / 1000);
    cookies.push(
      await this.#sessionCookie({
        v: SESSION_VERSION,
        iss: this.rp.provider.issuer,
        aud: this.origin,
        iat: nowSec,
        exp: nowSec + Math.floor(this.session.lifetimeMs / 1000),
        lat: nowSec,
        id: this.rp.trimForSession(identity),
        ...(this.rp.options.idTokenHint !== false &&
          idToken.length <= MAX_ID_TOKEN_HINT_LENGTH && { idt: idToken }),
      }),
    );
    const target =
      typeof txn.rd === 'string'
        ? safeReturnUrl(txn.rd, this.origin, this.homePath)
        : this.homePath;
    if (this.#sessionSameSite() === 'Strict') {
      // A Strict cookie is not sent on a redirect chain that began at the provider: move on
      // from a page of our own origin instead.
      return { ...continuePage(target), cookies };
    }
    return redirect(target, cookies);
  }

  /**
   * `/.appproxy/signout`: expires the session and, when the provider has an
   * `end_session_endpoint`, continues to RP-initiated logout (`id_token_hint`, `client_id`,
   * `post_logout_redirect_uri` = `<origin>/.appproxy/signed-out`); else goes straight to the
   * signed-out page. Cross-site sub-requests (an `<img>` on another site) are refused.
   * Never throws.
   */
  async signOut(req: PreauthRequest): Promise<PreauthResponse> {
    if (
      header(req, 'sec-fetch-site') === 'cross-site' &&
      header(req, 'sec-fetch-mode') !== 'navigate'
    ) {
      return refusal(new PreauthError('APPPROXY_PREAUTH_SIGN_OUT_REFUSED'), []);
    }
    const cookies = [
      this.#expire(this.sessionCookieName, this.#sessionSameSite(), this.cookiePolicy.httpOnly),
    ];
    let idToken: string | undefined;
    const sealed = req.cookies[this.sessionCookieName];
    if (sealed !== undefined) {
      // An expired session still names who signs out.
      const read = await this.readSession(sealed, { ignoreExpiry: true });
      if (read.ok && typeof read.payload.idt === 'string') idToken = read.payload.idt;
    }
    let endSession: string | undefined;
    try {
      endSession = (await this.rp.provider.metadata()).end_session_endpoint;
    } catch {
      endSession = undefined; // the provider is down: sign out here at least
    }
    if (!endSession) return redirect(this.paths.signedOut, cookies);
    const url = new URL(endSession);
    if (idToken) url.searchParams.set('id_token_hint', idToken);
    url.searchParams.set('client_id', this.rp.provider.clientId);
    url.searchParams.set('post_logout_redirect_uri', this.postLogoutRedirectUri);
    return redirect(url.href, cookies);
  }

  /**
   * Verifies a bearer access token for this app (`aud` among the bearer audiences).
   * @throws PreauthError `APPPROXY_PREAUTH_BEARER_INVALID` (with `reason`), `…_JWKS_FAILED`, `…_DISCOVERY_FAILED`
   */
  async verifyBearer(token: string): Promise<Identity> {
    if (this.bearerAudiences.length === 0) {
      throw new PreauthError(
        'APPPROXY_PREAUTH_BEARER_INVALID',
        'bearer tokens are not accepted by this app',
        {
          reason: 'not_accepted',
        },
      );
    }
    const cache = this.rp.bearerCache;
    const key = cache
      ? createHash('sha256')
          .update(token)
          .update('\n')
          .update(this.bearerAudiences.join('\n'))
          .digest('base64')
      : '';
    const hit = cache?.get(key);
    if (hit) {
      const tolerance = this.rp.options.clockToleranceSec ?? 60;
      if (this.rp.now() / 1000 < hit.exp + tolerance) return hit.identity;
      cache!.delete(key);
    }
    const claims = await this.rp.provider.verifyAccessToken(token, {
      audiences: this.bearerAudiences,
      ...(this.rp.options.bearerIssuers && { issuers: this.rp.options.bearerIssuers }),
    });
    const identity = Object.freeze(
      identityFromClaims(claims, this.rp.provider.issuer, this.rp.claims, this.rp.keepClaims),
    );
    cache?.set(key, { identity, exp: claims.exp! }, 512 + token.length * 2);
    return identity;
  }

  /**
   * Opens a session cookie value: sealed by the relay, for this app's origin and issuer, not
   * past its lifetime nor idle timeout. `refresh` says when to re-issue it (sliding, or sealed
   * with an older key). Never throws.
   */
  async readSession(
    sealed: string,
    opts: { ignoreExpiry?: boolean } = {},
  ): Promise<
    | { ok: true; identity: Identity; payload: Record<string, unknown>; refresh: boolean }
    | { ok: false; error: PreauthError }
  > {
    let payload: Record<string, unknown>;
    let current: boolean;
    try {
      ({ payload, current } = await this.rp.keyring.unseal(this.#sealPurpose, sealed));
    } catch (err) {
      return { ok: false, error: asPreauthError(err, 'APPPROXY_PREAUTH_SESSION_INVALID') };
    }
    const invalid = (reason: string) => ({
      ok: false as const,
      error: new PreauthError('APPPROXY_PREAUTH_SESSION_INVALID', `session refused: ${reason}`, {
        reason,
      }),
    });
    const expired = (reason: string) => ({
      ok: false as const,
      error: new PreauthError('APPPROXY_PREAUTH_SESSION_EXPIRED', `session refused: ${reason}`, {
        reason,
      }),
    });
    if (payload.v !== SESSION_VERSION) return invalid('version');
    if (payload.aud !== this.origin) return invalid('aud_mismatch');
    if (payload.iss !== this.rp.provider.issuer) return invalid('iss_mismatch');
    const id = payload.id as Identity | undefined;
    if (typeof id !== 'object' || id === null || typeof id.sub !== 'string')
      return invalid('malformed');
    const { exp, lat } = payload;
    if (typeof exp !== 'number' || typeof lat !== 'number') return invalid('malformed');
    const now = this.rp.now() / 1000;
    const idle = this.session.idleTimeoutMs / 1000;
    if (!opts.ignoreExpiry) {
      if (now >= exp) return expired('lifetime');
      if (now - lat >= idle) return expired('idle');
    }
    const refresh = !current || now - lat >= idle / 4;
    return { ok: true, identity: id, payload, refresh };
  }

  // --- cookies -------------------------------------------------------------------------

  async #sessionCookie(payload: Record<string, unknown>): Promise<CookieToSet> {
    const nowSec = Math.floor(this.rp.now() / 1000);
    const next: Record<string, unknown> = { ...payload, lat: nowSec };
    const value = await this.rp.keyring.seal(this.#sealPurpose, next);
    const cookie: CookieToSet = {
      name: this.sessionCookieName,
      value,
      path: '/',
      httpOnly: this.cookiePolicy.httpOnly,
      secure: this.cookiePolicy.secure,
      sameSite: this.#sessionSameSite(),
    };
    if (this.cookiePolicy.persistent) cookie.maxAge = Math.max(0, (next.exp as number) - nowSec);
    return cookie;
  }

  #sessionSameSite(): 'Strict' | 'Lax' | 'None' {
    return sessionSameSite(this.cookiePolicy);
  }

  #transactionFlags(): Pick<CookieToSet, 'path' | 'httpOnly' | 'secure' | 'sameSite'> {
    // Lax: the provider sends the browser back with a top-level GET, which Strict would not
    // accompany. Always HttpOnly: no script ever needs it.
    return { path: '/', httpOnly: true, secure: this.cookiePolicy.secure, sameSite: 'Lax' };
  }

  #expire(name: string, sameSite: CookieToSet['sameSite'], httpOnly: boolean): CookieToSet {
    return {
      name,
      value: '',
      maxAge: 0,
      path: '/',
      httpOnly,
      secure: this.cookiePolicy.secure,
      sameSite,
    };
  }

  /** Expires unreadable transaction cookies and the oldest beyond the concurrency limit. */
  async #pruneTransactions(req: PreauthRequest): Promise<CookieToSet[]> {
    const prefix = transactionCookiePrefix(this.cookiePolicy.secure);
    const max = Math.max(1, this.rp.options.maxConcurrentSignIns ?? 5);
    const found: { name: string; iat: number }[] = [];
    const out: CookieToSet[] = [];
    for (const [name, value] of Object.entries(req.cookies)) {
      if (!name.startsWith(prefix)) continue;
      try {
        const { payload } = await this.rp.keyring.unseal('transaction', value);
        found.push({ name, iat: typeof payload.iat === 'number' ? payload.iat : 0 });
      } catch {
        out.push(this.#expire(name, 'Lax', true));
      }
    }
    found.sort((a, b) => b.iat - a.iat);
    for (const stale of found.slice(max - 1)) out.push(this.#expire(stale.name, 'Lax', true));
    return out;
  }
}

function refusal(
  error: PreauthError,
  cookies: CookieToSet[],
  headers: Record<string, string> = { 'cache-control': 'no-store' },
): PreauthResponse {
  return { status: error.status, headers, body: '', cookies, error };
}

function redirect(location: string, cookies: CookieToSet[]): PreauthResponse {
  return {
    status: 302,
    headers: { location, 'cache-control': 'no-store', 'referrer-policy': 'no-referrer' },
    body: '',
    cookies,
  };
}

function random(): string {
  return randomBytes(32).toString('base64url');
}

function checkSession(s: SessionOptions): SessionOptions {
  for (const k of ['lifetimeMs', 'idleTimeoutMs'] as const) {
    if (!Number.isFinite(s[k]) || s[k] < 1000) {
      throw new PreauthError(
        'APPPROXY_PREAUTH_CONFIG_INVALID',
        `session.${k} must be at least 1000 ms`,
      );
    }
  }
  return s;
}
