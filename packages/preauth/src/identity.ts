/**
 * Where the provider puts each part of the identity. A name is looked up as is first, then as
 * a dotted path (`realm_access.roles` for Keycloak realm roles); URL-named claims such as
 * `https://example.com/groups` work as is.
 */
export interface ClaimNames {
  /** @default 'name' */
  name: string;
  /** @default 'email' */
  email: string;
  /** @default 'preferred_username' */
  preferredUsername: string;
  /** @default 'upn' */
  upn: string;
  /** The on-premises sAMAccountName (Entra: a claim such as `onprem_sam`). No default. */
  samAccountName?: string;
  /** @default 'groups' */
  groups: string;
  /** @default 'roles' */
  roles: string;
}

export const DEFAULT_CLAIM_NAMES: ClaimNames = {
  name: 'name',
  email: 'email',
  preferredUsername: 'preferred_username',
  upn: 'upn',
  groups: 'groups',
  roles: 'roles',
};

/**
 * Who is signed in, as the relay passes it on (tunnel metadata, SSO) and checks it
 * (assignment, policy). Plain JSON.
 */
export interface Identity {
  /** The provider's subject identifier. */
  sub: string;
  /** The provider that vouched for it. */
  issuer: string;
  name?: string;
  email?: string;
  preferredUsername?: string;
  upn?: string;
  /** On-premises sAMAccountName, when `ClaimNames.samAccountName` names a claim the provider sent. */
  samAccountName?: string;
  groups: string[];
  roles: string[];
  /**
   * Further claims kept for single sign-on (`claim:<path>` settings), by the dotted path that
   * named them: strings, numbers, booleans and lists of strings only.
   */
  claims?: Record<string, string | number | boolean | string[]>;
  /** Authentication methods (`pwd`, `mfa`, `otp`, …), from the token's `amr`. */
  amr: string[];
  /**
   * The provider left the groups out because there are too many (Entra ID's "groups
   * overage": `_claim_names.groups` or `hasgroups`). `groups` is then empty.
   */
  groupsOverage?: true;
  /**
   * The session kept only part of `groups`/`roles` (the relying party's `maxSessionGroups`),
   * those named in app assignments first.
   */
  groupsTruncated?: true;
  /** When the user authenticated at the provider (seconds since the epoch). */
  authTime?: number;
}

/** Most groups or roles kept; more would only bloat the session cookie. */
export const MAX_GROUPS = 2000;
const MAX_VALUE_LENGTH = 512;

/**
 * Reads an {@link Identity} out of verified claims (ID token, userinfo, access token), keeping
 * the claims named in `keep` (dotted paths) as they are.
 *
 * @example
 * identityFromClaims({ sub: '1', email: 'a@example.com', groups: ['Staff'] }, 'https://idp.example.com');
 * // { sub: '1', issuer: 'https://idp.example.com', email: 'a@example.com', groups: ['Staff'], roles: [], amr: [] }
 */
export function identityFromClaims(
  claims: Record<string, unknown>,
  issuer: string,
  names: Partial<ClaimNames> = {},
  keep: readonly string[] = [],
): Identity {
  const n = { ...DEFAULT_CLAIM_NAMES, ...names };
  const text = (name: string): string | undefined => {
    const v = lookup(claims, name);
    return typeof v === 'string' && v !== '' ? v.slice(0, MAX_VALUE_LENGTH) : undefined;
  };
  const id: Identity = {
    sub: String(claims.sub),
    issuer,
    groups: list(lookup(claims, n.groups)),
    roles: list(lookup(claims, n.roles)),
    amr: list(claims.amr),
  };
  const name = text(n.name);
  const email = text(n.email);
  const preferredUsername = text(n.preferredUsername);
  const upn = text(n.upn);
  if (name) id.name = name;
  if (email) id.email = email;
  if (preferredUsername) id.preferredUsername = preferredUsername;
  if (upn) id.upn = upn;
  const sam = n.samAccountName === undefined ? undefined : text(n.samAccountName);
  if (sam) id.samAccountName = sam;
  for (const path of keep) {
    const v = keptValue(lookup(claims, path));
    if (v !== undefined) (id.claims ??= {})[path] = v;
  }
  const claimNames = claims._claim_names as Record<string, unknown> | undefined;
  if (
    claims.hasgroups === true ||
    claims.hasgroups === 'true' ||
    (typeof claimNames === 'object' && claimNames !== null && n.groups in claimNames)
  ) {
    id.groupsOverage = true;
  }
  if (typeof claims.auth_time === 'number' && Number.isFinite(claims.auth_time)) {
    id.authTime = claims.auth_time;
  }
  return id;
}

/**
 * How the person is shown on "signed in as …" pages: username, else email, UPN, name, subject.
 *
 * @example
 * signedInAs({ sub: 'x', issuer: 'i', email: 'bob@example.com', groups: [], roles: [], amr: [] }); // 'bob@example.com'
 */
export function signedInAs(identity: Identity): string {
  return (
    identity.preferredUsername ?? identity.email ?? identity.upn ?? identity.name ?? identity.sub
  );
}

function lookup(claims: Record<string, unknown>, name: string): unknown {
  if (Object.hasOwn(claims, name)) return claims[name];
  let v: unknown = claims;
  for (const part of name.split('.')) {
    if (typeof v !== 'object' || v === null || !Object.hasOwn(v, part)) return undefined;
    v = (v as Record<string, unknown>)[part];
  }
  return v;
}

/** A claim as SSO may use it: a bounded string, a number, a boolean or a list of strings. */
function keptValue(v: unknown): string | number | boolean | string[] | undefined {
  if (typeof v === 'string') return v !== '' && v.length <= MAX_VALUE_LENGTH ? v : undefined;
  if (typeof v === 'number') return Number.isFinite(v) ? v : undefined;
  if (typeof v === 'boolean') return v;
  if (Array.isArray(v)) {
    const items = list(v);
    return items.length > 0 ? items : undefined;
  }
  return undefined;
}

function list(v: unknown): string[] {
  const items = typeof v === 'string' ? [v] : Array.isArray(v) ? v : [];
  const out: string[] = [];
  for (const item of items) {
    if (typeof item === 'string' && item !== '' && item.length <= MAX_VALUE_LENGTH) out.push(item);
    if (out.length === MAX_GROUPS) break;
  }
  return out;
}
