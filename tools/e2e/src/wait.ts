/**
 * Small test helpers with no side effects at import (harness.ts checks the built CLIs when
 * imported; unit specs such as the PostgreSQL store's must not need them).
 */
import { readFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';

/*
 * Ports for servers a test tells where to listen (a CLI's `listen: 127.0.0.1:<port>`), known
 * before the server binds. Asking the kernel for port 0 and closing it again is racy: that
 * port is in the ephemeral range, where every outgoing connection of every test running at
 * once takes its local port, and one did take a relay's admin port in CI. So ports come from
 * below the ephemeral range (no connect() ever picks those), from a slice of its own per
 * vitest worker (VITEST_POOL_ID: two test files running at once never share a slice), each
 * checked bindable before it is handed out.
 */
const LOW_PORT = 10_000;
const SLICES = 16;

function ephemeralStart(): number {
  try {
    const [start] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').split(/\s+/);
    return Number(start) || 32_768;
  } catch {
    return 32_768; // not Linux: the IANA range starts at 49152, so this stays below it
  }
}

const slice = (() => {
  const size = Math.floor((ephemeralStart() - LOW_PORT) / SLICES);
  if (size < 64) return undefined; // an unusual ip_local_port_range: ask the kernel instead
  const worker = (Number(process.env.VITEST_POOL_ID) || 1) - 1;
  const first = LOW_PORT + (worker % SLICES) * size;
  return { first, size, next: Math.floor(Math.random() * size) };
})();

async function bindable(port: number): Promise<boolean> {
  const server = createServer();
  return new Promise<boolean>((resolve) => {
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

async function kernelPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

/**
 * A run of `count` consecutive free ports on 127.0.0.1 (relay workers listen on a run of
 * tunnel ports); returns the first.
 */
export async function freePortRun(count: number): Promise<number> {
  if (!slice) {
    for (;;) {
      const first = await kernelPort();
      let ok = true;
      for (let i = 1; i < count && ok; i++) ok = await bindable(first + i);
      if (ok) return first;
    }
  }
  for (let tried = 0; tried < slice.size; tried++) {
    if (slice.next + count > slice.size) slice.next = 0;
    const first = slice.first + slice.next;
    slice.next += count;
    let ok = true;
    for (let i = 0; i < count && ok; i++) ok = await bindable(first + i);
    if (ok) return first;
  }
  throw new Error(`no ${count} free ports left in ${slice.first}-${slice.first + slice.size - 1}`);
}

/** A free port on 127.0.0.1 for a server the test starts next (see above). */
export function freePort(): Promise<number> {
  return freePortRun(1);
}

/** Polls `check` (every 50 ms) until it holds; rejects naming `what` after `ms`. */
export async function until(
  check: () => boolean | Promise<boolean>,
  what: string,
  ms = 20_000,
): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * A system tool the tests need is missing: locally the tests that need it skip with a loud
 * message (returns false); in CI (APPPROXY_REQUIRE_ALL=1) it is an error, so nothing is
 * silently skipped there.
 */
export function missingTool(message: string): false {
  if (process.env.APPPROXY_REQUIRE_ALL === '1') throw new Error(message);
  console.warn(`\n!!! ${message} !!!\n`);
  return false;
}
