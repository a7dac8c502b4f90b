import type { Http2Session } from 'node:http2';
import { describe, expect, it } from 'vitest';
import { watchLiveness } from './liveness.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const block = (ms: number) => {
  const until = Date.now() + ms;
  while (Date.now() < until);
};

/**
 * A quiet peer: it sends nothing but PING ACKs, and those are read the way a socket's bytes
 * are, in a later phase of the loop turn than the timers (emulated with setImmediate). So
 * after a stall the liveness check runs before the ACK that waited in the kernel is counted.
 */
function peer() {
  const socket = { bytesRead: 0 };
  let answering = true;
  const h2 = {
    destroyed: false,
    ping(ack: (err: Error | null) => void) {
      setTimeout(() =>
        setImmediate(() => {
          if (!answering) return;
          socket.bytesRead += 17;
          ack(null);
        }),
      );
      return true;
    },
  } as unknown as Http2Session;
  return { socket, h2, silence: () => (answering = false) };
}

describe('watchLiveness', () => {
  it('a stall of this process longer than the timeout does not kill a live peer', async () => {
    const { socket, h2, silence } = peer();
    const dead: string[] = [];
    const stop = watchLiveness(h2, socket, { intervalMs: 20, timeoutMs: 100 }, (r) => dead.push(r));
    try {
      await sleep(60);
      block(400);
      await sleep(200);
      expect(dead).toStrictEqual([]);
    } finally {
      stop();
      silence();
    }
  });

  it('a silent peer is still found, stall or not', async () => {
    const { socket, h2, silence } = peer();
    const dead: string[] = [];
    const stop = watchLiveness(h2, socket, { intervalMs: 20, timeoutMs: 100 }, (r) => dead.push(r));
    try {
      await sleep(60);
      silence();
      block(400);
      await sleep(300);
      expect(dead).toHaveLength(1);
      expect(dead[0]).toMatch(/^nothing received for \d+ ms \(PING timeout 100 ms\)$/);
    } finally {
      stop();
    }
  });
});
