import { SsoError } from './errors.js';
import { claimPathOf, scalarClaim, type SsoIdentity } from './identity.js';
import {
  asUtf8Bytes,
  cleanValue,
  hasControl,
  MAX_HEADER_VALUE_BYTES,
} from './internal/header-value.js';

/** The placeholders a header template may use, besides `claim:<dotted.path>`. */
export const TEMPLATE_PLACEHOLDERS: readonly string[] = Object.freeze([
  'loginIdentity',
  'sub',
  'issuer',
  'name',
  'email',
  'preferredUsername',
  'upn',
  'samAccountName',
  'groups',
  'roles',
]);
const PLACEHOLDERS = new Set(TEMPLATE_PLACEHOLDERS);

/** RFC 9110 `token`: what a field name may be. */
export const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/** Names the proxy owns: hop-by-hop, framing, routing, the client's cookies, the relay's own. */
const RESERVED = new Set([
  'host',
  'connection',
  'keep-alive',
  'proxy-connection',
  'content-length',
  'transfer-encoding',
  'te',
  'trailer',
  'upgrade',
  'cookie',
  'proxy-authorization',
  'proxy-authenticate',
]);

/**
 * Why `name` may not be a header this package sets, or undefined when it may. `name` is
 * lower-case.
 */
export function headerNameProblem(name: string): string | undefined {
  if (name.startsWith(':')) return 'is an HTTP/2 pseudo-header';
  if (!HEADER_NAME.test(name)) return 'is not a valid header name (RFC 9110 token)';
  if (RESERVED.has(name)) return 'is a hop-by-hop or reserved header';
  if (name.startsWith('appproxy-')) return 'is reserved for the relay (appproxy-*)';
  return undefined;
}

type Part =
  | { kind: 'text'; text: string; bytes: number }
  | { kind: 'scalar'; name: string }
  | { kind: 'claim'; path: string }
  | { kind: 'list'; name: 'groups' | 'roles' };

interface Compiled {
  name: string;
  parts: Part[];
}

const invalid = (header: string, problem: string) =>
  new SsoError('APPPROXY_SSO_TEMPLATE_INVALID', `SSO header "${header}": ${problem}`);

function compile(header: string, template: string): Part[] {
  if (typeof template !== 'string') throw invalid(header, 'the template is not a string');
  if (hasControl(template)) throw invalid(header, 'the template contains control characters');
  const parts: Part[] = [];
  let text = '';
  const flush = () => {
    if (text === '') return;
    const encoded = asUtf8Bytes(text);
    parts.push({ kind: 'text', text: encoded, bytes: encoded.length });
    text = '';
  };
  for (let i = 0; i < template.length; i++) {
    const c = template[i]!;
    if (c === '}') {
      if (template[i + 1] !== '}') throw invalid(header, `unmatched "}" at ${i} (write "}}")`);
      text += '}';
      i++;
    } else if (c === '{') {
      if (template[i + 1] === '{') {
        text += '{';
        i++;
        continue;
      }
      const end = template.indexOf('}', i + 1);
      const open = template.indexOf('{', i + 1);
      if (end < 0 || (open >= 0 && open < end)) {
        throw invalid(header, `unclosed "{" at ${i} (write "{{" for a literal brace)`);
      }
      const placeholder = template.slice(i + 1, end);
      const path = claimPathOf(placeholder);
      flush();
      if (path !== undefined) {
        if (path === '' || /\s/.test(path)) {
          throw invalid(header, `"{${placeholder}}" needs a claim path without spaces`);
        }
        parts.push({ kind: 'claim', path });
      } else if (placeholder === 'groups' || placeholder === 'roles') {
        parts.push({ kind: 'list', name: placeholder });
      } else if (PLACEHOLDERS.has(placeholder)) {
        parts.push({ kind: 'scalar', name: placeholder });
      } else {
        throw invalid(
          header,
          `unknown placeholder "{${placeholder}}" (known: ${TEMPLATE_PLACEHOLDERS.join(', ')}, claim:<path>)`,
        );
      }
      i = end;
    } else {
      text += c;
    }
  }
  flush();
  return parts;
}

/** A list's items made safe and encoded; empty items dropped. */
function listItems(values: readonly unknown[] | undefined): string[] {
  const out: string[] = [];
  if (!Array.isArray(values)) return out;
  for (const v of values) {
    const s = scalarClaim(v);
    if (s === undefined) continue;
    const clean = cleanValue(s);
    if (clean !== '') out.push(asUtf8Bytes(clean));
  }
  return out;
}

const SEPARATOR = ', ';

/**
 * The identity headers of an app: `{placeholder}` templates over the signed-in identity.
 *
 * Placeholders: `loginIdentity`, `sub`, `issuer`, `name`, `email`, `preferredUsername`, `upn`,
 * `samAccountName`, `groups`, `roles`, `claim:<dotted.path>`; `{{` and `}}` are literal braces.
 * Substituted values lose control characters (TAB kept) and surrounding spaces, and are sent as
 * their UTF-8 bytes. A header whose placeholder has no value (absent, empty, empty list) is
 * left out, as is a header over 8 KiB (lists are cut at an item boundary first).
 *
 * @example
 * const t = new HeaderTemplates({ 'X-Remote-User': '{loginIdentity}', 'X-Remote-Groups': '{groups}' });
 * t.render({ sub: 's', groups: ['eng', 'ops'] }, 'alice');
 * // { 'x-remote-user': 'alice', 'x-remote-groups': 'eng, ops' }
 */
export class HeaderTemplates {
  /** Lower-case header names set. */
  readonly names: readonly string[];
  /** Claim paths referenced by `{claim:…}`. */
  readonly claimPaths: readonly string[];
  readonly #compiled: Compiled[];

  /**
   * @throws SsoError `APPPROXY_SSO_TEMPLATE_INVALID` naming the header and the problem: a name
   *   that is not an RFC 9110 token or is hop-by-hop/reserved (`host`, `connection`,
   *   `content-length`, `transfer-encoding`, `te`, `upgrade`, `cookie`, `:pseudo`,
   *   `appproxy-*`, …), a name given twice, an unknown placeholder, an unclosed brace.
   */
  constructor(templates: Record<string, string>) {
    if (templates === null || typeof templates !== 'object') {
      throw new SsoError('APPPROXY_SSO_TEMPLATE_INVALID', 'SSO headers must be an object');
    }
    const compiled: Compiled[] = [];
    const seen = new Set<string>();
    const claimPaths = new Set<string>();
    for (const [header, template] of Object.entries(templates)) {
      const name = header.toLowerCase();
      const problem = headerNameProblem(name);
      if (problem) throw invalid(header, problem);
      if (seen.has(name)) throw invalid(header, 'is given twice (names are case-insensitive)');
      seen.add(name);
      const parts = compile(header, template);
      for (const p of parts) if (p.kind === 'claim') claimPaths.add(p.path);
      compiled.push({ name, parts });
    }
    this.#compiled = compiled;
    this.names = Object.freeze(compiled.map((c) => c.name));
    this.claimPaths = Object.freeze([...claimPaths]);
  }

  /**
   * Values by lower-case name. A header whose template uses a placeholder with no value in
   * this identity (absent, empty string, empty list) is left out entirely. Lists join with
   * ", ".
   */
  render(identity: SsoIdentity, loginIdentity: string): Record<string, string> {
    const out: Record<string, string> = {};
    for (const { name, parts } of this.#compiled) {
      const value = renderOne(parts, identity, loginIdentity);
      if (value !== undefined) out[name] = value;
    }
    return out;
  }
}

function scalarOf(identity: SsoIdentity, name: string, loginIdentity: string): unknown {
  switch (name) {
    case 'loginIdentity':
      return loginIdentity;
    case 'sub':
      return identity.sub;
    case 'issuer':
      return identity.issuer;
    case 'name':
      return identity.name;
    case 'email':
      return identity.email;
    case 'preferredUsername':
      return identity.preferredUsername;
    case 'upn':
      return identity.upn;
    case 'samAccountName':
      return identity.samAccountName;
  }
  return undefined;
}

function renderOne(
  parts: Part[],
  identity: SsoIdentity,
  loginIdentity: string,
): string | undefined {
  // Scalars first: their bytes are fixed; what is left is shared by the lists, in order.
  const values: (string | string[])[] = [];
  let fixed = 0;
  for (const p of parts) {
    if (p.kind === 'text') {
      values.push(p.text);
      fixed += p.bytes;
      continue;
    }
    if (p.kind === 'list') {
      const items = listItems(identity[p.name]);
      if (items.length === 0) return undefined;
      values.push(items);
      continue;
    }
    let raw: unknown;
    if (p.kind === 'scalar') raw = scalarOf(identity, p.name, loginIdentity);
    else {
      raw = identity.claims?.[p.path];
      if (Array.isArray(raw)) {
        const items = listItems(raw);
        if (items.length === 0) return undefined;
        values.push(items);
        continue;
      }
    }
    const s = scalarClaim(raw);
    if (s === undefined) return undefined;
    const clean = cleanValue(s);
    if (clean === '') return undefined;
    const encoded = asUtf8Bytes(clean);
    values.push(encoded);
    fixed += encoded.length;
  }
  if (fixed > MAX_HEADER_VALUE_BYTES) return undefined;
  let budget = MAX_HEADER_VALUE_BYTES - fixed;
  let out = '';
  for (const v of values) {
    if (typeof v === 'string') {
      out += v;
      continue;
    }
    let joined = '';
    for (const item of v) {
      const cost = item.length + (joined === '' ? 0 : SEPARATOR.length);
      if (cost > budget) break;
      joined += joined === '' ? item : SEPARATOR + item;
      budget -= cost;
    }
    // Not even the first item fits: leave the header out rather than send half a value.
    if (joined === '') return undefined;
    out += joined;
  }
  return out;
}
