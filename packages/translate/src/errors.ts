/** Stable codes of everything `@appproxy/translate` refuses or loses. */
export type TranslateErrorCode =
  | 'APPPROXY_TRANSLATE_INVALID_APP'
  | 'APPPROXY_TRANSLATE_INVALID_OPTION'
  | 'APPPROXY_TRANSLATE_DECODE_FAILED';

/**
 * Translation cannot be set up as asked (`INVALID_APP`, `INVALID_OPTION`), or a response
 * body cannot be decoded (`DECODE_FAILED`, with the zlib error as `cause`; the stream ends
 * with it — the response is cut, never passed on half-translated as if complete).
 *
 * @example
 * try {
 *   new UrlMap([{ name: 'Broken', internalUrl: 'expenses.corp.local', externalUrl: 'https://e.example.com/' }]);
 * } catch (err) {
 *   if (err instanceof TranslateError) console.log(err.code); // 'APPPROXY_TRANSLATE_INVALID_APP'
 * }
 */
export class TranslateError extends Error {
  readonly code: TranslateErrorCode;
  constructor(code: TranslateErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TranslateError';
    this.code = code;
  }
}
