import { appTestRoute } from './app-tests.js';
import { createConsoleHandler } from './console/console.js';
import type { AdminHost, AdminServerOptions } from './server.js';

/**
 * What other modules add to the admin server beyond the built-in `/api/v1` routes: more
 * routes (app tests) and the console's pages. The relay and the workers' primary both build
 * their admin server with this, so an addition here is served in either mode.
 */
export function adminExtensions(host: AdminHost): AdminServerOptions {
  return {
    routes: [appTestRoute(host)],
    console: createConsoleHandler({ log: host.log }),
  };
}
