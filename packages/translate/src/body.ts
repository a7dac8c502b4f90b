import { Transform, type TransformCallback } from 'node:stream';
import zlib from 'node:zlib';
import { TranslateError } from './errors.js';
import {
  deleteHeader,
  getHeader,
  headerKey,
  mapHeader,
  type HeaderObject,
} from './internal/header-object.js';
import { HtmlRewriter } from './internal/html.js';
import type { Rewriter } from './internal/rewriter.js';
import { CssRewriter, ScriptRewriter } from './internal/text-rewriters.js';
import { outboundMatcher, pageOf, type UrlMap } from './url-map.js';

/** What a body is, for translation. */
export type BodyKind = 'html' | 'css' | 'script' | 'json';
/** Content codings the translator decodes and re-encodes. */
export type ContentCoding = 'identity' | 'gzip' | 'deflate' | 'br' | 'zstd';

/** Options of body translation. */
export interface BodyRewriterOptions {
  map: UrlMap;
  /** The app whose response this is (preferred when several apps share an internal URL). */
  app?: string;
  /**
   * Also translate absolute internal URLs inside inline scripts, event-handler attributes,
   * `javascript:` URLs and JavaScript responses (beyond the reference, which covers HTML and
   * CSS). @default false
   */
  scripts?: boolean;
  /**
   * Also replace the app's internal path prefix at the start of string literals in inline
   * scripts and JavaScript responses (`'/dokuwiki/lib/'` → `'/lib/'` for an app published
   * from `/dokuwiki/` at `/`): apps that build URLs from a base path in script. Needs `app`;
   * nothing happens when the internal and external paths are the same or the internal path
   * is `/` (every root-relative string would match). Best effort: a text scan, not a parser.
   * @default false
   */
  rootRelative?: boolean;
  /**
   * Most input held back while a URL cannot be decided yet (an unterminated attribute, a
   * huge `srcset`); past it, the pending input goes out untouched. @default 65536
   */
  maxPendingBytes?: number;
}

/** Options of {@link createBodyTranslation}. */
export interface BodyTranslationOptions extends BodyRewriterOptions {
  /** Translate HTML (`text/html`, `application/xhtml+xml`). @default true */
  html?: boolean;
  /** Translate CSS (`text/css`). @default true */
  css?: boolean;
  /**
   * Also translate JSON responses (`application/json`, `text/json`, `*+json`). Off by
   * default, and not implied by `scripts`: JSON is often an app's own data, which it saves
   * back — Node-RED's `GET /flows` rewritten here would store external URLs in its flows on
   * the next deploy. @default false
   */
  json?: boolean;
  /** The request's method: a `HEAD` response has no body. */
  method?: string;
  /**
   * `same` re-encodes with the response's `Content-Encoding`; `identity` sends the decoded
   * body (for a front that compresses itself). @default 'same'
   */
  encode?: 'same' | 'identity';
  /** zlib level when re-encoding gzip/deflate (4: ~120 MB/s here, within 2 % of level 6's size). @default 4 */
  gzipLevel?: number;
  /** Brotli quality when re-encoding br (11 is ~1 MB/s; 4 is faster than gzip 6 and smaller). @default 4 */
  brotliQuality?: number;
  /**
   * When the backend pauses longer than this, compressed output is flushed so the browser
   * sees what has arrived (progressive pages, long polls). 0 disables. @default 50
   */
  flushAfterMs?: number;
}

/** A response as http-proxy's `proxyRes` or any `{ statusCode, headers }` has it. */
export interface ResponseLike {
  statusCode?: number;
  headers: HeaderObject;
}

/** What {@link planBodyTranslation} decided. */
export interface BodyPlan {
  kind: BodyKind;
  /** Charset label from `Content-Type`, lower case, if any. */
  charset: string | undefined;
  coding: ContentCoding;
}

/** A body translation ready to pipe: `pipeline(backend, translation.transform, client)`. */
export interface BodyTranslation<H extends HeaderObject = HeaderObject> extends BodyPlan {
  /** The response headers to send instead of the backend's (see {@link translatedBodyHeaders}). */
  headers: H;
  transform: Transform;
}

const HTML_TYPES = new Set(['text/html', 'application/xhtml+xml']);
const SCRIPT_TYPES = new Set([
  'text/javascript',
  'application/javascript',
  'application/x-javascript',
  'application/ecmascript',
  'text/ecmascript',
]);
const JSON_TYPE = /^(?:application\/json|text\/json|application\/[\w.+-]+\+json)$/;
// Charsets in which ASCII bytes do not always mean ASCII characters.
const ASCII_INCOMPATIBLE =
  /^(?:utf-?16|utf-?32|ucs-?2|ucs-?4|unicode|iso-?2022|csiso2022|utf-?7|hz-gb-2312|replacement|(?:cp|ibm)0?37$|ebcdic)/;
const hasZstd =
  typeof (zlib as { createZstdDecompress?: unknown }).createZstdDecompress === 'function';

function parseContentType(value: string | undefined): { type: string; charset?: string } {
  if (value === undefined) return { type: '' };
  const [type = '', ...params] = value.split(';');
  let charset: string | undefined;
  for (const p of params) {
    const m = /^\s*charset\s*=\s*"?([^";\s]+)"?\s*$/i.exec(p);
    if (m) charset = m[1]!.toLowerCase();
  }
  return { type: type.trim().toLowerCase(), ...(charset !== undefined && { charset }) };
}

function codingOf(value: string | undefined): ContentCoding | undefined {
  const v = (value ?? '').trim().toLowerCase();
  if (v === '' || v === 'identity') return 'identity';
  if (v === 'gzip' || v === 'x-gzip') return 'gzip';
  if (v === 'deflate') return 'deflate';
  if (v === 'br') return 'br';
  if (v === 'zstd' && hasZstd) return 'zstd';
  return undefined;
}

/**
 * Decides whether and how a response body is translated, from its status, method and
 * headers alone. `undefined` — pipe the body through untouched — for: no body (`HEAD`,
 * 1xx/204/205/304, `Content-Length: 0`), a range (206 / `Content-Range`), `Cache-Control:
 * no-transform` (RFC 9111 forbids it), a type that is not HTML/CSS (or JavaScript with
 * `scripts`, JSON with `json`), a charset that is not ASCII-compatible (UTF-16, ISO-2022-JP, …), or a
 * `Content-Encoding` it cannot decode (several codings, `compress`, unknown).
 *
 * @example
 * planBodyTranslation({ statusCode: 200, headers: { 'content-type': 'text/html; charset=windows-1252', 'content-encoding': 'gzip' } }, {});
 * // { kind: 'html', charset: 'windows-1252', coding: 'gzip' }
 * planBodyTranslation({ statusCode: 200, headers: { 'content-type': 'image/png' } }, {}); // undefined
 */
export function planBodyTranslation(
  response: ResponseLike,
  options: Pick<
    BodyTranslationOptions,
    'html' | 'css' | 'scripts' | 'json' | 'rootRelative' | 'method'
  >,
): BodyPlan | undefined {
  const status = response.statusCode ?? 200;
  if (status < 200 || status === 204 || status === 205 || status === 206 || status === 304)
    return undefined;
  if (options.method?.toUpperCase() === 'HEAD') return undefined;
  const h = response.headers;
  if (getHeader(h, 'content-length')?.trim() === '0') return undefined;
  if (getHeader(h, 'content-range') !== undefined) return undefined;
  if (/(?:^|,)\s*no-transform\s*(?:,|$)/i.test(getHeader(h, 'cache-control') ?? ''))
    return undefined;
  const { type, charset } = parseContentType(getHeader(h, 'content-type'));
  let kind: BodyKind | undefined;
  if (HTML_TYPES.has(type)) kind = options.html === false ? undefined : 'html';
  else if (type === 'text/css') kind = options.css === false ? undefined : 'css';
  else if ((options.scripts || options.rootRelative) && SCRIPT_TYPES.has(type)) kind = 'script';
  else if (options.json && JSON_TYPE.test(type)) kind = 'json';
  if (kind === undefined) return undefined;
  if (charset !== undefined && ASCII_INCOMPATIBLE.test(charset)) return undefined;
  const coding = codingOf(getHeader(h, 'content-encoding'));
  if (coding === undefined) return undefined;
  return { kind, charset, coding };
}

/**
 * The response headers to send with a translated body: `Content-Length` dropped (the length
 * changes; HTTP/1.1 goes chunked), `Content-Encoding` kept (or dropped with `encode:
 * 'identity'`), a strong `ETag` made weak (`W/"…"`: same meaning, other bytes — conditional
 * requests keep working, as nginx does for gzip), `Content-MD5`/`Digest`/`Content-Digest`/
 * `Repr-Digest` dropped (they would be wrong), `Accept-Ranges` set to `none` (offsets into
 * the translated body would not match the backend's). `Content-Type`, its charset,
 * `Last-Modified`, `Vary` and the rest stay. A copy; the input is not changed.
 *
 * @example
 * translatedBodyHeaders({ 'content-length': '1200', etag: '"abc"', 'content-encoding': 'gzip' });
 * // { etag: 'W/"abc"', 'content-encoding': 'gzip' }
 */
export function translatedBodyHeaders<H extends HeaderObject>(
  headers: H,
  options: Pick<BodyTranslationOptions, 'encode'> = {},
): H {
  const out: HeaderObject = { ...headers };
  for (const name of ['content-length', 'content-md5', 'digest', 'content-digest', 'repr-digest'])
    deleteHeader(out, name);
  if (options.encode === 'identity') deleteHeader(out, 'content-encoding');
  mapHeader(out, 'etag', (v) => (v.startsWith('W/') ? undefined : `W/${v}`));
  if (headerKey(out, 'accept-ranges') !== undefined) mapHeader(out, 'accept-ranges', () => 'none');
  return out as H;
}

/** A synchronous, streaming rewriter of raw body bytes (for fetch/Web Streams adapters). */
export interface BodyRewriter {
  /** Rewrites the next chunk; returns the output that is final so far (maybe empty). */
  write(chunk: Uint8Array): Buffer;
  /** Ends the body; returns the rest. */
  end(): Buffer;
  /** Most input ever held back at once, in bytes. */
  readonly maxHeldBytes: number;
}

/**
 * A rewriter of decoded body bytes of one kind, for callers that move bytes themselves.
 * Output is byte for byte the input except for translated URLs; feeding it in any chunks
 * gives the same output.
 *
 * @example
 * const r = createBodyRewriter('css', { map });
 * Buffer.concat([r.write(Buffer.from('a{background:url(http://expenses.corp.local:8080/a.png)}')), r.end()]).toString();
 * // 'a{background:url(https://expenses.example.com/a.png)}'
 */
export function createBodyRewriter(
  kind: BodyKind,
  options: BodyRewriterOptions & { charset?: string },
): BodyRewriter {
  const rewriter = makeRewriter(kind, options);
  return {
    write: (chunk) => Buffer.from(rewriter.write(latin1(chunk)), 'latin1'),
    end: () => Buffer.from(rewriter.end(), 'latin1'),
    get maxHeldBytes() {
      return rewriter.maxHeld;
    },
  };
}

function latin1(chunk: Uint8Array): string {
  return (
    Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength)
  ).toString('latin1');
}

function makeRewriter(
  kind: BodyKind,
  options: BodyRewriterOptions & { charset?: string },
): Rewriter {
  const maxPending = options.maxPendingBytes ?? 65_536;
  if (!Number.isInteger(maxPending) || maxPending < 1024)
    throw new TranslateError(
      'APPPROXY_TRANSLATE_INVALID_OPTION',
      'maxPendingBytes must be an integer of at least 1024',
    );
  const page = pageOf(options.map, options.app);
  if (options.app !== undefined && page === undefined)
    throw new TranslateError(
      'APPPROXY_TRANSLATE_INVALID_OPTION',
      `no app named ${JSON.stringify(options.app)}`,
    );
  const mapped = options.app === undefined ? undefined : options.map.app(options.app);
  const rootRelative =
    kind !== 'json' &&
    options.rootRelative &&
    mapped &&
    mapped.internalPath !== '/' &&
    mapped.internalPath !== mapped.externalPath
      ? { from: mapped.internalPath, to: mapped.externalPath }
      : undefined;
  const opts = {
    matcher: outboundMatcher(options.map),
    // Absolute URLs in scripts: always in a JSON body (only `json` plans one) and, unless
    // `scripts: false`, in a script body; in HTML's inline scripts only with `scripts`.
    scripts:
      kind === 'json' ||
      (kind === 'script' ? options.scripts !== false : (options.scripts ?? false)),
    ...(rootRelative && { rootRelative }),
    maxPending,
    ...(options.app !== undefined && { prefer: options.app }),
    ...(page !== undefined && { page }),
    ...(options.charset !== undefined && { charset: options.charset }),
  };
  return kind === 'html'
    ? new HtmlRewriter(opts)
    : kind === 'css'
      ? new CssRewriter(opts)
      : new ScriptRewriter(opts);
}

/**
 * Decides from the response whether its body is translated and, if so, gives the headers to
 * send and a `Transform` to pipe the body through: decode (gzip, deflate — zlib or raw —,
 * br, zstd where Node has it), rewrite, re-encode the same way. Returns `undefined` when the
 * body must pass untouched and unbuffered (see {@link planBodyTranslation}): pipe it directly.
 *
 * @example
 * const t = createBodyTranslation(proxyRes, { map, app: 'Expenses' });
 * t?.kind; // 'html'
 * if (t) { res.writeHead(proxyRes.statusCode, t.headers); pipeline(proxyRes, t.transform, res, done); }
 * else { res.writeHead(proxyRes.statusCode, proxyRes.headers); pipeline(proxyRes, res, done); }
 */
export function createBodyTranslation<H extends HeaderObject>(
  response: ResponseLike & { headers: H },
  options: BodyTranslationOptions,
): BodyTranslation<H> | undefined {
  const plan = planBodyTranslation(response, options);
  if (!plan) return undefined;
  const rewriter = makeRewriter(plan.kind, {
    ...options,
    // A JavaScript body planned for `rootRelative` alone keeps its absolute URLs.
    scripts: options.scripts ?? false,
    ...(plan.charset !== undefined && { charset: plan.charset }),
  });
  const encode = options.encode ?? 'same';
  const transform = new TranslatingTransform(rewriter, plan.coding, encode === 'same', options);
  return { ...plan, headers: translatedBodyHeaders(response.headers, { encode }), transform };
}

type ZlibStream = zlib.Gunzip | zlib.Inflate | zlib.InflateRaw | zlib.BrotliDecompress;
type ZlibEncoder = zlib.Gzip | zlib.Deflate | zlib.DeflateRaw | zlib.BrotliCompress;

/** decode → rewrite → encode, with backpressure across all three. */
class TranslatingTransform extends Transform {
  readonly #rewriter: Rewriter;
  readonly #coding: ContentCoding;
  readonly #reencode: boolean;
  readonly #options: BodyTranslationOptions;
  #decoder: ZlibStream | undefined;
  #encoder: ZlibEncoder | undefined;
  #rawDeflate = false;
  #head: Buffer | undefined;
  #timer: NodeJS.Timeout | undefined;

  constructor(
    rewriter: Rewriter,
    coding: ContentCoding,
    reencode: boolean,
    options: BodyTranslationOptions,
  ) {
    super();
    this.#rewriter = rewriter;
    this.#coding = coding;
    this.#reencode = reencode && coding !== 'identity';
    this.#options = options;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    if (this.#coding === 'identity') {
      this.#rewrite(chunk);
      this.#afterWrite(callback);
      return;
    }
    if (!this.#decoder) {
      // deflate may be zlib-wrapped (RFC 9110) or raw (old IIS): the first two bytes tell.
      const head = this.#head ? Buffer.concat([this.#head, chunk]) : chunk;
      if (this.#coding === 'deflate' && head.length < 2) {
        this.#head = head;
        callback();
        return;
      }
      this.#head = undefined;
      this.#decoder = this.#makeDecoder(head);
      chunk = head;
    }
    // Backpressure by write()'s result, not by waiting for each chunk to be inflated: the
    // decoder works on one chunk while the next arrives.
    if (this.#decoder.write(chunk)) this.#afterWrite(callback);
    else this.#decoder.once('drain', () => this.#afterWrite(callback));
  }

  override _flush(callback: TransformCallback): void {
    this.#clearTimer();
    const finish = () => {
      const rest = this.#rewriter.end();
      if (rest.length > 0) this.#out(Buffer.from(rest, 'latin1'));
      this.#clearTimer();
      // A body that decodes to nothing still leaves encoded (an empty gzip member), never as
      // zero bytes under its Content-Encoding.
      if (this.#reencode && this.#decoder) this.#encoder ??= this.#makeEncoder();
      if (this.#encoder) {
        this.#encoder.once('end', () => callback());
        this.#encoder.end();
      } else callback();
    };
    if (this.#head) {
      // A one-byte "deflate" body: not decodable.
      this.destroy(this.#decodeError(new Error('deflate body shorter than its header')));
      return;
    }
    if (this.#decoder) {
      this.#decoder.once('end', finish);
      this.#decoder.end();
    } else finish();
  }

  override _read(size: number): void {
    super._read(size);
    if (this.#decoder?.isPaused() && !this.#encoder?.writableNeedDrain) this.#decoder.resume();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.#clearTimer();
    this.#decoder?.destroy();
    this.#encoder?.destroy();
    callback(error);
  }

  #makeDecoder(head: Buffer): ZlibStream {
    let decoder: ZlibStream;
    switch (this.#coding) {
      case 'gzip':
        decoder = zlib.createGunzip();
        break;
      case 'deflate': {
        const zlibWrapped = (head[0]! & 0x0f) === 8 && ((head[0]! << 8) | head[1]!) % 31 === 0;
        this.#rawDeflate = !zlibWrapped;
        decoder = zlibWrapped ? zlib.createInflate() : zlib.createInflateRaw();
        break;
      }
      case 'br':
        decoder = zlib.createBrotliDecompress();
        break;
      default:
        decoder = (
          zlib as unknown as { createZstdDecompress(): ZlibStream }
        ).createZstdDecompress();
    }
    decoder.on('data', (data: Buffer) => {
      this.#rewrite(data);
      if (this.#encoder?.writableNeedDrain || this.readableLength >= this.readableHighWaterMark)
        decoder.pause();
    });
    decoder.on('error', (err) => this.destroy(this.#decodeError(err)));
    return decoder;
  }

  #decodeError(cause: unknown): TranslateError {
    return new TranslateError(
      'APPPROXY_TRANSLATE_DECODE_FAILED',
      `response body could not be decoded as ${this.#coding}`,
      { cause },
    );
  }

  #makeEncoder(): ZlibEncoder {
    const o = this.#options;
    let encoder: ZlibEncoder;
    switch (this.#coding) {
      case 'gzip':
        encoder = zlib.createGzip({ level: o.gzipLevel ?? 4 });
        break;
      case 'deflate':
        encoder = this.#rawDeflate
          ? zlib.createDeflateRaw({ level: o.gzipLevel ?? 4 })
          : zlib.createDeflate({ level: o.gzipLevel ?? 4 });
        break;
      case 'br':
        encoder = zlib.createBrotliCompress({
          params: {
            [zlib.constants.BROTLI_PARAM_QUALITY]: o.brotliQuality ?? 4,
            [zlib.constants.BROTLI_PARAM_MODE]: zlib.constants.BROTLI_MODE_TEXT,
          },
        });
        break;
      default:
        encoder = (zlib as unknown as { createZstdCompress(): zlib.Gzip }).createZstdCompress();
    }
    encoder.on('data', (data: Buffer) => this.push(data));
    encoder.on('drain', () => {
      if (this.#decoder?.isPaused() && this.readableLength < this.readableHighWaterMark)
        this.#decoder.resume();
    });
    encoder.on('error', (err) => this.destroy(err));
    return encoder;
  }

  #rewrite(data: Buffer): void {
    const out = this.#rewriter.write(data.toString('latin1'));
    if (out.length > 0) this.#out(Buffer.from(out, 'latin1'));
  }

  #out(data: Buffer): void {
    if (!this.#reencode) {
      this.push(data);
      return;
    }
    this.#encoder ??= this.#makeEncoder();
    this.#encoder.write(data);
    this.#armTimer();
  }

  #afterWrite(callback: TransformCallback): void {
    if (this.#encoder?.writableNeedDrain) this.#encoder.once('drain', () => callback());
    else callback();
  }

  /** (Re)starts the idle timer after output went to the encoder. */
  #armTimer(): void {
    const ms = this.#options.flushAfterMs ?? 50;
    if (!this.#encoder || ms <= 0) return;
    if (this.#timer) {
      this.#timer.refresh();
      return;
    }
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      const encoder = this.#encoder;
      if (!encoder || encoder.writableEnded) return;
      // SYNC_FLUSH (not FULL_FLUSH): flush without resetting the dictionary.
      if (this.#coding === 'br') encoder.flush();
      else encoder.flush(zlib.constants.Z_SYNC_FLUSH);
    }, ms);
    this.#timer.unref();
  }

  #clearTimer(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}
