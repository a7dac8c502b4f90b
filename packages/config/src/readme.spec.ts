import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, expect, it, vi } from 'vitest';

const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
const block = (lang: string) => {
  const m = new RegExp('```' + lang + '\\n([\\s\\S]*?)```').exec(readme);
  if (!m) throw new Error(`README has no ${lang} block`);
  return m[1]!;
};

const cwd = process.cwd();
const dir = mkdtempSync(join(tmpdir(), 'appproxy-readme-'));
afterEach(() => {
  process.chdir(cwd);
  delete process.env.APPPROXY_CLIENT_SECRET;
  vi.restoreAllMocks();
  rmSync(dir, { recursive: true, force: true });
});

it('the README example runs as printed', async () => {
  mkdirSync(join(dir, 'tls'));
  writeFileSync(join(dir, 'tls/site.pem'), 'cert');
  writeFileSync(join(dir, 'tls/site-key.pem'), 'key');
  writeFileSync(join(dir, 'appproxy.yaml'), block('yaml'));
  writeFileSync(join(dir, 'example.ts'), block('ts'));
  process.env.APPPROXY_CLIENT_SECRET = 'example-secret';
  process.chdir(dir);
  const log = vi.spyOn(console, 'log').mockImplementation(() => {});
  const error = vi.spyOn(console, 'error').mockImplementation(() => {});

  await import(join(dir, 'example.ts'));

  expect(error).not.toHaveBeenCalled();
  expect(log.mock.calls).toStrictEqual([
    ['https://expenses.example.com/ → http://expenses.corp.local:8080/ (oidc, 180000 ms)'],
    [{ group: 'Default' }],
  ]);
  expect(readFileSync(join(dir, 'var/relay/state.db')).length).toBeGreaterThan(0);
});
