import { once } from 'node:events';
import type { Writable } from 'node:stream';

/**
 * Seeded randomness for the byte-integrity suite: the same seed gives the same bodies, chunk
 * sizes and pauses on every run, so a failure names a case that can be run again.
 */
export type Random = () => number;

/** mulberry32: a small, fast PRNG with a 32-bit seed; values in [0, 1). */
export function random(seed: number): Random {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** An integer in [1, max], log-uniform: as many 1–16 byte chunks as 4–64 KiB ones. */
export function logUniform(rand: Random, max: number): number {
  return Math.max(1, Math.min(max, Math.floor(2 ** (rand() * Math.log2(max + 1)))));
}

/** A chunk size between 1 byte and 64 KiB. */
export const chunkSize = (rand: Random): number => logUniform(rand, 64 * 1024);

/**
 * A random pause between two writes: often none (several writes in one event-loop turn),
 * else `setImmediate`, a zero timer or a short timer.
 */
export function pause(rand: Random): Promise<void> | undefined {
  const r = rand();
  if (r < 0.55) return undefined;
  if (r < 0.8) return new Promise((resolve) => setImmediate(resolve));
  if (r < 0.93) return new Promise((resolve) => setTimeout(resolve, 0));
  return new Promise((resolve) => setTimeout(resolve, 1 + Math.floor(rand() * 4)));
}

/** Random bytes, deterministic for `seed`. */
export function randomBytesOf(seed: number, size: number): Buffer {
  const rand = random(seed);
  const out = Buffer.allocUnsafe(size);
  for (let i = 0; i < size; i++) out[i] = Math.floor(rand() * 256);
  return out;
}

const WORDS = ['alpha', 'beta', 'gamma', 'delta', 'proxy', 'tunnel', 'relay', 'chunk', 'byte'];

/**
 * An HTML page of about `size` bytes (never less, except for 0 → empty), deterministic for
 * `seed`, with links to `linkBase` (the app's internal URL) that link translation rewrites.
 */
export function htmlOf(seed: number, size: number, linkBase: string): Buffer {
  if (size === 0) return Buffer.alloc(0);
  const rand = random(seed);
  const parts = ['<!doctype html><html><head><title>integrity</title></head><body>\n'];
  let length = parts[0]!.length;
  let n = 0;
  while (length < size) {
    const part =
      rand() < 0.03
        ? `<a href="${linkBase}p/${n++}">link ${n}</a>\n`
        : `${WORDS[Math.floor(rand() * WORDS.length)]}${rand() < 0.1 ? '\n' : ' '}`;
    parts.push(part);
    length += part.length;
  }
  parts.push('</body></html>\n');
  return Buffer.from(parts.join(''));
}

/** Resolves once `dest` drained, or at once if it closed (the caller checks `destroyed`). */
async function drained(dest: Writable): Promise<void> {
  if (dest.destroyed) return;
  const ac = new AbortController();
  await Promise.race([
    once(dest, 'drain', { signal: ac.signal }).catch(() => {}),
    once(dest, 'close', { signal: ac.signal }).catch(() => {}),
  ]);
  ac.abort();
}

/**
 * Writes `data` into `dest` in random chunk sizes with random pauses, honouring backpressure.
 * `writeChunk` frames a chunk (e.g. HTTP/1.1 chunked encoding by hand); `stopAt` stops
 * after that many bytes (for truncation cases). Returns the bytes written.
 */
export async function writeRandomly(
  dest: Writable,
  data: Buffer,
  rand: Random,
  opts: { stopAt?: number; writeChunk?: (chunk: Buffer) => boolean } = {},
): Promise<number> {
  const limit = Math.min(opts.stopAt ?? data.length, data.length);
  const write = opts.writeChunk ?? ((chunk: Buffer) => dest.write(chunk));
  let offset = 0;
  while (offset < limit && !dest.destroyed) {
    const end = Math.min(limit, offset + chunkSize(rand));
    if (!write(data.subarray(offset, end))) await drained(dest);
    offset = end;
    const wait = pause(rand);
    if (wait) await wait;
  }
  return offset;
}
