import type { AssertionSigner } from './assertion.js';
import { SsoError } from './errors.js';
import {
  claimPathOf,
  isLoginIdentityKind,
  LOGIN_IDENTITY_KINDS,
  resolveLoginIdentity,
  type LoginIdentityKind,
  type SsoIdentity,
} from './identity.js';
import { headerNameProblem, HeaderTemplates } from './templates.js';

/** An app's single sign-on settings, as the configuration gives them. */
export interface SsoSettings {
  /**
   * `none`: nothing; `headers`: identity headers from templates; `jwt`: a signed assertion in
   * one header; `kerberos`: only the login identity is resolved (the connector does the rest).
   */
  mode: 'none' | 'headers' | 'jwt' | 'kerberos';
  /** Which identity value the backend knows the user by (the configuration defaults it to `upn`). */
  loginIdentity: LoginIdentityKind;
  /** Mode `headers`: header name → template. */
  headers?: Record<string, string>;
  /**
   * Mode `jwt`: the header that carries the assertion (`authorization` sends
   * `Bearer <jwt>`), its audience and lifetime.
   */
  jwt?: { header: string; audience: string; lifetimeMs: number };
}

const MODES = new Set<string>(['none', 'headers', 'jwt', 'kerberos']);

const config = (problem: string) =>
  new SsoError('APPPROXY_SSO_CONFIG_INVALID', `SSO settings: ${problem}`);

/**
 * One app's single sign-on: sets what the backend gets to know about the signed-in user on the
 * request headers that go to it.
 *
 * @example
 * const sso = new AppSso(
 *   { mode: 'headers', loginIdentity: 'upn', headers: { 'X-Remote-User': '{loginIdentity}' } },
 *   { issuer: 'https://wiki.example.com' },
 * );
 * sso.apply({ sub: 's', upn: 'alice@corp.example' }, req.headers); // 'alice@corp.example'
 */
export class AppSso {
  readonly mode: SsoSettings['mode'];
  /** Header names this app sets (lower-case): the template names, or the jwt header. */
  readonly headerNames: readonly string[];
  /** Claim paths the identity must keep for this app (`claim:<path>` login identity and placeholders). */
  readonly claimPaths: readonly string[];
  readonly #loginIdentity: LoginIdentityKind;
  readonly #templates: HeaderTemplates | undefined;
  readonly #jwt:
    { header: string; bearer: boolean; audience: string; lifetimeMs: number } | undefined;
  readonly #signer: AssertionSigner | undefined;
  readonly #issuer: string;

  /**
   * @throws SsoError `APPPROXY_SSO_TEMPLATE_INVALID` (a bad header template) or
   *   `APPPROXY_SSO_CONFIG_INVALID` (unknown mode or login identity, `headers` mode without
   *   headers, `jwt` mode without a signer or with a bad header, audience or lifetime).
   */
  constructor(settings: SsoSettings, ctx: { issuer: string; signer?: AssertionSigner }) {
    if (!MODES.has(settings?.mode)) {
      throw config(`unknown mode "${String(settings?.mode)}" (none, headers, jwt, kerberos)`);
    }
    this.mode = settings.mode;
    if (this.mode !== 'none' && !isLoginIdentityKind(settings.loginIdentity)) {
      throw config(
        `unknown loginIdentity "${String(settings.loginIdentity)}" (${LOGIN_IDENTITY_KINDS.join(', ')}, claim:<path>)`,
      );
    }
    this.#loginIdentity = settings.loginIdentity;
    this.#issuer = ctx.issuer;
    this.#signer = ctx.signer;
    const claimPaths = new Set<string>();
    const loginPath = claimPathOf(settings.loginIdentity ?? '');
    if (this.mode !== 'none' && loginPath !== undefined) claimPaths.add(loginPath);

    let names: string[] = [];
    if (this.mode === 'headers') {
      if (!settings.headers || Object.keys(settings.headers).length === 0) {
        throw config('mode headers needs at least one header template');
      }
      this.#templates = new HeaderTemplates(settings.headers);
      names = [...this.#templates.names];
      for (const p of this.#templates.claimPaths) claimPaths.add(p);
    } else if (this.mode === 'jwt') {
      const jwt = settings.jwt;
      if (!jwt) throw config('mode jwt needs jwt: { header, audience, lifetimeMs }');
      if (!ctx.signer) throw config('mode jwt needs an assertion signer');
      const header = typeof jwt.header === 'string' ? jwt.header.toLowerCase() : '';
      const problem = headerNameProblem(header);
      if (problem) throw config(`jwt header "${String(jwt.header)}" ${problem}`);
      if (typeof jwt.audience !== 'string' || jwt.audience === '') {
        throw config('jwt audience must be a non-empty string');
      }
      if (typeof ctx.issuer !== 'string' || ctx.issuer === '') {
        throw config('the issuer must be a non-empty string');
      }
      try {
        ctx.signer.checkLifetime(jwt.lifetimeMs);
      } catch (err) {
        throw config(`jwt ${(err as Error).message}`);
      }
      this.#jwt = {
        header,
        bearer: header === 'authorization',
        audience: jwt.audience,
        lifetimeMs: jwt.lifetimeMs,
      };
      names = [header];
    }
    this.headerNames = Object.freeze(names);
    this.claimPaths = Object.freeze([...claimPaths]);
  }

  /**
   * Sets this app's SSO headers on `headers` (Node-style, lower-case keys), overwriting any
   * value; a templated header with no value for this user is deleted, so a value the client
   * sent never reaches the backend.
   *
   * @returns the resolved login identity (undefined for mode `none`).
   * @throws SsoError `SSO_IDENTITY_MISSING` with `.claim` when the login identity is missing.
   */
  apply(identity: SsoIdentity, headers: Record<string, unknown>): string | undefined {
    if (this.mode === 'none') return undefined;
    const login = resolveLoginIdentity(identity, this.#loginIdentity);
    if (this.#templates !== undefined) {
      const values = this.#templates.render(identity, login);
      for (const name of this.headerNames) {
        const value = values[name];
        if (value === undefined) delete headers[name];
        else headers[name] = value;
      }
    } else if (this.#jwt !== undefined) {
      const jwt = this.#jwt;
      const token = this.#signer!.assertion(identity, {
        issuer: this.#issuer,
        audience: jwt.audience,
        lifetimeMs: jwt.lifetimeMs,
        loginIdentity: login,
      });
      headers[jwt.header] = jwt.bearer ? 'Bearer ' + token : token;
    }
    return login;
  }
}
