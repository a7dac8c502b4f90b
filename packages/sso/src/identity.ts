import { identityMissing, SsoError } from './errors.js';

/**
 * The signed-in user, as SSO sees it. Structurally satisfied by `@appproxy/preauth`'s
 * `Identity` (this package does not import preauth).
 */
export interface SsoIdentity {
  sub: string;
  issuer?: string;
  name?: string;
  email?: string;
  preferredUsername?: string;
  upn?: string;
  /** On-premises sAMAccountName when the provider sends it (a configured claim). */
  samAccountName?: string;
  groups?: readonly string[];
  roles?: readonly string[];
  /** Extra claims kept for SSO, keyed by the dotted path the configuration named (`claim:<path>`). */
  claims?: Readonly<Record<string, unknown>>;
}

/**
 * Which value of the identity the backend knows the user by (Entra's "delegated login
 * identity"); see {@link resolveLoginIdentity}.
 */
export type LoginIdentityKind =
  | 'upn'
  | 'email'
  | 'preferredUsername'
  | 'sub'
  | 'localPart'
  | 'samAccountName'
  | `claim:${string}`;

/** The fixed login identity kinds (besides `claim:<path>`), for configuration messages. */
export const LOGIN_IDENTITY_KINDS: readonly string[] = Object.freeze([
  'upn',
  'email',
  'preferredUsername',
  'sub',
  'localPart',
  'samAccountName',
]);

const FIXED = new Set(LOGIN_IDENTITY_KINDS);
const CLAIM = 'claim:';

/**
 * Whether `v` names a login identity kind; `claim:` needs a non-empty path.
 *
 * @example
 * isLoginIdentityKind('upn'); // true
 * isLoginIdentityKind('claim:employee_id'); // true
 * isLoginIdentityKind('claim:'); // false
 */
export function isLoginIdentityKind(v: string): v is LoginIdentityKind {
  return FIXED.has(v) || (v.startsWith(CLAIM) && v.length > CLAIM.length && !/\s/.test(v));
}

/** The claim path of a `claim:<path>` kind or placeholder, else undefined. */
export function claimPathOf(kind: string): string | undefined {
  return kind.startsWith(CLAIM) ? kind.slice(CLAIM.length) : undefined;
}

/** A non-empty string, or undefined. */
function present(v: string | undefined): string | undefined {
  return typeof v === 'string' && v !== '' ? v : undefined;
}

/** A claim as one scalar string: strings, numbers and booleans; lists, objects and '' are absent. */
export function scalarClaim(v: unknown): string | undefined {
  if (typeof v === 'string') return present(v);
  if (typeof v === 'number') return Number.isFinite(v) ? String(v) : undefined;
  if (typeof v === 'boolean') return String(v);
  return undefined;
}

function upnRule(identity: SsoIdentity): string | undefined {
  return present(identity.upn) ?? present(identity.preferredUsername);
}

function localPart(value: string): string {
  const at = value.lastIndexOf('@');
  return at < 0 ? value : value.slice(0, at);
}

/**
 * The user's login identity for the backend (Entra's "delegated login identity"):
 *
 * - `upn`: the UPN, else the preferred username;
 * - `email`, `preferredUsername`, `sub`: that field;
 * - `localPart`: the `upn` rule's value before its last `@` (no `@`: all of it);
 * - `samAccountName`: the on-premises account name, else the `localPart`;
 * - `claim:<path>`: the claim kept under that path (a string, or a number/boolean as text).
 *
 * Empty strings count as missing; the result is never empty.
 *
 * @throws SsoError `SSO_IDENTITY_MISSING` with `claim` naming the identity field or claim path
 *   that was needed.
 * @example
 * resolveLoginIdentity({ sub: 's', preferredUsername: 'alice@corp.example' }, 'localPart'); // 'alice'
 */
export function resolveLoginIdentity(identity: SsoIdentity, kind: LoginIdentityKind): string {
  let value: string | undefined;
  let claim: string = kind;
  switch (kind) {
    case 'upn':
      value = upnRule(identity);
      break;
    case 'email':
      value = present(identity.email);
      break;
    case 'preferredUsername':
      value = present(identity.preferredUsername);
      break;
    case 'sub':
      value = present(identity.sub);
      break;
    case 'localPart': {
      const upn = upnRule(identity);
      value = upn === undefined ? undefined : present(localPart(upn));
      claim = 'upn';
      break;
    }
    case 'samAccountName': {
      const upn = upnRule(identity);
      value =
        present(identity.samAccountName) ??
        (upn === undefined ? undefined : present(localPart(upn)));
      break;
    }
    default: {
      const path = claimPathOf(kind);
      if (path === undefined || path === '') {
        throw new SsoError('APPPROXY_SSO_CONFIG_INVALID', `Unknown login identity kind "${kind}"`);
      }
      value = scalarClaim(identity.claims?.[path]);
      claim = path;
    }
  }
  if (value === undefined) throw identityMissing(claim);
  return value;
}
