const UNIT_MS = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

/**
 * Durations as written in `appproxy.yaml` and on the command line: one or more
 * `<number><unit>` parts (`ms`, `s`, `m`, `h`, `d`), e.g. `500ms`, `5s`, `1.5m`, `1h30m`,
 * or a bare integer of milliseconds.
 */
export const DURATION_PATTERN = /^\s*(?:\d+|(?:\d+(?:\.\d+)?\s*(?:ms|s|m|h|d)\s*)+)$/;

const PART = /(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)/g;

/**
 * A duration in milliseconds. Numbers are milliseconds already; strings are parsed as
 * {@link DURATION_PATTERN} describes (a bare integer string is milliseconds too).
 *
 * @throws {RangeError} when the input is not a non-negative, finite duration. The message
 * does not repeat the input.
 * @example
 * parseDuration('5s'); // 5000
 * parseDuration('1h30m'); // 5400000
 * parseDuration(250); // 250
 */
export function parseDuration(v: string | number): number {
  if (typeof v === 'number') {
    if (!Number.isFinite(v) || v < 0)
      throw new RangeError('a duration must be a finite, non-negative number of milliseconds');
    return v;
  }
  if (typeof v !== 'string' || !DURATION_PATTERN.test(v)) {
    throw new RangeError(
      'expected a duration such as 500ms, 5s, 2m, 1h30m, or a number of milliseconds',
    );
  }
  const text = v.trim();
  let ms = 0;
  if (/^\d+$/.test(text)) ms = Number(text);
  else
    for (const [, amount, unit] of text.matchAll(PART))
      ms += Number(amount) * UNIT_MS[unit as keyof typeof UNIT_MS];
  if (!Number.isFinite(ms)) throw new RangeError('duration is too large');
  return Math.round(ms);
}
