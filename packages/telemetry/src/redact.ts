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
  'privatekey',
  'key',
  'keypem',
  'csr',
]);

const SECRET_PATTERNS: Array<[RegExp, string]> = [
  // Registration tokens: ap1.<id>.<secret>.<fingerprint>
  [/\bap1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+/g, 'ap1.[redacted]'],
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
const MAYBE_SECRET = /ap1\.|bearer|private key|:\/\/[^/\s]*@/i;
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
 * Deep copy of `value` with secret fields replaced by `[redacted]` and secret-looking
 * strings (bearer tokens, registration tokens, private keys, URL credentials) masked.
 *
 * @example
 * redact({ headers: { cookie: 'sid=1' }, url: 'http://u:p@h/' }) // { headers: { cookie: '[redacted]' }, url: 'http://[redacted]@h/' }
 */
export function redact(value: unknown, depth = 0): unknown {
  if (typeof value === 'string') return redactString(value);
  if (value === null || typeof value !== 'object' || depth > 8) return value;
  if (value instanceof Error) {
    return {
      name: value.name,
      message: redactString(value.message),
      code: (value as { code?: unknown }).code,
    };
  }
  if (Array.isArray(value)) return value.map((v) => redact(v, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    out[k] = v !== undefined && isSecretKey(k) ? '[redacted]' : redact(v, depth + 1);
  }
  return out;
}

export function redactString(text: string): string {
  if (!MAYBE_SECRET.test(text)) return text;
  let out = text;
  for (const [pattern, replacement] of SECRET_PATTERNS) out = out.replace(pattern, replacement);
  return out;
}
