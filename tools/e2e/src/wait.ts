/**
 * Small test helpers with no side effects at import (harness.ts checks the built CLIs when
 * imported; unit specs such as the PostgreSQL store's must not need them).
 */
import { createServer, type AddressInfo } from 'node:net';

export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((r) => server.close(() => r()));
  return port;
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
