import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it, vi } from 'vitest';

const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
const blocks = [...readme.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]!);
const dir = mkdtempSync(join(tmpdir(), 'routing-readme-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function run(block: string, name: string): Promise<unknown[][]> {
  const file = join(dir, `${name}.ts`);
  writeFileSync(file, block);
  const log = vi.spyOn(console, 'log').mockImplementation(() => {});
  try {
    await import(file);
    return log.mock.calls;
  } finally {
    log.mockRestore();
  }
}

it('has the two examples', () => {
  expect(blocks).toHaveLength(2);
});

it('the AppTable example runs as printed', async () => {
  const logged = await run(blocks[0]!, 'app-table');
  expect(logged[0]![0]).toMatchObject({
    internalPath: '/app/2024?q=1',
    internalOrigin: 'http://expenses.corp:8080',
    internalHost: 'expenses.corp:8080',
  });
  expect(logged[1]).toEqual(['ENCODED_SEPARATOR']);
});

it('the ConnectorGroups example runs as printed', async () => {
  expect(await run(blocks[1]!, 'groups')).toEqual([
    ['c2'],
    ['NO_CONNECTOR'],
    [true],
    [true, false],
  ]);
});
