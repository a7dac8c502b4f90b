import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { format } from 'node:util';
import { afterAll, expect, it, vi } from 'vitest';

const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
const block = (lang: string) => {
  const m = new RegExp('```' + lang + '\\n([\\s\\S]*?)```').exec(readme);
  if (!m) throw new Error(`README has no ${lang} block`);
  return m[1]!;
};
const dir = mkdtempSync(join(tmpdir(), 'appproxy-sso-readme-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// The first ```ts block runs (a proxy and a backend on ports 0); the JWT block after it is
// a sketch with placeholders (`identity`, `req`) and is not run, nor is the Kerberos block,
// which needs a KDC (tools/e2e/src/kerberos-client.e2e.ts runs the same calls against Samba).
it('the README example prints what the README says', async () => {
  writeFileSync(join(dir, 'example.ts'), block('ts'));
  const log = vi.spyOn(console, 'log').mockImplementation(() => {});
  try {
    await import(join(dir, 'example.ts'));
    expect(log.mock.calls.map((args) => format(...args)).join('\n') + '\n').toBe(block('text'));
  } finally {
    log.mockRestore();
  }
});
