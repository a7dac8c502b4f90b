import {
  chmodSync,
  mkdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { CliError } from './errors.js';

/** What `register` leaves in --state-dir and `start` reads back. */
export interface ConnectorState {
  relayUrl: string;
  connectorId: string;
  group: string;
  registeredAt: string;
  keyPem: string;
  certPem: string;
  relayCaPem: string;
}

const FILES = {
  meta: 'connector.json',
  key: 'connector-key.pem',
  cert: 'connector.pem',
  relayCa: 'relay-ca.pem',
} as const;

/** Where `start` keeps the relay instances it last heard of (docs/tunnel-protocol.md §3.6). */
export function instancesFile(dir: string): string {
  return join(dir, 'relay-instances.json');
}

/**
 * Whether `dir` holds a registration.
 * @throws {CliError} (exit 2) when that cannot be known: permission denied, not a directory
 */
export function isRegistered(dir: string): boolean {
  try {
    statSync(join(dir, FILES.meta));
    return true;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return false;
    throw new CliError(`--state-dir ${dir}: ${reason(err)}`, 2);
  }
}

/**
 * Creates `dir` (0700, each missing level on its own: Node's recursive mkdir loops forever
 * on some paths, e.g. under /proc) and proves a file can be written in it.
 * @throws {CliError} (exit 2) naming the directory and why
 */
export function checkWritable(dir: string): void {
  const missing: string[] = [];
  for (let at = dir; ; at = dirname(at)) {
    try {
      if (!statSync(at).isDirectory())
        throw new CliError(`--state-dir ${dir}: ${at} is not a directory`, 2);
      break;
    } catch (err) {
      if (err instanceof CliError) throw err;
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' || dirname(at) === at)
        throw new CliError(`--state-dir ${dir}: ${reason(err)}`, 2);
      missing.unshift(at);
    }
  }
  const probe = join(dir, `.write-check-${process.pid}`);
  try {
    for (const level of missing) mkdirSync(level, { mode: 0o700 });
    writeFileSync(probe, '');
    rmSync(probe);
  } catch (err) {
    throw new CliError(`--state-dir ${dir}: cannot write: ${reason(err)}`, 2);
  }
}

function reason(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  if (e.code === 'EACCES' || e.code === 'EPERM') return `permission denied (${e.code})`;
  if (e.code === 'ENOTDIR') return 'a parent is not a directory (ENOTDIR)';
  if (e.code === 'EROFS') return 'read-only file system (EROFS)';
  return e.code ? `${e.message}` : String(err);
}

/** Writes atomically (temp + rename), the key with mode 0600 and the folder 0700. */
export function saveState(dir: string, state: ConnectorState): void {
  checkWritable(dir);
  chmodSync(dir, 0o700);
  const write = (name: string, data: string, mode: number) => {
    const tmp = join(dir, `.${name}.tmp`);
    writeFileSync(tmp, data, { mode });
    chmodSync(tmp, mode);
    renameSync(tmp, join(dir, name));
  };
  write(FILES.key, state.keyPem, 0o600);
  write(FILES.cert, state.certPem, 0o644);
  write(FILES.relayCa, state.relayCaPem, 0o644);
  const meta = {
    relayUrl: state.relayUrl,
    connectorId: state.connectorId,
    group: state.group,
    registeredAt: state.registeredAt,
  };
  write(FILES.meta, `${JSON.stringify(meta, null, 2)}\n`, 0o644);
}

export function loadState(dir: string): ConnectorState {
  if (!isRegistered(dir)) {
    throw new CliError(
      `${dir} holds no registration; run \`appproxy-connector register\` first`,
      2,
    );
  }
  try {
    const meta = JSON.parse(readFileSync(join(dir, FILES.meta), 'utf8')) as Pick<
      ConnectorState,
      'relayUrl' | 'connectorId' | 'group' | 'registeredAt'
    >;
    return {
      ...meta,
      keyPem: readFileSync(join(dir, FILES.key), 'utf8'),
      certPem: readFileSync(join(dir, FILES.cert), 'utf8'),
      relayCaPem: readFileSync(join(dir, FILES.relayCa), 'utf8'),
    };
  } catch (err) {
    throw new CliError(`state in ${dir} is unreadable: ${reason(err)}`, 2);
  }
}
