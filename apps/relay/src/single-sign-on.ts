import type { PublishedAppConfig, RelayConfig } from '@appproxy/config';
import {
  AppSso,
  AssertionSigner,
  DEFAULT_STRIP_REQUEST_HEADERS,
  HeaderStripper,
  SsoError,
  fileKeyStore,
  type SsoIdentity,
} from '@appproxy/sso';
import type { Logger } from '@appproxy/telemetry';
import type { RequestMetaInit } from '@appproxy/tunnel';
import { join } from 'node:path';

/** Where the relay keeps the signing keys of the SSO assertion (`stateDir`). */
export const SSO_KEYS_FILE = 'sso-signing-keys.json';

/** A signed-in user whose identity lacks what the app's single sign-on needs. */
export interface SsoRefusal {
  code: 'SSO_IDENTITY_MISSING';
  /** The claim (or identity field) that was needed. */
  claim: string;
}

/**
 * The relay's single sign-on, built once from the configuration: the headers removed from
 * every client request (the configured list plus every app's SSO headers), each oidc app's
 * SSO (`@appproxy/sso`'s {@link AppSso}) and the signing keys of the JWT assertion, whose
 * public half is served at `/.appproxy/jwks.json` on every app's host.
 *
 * Headers and assertions are made here, at the relay, which holds the identity, the
 * configuration and the keys it publishes; the connector forwards them like any request
 * header (Kerberos, which needs the domain, will be the connector's).
 */
export class SingleSignOn {
  readonly #byApp = new Map<string, AppSso>();
  readonly #strip: HeaderStripper;
  readonly #signer: AssertionSigner | undefined;
  /** Claim paths sessions must keep for `claim:<path>` settings. */
  readonly claimPaths: readonly string[];

  /** @throws {SsoError} when an app's SSO settings cannot be used (see {@link ssoProblems}). */
  constructor(config: RelayConfig, log: Logger) {
    const ssoApps = config.apps.filter(
      (a): a is PublishedAppConfig & { sso: NonNullable<PublishedAppConfig['sso']> } =>
        a.sso !== undefined && a.preAuthentication === 'oidc',
    );
    const jwtLifetimes = ssoApps.flatMap((a) => (a.sso.jwt ? [a.sso.jwt.lifetimeMs] : []));
    if (jwtLifetimes.length > 0) {
      this.#signer = new AssertionSigner({
        store: fileKeyStore(join(config.relay.stateDir, SSO_KEYS_FILE)),
        maxLifetimeMs: Math.max(...jwtLifetimes),
      });
      // Published from the start, so a backend can fetch the keys before the first sign-in.
      if (this.#signer.jwks().keys.length === 0) this.#signer.rotate();
    }
    const claimPaths = new Set<string>();
    const names = new Set<string>();
    for (const app of ssoApps) {
      // `start`, reload and `config check` refuse unusable settings first (ssoProblems).
      const sso = appSso(app, this.#signer);
      this.#byApp.set(app.name, sso);
      for (const path of sso.claimPaths) claimPaths.add(path);
      // A backend that accepts Authorization from its users keeps getting it through the
      // other apps; the app whose assertion goes there has it replaced, never forwarded.
      for (const name of sso.headerNames) if (name !== 'authorization') names.add(name);
    }
    this.claimPaths = [...claimPaths];
    this.#strip = new HeaderStripper([
      ...(config.relay.stripRequestHeaders ?? DEFAULT_STRIP_REQUEST_HEADERS),
      ...names,
    ]);
    if (ssoApps.length > 0)
      log.info('single sign-on', {
        apps: ssoApps.map((a) => `${a.name}: ${a.sso.mode}`),
        ...(this.#signer && { keys: this.#signer.jwks().keys.map((k) => k.kid) }),
      });
  }

  /** Whether a client request header is a spoofable identity or address header (lower-case). */
  strips(name: string): boolean {
    return this.#strip.matches(name);
  }

  /**
   * Adds the app's SSO headers for `identity` (in place), or for a Kerberos app the login
   * identity and SPN to the connector's metadata (the connector gets the ticket). A refusal
   * when the identity lacks the claim the app's login identity or assertion needs; nothing
   * for apps without SSO.
   */
  apply(
    app: PublishedAppConfig,
    identity: SsoIdentity,
    headers: Record<string, unknown>,
    meta: RequestMetaInit,
  ): SsoRefusal | undefined {
    const sso = this.#byApp.get(app.name);
    if (!sso) return undefined;
    try {
      const login = sso.apply(identity, headers);
      if (app.sso?.kerberos && login !== undefined)
        meta.kerberos = { user: login, spn: app.sso.kerberos.spn };
      return undefined;
    } catch (err) {
      if (err instanceof SsoError && err.code === 'SSO_IDENTITY_MISSING')
        return { code: 'SSO_IDENTITY_MISSING', claim: err.claim ?? 'unknown' };
      throw err;
    }
  }

  /** The JSON Web Key Set of the assertion keys; undefined when no app uses `mode: jwt`. */
  jwks(): string | undefined {
    return this.#signer && JSON.stringify(this.#signer.jwks());
  }
}

type SsoApp = PublishedAppConfig & { sso: NonNullable<PublishedAppConfig['sso']> };

/** An app's SSO as `@appproxy/sso` runs it. @throws {SsoError} on unusable settings. */
function appSso(app: SsoApp, signer: AssertionSigner | undefined): AppSso {
  return new AppSso(
    {
      mode: app.sso.mode,
      loginIdentity: app.sso.loginIdentity as ConstructorParameters<
        typeof AppSso
      >[0]['loginIdentity'],
      headers: app.sso.headers,
      ...(app.sso.jwt && { jwt: app.sso.jwt }),
    },
    { issuer: new URL(app.externalUrl).origin, ...(signer && { signer }) },
  );
}

/**
 * SSO settings the relay cannot use (a header template that does not parse, a reserved
 * header name), by config path — for `config check`, `start` and reload, before anything
 * is built. The schema has checked the shape already; this is what only `@appproxy/sso`
 * knows.
 */
export function ssoProblems(config: RelayConfig): { path: string; message: string }[] {
  const problems: { path: string; message: string }[] = [];
  // Keys are made on first use: an in-memory signer makes none here.
  const probe = new AssertionSigner({ maxLifetimeMs: 3_600_000 });
  config.apps.forEach((app, i) => {
    if (!app.sso) return;
    try {
      appSso(app as SsoApp, probe);
    } catch (err) {
      if (!(err instanceof SsoError)) throw err;
      problems.push({ path: `apps[${i}].sso`, message: `${err.code}: ${err.message}` });
    }
  });
  return problems;
}
