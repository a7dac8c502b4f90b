import { accessSync, constants, mkdirSync, mkdtempSync, rmdirSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { StateStoreError } from './errors.js';

/**
 * Creates `dir` (mode 0700) with each missing parent, one level at a time, and checks that
 * the process can write in it.
 *
 * Not `mkdirSync(dir, { recursive: true })`: where a parent exists but refuses new entries
 * with ENOENT (`/proc/nope`), Node's recursive mkdir retries forever.
 *
 * @throws {StateStoreError} `APPPROXY_STATE_DIR_UNUSABLE`, naming the directory and why
 * @example
 * ensureStateDir('/var/lib/appproxy'); // or throws "cannot create /proc/nope: ENOENT …"
 */
export function ensureStateDir(dir: string): void {
  const target = resolve(dir);
  const missing: string[] = [];
  let at = target;
  for (;;) {
    const kind = kindOf(at);
    if (kind === 'dir') break;
    if (kind === 'other') throw unusable(`${at} exists and is not a directory`);
    missing.unshift(at);
    const parent = dirname(at);
    if (parent === at) break;
    at = parent;
  }
  for (const level of missing) {
    try {
      mkdirSync(level, { mode: 0o700 });
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      if (e.code === 'EEXIST' && kindOf(level) === 'dir') continue;
      throw unusable(`cannot create ${level}: ${describe(e)}`, e);
    }
  }
  try {
    accessSync(target, constants.R_OK | constants.W_OK | constants.X_OK);
  } catch (err) {
    throw unusable(`cannot write in ${target}: ${describe(err as NodeJS.ErrnoException)}`, err);
  }
}

/**
 * Whether `ensureStateDir(dir)` would succeed, without creating `dir`: a probe directory is
 * made and removed in `dir` or in its nearest existing parent. Undefined when fine, else why.
 */
export function stateDirProblem(dir: string): string | undefined {
  const target = resolve(dir);
  let at = target;
  for (;;) {
    const kind = kindOf(at);
    if (kind === 'dir') break;
    if (kind === 'other') return `${at} exists and is not a directory`;
    const parent = dirname(at);
    if (parent === at) return `no existing parent of ${target}`;
    at = parent;
  }
  try {
    // root passes access() checks on /proc and read-only mounts; a real mkdir tells.
    const probe = mkdtempSync(join(at, '.appproxy-check-'));
    rmdirSync(probe);
  } catch (err) {
    const what = at === target ? `cannot write in ${target}` : `cannot create ${target} in ${at}`;
    return `${what}: ${describe(err as NodeJS.ErrnoException)}`;
  }
  return undefined;
}

function kindOf(path: string): 'dir' | 'other' | 'none' {
  try {
    return statSync(path).isDirectory() ? 'dir' : 'other';
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    // ENOTDIR: a parent is a file; going up finds it and says so.
    if (code === 'ENOENT' || code === 'ENOTDIR') return 'none';
    throw unusable(`cannot inspect ${path}: ${describe(err as NodeJS.ErrnoException)}`, err);
  }
}

const REASONS: Record<string, string> = {
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EROFS: 'read-only file system',
  ENOENT: 'the file system does not allow it',
  ENOSPC: 'no space left on device',
  ENOTDIR: 'a parent is not a directory',
};

function describe(err: NodeJS.ErrnoException): string {
  return err.code ? `${REASONS[err.code] ?? err.message} (${err.code})` : err.message;
}

function unusable(message: string, cause?: unknown): StateStoreError {
  return new StateStoreError('APPPROXY_STATE_DIR_UNUSABLE', message, { cause });
}
