/** The oldest Node this CLI runs on: `engines.node` of its package.json (node:sqlite is unflagged from 22.13). */
export const MIN_NODE = '22.13.0';
