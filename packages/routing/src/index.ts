export { AppTable, type RoutableApp, type RouteMatch } from './app-table.js';
export { normalizeRequestTarget, type PathRefusal, type RequestTarget } from './path.js';
