import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it, vi } from 'vitest';

const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
const blocks = [...readme.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]!);
const dir = mkdtempSync(join(tmpdir(), 'telemetry-readme-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

it('has the three examples', () => {
  expect(blocks).toHaveLength(3);
});

it('the logger example redacts what it says', async () => {
  const file = join(dir, 'log.ts');
  writeFileSync(file, blocks[0]!);
  const write = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
  try {
    await import(file);
    // The default sink writes the lines of one event-loop turn at the end of the turn.
    await new Promise((resolve) => setImmediate(resolve));
    const line = JSON.parse(String(write.mock.calls.at(-1)![0])) as Record<string, unknown>;
    expect(line).toMatchObject({
      msg: 'request',
      requestId: 'r-1',
      status: 200,
      headers: { authorization: '[redacted]', cookie: '[redacted]' },
    });
  } finally {
    write.mockRestore();
  }
});

it('the metrics example runs', async () => {
  const file = join(dir, 'metrics.ts');
  writeFileSync(file, `${blocks[1]!}\nexport const text = metrics.render();\n`);
  const { text } = (await import(file)) as { text: string };
  expect(text).toContain('appproxy_requests_total{app="Expenses",status="200"} 1');
  expect(text).toContain('appproxy_request_duration_seconds_count{app="Expenses"} 1');
  expect(text).toMatch(/^process_resident_memory_bytes \d+$/m);
});

it('the traces example continues the parent’s trace', async () => {
  const file = join(dir, 'traces.ts');
  writeFileSync(file, `${blocks[2]!}\nexport { parent, upstream };\n`);
  const { parent, upstream } = (await import(file)) as {
    parent: { traceId: string };
    upstream: { traceparent: string };
  };
  expect(upstream.traceparent).toMatch(new RegExp(`^00-${parent.traceId}-[0-9a-f]{16}-01$`));
});
