import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
/** The relay's version, from its package.json (dist/ sits beside it). */
export const RELAY_VERSION: string = (require('../package.json') as { version: string }).version;

/** What `--version` prints: the single-file executable's Node is part of what ops run. */
export const RELAY_VERSION_LINE = `appproxy-relay ${RELAY_VERSION} (node ${process.version})`;
