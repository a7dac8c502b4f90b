import { timingSafeEqual } from 'node:crypto';
import { errors as joseErrors, jwtVerify, type JWTPayload, type JWSAlgorithm } from 'jose';
import { PreauthError, type PreauthErrorCode } from './errors.js';
import {
  HttpFailure,
  describeUrl,
  requestJson,
  type FetchLike,
  type HttpOptions,
} from './internal/http.js';
import { JwksCache, type JwksCacheOptions } from './jwks.js';

/**
 * Signature algorithms accepted for ID tokens and access tokens: asymmetric only. `none` and
 * `HS*` are refused whatever key would "verify" them.
 */
export const ASYMMETRIC_ALGORITHMS: readonly JWSAlgorithm[] = [
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
  'EdDSA',
  'Ed25519',
];

/** How the relay authenticates at the token endpoint. */
export type TokenEndpointAuthMethod = 'client_secret_basic' | 'client_secret_post' | 'none';

/** The relay's registration at an OpenID provider, and how to talk to it. */
export interface OidcProviderOptions {
  /** Exactly as in the provider's discovery document (`iss` of its tokens). */
  issuer: string;
  clientId: string;
  /** Absent for a public client (PKCE only). */
  clientSecret?: string;
  /**
   * @default 'client_secret_basic' with a secret (or 'client_secret_post' when the provider
   * lists only that), 'none' without one
   */
  tokenEndpointAuthMethod?: TokenEndpointAuthMethod;
  /** Per request to the provider, headers and body included. @default 10000 */
  timeoutMs?: number;
  /** How long the discovery document is used before it is fetched again. @default 86400000 (24 h) */
  metadataMaxAgeMs?: number;
  /** Clock skew allowed on `exp`, `nbf`, `iat`, in seconds. @default 60 */
  clockToleranceSec?: number;
  /** Signing keys cache. */
  jwks?: Omit<JwksCacheOptions, 'clock'>;
  /** Replaces `globalThis.fetch` (e.g. to go through an outbound proxy). */
  fetch?: FetchLike;
  /** Clock in ms since the epoch. @default Date.now */
  clock?: () => number;
}

/** The parts of the provider's discovery document the relay uses. */
export interface ProviderMetadata {
  issuer: string;
  authorization_endpoint: string;
  token_endpoint: string;
  jwks_uri: string;
  userinfo_endpoint?: string;
  end_session_endpoint?: string;
  token_endpoint_auth_methods_supported?: string[];
  code_challenge_methods_supported?: string[];
  authorization_response_iss_parameter_supported?: boolean;
}

/** What the token endpoint answered to an authorization code. */
export interface TokenSet {
  idToken: string;
  accessToken: string | undefined;
  tokenType: string | undefined;
}

const MAX_BODY = 1024 * 1024;

/**
 * An OpenID provider as the relay sees it: discovery (the document's `issuer` must equal the
 * configured one), the signing keys with rotation, the token endpoint, userinfo and
 * RP-initiated logout. Works with any standard provider — Entra ID, Keycloak, Okta, Dex.
 *
 * @example
 * const idp = new OidcProvider({ issuer: 'https://login.example.com', clientId: 'appproxy', clientSecret });
 * const metadata = await idp.metadata(); // fetched once, then cached
 * console.log(metadata.authorization_endpoint);
 */
export class OidcProvider {
  readonly issuer: string;
  readonly clientId: string;
  readonly #secret: string | undefined;
  readonly #authMethod: TokenEndpointAuthMethod | undefined;
  readonly #http: HttpOptions;
  readonly #metadataMaxAgeMs: number;
  readonly #clockToleranceSec: number;
  readonly #jwksOptions: JwksCacheOptions;
  readonly #clock: () => number;
  #metadata: ProviderMetadata | undefined;
  #metadataAt = -Infinity;
  #discovering: Promise<ProviderMetadata> | undefined;
  #jwks: JwksCache | undefined;

  constructor(opts: OidcProviderOptions) {
    if (!isHttpUrl(opts.issuer)) {
      throw new PreauthError(
        'APPPROXY_PREAUTH_CONFIG_INVALID',
        'issuer must be an absolute http(s) URL',
      );
    }
    if (!opts.clientId) {
      throw new PreauthError('APPPROXY_PREAUTH_CONFIG_INVALID', 'clientId must not be empty');
    }
    if (
      opts.tokenEndpointAuthMethod &&
      opts.tokenEndpointAuthMethod !== 'none' &&
      !opts.clientSecret
    ) {
      throw new PreauthError(
        'APPPROXY_PREAUTH_CONFIG_INVALID',
        `${opts.tokenEndpointAuthMethod} needs a clientSecret`,
      );
    }
    this.issuer = opts.issuer;
    this.clientId = opts.clientId;
    this.#secret = opts.clientSecret;
    this.#authMethod = opts.tokenEndpointAuthMethod;
    this.#clock = opts.clock ?? Date.now;
    this.#http = {
      fetch: opts.fetch ?? ((input, init) => globalThis.fetch(input, init)),
      timeoutMs: opts.timeoutMs ?? 10_000,
      maxBytes: MAX_BODY,
    };
    this.#metadataMaxAgeMs = opts.metadataMaxAgeMs ?? 86_400_000;
    this.#clockToleranceSec = opts.clockToleranceSec ?? 60;
    this.#jwksOptions = { ...opts.jwks, clock: this.#clock };
  }

  /** The signing keys cache (after the first {@link metadata} call). */
  get jwks(): JwksCache | undefined {
    return this.#jwks;
  }

  /**
   * The discovery document, fetched on first use and again after `metadataMaxAgeMs`; when a
   * refresh fails the previous document keeps serving.
   * @throws PreauthError `APPPROXY_PREAUTH_DISCOVERY_FAILED`
   */
  async metadata(): Promise<ProviderMetadata> {
    const fresh = this.#metadata && this.#clock() - this.#metadataAt < this.#metadataMaxAgeMs;
    if (fresh) return this.#metadata!;
    this.#discovering ??= this.#discover().finally(() => {
      this.#discovering = undefined;
    });
    try {
      return await this.#discovering;
    } catch (err) {
      if (this.#metadata) return this.#metadata;
      throw err;
    }
  }

  async #discover(): Promise<ProviderMetadata> {
    const url = `${this.issuer.replace(/\/$/, '')}/.well-known/openid-configuration`;
    const fail = (why: string, cause?: unknown) =>
      new PreauthError(
        'APPPROXY_PREAUTH_DISCOVERY_FAILED',
        `discovery at ${describeUrl(url)}: ${why}`,
        {
          cause,
        },
      );
    let json: unknown;
    try {
      const res = await requestJson(url, { headers: { accept: 'application/json' } }, this.#http);
      if (res.status !== 200) throw fail(`answered ${res.status}`);
      json = res.json;
    } catch (err) {
      if (err instanceof PreauthError) throw err;
      throw fail((err as HttpFailure).message, err);
    }
    if (typeof json !== 'object' || json === null) throw fail('not a JSON object');
    const doc = json as Record<string, unknown>;
    if (doc.issuer !== this.issuer) {
      // Never accept another issuer's keys and endpoints (mix-up, typo in the issuer).
      throw fail(
        `the document's issuer is not the configured one (${JSON.stringify(String(doc.issuer).slice(0, 200))})`,
      );
    }
    const loopback = isLoopback(this.issuer);
    for (const name of ['authorization_endpoint', 'token_endpoint', 'jwks_uri'] as const) {
      if (!isEndpoint(doc[name], loopback)) throw fail(`${name} is missing or not an https URL`);
    }
    for (const name of ['userinfo_endpoint', 'end_session_endpoint'] as const) {
      if (doc[name] !== undefined && !isEndpoint(doc[name], loopback)) {
        throw fail(`${name} is not an https URL`);
      }
    }
    const metadata: ProviderMetadata = {
      issuer: this.issuer,
      authorization_endpoint: doc.authorization_endpoint as string,
      token_endpoint: doc.token_endpoint as string,
      jwks_uri: doc.jwks_uri as string,
      ...(typeof doc.userinfo_endpoint === 'string' && {
        userinfo_endpoint: doc.userinfo_endpoint,
      }),
      ...(typeof doc.end_session_endpoint === 'string' && {
        end_session_endpoint: doc.end_session_endpoint,
      }),
      ...(Array.isArray(doc.token_endpoint_auth_methods_supported) && {
        token_endpoint_auth_methods_supported:
          doc.token_endpoint_auth_methods_supported.map(String),
      }),
      ...(Array.isArray(doc.code_challenge_methods_supported) && {
        code_challenge_methods_supported: doc.code_challenge_methods_supported.map(String),
      }),
      ...(doc.authorization_response_iss_parameter_supported === true && {
        authorization_response_iss_parameter_supported: true,
      }),
    };
    if (!this.#jwks || this.#metadata?.jwks_uri !== metadata.jwks_uri) {
      this.#jwks = new JwksCache(metadata.jwks_uri, this.#http, this.#jwksOptions);
    }
    this.#metadata = metadata;
    this.#metadataAt = this.#clock();
    return metadata;
  }

  /**
   * Trades an authorization code (with its PKCE verifier) for tokens.
   * @throws PreauthError `APPPROXY_PREAUTH_TOKEN_EXCHANGE_FAILED`, `…_DISCOVERY_FAILED`
   */
  async exchangeCode(params: {
    code: string;
    redirectUri: string;
    codeVerifier: string;
  }): Promise<TokenSet> {
    const metadata = await this.metadata();
    const body = new URLSearchParams({
      grant_type: 'authorization_code',
      code: params.code,
      redirect_uri: params.redirectUri,
      code_verifier: params.codeVerifier,
    });
    const headers: Record<string, string> = {
      accept: 'application/json',
      'content-type': 'application/x-www-form-urlencoded',
    };
    const method = this.#tokenAuthMethod(metadata);
    if (method === 'client_secret_basic') {
      // RFC 6749 §2.3.1: id and secret are form-urlencoded before base64.
      const user = formEncode(this.clientId);
      const pass = formEncode(this.#secret!);
      headers.authorization = `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}`;
    } else {
      body.set('client_id', this.clientId);
      if (method === 'client_secret_post') body.set('client_secret', this.#secret!);
    }
    const fail = (why: string, cause?: unknown) =>
      new PreauthError('APPPROXY_PREAUTH_TOKEN_EXCHANGE_FAILED', `token endpoint: ${why}`, {
        cause,
      });
    let res;
    try {
      res = await requestJson(
        metadata.token_endpoint,
        { method: 'POST', headers, body: body.toString() },
        this.#http,
      );
    } catch (err) {
      throw fail((err as HttpFailure).message, err);
    }
    const json = (res.json ?? {}) as Record<string, unknown>;
    if (res.status !== 200) {
      const code = oauthErrorCode(json.error);
      throw fail(`answered ${res.status}${code ? ` (${code})` : ''}`);
    }
    if (typeof json.id_token !== 'string' || !json.id_token) {
      throw fail('no id_token in the answer (is "openid" among the scopes?)');
    }
    const tokenType = typeof json.token_type === 'string' ? json.token_type : undefined;
    return {
      idToken: json.id_token,
      accessToken: typeof json.access_token === 'string' ? json.access_token : undefined,
      tokenType,
    };
  }

  #tokenAuthMethod(metadata: ProviderMetadata): TokenEndpointAuthMethod {
    if (this.#authMethod) return this.#authMethod;
    if (!this.#secret) return 'none';
    const supported = metadata.token_endpoint_auth_methods_supported;
    // The spec's default when the list is absent is client_secret_basic.
    if (
      supported &&
      !supported.includes('client_secret_basic') &&
      supported.includes('client_secret_post')
    ) {
      return 'client_secret_post';
    }
    return 'client_secret_basic';
  }

  /**
   * Verifies an ID token: signature with the provider's keys (asymmetric algorithms only),
   * `iss`, `aud` (and `azp` when there are several audiences), `exp`/`iat`/`nbf` with the
   * clock tolerance, `sub`, and `nonce`.
   * @throws PreauthError `APPPROXY_PREAUTH_ID_TOKEN_INVALID` (with `reason`), `…_NONCE_MISMATCH`
   */
  async verifyIdToken(idToken: string, expected: { nonce: string }): Promise<JWTPayload> {
    const payload = await this.#verifyJwt(idToken, {
      audiences: [this.clientId],
      issuers: [this.issuer],
      code: 'APPPROXY_PREAUTH_ID_TOKEN_INVALID',
      // Issued at the code exchange, moments ago.
      maxAgeSec: 3600,
    });
    const aud = payload.aud;
    if (Array.isArray(aud) && aud.length > 1 && payload.azp === undefined) {
      throw new PreauthError(
        'APPPROXY_PREAUTH_ID_TOKEN_INVALID',
        'ID token has several audiences and no azp',
        {
          reason: 'azp_mismatch',
        },
      );
    }
    if (payload.azp !== undefined && payload.azp !== this.clientId) {
      throw new PreauthError(
        'APPPROXY_PREAUTH_ID_TOKEN_INVALID',
        'ID token azp is not this client',
        {
          reason: 'azp_mismatch',
        },
      );
    }
    if (typeof payload.nonce !== 'string' || !safeEqual(payload.nonce, expected.nonce)) {
      throw new PreauthError(
        'APPPROXY_PREAUTH_NONCE_MISMATCH',
        'ID token nonce does not match this sign-in',
        {
          reason: 'nonce_mismatch',
        },
      );
    }
    return payload;
  }

  /**
   * Verifies a JWT access token presented by a native or API client: signature with the
   * provider's keys (asymmetric only), `iss` (one of `issuers`), `aud` (one of `audiences`),
   * `exp`, `sub`.
   * @throws PreauthError `APPPROXY_PREAUTH_BEARER_INVALID` (with `reason`)
   */
  async verifyAccessToken(
    token: string,
    expected: { audiences: string[]; issuers?: string[] },
  ): Promise<JWTPayload> {
    return this.#verifyJwt(token, {
      audiences: expected.audiences,
      issuers: expected.issuers?.length ? expected.issuers : [this.issuer],
      code: 'APPPROXY_PREAUTH_BEARER_INVALID',
      // Long-lived tokens are the provider's call; this only refuses an `iat` in the future.
      maxAgeSec: 366 * 86_400,
    });
  }

  async #verifyJwt(
    token: string,
    opts: { audiences: string[]; issuers: string[]; code: PreauthErrorCode; maxAgeSec: number },
  ): Promise<JWTPayload> {
    await this.metadata();
    try {
      const { payload } = await jwtVerify(token, this.#jwks!.getKey, {
        algorithms: [...ASYMMETRIC_ALGORITHMS],
        issuer: opts.issuers,
        audience: opts.audiences,
        clockTolerance: this.#clockToleranceSec,
        currentDate: new Date(this.#clock()),
        requiredClaims: ['exp', 'iat', 'sub'],
        maxTokenAge: opts.maxAgeSec,
      });
      if (typeof payload.sub !== 'string' || payload.sub === '') {
        throw new PreauthError(opts.code, 'token has no subject', { reason: 'claim_missing' });
      }
      return payload;
    } catch (err) {
      if (err instanceof PreauthError) throw err;
      const reason = joseReason(err);
      throw new PreauthError(opts.code, `token refused: ${reason}`, { cause: err, reason });
    }
  }

  /**
   * Claims from the userinfo endpoint, for providers that put only `sub` in ID tokens.
   * `sub` must equal the ID token's.
   * @throws PreauthError `APPPROXY_PREAUTH_USERINFO_FAILED`
   */
  async userinfo(accessToken: string, sub: string): Promise<Record<string, unknown>> {
    const metadata = await this.metadata();
    const fail = (why: string, cause?: unknown) =>
      new PreauthError('APPPROXY_PREAUTH_USERINFO_FAILED', `userinfo: ${why}`, { cause });
    if (!metadata.userinfo_endpoint) throw fail('the provider has no userinfo_endpoint');
    let res;
    try {
      res = await requestJson(
        metadata.userinfo_endpoint,
        { headers: { accept: 'application/json', authorization: `Bearer ${accessToken}` } },
        this.#http,
      );
    } catch (err) {
      throw fail((err as HttpFailure).message, err);
    }
    if (res.status !== 200) throw fail(`answered ${res.status}`);
    const json = res.json as Record<string, unknown> | undefined;
    if (typeof json !== 'object' || json === null) throw fail('not a JSON object');
    if (json.sub !== sub) throw fail('sub differs from the ID token');
    return json;
  }
}

/** Maps jose's errors onto our short reasons. */
function joseReason(err: unknown): string {
  if (err instanceof joseErrors.JOSEAlgNotAllowed) return 'alg_not_allowed';
  if (err instanceof joseErrors.JOSENotSupported) return 'alg_not_allowed';
  if (err instanceof joseErrors.JWKSNoMatchingKey) return 'unknown_key';
  if (err instanceof joseErrors.JWKSMultipleMatchingKeys) return 'ambiguous_key';
  if (err instanceof joseErrors.JWSSignatureVerificationFailed) return 'signature_invalid';
  if (err instanceof joseErrors.JWTExpired) return err.claim === 'iat' ? 'too_old' : 'expired';
  if (err instanceof joseErrors.JWTClaimValidationFailed) {
    if (err.reason === 'missing') return 'claim_missing';
    if (err.claim === 'iss') return 'iss_mismatch';
    if (err.claim === 'aud') return 'aud_mismatch';
    if (err.claim === 'nbf' || err.claim === 'iat') return 'not_yet_valid';
    return 'claim_invalid';
  }
  if (err instanceof PreauthError) return err.reason ?? 'keys_unavailable';
  return 'malformed';
}

function oauthErrorCode(v: unknown): string | undefined {
  // Only the registered-code alphabet; error_description is never copied (it may echo input).
  return typeof v === 'string' && /^[\x20-\x21\x23-\x5B\x5D-\x7E]{1,64}$/.test(v) ? v : undefined;
}

function formEncode(v: string): string {
  return new URLSearchParams({ v }).toString().slice(2);
}

export function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

function isHttpUrl(v: unknown): v is string {
  if (typeof v !== 'string') return false;
  try {
    const u = new URL(v);
    return u.protocol === 'https:' || u.protocol === 'http:';
  } catch {
    return false;
  }
}

const LOOPBACK = new Set(['localhost', '127.0.0.1', '[::1]']);

function isLoopback(url: string): boolean {
  return LOOPBACK.has(new URL(url).hostname);
}

function isEndpoint(v: unknown, allowHttpLoopback: boolean): v is string {
  if (typeof v !== 'string') return false;
  try {
    const u = new URL(v);
    if (u.protocol === 'https:') return true;
    return allowHttpLoopback && u.protocol === 'http:' && LOOPBACK.has(u.hostname);
  } catch {
    return false;
  }
}
