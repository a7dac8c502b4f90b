import type { HostPort, RelayConfig } from '@appproxy/config';
import { relayCookieLines } from '@appproxy/cookies';
import { signedInAs, type Identity, type ProtectedApp, type RelyingParty } from '@appproxy/preauth';
import type { Logger } from '@appproxy/telemetry';
import { createHmac, hkdfSync, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { renderError } from '../error-pages.js';
import {
  answerReserved,
  reservedPage,
  toPreauthRequest,
  type GateRequest,
  type SignInAudit,
} from '../sign-in.js';
import type { AuditSink } from '../audit.js';

/** An admin signed in to the console with the relay's identity provider. */
export interface AdminSession {
  /** How the person signed in (`preferred_username`, else email, upn, name, sub). */
  user: string;
  name?: string;
  groups: string[];
  /** Send as `X-CSRF-Token` with every state-changing request made with this session. */
  csrf: string;
}

/** Who the admin cookie of a request names. */
export type AdminSessionState =
  | { kind: 'admin'; session: AdminSession; setCookie: string[] }
  /** Signed in, but not in `relay.admins`: 403 NOT_AN_ADMIN. */
  | { kind: 'not-admin'; user: string; setCookie: string[] }
  | { kind: 'anonymous'; setCookie: string[] };

/** The admin session cookie (HttpOnly, SameSite=Strict, Path=/, Secure on an https admin URL). */
export const ADMIN_COOKIE = 'appproxy_admin';
/** Where the admin sign-in paths live: `/console/signin`, `callback`, `signout`, `signed-out`. */
export const CONSOLE_PREFIX = '/console/';
/** The console's sign-in paths, which the admin sign-in answers (never the console pages). */
export const CONSOLE_SIGN_IN_PATHS: ReadonlySet<string> = new Set(
  ['signin', 'callback', 'signout', 'signed-out'].map((p) => `${CONSOLE_PREFIX}${p}`),
);
const SESSION_LIFETIME_MS = 8 * 3_600_000;

/**
 * `relay.adminUrl`, else where a client on this machine reaches `relay.adminListen`
 * (`http://`, a wildcard address as loopback): the console's sign-in URLs, and the CLI's.
 */
export function adminOrigin(config: RelayConfig): string | undefined {
  if (config.relay.adminUrl) return config.relay.adminUrl;
  const at = config.relay.adminListen;
  return at && listenerUrl(at);
}

/** `http://` where a client on this machine reaches a listener (a wildcard address → loopback). */
export function listenerUrl(at: HostPort): string {
  const host =
    at.host === '0.0.0.0' || at.host === ''
      ? '127.0.0.1'
      : at.host === '::'
        ? '[::1]'
        : at.host.includes(':')
          ? `[${at.host}]`
          : at.host;
  return `http://${host}:${at.port}`;
}

/**
 * The admins' OIDC sign-in on the admin listener: the relay's own relying party (its
 * provider, its keyring) protecting the admin origin, with its own cookie and sealing purpose,
 * `relay.admins` as the assignment, an 8 h session. Admins are matched as app assignment is.
 */
export class AdminSignIn {
  readonly app: ProtectedApp;
  readonly #log: Logger;
  readonly #events: SignInAudit;
  readonly #csrfKey: Buffer;

  constructor(rp: RelyingParty, config: RelayConfig, deps: { log: Logger; audit: AuditSink }) {
    const origin = adminOrigin(config)!;
    const admins = config.relay.admins ?? { users: [], groups: [] };
    const secure = origin.startsWith('https:');
    this.app = rp.protectApp({
      externalUrl: `${origin}${CONSOLE_PREFIX}`,
      name: 'AppProxy admin',
      cookies: { httpOnly: true, secure, persistent: false, sameSite: 'Strict' },
      assignment: { required: true, users: admins.users, groups: admins.groups },
      session: {
        lifetimeMs: SESSION_LIFETIME_MS,
        idleTimeoutMs: Math.min(rp.session.idleTimeoutMs, SESSION_LIFETIME_MS),
      },
      // Admins sign in here; IdP access tokens are no way in (admin tokens are, by the server).
      bearerAudiences: [],
      reservedPrefix: CONSOLE_PREFIX,
      sessionCookie: { name: ADMIN_COOKIE, purpose: 'admin-session' },
    });
    this.#log = deps.log;
    this.#events = {
      sink: deps.audit,
      succeeded: 'admin.signin.succeeded',
      failed: 'admin.signin.failed',
      signout: 'admin.signout',
      refuse: (identity) =>
        this.app.authorize(identity).ok
          ? undefined
          : { type: 'admin.signin.refused', code: 'NOT_AN_ADMIN' },
      actor: true,
    };
    // CSRF tokens are MACs of the session's subject and sign-in time: stateless, and the same
    // for the whole session even when its cookie is re-issued.
    const secret = rp.options.sessionSecrets[0]!.secret;
    this.#csrfKey = Buffer.from(
      hkdfSync('sha256', Buffer.from(secret, 'utf8'), 'appproxy-admin', 'admin csrf v1', 32),
    );
  }

  /** `<admin origin>/console/callback`: register it at the provider. */
  get redirectUri(): string {
    return this.app.redirectUri;
  }

  /**
   * Answers `/console/signin?return=…`, `/console/callback`, `/console/signout`,
   * `/console/signed-out` as an app's sign-in paths are answered, audited as
   * `admin.signin.*` and `admin.signout`; false for any other path.
   */
  async handle(req: IncomingMessage, res: ServerResponse, correlationId: string): Promise<boolean> {
    const path = (req.url ?? '/').split('?', 1)[0]!;
    const { paths } = this.app;
    if (![paths.signIn, paths.callback, paths.signOut, paths.signedOut].includes(path))
      return false;
    const gate = gateRequest(req);
    if (path === paths.signIn) {
      // The console's `return` is preauth's `rd` (kept only when it is a path of this origin).
      const query = new URLSearchParams(gate.url.split('?')[1] ?? '');
      const back = query.get('return');
      gate.url = `${paths.signIn}${back ? `?rd=${encodeURIComponent(back)}` : ''}`;
    }
    const request = toPreauthRequest(gate);
    const ctx = {
      app: this.app,
      appName: this.app.name,
      correlationId,
      req: gate,
      log: this.#log,
      audit: this.#events,
    };
    const { answer, refused } = (await answerReserved(request, ctx))!;
    const page =
      refused === undefined
        ? reservedPage(answer, request, ctx)
        : renderError('NOT_AN_ADMIN', {
            app: this.app.name,
            correlationId,
            accept: gate.headers.accept,
            signedInAs: refused,
            signOutHref: paths.signOut,
            headers: { 'set-cookie': relayCookieLines(answer.cookies, request.rawCookies) },
          });
    res.writeHead(page.status, page.headers).end(page.body);
    return true;
  }

  /** The admin session of a request, if any (its cookie re-issued when it slides). */
  async session(req: IncomingMessage): Promise<AdminSessionState> {
    const request = toPreauthRequest(gateRequest(req));
    if (request.cookies[ADMIN_COOKIE] === undefined) return { kind: 'anonymous', setCookie: [] };
    const auth = await this.app.authenticate({ ...request, headers: {} });
    if (!auth.ok) {
      // An expired or foreign cookie: expire it.
      return {
        kind: 'anonymous',
        setCookie: relayCookieLines(auth.response.cookies, request.rawCookies),
      };
    }
    const setCookie = relayCookieLines(auth.cookies, request.rawCookies);
    const user = signedInAs(auth.identity);
    if (!this.app.authorize(auth.identity).ok) return { kind: 'not-admin', user, setCookie };
    return {
      kind: 'admin',
      setCookie,
      session: {
        user,
        ...(auth.identity.name !== undefined && { name: auth.identity.name }),
        groups: [...auth.identity.groups],
        csrf: this.#csrf(auth.identity, auth.signedInAt),
      },
    };
  }

  /** Whether a state-changing request carries the session's CSRF token. */
  checkCsrf(session: AdminSession, req: IncomingMessage): boolean {
    const sent = req.headers['x-csrf-token'];
    if (typeof sent !== 'string') return false;
    const a = Buffer.from(sent);
    const b = Buffer.from(session.csrf);
    return a.length === b.length && timingSafeEqual(a, b);
  }

  #csrf(identity: Identity, signedInAt: number | undefined): string {
    // The sign-in time tells this session from the same person's next one.
    return createHmac('sha256', this.#csrfKey)
      .update(`${identity.issuer}\n${identity.sub}\n${signedInAt ?? ''}`)
      .digest('base64url');
  }
}

function gateRequest(req: IncomingMessage): GateRequest {
  return {
    method: req.method ?? 'GET',
    url: req.url ?? '/',
    headers: req.headers,
    clientIp: req.socket.remoteAddress,
  };
}
