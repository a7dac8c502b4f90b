import type { AuditType, PublishedAppConfig, RelayConfig } from '@appproxy/config';
import {
  joinCookies,
  parseCookieHeader,
  relayCookieLines,
  type CookiePair,
} from '@appproxy/cookies';
import {
  RelyingParty,
  isRelayCookie,
  signedInAs,
  type Identity,
  type PreauthErrorCode,
  type PreauthRequest,
  type PreauthResponse,
  type ProtectedApp,
} from '@appproxy/preauth';
import type { Logger } from '@appproxy/telemetry';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import { join } from 'node:path';
import { renderError, type RelayErrorCode, type RenderedError } from './error-pages.js';
import { signInBrand } from './edge-pages.js';
import type { AuditSink } from './audit.js';

/** A request as the gate needs it: the external path and query, headers, client address. */
export interface GateRequest {
  method: string;
  /** Path and query as the client sent them (external). */
  url: string;
  headers: IncomingHttpHeaders;
  clientIp: string | undefined;
}

/** What to do with a request to an oidc app. */
export type GateOutcome =
  | {
      forward: true;
      identity: Identity;
      /** `Set-Cookie` lines for the app's response (a refreshed session), often none. */
      setCookie: string[];
      /** The request's `Authorization` carried the relay's bearer token: do not forward it. */
      stripAuthorization: boolean;
    }
  | { forward: false; page: RenderedError };

/** Which relay error page a pre-authentication refusal gets. */
const PAGE_FOR: Record<PreauthErrorCode, RelayErrorCode> = {
  APPPROXY_PREAUTH_CONFIG_INVALID: 'INTERNAL_ERROR',
  APPPROXY_PREAUTH_DISCOVERY_FAILED: 'IDENTITY_PROVIDER_UNAVAILABLE',
  APPPROXY_PREAUTH_JWKS_FAILED: 'IDENTITY_PROVIDER_UNAVAILABLE',
  APPPROXY_PREAUTH_TOKEN_EXCHANGE_FAILED: 'IDENTITY_PROVIDER_UNAVAILABLE',
  APPPROXY_PREAUTH_USERINFO_FAILED: 'IDENTITY_PROVIDER_UNAVAILABLE',
  APPPROXY_PREAUTH_ID_TOKEN_INVALID: 'IDENTITY_PROVIDER_UNAVAILABLE',
  APPPROXY_PREAUTH_IDP_ERROR: 'SIGN_IN_FAILED',
  APPPROXY_PREAUTH_TRANSACTION_MISSING: 'SIGN_IN_FAILED',
  APPPROXY_PREAUTH_STATE_MISMATCH: 'SIGN_IN_FAILED',
  APPPROXY_PREAUTH_STATE_REUSED: 'SIGN_IN_FAILED',
  APPPROXY_PREAUTH_ISSUER_MISMATCH: 'SIGN_IN_FAILED',
  APPPROXY_PREAUTH_NONCE_MISMATCH: 'SIGN_IN_FAILED',
  APPPROXY_PREAUTH_SIGN_OUT_REFUSED: 'SIGN_IN_FAILED',
  APPPROXY_PREAUTH_SESSION_INVALID: 'SIGN_IN_REQUIRED',
  APPPROXY_PREAUTH_SESSION_EXPIRED: 'SIGN_IN_REQUIRED',
  APPPROXY_PREAUTH_SIGN_IN_REQUIRED: 'SIGN_IN_REQUIRED',
  APPPROXY_PREAUTH_BEARER_INVALID: 'SIGN_IN_REQUIRED',
};

const SECRET_FILE = 'session-secret';
/** The portal's name in logs and on its error pages. */
export const PORTAL = 'My Apps';

/**
 * The relay's pre-authentication: one OpenID Connect relying party for the configured
 * provider and one protected app per `preAuthentication: oidc` app. Answers the reserved
 * sign-in paths, gates every request to an oidc app (session cookie or bearer token, then
 * assignment and rules) and writes the relay's cookies — split across several when a
 * session is large — with `@appproxy/cookies`.
 */
export class SignIn {
  readonly #byName = new Map<string, ProtectedApp>();
  /** The My Apps portal's own sign-in (its origin, its session cookie). */
  readonly #portal: ProtectedApp | undefined;
  readonly #log: Logger;
  readonly rp: RelyingParty | undefined;
  /** The relying party's settings, to tell whether a reload may keep it. */
  readonly #rpKey: string | undefined;
  readonly #audit: AuditSink | undefined;

  /**
   * `keepClaims`: claim paths sessions keep for single sign-on (`claim:<path>` settings).
   * `previous`: the SignIn of the configuration this one replaces (a reload); its relying
   * party is kept when the provider, secrets and kept claims are the same.
   */
  constructor(
    config: RelayConfig,
    log: Logger,
    opts: { keepClaims?: readonly string[]; previous?: SignIn; audit?: AuditSink } = {},
  ) {
    this.#log = log;
    this.#audit = opts.audit;
    const idp = config.identityProvider;
    const oidcApps = config.apps.filter((a) => a.preAuthentication === 'oidc');
    // relay.admins: the admin console signs in with the same relying party.
    if (!idp || (oidcApps.length === 0 && !config.portal && !config.relay.admins)) return;
    const rpOptions = {
      issuer: idp.issuer,
      clientId: idp.clientId,
      ...(idp.clientSecret !== undefined && { clientSecret: idp.clientSecret }),
      scopes: idp.scopes,
      claims: idp.claims,
      keepClaims: [...(opts.keepClaims ?? [])],
      userinfo: idp.userinfo,
      bearerAudiences: idp.bearerAudiences,
      ...(idp.bearerIssuers.length > 0 && { bearerIssuers: idp.bearerIssuers }),
      session: { lifetimeMs: idp.sessionLifetimeMs, idleTimeoutMs: idp.sessionIdleTimeoutMs },
      sessionSecrets: config.relay.sessionSecrets ?? [localSecret(config.relay.stateDir, log)],
    };
    this.#rpKey = JSON.stringify(rpOptions);
    this.rp =
      opts.previous?.rp && opts.previous.#rpKey === this.#rpKey
        ? opts.previous.rp
        : new RelyingParty(rpOptions);
    for (const app of oidcApps) {
      this.#byName.set(
        app.name,
        this.rp.protectApp({
          externalUrl: app.externalUrl,
          name: app.name,
          cookies: app.cookies,
          assignment: app.assignment,
          rules: app.rules,
          ...(app.session && { session: app.session }),
          ...(app.bearerAudiences && { bearerAudiences: app.bearerAudiences }),
          ...(app.homePage !== undefined && { homePath: app.homePage }),
        }),
      );
    }
    if (config.portal)
      this.#portal = this.rp.protectApp({ externalUrl: config.portal.externalUrl, name: PORTAL });
  }

  /**
   * The My Apps portal's sign-in: its reserved paths (`/.appproxy/signin`, `callback`,
   * `signout`, `signed-out`) when `reserved`, else the gate of its page.
   */
  async portal(
    req: GateRequest,
    correlationId: string,
  ): Promise<{ page: RenderedError } | Extract<GateOutcome, { forward: true }>> {
    const portal = this.#portal!;
    const request = toPreauthRequest(req);
    const ctx = this.#context(portal, PORTAL, correlationId, req);
    if (req.url.startsWith('/.appproxy/')) {
      const reserved = await answerReserved(request, ctx);
      return {
        page: reserved
          ? reservedPage(reserved.answer, request, ctx)
          : renderError('RESERVED_PATH', { app: PORTAL, correlationId, accept: acceptOf(req) }),
      };
    }
    const auth = await portal.authenticate(request);
    if (!auth.ok) return { page: reservedPage(auth.response, request, ctx) };
    return {
      forward: true,
      identity: auth.identity,
      setCookie: relayCookieLines(auth.cookies, request.rawCookies),
      stripAuthorization: auth.stripAuthorization,
    };
  }

  /** True when `app` is gated here. */
  protects(app: PublishedAppConfig): boolean {
    return this.#byName.has(app.name);
  }

  /** Redirect URIs to register at the provider (one per oidc app's origin). */
  redirectUris(): string[] {
    const apps = [...this.#byName.values(), ...(this.#portal ? [this.#portal] : [])];
    return [...new Set(apps.map((a) => a.redirectUri))];
  }

  /**
   * The answer to `/.appproxy/signin|callback|signout|signed-out` for an oidc app on this
   * host, with the app it came from; undefined when no oidc app here owns the path.
   */
  async handleReserved(
    apps: PublishedAppConfig[],
    req: GateRequest,
    correlationId: string,
  ): Promise<{ app: string; page: RenderedError } | undefined> {
    const app = apps.find((a) => this.#byName.has(a.name));
    if (!app) return undefined;
    const request = toPreauthRequest(req);
    const ctx = this.#context(this.#byName.get(app.name)!, app.name, correlationId, req);
    const reserved = await answerReserved(request, ctx);
    if (!reserved) return undefined;
    return { app: app.name, page: reservedPage(reserved.answer, request, ctx) };
  }

  /** Authenticates and authorizes a request to an oidc app; a page to send when refused. */
  async gate(
    app: PublishedAppConfig,
    req: GateRequest,
    correlationId: string,
  ): Promise<GateOutcome> {
    const protectedApp = this.#byName.get(app.name)!;
    const request = toPreauthRequest(req);
    const auth = await protectedApp.authenticate(request);
    if (!auth.ok) {
      const ctx = this.#context(protectedApp, app.name, correlationId, req);
      return { forward: false, page: reservedPage(auth.response, request, ctx) };
    }
    const setCookie = relayCookieLines(auth.cookies, request.rawCookies);
    const decision = protectedApp.authorize(auth.identity, request);
    if (!decision.ok) {
      const who = signedInAs(auth.identity);
      this.#log.warn('access refused', {
        requestId: correlationId,
        app: app.name,
        code: decision.code,
        reason: decision.reason,
        user: who,
      });
      // Coalesced: a refused page pulls its assets, and a script may poll it.
      this.#audit?.recordCoalesced({
        type: 'access.refused',
        user: who,
        app: app.name,
        ...(req.clientIp !== undefined && { clientAddress: req.clientIp }),
        code: decision.code,
        correlationId,
        ...(decision.reason && { detail: { reason: decision.reason } }),
      });
      const page = renderError(decision.code, {
        app: app.name,
        correlationId,
        accept: acceptOf(req),
        hint: decision.reason,
        signedInAs: who,
        signOutHref: '/.appproxy/signout',
        headers: setCookie.length > 0 ? { 'set-cookie': setCookie } : {},
      });
      return { forward: false, page };
    }
    return {
      forward: true,
      identity: auth.identity,
      setCookie,
      stripAuthorization: auth.stripAuthorization,
    };
  }

  #context(
    app: ProtectedApp,
    appName: string,
    correlationId: string,
    req: GateRequest,
  ): ReservedContext {
    const audit = this.#audit && { sink: this.#audit, ...APP_SIGN_IN_EVENTS };
    return { app, appName, correlationId, req, log: this.#log, audit };
  }
}

/** The audit events of one sign-in: an app's (and the portal's), or the admin console's. */
export interface SignInAudit {
  sink: AuditSink;
  succeeded: AuditType;
  failed: AuditType;
  signout: AuditType;
  /** A completed sign-in refused at once (the console's NOT_AN_ADMIN): its event and code. */
  refuse?: (identity: Identity) => { type: AuditType; code: RelayErrorCode } | undefined;
  /** The events name the person as their `actor` (`user:<name>`), as admin events do. */
  actor?: boolean;
}

/** The events of an app's sign-in (and the portal's). */
const APP_SIGN_IN_EVENTS = {
  succeeded: 'signin.succeeded',
  failed: 'signin.failed',
  signout: 'signout',
} as const;

/** Where a reserved-path answer comes from and goes: the app, the request, logs, audit. */
export interface ReservedContext {
  app: ProtectedApp;
  /** The app's name in logs, audit events and error pages. */
  appName: string;
  correlationId: string;
  req: GateRequest;
  log: Logger;
  audit?: SignInAudit | undefined;
}

/**
 * Answers a reserved sign-in path (signin, callback, signout, signed-out), audited: a
 * callback that signs in (`succeeded`, the user read back from the new session; or refused
 * at once by `audit.refuse`) or fails (`failed`, the page's code and preauth's reason), and
 * a sign-out (`signout`, the user of the session it ends). `refused` names the user a
 * completed sign-in was refused for. Undefined when the path is not one of the app's.
 */
export async function answerReserved(
  request: PreauthRequest,
  ctx: ReservedContext,
): Promise<{ answer: PreauthResponse; refused?: string } | undefined> {
  const { app, req, audit } = ctx;
  const path = req.url.split('?', 1)[0];
  if (!audit || (path !== app.paths.callback && path !== app.paths.signOut)) {
    const answer = await app.handle(request);
    return answer && { answer };
  }
  const base = {
    app: ctx.appName,
    correlationId: ctx.correlationId,
    ...(req.clientIp !== undefined && { clientAddress: req.clientIp }),
  };
  const who = (user: string) => ({ user, ...(audit.actor && { actor: `user:${user}` }) });
  if (path === app.paths.signOut) {
    const sealed = request.cookies[app.sessionCookieName];
    const identity = sealed === undefined ? undefined : await identityOf(app, sealed, true);
    const answer = await app.handle(request);
    // Only a session ended: anyone can open the sign-out URL without one.
    if (answer && !answer.error && identity)
      audit.sink.record({ type: audit.signout, ...base, ...who(signedInAs(identity)) });
    return answer && { answer };
  }
  const answer = await app.handle(request);
  if (!answer) return undefined;
  if (answer.error) {
    // Anyone can call the callback with a bad state: at most one event per client, app
    // and reason a minute (the rest counted in `detail.repeated`).
    audit.sink.recordCoalesced({
      type: audit.failed,
      ...base,
      code: PAGE_FOR[answer.error.code],
      detail: { reason: answer.error.code },
    });
    return { answer };
  }
  const session = answer.cookies.find((c) => c.name === app.sessionCookieName && c.maxAge !== 0);
  const identity = session ? await identityOf(app, session.value, false) : undefined;
  const user = identity && signedInAs(identity);
  const refusal = identity && audit.refuse?.(identity);
  if (refusal) {
    audit.sink.record({ type: refusal.type, ...base, ...who(user!), code: refusal.code });
    return { answer, refused: user! };
  }
  audit.sink.record({ type: audit.succeeded, ...base, ...(user !== undefined && who(user)) });
  return { answer };
}

/** Who a session cookie names (undefined when it does not open). */
async function identityOf(
  app: ProtectedApp,
  sealed: string,
  ignoreExpiry: boolean,
): Promise<Identity | undefined> {
  const read = await app.readSession(sealed, { ignoreExpiry });
  return read.ok ? read.identity : undefined;
}

/** A preauth answer as the page to send: the relay's error page for refusals. */
export function reservedPage(
  answer: PreauthResponse,
  request: PreauthRequest & { rawCookies: CookiePair[] },
  ctx: Omit<ReservedContext, 'app' | 'audit'>,
): RenderedError {
  const { appName, correlationId, req } = ctx;
  const setCookie = relayCookieLines(answer.cookies, request.rawCookies);
  if (answer.error) {
    const error = answer.error;
    const level = error.status >= 500 ? 'warn' : 'info';
    ctx.log[level]('sign-in refused', {
      requestId: correlationId,
      app: appName,
      code: error.code,
      reason: error.reason,
      detail: error.message,
      client: req.clientIp,
    });
    return renderError(PAGE_FOR[error.code], {
      app: appName,
      correlationId,
      accept: acceptOf(req),
      hint: error.description,
      reason: error.code,
      headers: { ...answer.headers, ...(setCookie.length > 0 && { 'set-cookie': setCookie }) },
    });
  }
  const headers: OutgoingHttpHeaders = {
    ...answer.headers,
    'x-appproxy-correlation-id': correlationId,
    ...(setCookie.length > 0 && { 'set-cookie': setCookie }),
  };
  if (answer.body !== '' && headers['content-type'] === undefined)
    headers['content-type'] = 'text/html; charset=utf-8';
  // The only 401 page preauth answers with is the sign-in interstitial (API clients get a
  // refusal): relay.pages may brand it.
  const signin =
    answer.status === 401 && answer.body !== ''
      ? { brand: signInBrand(appName, correlationId) }
      : {};
  return { status: answer.status, headers, body: answer.body, ...signin };
}

function acceptOf(req: GateRequest): string | undefined {
  const a = req.headers.accept;
  return Array.isArray(a) ? a.join(', ') : a;
}

/** The request as preauth reads it: cookies by name, split relay cookies joined again. */
export function toPreauthRequest(req: GateRequest): PreauthRequest & { rawCookies: CookiePair[] } {
  const rawCookies = parseCookieHeader(req.headers.cookie);
  return {
    method: req.method,
    url: req.url,
    headers: req.headers,
    cookies: joinCookies(rawCookies, isRelayCookie),
    ...(req.clientIp !== undefined && { clientIp: req.clientIp }),
    rawCookies,
  };
}

/**
 * A session secret for a single relay that has none configured: made once, kept in
 * `stateDir` (0600). Several relays serving the same apps need `relay.sessionSecrets`.
 */
function localSecret(stateDir: string, log: Logger): { id: string; secret: string } {
  const file = join(stateDir, SECRET_FILE);
  if (!existsSync(file)) {
    writeFileSync(file, randomBytes(48).toString('base64url'), { mode: 0o600 });
    log.info('session secret created', {
      file,
      note: 'set relay.sessionSecrets when several relays serve the same apps',
    });
  }
  chmodSync(file, 0o600);
  return { id: 'local', secret: readFileSync(file, 'utf8').trim() };
}
