import { BlockList, isIP } from 'node:net';
import { PreauthError } from './errors.js';
import type { Identity } from './identity.js';

/** Who may use an app (Entra's "Assignment required" with its users and groups). */
export interface Assignment {
  /** When false, anyone the provider signs in may use the app. @default false */
  required: boolean;
  /** Matched, case-insensitively, against `sub`, `email`, `preferred_username` and `upn`. @default [] */
  users?: string[];
  /** Matched, case-insensitively, against the groups and the roles claims. @default [] */
  groups?: string[];
}

/** Conditions on the sign-in itself (a small "conditional access"). */
export interface AccessRules {
  /** Client IPs allowed, as IPs or CIDR blocks (IPv4 and IPv6); empty allows any. @default [] */
  clientIpRanges?: string[];
  /** `amr` values the sign-in must all carry, e.g. `['mfa']`. @default [] */
  requiredAmr?: string[];
}

/** The outcome of {@link AccessPolicy.check}. */
export type AccessDecision =
  | { ok: true }
  | {
      ok: false;
      /** The page to show: 403 `NOT_ASSIGNED` or 403 `POLICY_DENIED`. */
      code: 'NOT_ASSIGNED' | 'POLICY_DENIED';
      /** One sentence for the person, e.g. "This app requires multi-factor authentication." */
      reason: string;
    };

/**
 * An app's assignment and rules, compiled once (CIDRs parsed) and checked per request.
 *
 * @example
 * const policy = new AccessPolicy({
 *   assignment: { required: true, groups: ['Finance'] },
 *   rules: { clientIpRanges: ['10.0.0.0/8', '2001:db8::/32'], requiredAmr: ['mfa'] },
 * });
 * policy.check(identity, { clientIp: '10.1.2.3' }); // { ok: true } or { ok: false, code: 'NOT_ASSIGNED', reason }
 */
export class AccessPolicy {
  readonly #required: boolean;
  readonly #users: Set<string>;
  readonly #groups: Set<string>;
  readonly #ranges: BlockList | undefined;
  readonly #amr: string[];

  constructor(opts: { assignment?: Assignment; rules?: AccessRules } = {}) {
    const a = opts.assignment;
    this.#required = a?.required === true;
    this.#users = new Set((a?.users ?? []).map(fold));
    this.#groups = new Set((a?.groups ?? []).map(fold));
    const ranges = opts.rules?.clientIpRanges ?? [];
    this.#ranges = ranges.length ? compileRanges(ranges) : undefined;
    this.#amr = [...(opts.rules?.requiredAmr ?? [])];
  }

  /** Whether `identity`, signing in from `clientIp`, may use the app. Never throws. */
  check(identity: Identity, context: { clientIp?: string } = {}): AccessDecision {
    if (this.#required && !this.#assigned(identity)) {
      const overage = identity.groupsOverage && this.#groups.size > 0;
      return {
        ok: false,
        code: 'NOT_ASSIGNED',
        reason: overage
          ? 'Your account is in more groups than the identity provider lists in a sign-in, so group membership could not be checked. Ask the administrator to send only the groups assigned to this app.'
          : 'Your account is not assigned to this app.',
      };
    }
    if (this.#ranges) {
      const ip = normaliseIp(context.clientIp);
      if (!ip || !this.#ranges.check(ip.address, ip.family)) {
        return {
          ok: false,
          code: 'POLICY_DENIED',
          reason: 'This app cannot be used from your network location.',
        };
      }
    }
    const missing = this.#amr.filter((m) => !identity.amr.includes(m));
    if (missing.length) {
      return {
        ok: false,
        code: 'POLICY_DENIED',
        reason: missing.includes('mfa')
          ? 'This app requires multi-factor authentication. Sign out, then sign in again with a second factor.'
          : `This app requires a sign-in with ${missing.join(', ')}. Sign out, then sign in again with that method.`,
      };
    }
    return { ok: true };
  }

  #assigned(identity: Identity): boolean {
    for (const v of [identity.sub, identity.email, identity.preferredUsername, identity.upn]) {
      if (v !== undefined && this.#users.has(fold(v))) return true;
    }
    for (const g of [...identity.groups, ...identity.roles]) {
      if (this.#groups.has(fold(g))) return true;
    }
    return false;
  }
}

function fold(v: string): string {
  return v.normalize('NFC').toLowerCase();
}

function compileRanges(ranges: string[]): BlockList {
  const list = new BlockList();
  for (const range of ranges) {
    const [addr, prefix, extra] = String(range).trim().split('/');
    const ip = normaliseIp(addr);
    const bits = prefix === undefined ? undefined : Number(prefix);
    const max = ip?.family === 'ipv4' ? 32 : 128;
    if (
      !ip ||
      extra !== undefined ||
      (prefix !== undefined && (!/^\d{1,3}$/.test(prefix) || bits! > max))
    ) {
      throw new PreauthError(
        'APPPROXY_PREAUTH_CONFIG_INVALID',
        `clientIpRanges: ${JSON.stringify(String(range).slice(0, 100))} is not an IP address or CIDR block`,
      );
    }
    if (bits === undefined) list.addAddress(ip.address, ip.family);
    else list.addSubnet(ip.address, bits, ip.family);
  }
  return list;
}

/** An IP with its family; IPv4-mapped IPv6 (`::ffff:10.0.0.1`) counts as IPv4. */
function normaliseIp(
  v: string | undefined,
): { address: string; family: 'ipv4' | 'ipv6' } | undefined {
  if (!v) return undefined;
  let address = v.trim();
  if (address.startsWith('[') && address.endsWith(']')) address = address.slice(1, -1);
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(address);
  if (mapped) address = mapped[1]!;
  const family = isIP(address);
  if (family === 4) return { address, family: 'ipv4' };
  if (family === 6) return { address, family: 'ipv6' };
  return undefined;
}
