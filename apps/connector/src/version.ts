import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
/** The connector's version, from its package.json (dist/ sits beside it). */
export const CONNECTOR_VERSION: string = (require('../package.json') as { version: string })
  .version;

/** What `--version` prints: the single-file executable's Node is part of what ops run. */
export const CONNECTOR_VERSION_LINE = `appproxy-connector ${CONNECTOR_VERSION} (node ${process.version})`;
