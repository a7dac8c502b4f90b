/** Field names whose values are secrets wherever they appear (compared lower-case, `-`/`_` ignored). */
const SECRET_KEYS = new Set([
  'authorization',
  'proxyauthorization',
  'cookie',
  'setcookie',
  'token',
  'accesstoken',
  'idtoken',
  'refreshtoken',
  'secret',
  'clientsecret',
  'password',
  'passphrase',
  'privatekey',
  'key',
  'keypem',
  'csr',
  // relay.storeKey: seals the materials of a PostgreSQL state store.
  'storekey',
]);

const SECRET_PATTERNS: Array<[RegExp, string]> = [
  // Registration tokens: ap1.<id>.<secret>.<fingerprint>
  [/\bap1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+/g, 'ap1.[redacted]'],
  // Admin tokens: apx_<id>_<secret> (the id stays: it names the token, as in `admin-token list`)
  [/\b(apx_[a-z2-7]{8})_[A-Za-z0-9_-]+/g, '$1_[redacted]'],
  [/\bBearer\s+[A-Za-z0-9._~+/=-]+/gi, 'Bearer [redacted]'],
  [
    /-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----/g,
    '[redacted private key]',
  ],
  // Credentials in URLs: scheme://user:pass@host
  [/(\b[a-z][a-z0-9+.-]*:\/\/)[^/\s:@]+:[^/\s@]+@/gi, '$1[redacted]@'],
];

const normalise = (key: string) => key.toLowerCase().replace(/[-_]/g, '');
/** Cheap pre-check: only strings that could hold one of the patterns above get the full pass. */
const MAYBE_SECRET = /ap1\.|apx_|bearer|private key|:\/\/[^/\s]*@/i;
/** Field names seen so far and whether they are secret (the set of names is small). */
const keyVerdicts = new Map<string, boolean>();
function isSecretKey(key: string): boolean {
  let verdict = keyVerdicts.get(key);
  if (verdict === undefined) {
    verdict = SECRET_KEYS.has(normalise(key));
    if (keyVerdicts.size < 10_000) keyVerdicts.set(key, verdict);
  }
  return verdict;
}

/**
 * `value` with secret fields replaced by `[redacted]` and secret-looking strings (bearer
 * tokens, registration tokens, private keys, URL credentials) masked. Objects and arrays
 * that need no change are returned as they are (no copy: the relay logs a line per
 * request); the input is never modified.
 *
 * @example
 * redact({ headers: { cookie: 'sid=1' }, url: 'http://u:p@h/' }) // { headers: { cookie: '[redacted]' }, url: 'http://[redacted]@h/' }
 */
export function redact(value: unknown, depth = 0): unknown {
  if (typeof value === 'string') return redactString(value);
  if (value === null || typeof value !== 'object' || depth > 8) return value;
  if (value instanceof Error) {
    // Stack and cause stay (redacted): an unexpected error must leave something to debug.
    const out: Record<string, unknown> = { name: value.name, message: redactString(value.message) };
    const code = (value as { code?: unknown }).code;
    if (code !== undefined) out.code = code;
    if (value.stack !== undefined) out.stack = redactString(value.stack);
    if (value.cause !== undefined) out.cause = redact(value.cause, depth + 1);
    return out;
  }
  // A Date has no own fields: as a plain copy it would log as {}.
  if (value instanceof Date)
    return Number.isNaN(value.getTime()) ? 'Invalid Date' : value.toISOString();
  if (Array.isArray(value)) {
    let out: unknown[] | undefined;
    for (let i = 0; i < value.length; i++) {
      const v: unknown = value[i];
      const r = redact(v, depth + 1);
      if (r !== v) (out ??= value.slice())[i] = r;
    }
    return out ?? value;
  }
  const source = value as Record<string, unknown>;
  // Anything but a plain object (a URL, a Buffer, a class instance) becomes a plain copy of
  // its own fields: its toJSON() could otherwise print what was never redacted.
  const proto: unknown = Object.getPrototypeOf(source);
  let out: Record<string, unknown> | undefined =
    proto === Object.prototype || proto === null ? undefined : {};
  for (const k of Object.keys(source)) {
    const v = source[k];
    const r = v !== undefined && isSecretKey(k) ? '[redacted]' : redact(v, depth + 1);
    if (out) out[k] = r;
    else if (r !== v) {
      out = { ...source };
      out[k] = r;
    }
  }
  return out ?? source;
}

export function redactString(text: string): string {
  if (!MAYBE_SECRET.test(text)) return text;
  let out = text;
  for (const [pattern, replacement] of SECRET_PATTERNS) out = out.replace(pattern, replacement);
  return out;
}
