import { describe, expect, it } from 'vitest';
import {
  formatTraceparent,
  newSpanId,
  newTraceId,
  parseTraceparent,
  parseTracestate,
} from './trace-context.js';

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const SPAN = '00f067aa0ba902b7';

describe('parseTraceparent', () => {
  it('reads a version 00 header', () => {
    expect(parseTraceparent(`00-${TRACE}-${SPAN}-01`)).toEqual({
      traceId: TRACE,
      spanId: SPAN,
      flags: 1,
    });
    expect(parseTraceparent(`00-${TRACE}-${SPAN}-00`)?.flags).toBe(0);
    // Unknown flag bits are kept (a later spec may define them); only bit 0 is read here.
    expect(parseTraceparent(`00-${TRACE}-${SPAN}-09`)?.flags).toBe(9);
  });

  // The invalid cases of the W3C trace-context test suite (test/test.py), each a new trace.
  it.each([
    ['absent', undefined],
    ['empty', ''],
    ['two headers', [`00-${TRACE}-${SPAN}-01`, `00-${TRACE}-${SPAN}-01`]],
    ['version ff', `ff-${TRACE}-${SPAN}-01`],
    ['a later version (not parsed by a version 00 proxy)', `01-${TRACE}-${SPAN}-01`],
    ['version not hex', `0x-${TRACE}-${SPAN}-01`],
    ['uppercase trace id', `00-${TRACE.toUpperCase()}-${SPAN}-01`],
    ['uppercase span id', `00-${TRACE}-00F067AA0BA902B7-01`],
    ['uppercase flags', `00-${TRACE}-${SPAN}-0A`],
    ['all-zero trace id', `00-${'0'.repeat(32)}-${SPAN}-01`],
    ['all-zero span id', `00-${TRACE}-${'0'.repeat(16)}-01`],
    ['short trace id', `00-${TRACE.slice(1)}-${SPAN}-01`],
    ['long trace id', `00-${TRACE}0-${SPAN}-01`],
    ['short span id', `00-${TRACE}-${SPAN.slice(1)}-01`],
    ['long span id', `00-${TRACE}-${SPAN}0-01`],
    ['one-digit flags', `00-${TRACE}-${SPAN}-1`],
    ['three-digit flags', `00-${TRACE}-${SPAN}-011`],
    ['no flags', `00-${TRACE}-${SPAN}`],
    ['trailing data after version 00', `00-${TRACE}-${SPAN}-01-what`],
    ['non-hex trace id', `00-${TRACE.slice(0, 31)}g-${SPAN}-01`],
    ['wrong separator', `00_${TRACE}_${SPAN}_01`],
    ['inner whitespace', `00- ${TRACE}-${SPAN}-01`],
  ])('refuses %s', (_why, value) => {
    expect(parseTraceparent(value)).toBeUndefined();
  });

  it('ignores surrounding whitespace (optional whitespace of a header value)', () => {
    expect(parseTraceparent(` 00-${TRACE}-${SPAN}-01\t`)?.traceId).toBe(TRACE);
  });
});

describe('formatTraceparent', () => {
  it('writes version 00 with two-digit flags and round-trips', () => {
    const value = formatTraceparent({ traceId: TRACE, spanId: SPAN, flags: 1 });
    expect(value).toBe(`00-${TRACE}-${SPAN}-01`);
    expect(parseTraceparent(value)).toEqual({ traceId: TRACE, spanId: SPAN, flags: 1 });
  });
});

describe('parseTracestate', () => {
  it('keeps a valid list as sent, joining several headers', () => {
    expect(parseTracestate('congo=t61rcWkgMzE,rojo=00f067aa0ba902b7')).toBe(
      'congo=t61rcWkgMzE,rojo=00f067aa0ba902b7',
    );
    expect(parseTracestate(['a=1', 'tenant@vendor=x'])).toBe('a=1,tenant@vendor=x');
    expect(parseTracestate('a=1, ,b=2')).toBe('a=1,b=2');
  });

  it.each([
    ['absent', undefined],
    ['empty', ''],
    ['no equals sign', 'congo'],
    ['uppercase key', 'Congo=1'],
    ['value with a control byte', 'a=b\u0001c'],
    ['value with an equals sign', 'a=b=c'],
    ['duplicate key', 'a=1,a=2'],
    ['more than 32 members', Array.from({ length: 33 }, (_, i) => `k${i}=v`).join(',')],
    ['longer than 512 characters', `a=${'x'.repeat(256)},b=${'x'.repeat(256)}`],
  ])('drops %s', (_why, value) => {
    expect(parseTracestate(value)).toBeUndefined();
  });
});

describe('ids', () => {
  it('are lowercase hex of the right length and differ', () => {
    const traces = new Set(Array.from({ length: 100 }, newTraceId));
    expect(traces.size).toBe(100);
    for (const id of traces) expect(id).toMatch(/^[0-9a-f]{32}$/);
    expect(newSpanId()).toMatch(/^[0-9a-f]{16}$/);
    expect(newSpanId()).not.toBe(newSpanId());
  });
});
