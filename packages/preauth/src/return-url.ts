/** Longest return URL kept; longer ones fall back (they would bloat the transaction cookie). */
export const MAX_RETURN_URL_LENGTH = 4096;

/**
 * The URL to send the user back to after sign-in: a path on the app's own origin (with query
 * and `#fragment`), normalised, or `fallback` when `candidate` is anything else — absolute
 * URLs, `//evil`, `/\evil`, control characters, encoded or dot-segment tricks that resolve off
 * the origin. Never an open redirect.
 *
 * @example
 * safeReturnUrl('/reports?q=1#/tab/2', 'https://app.example.com', '/'); // '/reports?q=1#/tab/2'
 * safeReturnUrl('//evil.example', 'https://app.example.com', '/');      // '/'
 * safeReturnUrl('https://evil.example/', 'https://app.example.com', '/'); // '/'
 */
export function safeReturnUrl(candidate: unknown, origin: string, fallback: string): string {
  if (typeof candidate !== 'string') return fallback;
  if (candidate.length === 0 || candidate.length > MAX_RETURN_URL_LENGTH) return fallback;
  // Relative paths only: one leading '/', never '//' or '/\' (protocol-relative), no
  // backslashes or control characters anywhere (browsers rewrite or strip them).
  if (!candidate.startsWith('/') || candidate.startsWith('//')) return fallback;
  if (candidate.includes('\\') || hasControlCharacter(candidate)) return fallback;
  let url: URL;
  try {
    url = new URL(candidate, origin);
  } catch {
    return fallback;
  }
  if (url.origin !== new URL(origin).origin) return fallback;
  const out = `${url.pathname}${url.search}${url.hash}`;
  // Dot segments can collapse '/a/..//evil' to '//evil': check the result again.
  if (!out.startsWith('/') || out.startsWith('//') || out.includes('\\')) return fallback;
  return out;
}

function hasControlCharacter(v: string): boolean {
  for (let i = 0; i < v.length; i++) {
    const c = v.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) return true;
  }
  return false;
}
