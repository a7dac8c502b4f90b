import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
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

export function isRegistered(dir: string): boolean {
  return existsSync(join(dir, FILES.meta));
}

/** Writes atomically (temp + rename), the key with mode 0600 and the folder 0700. */
export function saveState(dir: string, state: ConnectorState): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
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
    throw new CliError(`state in ${dir} is unreadable: ${(err as Error).message}`, 2);
  }
}
