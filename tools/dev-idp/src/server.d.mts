// Types of server.mjs, from its JSDoc typedefs (kept in step by hand: the JS is the source).

/** A test user. */
export type DevUser = {
  /** stable subject identifier */
  sub: string;
  /** what the login form takes (also `preferred_username`) */
  username: string;
  password: string;
  name: string;
  email: string;
  upn: string;
  groups: string[];
  roles: string[];
  /** authentication methods the sign-in reports (`['pwd', 'mfa']`) */
  amr: string[];
  /**
   * more profile claims, as an on-premises directory sync adds them (`onprem_sam`,
   * `employee_id`); a user may lack some (single sign-on tests)
   */
  extra?: Record<string, string>;
};

/** A client (relying party) registered at the provider. */
export type DevClient = {
  clientId: string;
  /** absent: a public client (PKCE only; native apps, CLIs) */
  clientSecret?: string;
  /**
   * e.g. `https://app.example.com/.appproxy/callback`; for a public native client
   * `http://127.0.0.1/callback` (any port, RFC 8252)
   */
  redirectUris: string[];
  /** e.g. `https://app.example.com/.appproxy/signed-out` */
  postLogoutRedirectUris?: string[];
};

export type DevIdpOptions = {
  /** listen address, also the issuer's host (default 127.0.0.1) */
  host?: string;
  /** default 0: any free port */
  port?: number;
  clients?: DevClient[];
  /** default {@link DEV_USERS} */
  users?: DevUser[];
  /**
   * the API whose JWT access tokens native clients get with `resource=<audience>`
   * (default `api://appproxy`)
   */
  audience?: string;
  /** seconds (default 600) */
  accessTokenTtl?: number;
  /** seconds (default 600) */
  idTokenTtl?: number;
  /**
   * true: ID tokens carry only `sub` & co., profile claims come from userinfo (strict OIDC);
   * default false: ID tokens carry them (like Entra ID, Keycloak, Okta)
   */
  conformIdTokenClaims?: boolean;
  /** serve HTTPS with this PEM pair */
  tls?: { cert: string | Buffer; key: string | Buffer };
};

/** A running development provider. */
export type DevIdp = {
  /** e.g. `http://127.0.0.1:41234` */
  issuer: string;
  port: number;
  users: DevUser[];
  audience: string;
  /** requests by path (`/jwks`, `/token`, …) */
  hits: Record<string, number>;
  /** kid that signs now */
  currentKeyId: () => string;
  /**
   * a new RS256 key signs from now on; the old ones stay published unless `dropOld`.
   * Returns the new kid.
   */
  rotateSigningKey: (opts?: { dropOld?: boolean }) => Promise<string>;
  close: () => Promise<void>;
};

export declare const DEV_USERS: DevUser[];

/**
 * Starts the provider. `issuer` is `http://<host>:<port>` (or https with `tls`); discovery at
 * `<issuer>/.well-known/openid-configuration`.
 */
export declare function startDevIdp(opts?: DevIdpOptions): Promise<DevIdp>;
