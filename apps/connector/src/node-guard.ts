/** The oldest Node this CLI runs on: `engines.node` of its package.json (Node 22 is the oldest the connector is tested on). */
export const MIN_NODE = '22.0.0';
