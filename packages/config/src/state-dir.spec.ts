import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ensureStateDir, stateDirProblem } from './state-dir.js';
import { openStateStore } from './open-store.js';

const dir = mkdtempSync(join(tmpdir(), 'state-dir-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('state directory', () => {
  it('creates missing levels with mode 0700', () => {
    const target = join(dir, 'a/b/c');
    expect(stateDirProblem(target)).toBeUndefined();
    expect(() => statSync(join(dir, 'a'))).toThrow(); // the check leaves nothing behind
    ensureStateDir(target);
    expect(statSync(target).mode & 0o777).toBe(0o700);
    ensureStateDir(target); // idempotent
  });

  it('refuses a file where the directory should be', () => {
    const file = join(dir, 'file');
    writeFileSync(file, 'x');
    expect(stateDirProblem(join(file, 'sub'))).toMatch(/file exists and is not a directory/);
    expect(() => ensureStateDir(join(file, 'sub'))).toThrow(
      expect.objectContaining({ code: 'APPPROXY_STATE_DIR_UNUSABLE' }),
    );
  });

  // Node's recursive mkdir loops forever here (ENOENT from a parent that exists).
  it.runIf(process.platform === 'linux')(
    'fails at once under /proc instead of hanging',
    async () => {
      const started = Date.now();
      expect(() => ensureStateDir('/proc/nope/state')).toThrow(/cannot create \/proc\/nope/);
      expect(stateDirProblem('/proc/nope')).toMatch(/cannot create \/proc\/nope in \/proc/);
      await expect(openStateStore('/proc/nope')).rejects.toThrow(
        expect.objectContaining({ code: 'APPPROXY_STATE_DIR_UNUSABLE' }),
      );
      expect(Date.now() - started).toBeLessThan(2000);
    },
  );
});
