// A real PostgreSQL for tests: initdb + pg_ctl in a temporary directory, as the `postgres` OS
// user when the tests run as root (PostgreSQL refuses to run as root), on a free 127.0.0.1
// port with its unix socket in the same directory. No harness.ts import: unit specs use it.
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { freePort, missingTool } from './wait.js';

/** A running PostgreSQL; `stop` ends it (bounded) and removes its directory. */
export interface PostgresServer {
  /** `postgres://postgres:<password>@127.0.0.1:<port>/postgres` */
  url: string;
  port: number;
  password: string;
  /** A new empty database; returns its URL. */
  createDatabase(name?: string): Promise<string>;
  stop(): Promise<void>;
}

const START_TIMEOUT_S = 30;
const STOP_TIMEOUT_S = 10;

/**
 * Where PostgreSQL's server binaries are: the newest /usr/lib/postgresql/<version>/bin (Debian
 * keeps them off PATH), else a PATH holding pg_ctl. Undefined when it is not installed.
 */
export function postgresBinDir(): string | undefined {
  const base = '/usr/lib/postgresql';
  const versions = existsSync(base)
    ? readdirSync(base)
        .filter((v) => existsSync(join(base, v, 'bin/pg_ctl')))
        .sort((a, b) => Number(b) - Number(a))
    : [];
  if (versions[0]) return join(base, versions[0], 'bin');
  for (const dir of (process.env.PATH ?? '').split(':'))
    if (dir && existsSync(join(dir, 'pg_ctl')) && existsSync(join(dir, 'initdb'))) return dir;
  return undefined;
}

/**
 * Whether tests that need PostgreSQL can run: locally a missing install skips them with a
 * loud message; in CI (APPPROXY_REQUIRE_ALL=1) it is an error, so nothing is skipped there.
 */
export function postgresAvailable(): boolean {
  if (postgresBinDir()) return true;
  const message =
    'postgresql not installed (apt-get install -y postgresql): tests that need it are SKIPPED';
  return missingTool(message);
}

/** uid/gid to run the server as: the `postgres` user when we are root, else ourselves. */
function serverUser(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  try {
    const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
    const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
    return { uid, gid };
  } catch {
    throw new Error(
      'postgresql not installed: no `postgres` OS user to run the server as (apt-get install -y postgresql)',
    );
  }
}

function run(
  bin: string,
  args: string[],
  user: { uid: number; gid: number } | undefined,
  timeoutS: number,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, {
      ...user,
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: timeoutS * 1000,
      killSignal: 'SIGKILL',
    });
    let output = '';
    child.stdout.on('data', (c: Buffer) => (output += c.toString()));
    child.stderr.on('data', (c: Buffer) => (output += c.toString()));
    child.on('error', reject);
    child.on('exit', (code, signal) =>
      code === 0
        ? resolve()
        : reject(new Error(`${bin} ${args[0]} failed (${code ?? signal}): ${output.trim()}`)),
    );
  });
}

/**
 * Starts a PostgreSQL server for a test file (share it; give each test its own database with
 * `createDatabase`). Password authentication on TCP, so tests can try a wrong password.
 * @throws when PostgreSQL is not installed ("postgresql not installed"), or it does not start
 */
export async function startPostgres(): Promise<PostgresServer> {
  const bin = postgresBinDir();
  if (!bin)
    throw new Error('postgresql not installed (apt-get install -y postgresql): no initdb/pg_ctl');
  const user = serverUser();
  const dir = mkdtempSync(join(tmpdir(), 'appproxy-pg-'));
  const data = join(dir, 'data');
  const password = randomBytes(12).toString('hex');
  const pwfile = join(dir, 'pw');
  writeFileSync(pwfile, `${password}\n`, { mode: 0o600 });
  if (user) {
    chownSync(dir, user.uid, user.gid);
    chownSync(pwfile, user.uid, user.gid);
  }
  const port = await freePort();
  let started = false;
  const stop = async () => {
    if (started) {
      started = false;
      await run(
        join(bin, 'pg_ctl'),
        ['stop', '-D', data, '-m', 'immediate', '-w', '-t', String(STOP_TIMEOUT_S)],
        user,
        STOP_TIMEOUT_S + 5,
      ).catch(() => {});
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await run(
      join(bin, 'initdb'),
      [
        '-D',
        data,
        '-U',
        'postgres',
        `--pwfile=${pwfile}`,
        '--auth-local=trust',
        '--auth-host=scram-sha-256',
        '--no-sync',
        '-E',
        'UTF8',
        '--locale=C',
      ],
      user,
      60,
    );
    const options = [
      `-p ${port}`,
      `-k ${dir}`,
      "-c listen_addresses='127.0.0.1'",
      '-c fsync=off',
      '-c synchronous_commit=off',
      '-c full_page_writes=off',
      '-c max_connections=100',
    ].join(' ');
    await run(
      join(bin, 'pg_ctl'),
      [
        'start',
        '-D',
        data,
        '-w',
        '-t',
        String(START_TIMEOUT_S),
        '-l',
        join(dir, 'log'),
        '-o',
        options,
      ],
      user,
      START_TIMEOUT_S + 5,
    );
    started = true;
  } catch (err) {
    await stop();
    throw err;
  }
  const url = `postgres://postgres:${password}@127.0.0.1:${port}/postgres`;
  let n = 0;
  return {
    url,
    port,
    password,
    async createDatabase(name = `t${process.pid}_${++n}_${randomBytes(3).toString('hex')}`) {
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      try {
        await client.query(`CREATE DATABASE ${name}`);
      } finally {
        await client.end();
      }
      return `postgres://postgres:${password}@127.0.0.1:${port}/${name}`;
    },
    stop,
  };
}
