import { CookieError } from './errors.js';

/** One `; Name=Value` (or `; Flag`) of a `Set-Cookie`, as sent: name case and order kept. */
export interface SetCookieAttribute {
  name: string;
  /** `undefined` for a flag (`Secure`), `''` for `Name=`. */
  value?: string;
}

/**
 * A `Set-Cookie` header value, lossless: every attribute (also ones this package does not
 * know, such as `Priority` or `SameParty`) in its order and spelling.
 */
export interface SetCookie {
  name: string;
  value: string;
  attributes: SetCookieAttribute[];
}

/** `SameSite` values, spelled as RFC 6265bis and `appproxy.yaml` spell them. */
export type SameSite = 'Strict' | 'Lax' | 'None';

/** What a user agent makes of a cookie's attributes (RFC 6265bis §5.6, last one wins). */
export interface CookieAttributes {
  expires?: Date;
  /** Seconds; `<= 0` means "expire now". */
  maxAge?: number;
  /** Lower case, leading `.` removed. */
  domain?: string;
  path?: string;
  secure: boolean;
  httpOnly: boolean;
  sameSite?: SameSite;
  partitioned: boolean;
}

// RFC 6265bis §5.6 step 1: a CTL other than HTAB makes the whole line ignored.
// eslint-disable-next-line no-control-regex
const FORBIDDEN_CTL = /[\x00-\x08\x0a-\x1f\x7f]/;
const MAX_NAME_VALUE = 4096;
const MAX_ATTRIBUTE_VALUE = 1024;

/** Removes leading and trailing SP / HTAB (RFC 6265bis "WSP"). */
function trimWsp(s: string): string {
  let a = 0;
  let b = s.length;
  while (a < b && (s.charCodeAt(a) === 0x20 || s.charCodeAt(a) === 0x09)) a++;
  while (b > a && (s.charCodeAt(b - 1) === 0x20 || s.charCodeAt(b - 1) === 0x09)) b--;
  return a === 0 && b === s.length ? s : s.slice(a, b);
}

/**
 * Parses one `Set-Cookie` header value as RFC 6265bis §5.6 does. Returns `undefined` for a
 * line a user agent ignores (control characters, no name and no value, name + value over
 * 4096 bytes, nameless value posing as a `__Secure-`/`__Host-` cookie).
 *
 * @example
 * parseSetCookie('sid=abc; Path=/app; HttpOnly; Priority=High');
 * // { name: 'sid', value: 'abc', attributes: [{ name: 'Path', value: '/app' }, { name: 'HttpOnly' }, { name: 'Priority', value: 'High' }] }
 */
export function parseSetCookie(header: string): SetCookie | undefined {
  if (FORBIDDEN_CTL.test(header)) return undefined;
  const semi = header.indexOf(';');
  const pair = semi === -1 ? header : header.slice(0, semi);
  const eq = pair.indexOf('=');
  const name = eq === -1 ? '' : trimWsp(pair.slice(0, eq));
  const value = trimWsp(eq === -1 ? pair : pair.slice(eq + 1));
  if (name === '' && value === '') return undefined;
  if (Buffer.byteLength(name) + Buffer.byteLength(value) > MAX_NAME_VALUE) return undefined;
  if (name === '' && /^__(secure|host)-/i.test(value)) return undefined;
  const attributes: SetCookieAttribute[] = [];
  if (semi !== -1) {
    for (const raw of header.slice(semi + 1).split(';')) {
      const aeq = raw.indexOf('=');
      const attrName = trimWsp(aeq === -1 ? raw : raw.slice(0, aeq));
      if (attrName === '' && aeq === -1) continue;
      attributes.push(
        aeq === -1 ? { name: attrName } : { name: attrName, value: trimWsp(raw.slice(aeq + 1)) },
      );
    }
  }
  return { name, value, attributes };
}

/**
 * Serializes a `SetCookie` as `name=value; Attr=Value; Flag`. A parsed cookie serializes
 * to an equivalent line with every attribute kept (whitespace normalised to `; `).
 * Throws `APPPROXY_COOKIE_INVALID_*` for a part that would change the line's meaning
 * (`;`, control characters, `=` in the name).
 *
 * @example
 * serializeSetCookie({ name: 'sid', value: 'abc', attributes: [{ name: 'Path', value: '/' }, { name: 'Secure' }] });
 * // 'sid=abc; Path=/; Secure'
 */
export function serializeSetCookie(cookie: SetCookie): string {
  const { name, value } = cookie;
  if (name.includes('=') || name.includes(';') || FORBIDDEN_CTL.test(name))
    throw new CookieError(
      'APPPROXY_COOKIE_INVALID_NAME',
      `cookie name ${JSON.stringify(name)} is not allowed`,
    );
  if (value.includes(';') || FORBIDDEN_CTL.test(value))
    throw new CookieError(
      'APPPROXY_COOKIE_INVALID_VALUE',
      `cookie ${JSON.stringify(name)}: value contains ';' or a control character`,
    );
  let out = name === '' ? value : `${name}=${value}`;
  for (const attr of cookie.attributes) {
    const bad = (s: string) => s.includes(';') || FORBIDDEN_CTL.test(s);
    if (bad(attr.name) || attr.name.includes('=') || (attr.value !== undefined && bad(attr.value)))
      throw new CookieError(
        'APPPROXY_COOKIE_INVALID_ATTRIBUTE',
        `cookie ${JSON.stringify(name)}: attribute ${JSON.stringify(attr.name)} contains ';', '=' or a control character`,
      );
    out += attr.value === undefined ? `; ${attr.name}` : `; ${attr.name}=${attr.value}`;
  }
  return out;
}

/**
 * The value of the last attribute named `name` (case-insensitive): its value, `''` for
 * `Name=`, `true` for a flag, `undefined` when absent.
 *
 * @example
 * getAttribute(parseSetCookie('a=b; path=/x; Secure')!, 'Path'); // '/x'
 */
export function getAttribute(cookie: SetCookie, name: string): string | true | undefined {
  const lower = name.toLowerCase();
  for (let i = cookie.attributes.length - 1; i >= 0; i--) {
    const attr = cookie.attributes[i]!;
    if (attr.name.toLowerCase() === lower) return attr.value ?? true;
  }
  return undefined;
}

/**
 * A copy of `cookie` with attribute `name` set: a string sets `Name=value`, `true` a flag,
 * `false`/`undefined` removes it. An existing attribute keeps its position (and its
 * duplicates are dropped); a new one is appended.
 *
 * @example
 * serializeSetCookie(setAttribute(parseSetCookie('a=b; Path=/in; Priority=High')!, 'path', '/out'));
 * // 'a=b; Path=/out; Priority=High'
 */
export function setAttribute(
  cookie: SetCookie,
  name: string,
  value: string | boolean | undefined,
): SetCookie {
  const lower = name.toLowerCase();
  const attributes: SetCookieAttribute[] = [];
  let placed = false;
  const make = (spelling: string): SetCookieAttribute | undefined =>
    value === false || value === undefined
      ? undefined
      : value === true
        ? { name: spelling }
        : { name: spelling, value };
  for (const attr of cookie.attributes) {
    if (attr.name.toLowerCase() !== lower) {
      attributes.push(attr);
      continue;
    }
    if (placed) continue;
    placed = true;
    const next = make(attr.name);
    if (next) attributes.push(next);
  }
  if (!placed) {
    const next = make(name);
    if (next) attributes.push(next);
  }
  return { ...cookie, attributes };
}

/**
 * Interprets the attributes as a user agent does (RFC 6265bis §5.6): `Expires` by the
 * cookie-date algorithm, `Max-Age` as delta seconds, `Domain` lower case without a leading
 * dot, `Path` only when it starts with `/`, unknown `SameSite` values ignored. Attributes
 * whose value exceeds 1024 bytes are ignored.
 *
 * @example
 * cookieAttributes(parseSetCookie('a=b; Max-Age=60; Domain=.Corp.Local; SameSite=lax')!);
 * // { maxAge: 60, domain: 'corp.local', sameSite: 'Lax', secure: false, httpOnly: false, partitioned: false }
 */
export function cookieAttributes(cookie: SetCookie): CookieAttributes {
  const out: CookieAttributes = { secure: false, httpOnly: false, partitioned: false };
  for (const { name, value = '' } of cookie.attributes) {
    if (Buffer.byteLength(value) > MAX_ATTRIBUTE_VALUE) continue;
    switch (name.toLowerCase()) {
      case 'expires': {
        const date = parseCookieDate(value);
        if (date) out.expires = date;
        break;
      }
      case 'max-age': {
        if (/^-?\d+$/.test(value)) out.maxAge = Number(value);
        break;
      }
      case 'domain': {
        if (value === '') delete out.domain;
        else out.domain = (value.startsWith('.') ? value.slice(1) : value).toLowerCase();
        break;
      }
      case 'path': {
        if (value.startsWith('/')) out.path = value;
        else delete out.path;
        break;
      }
      case 'secure':
        out.secure = true;
        break;
      case 'httponly':
        out.httpOnly = true;
        break;
      case 'partitioned':
        out.partitioned = true;
        break;
      case 'samesite': {
        const v = value.toLowerCase();
        if (v === 'strict') out.sameSite = 'Strict';
        else if (v === 'lax') out.sameSite = 'Lax';
        else if (v === 'none') out.sameSite = 'None';
        break;
      }
    }
  }
  return out;
}

const MONTHS = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];

function isDelimiter(c: number): boolean {
  return (
    c === 0x09 ||
    (c >= 0x20 && c <= 0x2f) ||
    (c >= 0x3b && c <= 0x40) ||
    (c >= 0x5b && c <= 0x60) ||
    (c >= 0x7b && c <= 0x7e)
  );
}

/**
 * The cookie-date algorithm of RFC 6265 §5.1.1: the liberal parser user agents use for
 * `Expires` (`Wed, 21 Oct 2015 07:28:00 GMT`, `Wednesday, 21-Oct-15 07:28:00 GMT`, …).
 *
 * @example
 * parseCookieDate('Wed, 21-Oct-15 07:28:00 GMT')?.toISOString(); // '2015-10-21T07:28:00.000Z'
 */
export function parseCookieDate(input: string): Date | undefined {
  const tokens: string[] = [];
  let start = -1;
  for (let i = 0; i <= input.length; i++) {
    const delim = i === input.length || isDelimiter(input.charCodeAt(i));
    if (delim && start !== -1) {
      tokens.push(input.slice(start, i));
      start = -1;
    } else if (!delim && start === -1) start = i;
  }
  let time: [number, number, number] | undefined;
  let day: number | undefined;
  let month: number | undefined;
  let year: number | undefined;
  for (const token of tokens) {
    if (!time) {
      const m = /^(\d{1,2}):(\d{1,2}):(\d{1,2})(?:\D.*)?$/s.exec(token);
      if (m) {
        time = [Number(m[1]), Number(m[2]), Number(m[3])];
        continue;
      }
    }
    if (day === undefined) {
      const m = /^(\d{1,2})(?:\D.*)?$/s.exec(token);
      if (m) {
        day = Number(m[1]);
        continue;
      }
    }
    if (month === undefined && token.length >= 3) {
      const idx = MONTHS.indexOf(token.slice(0, 3).toLowerCase());
      if (idx !== -1) {
        month = idx;
        continue;
      }
    }
    if (year === undefined) {
      const m = /^(\d{2,4})(?:\D.*)?$/s.exec(token);
      if (m) {
        year = Number(m[1]);
        continue;
      }
    }
  }
  if (!time || day === undefined || month === undefined || year === undefined) return undefined;
  if (year >= 70 && year <= 99) year += 1900;
  else if (year >= 0 && year <= 69) year += 2000;
  const [h, mi, s] = time;
  if (day < 1 || day > 31 || year < 1601 || h > 23 || mi > 59 || s > 59) return undefined;
  const date = new Date(Date.UTC(year, month, day, h, mi, s));
  // 31 Feb and the like: the date rolled over into another month.
  if (date.getUTCMonth() !== month) return undefined;
  return date;
}
