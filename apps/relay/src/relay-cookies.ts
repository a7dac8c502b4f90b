/**
 * The relay's own cookies on the wire. Kept minimal on purpose: the relay only reads and
 * strips its own cookie names; everything else passes byte for byte.
 */

/** The value of cookie `name` in a `Cookie` header, or undefined. */
export function readCookie(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq !== -1 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

/** The `Cookie` header without the cookies whose names start with `prefix` (undefined if none are left). */
export function stripCookies(header: string | undefined, prefix: string): string | undefined {
  if (!header || !header.includes(prefix)) return header;
  const kept = header
    .split(';')
    .filter((part) => !part.trim().startsWith(prefix))
    .map((p) => p.trim())
    .filter((p) => p !== '');
  return kept.length > 0 ? kept.join('; ') : undefined;
}
