import type { RelayConfig } from '@appproxy/config';
import type { Logger } from '@appproxy/telemetry';
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import {
  listApps,
  listConnectors,
  listGroups,
  listRegistrationTokens,
  queryAudit,
  type AdminContext,
} from '../operations.js';
import { timeOf } from '../routes.js';
import { consoleAsset } from './assets.js';
import {
  renderApps,
  renderAudit,
  renderMessage,
  renderOverview,
  renderTokens,
  type AuditFilters,
  type ConsoleApp,
  type ConsoleAuditEvent,
  type ConsoleConnector,
  type ConsoleGroup,
  type ConsoleLastTest,
  type ConsoleRegistrationToken,
  type ConsoleViewer,
} from './pages.js';

/** The CSP of every console response: the console's own files only, no inline code. */
export const CONSOLE_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "form-action 'self'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
].join('; ');

const SECURITY_HEADERS: OutgoingHttpHeaders = {
  'content-security-policy': CONSOLE_CSP,
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
};

/** What the console reads, for one signed-in admin (the admin operations underneath). */
export interface ConsoleData {
  /** With `connectors` already listed, they are not listed again. */
  groups(connectors?: ConsoleConnector[]): Promise<ConsoleGroup[]>;
  groupNames(): string[];
  connectors(): Promise<ConsoleConnector[]>;
  apps(): ConsoleApp[];
  registrationTokens(): Promise<ConsoleRegistrationToken[]>;
  audit(q: {
    since?: Date;
    user?: string;
    app?: string;
    type?: string;
    limit?: number;
  }): Promise<ConsoleAuditEvent[]>;
}

/** The console's data through the admin operations (the same the CLI and the API use). */
function consoleData(ctx: AdminContext): ConsoleData {
  return {
    groups: (connectors) => listGroups(ctx, connectors),
    groupNames: () => ctx.config.connectorGroups.map((g) => g.name),
    connectors: () => listConnectors(ctx),
    apps: () => listApps(ctx),
    registrationTokens: () => listRegistrationTokens(ctx),
    audit: (q) => queryAudit(ctx, q),
  };
}

/** The admin session as the console needs it (the admin server's `AdminSession`). */
export interface ConsoleSession {
  user: string;
  name?: string;
  csrf: string;
}

/** What the admin server hands the console with each request (its `ConsoleApi`). */
export interface ConsoleRequestApi {
  /** The operations' context, set for an admin's session (actor `user:<name>`). */
  ctx: AdminContext | undefined;
  correlationId: string;
  /** The configuration serving now: without admins to sign in, the console says so. */
  host: { config(): RelayConfig };
}

export interface ConsoleOptions {
  /** The data for a signed-in admin. @default the admin operations over `api.ctx` */
  data?(ctx: AdminContext): ConsoleData;
  /** Where a page that failed is logged (the person sees only the correlation id). */
  log?: Pick<Logger, 'error'>;
}

/** How many audit events a page shows at most. */
const AUDIT_PAGE_LIMIT = 200;

/**
 * The admin console's request handler: `/console/…` pages and assets; answers true when it
 * answered. Sign-in, callback and sign-out under `/console/` belong to the admin server's
 * session code, so they are left alone (false).
 */
export function createConsoleHandler(
  opts: ConsoleOptions = {},
): (
  req: IncomingMessage,
  res: ServerResponse,
  session: ConsoleSession | undefined,
  api: ConsoleRequestApi,
) => Promise<boolean> {
  return async (req, res, session, api) => {
    const url = new URL(req.url ?? '/', 'http://console.invalid');
    const path = url.pathname;
    // The admin server answers the sign-in paths before it calls the console.
    if (path !== '/console' && !path.startsWith('/console/')) return false;
    const { correlationId } = api;
    const method = req.method ?? 'GET';
    if (method !== 'GET' && method !== 'HEAD') {
      send(res, method, 405, { allow: 'GET, HEAD' }, 'Method not allowed', correlationId);
      return true;
    }
    if (path.startsWith('/console/assets/')) {
      serveAsset(req, res, path);
      return true;
    }
    if (path === '/console') {
      redirect(res, '/console/');
      return true;
    }
    const config = api.host.config();
    if (!session && (!config.relay.admins || !config.identityProvider)) {
      const text =
        'Nobody can sign in to the console: it needs relay.admins (users or groups) and an identityProvider in the configuration. The admin API answers admin tokens meanwhile.';
      const body = renderMessage({ title: 'Admin console not set up', text, correlationId });
      send(res, method, 404, {}, body, correlationId);
      return true;
    }
    // The admin server passes a session only for an admin (a non-admin gets its 403 page).
    if (!session || !api.ctx) {
      redirect(res, `/console/signin?return=${encodeURIComponent(path + url.search)}`);
      return true;
    }
    const viewer: ConsoleViewer = {
      user: session.user,
      csrf: session.csrf,
      ...(session.name !== undefined && { name: session.name }),
    };
    const data = (opts.data ?? consoleData)(api.ctx);
    try {
      const page = await renderPath(path, url.searchParams, viewer, data);
      if (!page) {
        const text = `There is no console page at ${path}.`;
        const body = renderMessage({ title: 'Not found', text, correlationId, viewer });
        send(res, method, 404, {}, body, correlationId);
      } else send(res, method, page.status, {}, page.body, correlationId);
    } catch (err) {
      const status = statusOf(err);
      const text =
        status === 503
          ? 'The state store cannot be reached right now; try again shortly.'
          : 'The console failed to build this page.';
      const body = renderMessage({ title: 'Console error', text, correlationId, viewer });
      send(res, method, status, {}, body, correlationId);
      if (status === 500)
        opts.log?.error('console page failed', {
          requestId: correlationId,
          path,
          err: err instanceof Error ? (err.stack ?? err.message) : String(err),
        });
    }
    return true;
  };
}

async function renderPath(
  path: string,
  query: URLSearchParams,
  viewer: ConsoleViewer,
  data: ConsoleData,
): Promise<{ status: number; body: string } | undefined> {
  switch (path) {
    case '/console/': {
      const connectors = await data.connectors();
      const groups = await data.groups(connectors);
      return { status: 200, body: renderOverview(viewer, groups, connectors) };
    }
    case '/console/apps': {
      const apps = data.apps();
      const lastTests = new Map<string, ConsoleLastTest>();
      // One query per app: its newest test, however many tests other apps had since.
      await Promise.all(
        apps.map(async (a) => {
          const [last] = await data.audit({ type: 'admin.app.tested', app: a.name, limit: 1 });
          if (last)
            lastTests.set(a.name, {
              ok: last.detail?.ok === true,
              at: last.at,
              ...(last.actor !== undefined && { actor: last.actor }),
            });
        }),
      );
      return { status: 200, body: renderApps(viewer, apps, lastTests) };
    }
    case '/console/tokens': {
      const tokens = await data.registrationTokens();
      return { status: 200, body: renderTokens(viewer, data.groupNames(), tokens) };
    }
    case '/console/audit':
      return auditPage(query, viewer, data);
    default:
      return undefined;
  }
}

async function auditPage(
  query: URLSearchParams,
  viewer: ConsoleViewer,
  data: ConsoleData,
): Promise<{ status: number; body: string }> {
  const filters: AuditFilters = {
    since: query.get('since')?.trim() ?? '',
    user: query.get('user')?.trim() ?? '',
    app: query.get('app')?.trim() ?? '',
    type: query.get('type')?.trim() ?? '',
  };
  try {
    const since = filters.since ? timeOf('since', filters.since, Date.now()) : undefined;
    const events = await data.audit({
      ...(since && { since }),
      ...(filters.user && { user: filters.user }),
      ...(filters.app && { app: filters.app }),
      ...(filters.type && { type: filters.type }),
      limit: AUDIT_PAGE_LIMIT,
    });
    return { status: 200, body: renderAudit(viewer, filters, events, { limit: AUDIT_PAGE_LIMIT }) };
  } catch (err) {
    if (statusOf(err) !== 400) throw err;
    return {
      status: 400,
      body: renderAudit(viewer, filters, [], { error: (err as Error).message }),
    };
  }
}

function statusOf(err: unknown): number {
  const status = (err as { status?: unknown } | null)?.status;
  return typeof status === 'number' && status >= 400 && status < 600 ? status : 500;
}

function send(
  res: ServerResponse,
  method: string,
  status: number,
  headers: OutgoingHttpHeaders,
  body: string,
  correlationId: string,
): void {
  const buf = Buffer.from(body, 'utf8');
  res.writeHead(status, {
    ...SECURITY_HEADERS,
    'cache-control': 'no-store',
    'content-type': status === 405 ? 'text/plain; charset=utf-8' : 'text/html; charset=utf-8',
    'content-length': buf.length,
    'x-appproxy-correlation-id': correlationId,
    ...headers,
  });
  res.end(method === 'HEAD' ? undefined : buf);
}

function redirect(res: ServerResponse, location: string): void {
  res.writeHead(302, {
    ...SECURITY_HEADERS,
    'cache-control': 'no-store',
    location,
    'content-length': 0,
  });
  res.end();
}

function serveAsset(req: IncomingMessage, res: ServerResponse, path: string): void {
  const asset = consoleAsset(path);
  if (!asset) {
    res.writeHead(404, {
      ...SECURITY_HEADERS,
      'cache-control': 'no-store',
      'content-type': 'text/plain; charset=utf-8',
    });
    res.end('Not found');
    return;
  }
  const headers: OutgoingHttpHeaders = {
    ...SECURITY_HEADERS,
    // The name carries the content's hash: a new build is a new URL.
    'cache-control': 'public, max-age=31536000, immutable',
    'content-type': asset.contentType,
    etag: asset.etag,
  };
  if (req.headers['if-none-match'] === asset.etag) {
    res.writeHead(304, headers);
    res.end();
    return;
  }
  res.writeHead(200, { ...headers, 'content-length': asset.body.length });
  res.end(req.method === 'HEAD' ? undefined : asset.body);
}
