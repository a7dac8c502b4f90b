import { createRequire } from 'node:module';
import type { Agent as AgentClass, ProxyAgent as ProxyAgentClass } from 'undici';

// undici's index loads everything undici offers (fetch, WebSocket, caches, mocks, cookies,
// interceptors): ~28 MB of resident memory, of which the connector uses the Agent alone.
// Loading its dispatcher modules directly keeps undici for the backend hop (DESIGN.md) at
// a fraction of that. The paths are pinned by package-lock.json; a unit test checks that
// they are the very classes the index exports.
const require = createRequire(import.meta.url);

/** undici's `Agent` (pooled keep-alive connections per origin). */
export const Agent = require('undici/lib/dispatcher/agent.js') as typeof AgentClass;

/** undici's `ProxyAgent`, loaded on first use (only apps with a `backendProxy` need it). */
export function proxyAgent(): typeof ProxyAgentClass {
  return require('undici/lib/dispatcher/proxy-agent.js') as typeof ProxyAgentClass;
}
