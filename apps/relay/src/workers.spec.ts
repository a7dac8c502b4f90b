import { describe, expect, it } from 'vitest';
import { RestartBackoff, sharedStdoutSink, workerFromEnv, WORKER_ENV } from './workers.js';

describe('RestartBackoff', () => {
  it('1 s, doubling up to 30 s while the worker keeps dying at once', () => {
    const b = new RestartBackoff();
    expect(Array.from({ length: 8 }, () => b.delay(100))).toStrictEqual([
      1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000, 30_000,
    ]);
  });

  it('back to 1 s after a worker ran a minute; not before', () => {
    const b = new RestartBackoff();
    b.delay(0);
    b.delay(0);
    expect(b.delay(59_999)).toBe(4_000);
    expect(b.delay(60_000)).toBe(1_000);
    expect(b.delay(5_000)).toBe(2_000);
  });
});

describe('workerFromEnv', () => {
  it('reads the worker the primary started; none in a process of its own', () => {
    expect(workerFromEnv({})).toBeUndefined();
    expect(
      workerFromEnv({ [WORKER_ENV]: '{"index":1,"count":2,"listenPort":8443}' }),
    ).toStrictEqual({ index: 1, count: 2, listenPort: 8443 });
  });
});

describe('sharedStdoutSink', () => {
  it('one turn of lines in writes of at most 4096 bytes, cut at line ends', async () => {
    const writes: string[] = [];
    const sink = sharedStdoutSink((t) => writes.push(t));
    const lines = Array.from({ length: 40 }, (_, i) => `${String(i).padEnd(299, 'x')}\n`);
    const long = `${'y'.repeat(5000)}\n`;
    for (const l of [...lines.slice(0, 20), long, ...lines.slice(20)]) sink(l);
    expect(writes).toStrictEqual([]);
    await new Promise((r) => setImmediate(r));
    expect(writes.join('')).toBe([...lines.slice(0, 20), long, ...lines.slice(20)].join(''));
    for (const w of writes) {
      expect(w.endsWith('\n')).toBe(true);
      if (w !== long) expect(Buffer.byteLength(w)).toBeLessThanOrEqual(4096);
    }
    expect(writes).toContain(long);
    // 300-byte lines: 13 to a write.
    expect(writes[0]!.split('\n')).toHaveLength(14);
  });
});
