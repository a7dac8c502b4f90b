/** A Node header object: `IncomingHttpHeaders`, `OutgoingHttpHeaders`, HTTP/2 headers. */
export type HeaderObject = Record<string, string | string[] | number | undefined>;

/** The key under which `name` (lower case) is stored, whatever its case. */
export function headerKey(headers: HeaderObject, name: string): string | undefined {
  if (Object.hasOwn(headers, name)) return name;
  for (const key of Object.keys(headers)) if (key.toLowerCase() === name) return key;
  return undefined;
}

/** First value of a header as a string. */
export function getHeader(headers: HeaderObject, name: string): string | undefined {
  const key = headerKey(headers, name);
  if (key === undefined) return undefined;
  const value = headers[key];
  if (value === undefined) return undefined;
  if (Array.isArray(value)) return value.length === 0 ? undefined : value.join(', ');
  return String(value);
}

/** Maps each value of a header (arrays value by value); `undefined` from `fn` keeps a value. */
export function mapHeader(
  headers: HeaderObject,
  name: string,
  fn: (value: string) => string | undefined,
): void {
  const key = headerKey(headers, name);
  if (key === undefined) return;
  const value = headers[key];
  if (value === undefined) return;
  if (Array.isArray(value)) {
    let changed = false;
    const next = value.map((v) => {
      const out = fn(v);
      if (out === undefined || out === v) return v;
      changed = true;
      return out;
    });
    if (changed) headers[key] = next;
    return;
  }
  const out = fn(String(value));
  if (out !== undefined) headers[key] = out;
}

export function setHeader(headers: HeaderObject, name: string, value: string | string[]): void {
  headers[headerKey(headers, name) ?? name] = value;
}

export function deleteHeader(headers: HeaderObject, name: string): void {
  const key = headerKey(headers, name);
  if (key !== undefined) delete headers[key];
}
