export {
  AppTable,
  type HostRefusal,
  type RoutableApp,
  type RouteMatch,
  type RouteRedirect,
} from './app-table.js';
export {
  ConnectorGroups,
  rendezvousWeight,
  type ConnectorSummary,
  type ConnectorTunnel,
  type NoConnector,
  type PickOptions,
} from './connector-groups.js';
export { parseRequestHost, type RequestHost } from './host.js';
export { normalizeRequestTarget, type PathRefusal, type RequestTarget } from './path.js';
export { IDEMPOTENT_METHODS, canRetry, type FailedAttempt } from './retry.js';
