import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, expect, it, vi } from 'vitest';
import { useCleanup } from './__fixtures__/cleanup.js';
import { certificateFingerprint } from './index.js';

const { tempDir } = useCleanup();
const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
const blocks = [...readme.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]!);

const cwd = process.cwd();
afterEach(() => {
  process.chdir(cwd);
  vi.restoreAllMocks();
});

/** Runs a README block in a fresh directory; returns what it logged. */
async function run(block: string): Promise<{ dir: string; logged: unknown[][] }> {
  const dir = await tempDir();
  writeFileSync(join(dir, 'example.ts'), block);
  process.chdir(dir);
  const log = vi.spyOn(console, 'log').mockImplementation(() => {});
  await import(join(dir, 'example.ts'));
  return { dir, logged: log.mock.calls };
}

it('has the two examples', () => {
  expect(blocks).toHaveLength(2);
});

it('the connector CA example runs as printed', async () => {
  const { dir, logged } = await run(blocks[0]!);
  expect(logged).toEqual([['conn-1', true], [true]]);
  const caPem = readFileSync(join(dir, 'var/relay/connector-ca.pem'), 'utf8');
  expect(certificateFingerprint(caPem)).toMatch(/^[0-9a-f]{64}$/);
});

it('the dev certificates example runs as printed', async () => {
  const { dir, logged } = await run(blocks[1]!);
  const tls = join(dir, 'var/tls');
  expect(logged).toEqual([
    [join(tls, 'dev-ca.pem'), join(tls, 'site.pem'), join(tls, 'site-key.pem')],
  ]);
});
