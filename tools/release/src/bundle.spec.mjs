import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { bundleCli } from './bundle.mjs';

const root = mkdtempSync(join(tmpdir(), 'appproxy-bundle-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** A one-app workspace: apps/<app>/src/bin.ts with `source`, and its package.json. */
function app(name, source) {
  const dir = join(root, 'apps', name);
  mkdirSync(join(dir, 'src'), { recursive: true });
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ version: '9.8.7' }));
  writeFileSync(join(dir, 'tsconfig.json'), '{}');
  writeFileSync(join(dir, 'src/bin.ts'), source);
  return name;
}

describe('bundleCli', () => {
  it('inlines what our sources load with createRequire(import.meta.url), node: stays external', async () => {
    const name = app(
      'ok',
      `import { createRequire } from 'node:module';
import { DatabaseSync } from 'node:sqlite';
const require = createRequire(import.meta.url);
const version: string = (require('../package.json') as { version: string }).version;
console.log(version, typeof DatabaseSync);
`,
    );
    const outfile = join(root, 'ok.cjs');
    await bundleCli({ root, app: name, outfile });
    // Run from elsewhere: nothing may be looked up beside the source any more.
    const out = execFileSync(process.execPath, [outfile], { cwd: tmpdir(), encoding: 'utf8' });
    expect(out.trim()).toBe('9.8.7 function');
  });

  it('refuses any other import.meta use, which would be empty at run time', async () => {
    const name = app('meta', `console.log(new URL('./x', import.meta.url).href);\n`);
    await expect(bundleCli({ root, app: name, outfile: join(root, 'meta.cjs') })).rejects.toThrow(
      /import\.meta/,
    );
  });
});
