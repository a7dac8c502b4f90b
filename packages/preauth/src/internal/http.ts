/** The `fetch` this package calls; `globalThis.fetch` unless an option replaces it (e.g. with a proxy agent). */
export type FetchLike = (input: string, init?: RequestInit) => Promise<Response>;

export interface HttpOptions {
  fetch: FetchLike;
  timeoutMs: number;
  /** Largest body accepted; bigger answers fail without being read whole. */
  maxBytes: number;
}

/** A JSON answer and its status; `json` is undefined when the body is not JSON. */
export interface JsonAnswer {
  status: number;
  json: unknown;
  contentType: string;
}

/** Why a request failed, without the URL's query or any secret. */
export class HttpFailure extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'HttpFailure';
  }
}

/**
 * One request with a timeout covering headers AND body, and a body size limit. Never throws
 * anything but {@link HttpFailure}.
 */
export async function requestJson(
  url: string,
  init: RequestInit,
  opts: HttpOptions,
): Promise<JsonAnswer> {
  const signal = AbortSignal.timeout(opts.timeoutMs);
  const where = describeUrl(url);
  let res: Response;
  try {
    res = await opts.fetch(url, { ...init, signal, redirect: 'manual' });
  } catch (cause) {
    const timedOut = signal.aborted;
    throw new HttpFailure(
      timedOut ? `${where}: no answer within ${opts.timeoutMs} ms` : `${where}: request failed`,
      { cause },
    );
  }
  let text: string;
  try {
    text = await readLimited(res, opts.maxBytes);
  } catch (cause) {
    const timedOut = signal.aborted;
    throw new HttpFailure(
      timedOut
        ? `${where}: body not complete within ${opts.timeoutMs} ms`
        : cause instanceof HttpFailure
          ? `${where}: ${cause.message}`
          : `${where}: body could not be read`,
      { cause },
    );
  }
  const contentType = res.headers.get('content-type') ?? '';
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, json, contentType };
}

async function readLimited(res: Response, maxBytes: number): Promise<string> {
  const declared = Number(res.headers.get('content-length'));
  if (Number.isFinite(declared) && declared > maxBytes) {
    await res.body?.cancel().catch(() => {});
    throw new HttpFailure(`answer larger than ${maxBytes} bytes`);
  }
  if (!res.body) return '';
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > maxBytes) {
      await reader.cancel().catch(() => {});
      throw new HttpFailure(`answer larger than ${maxBytes} bytes`);
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** `https://host/path` of a URL, for messages: never its query (codes, tokens) or credentials. */
export function describeUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname}`;
  } catch {
    return '(invalid URL)';
  }
}
