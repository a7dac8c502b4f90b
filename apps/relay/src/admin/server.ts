import type { AppTestOptions } from '../diagnostics.js';
import type { RelayConfig, StateStore } from '@appproxy/config';
import type { RelyingParty } from '@appproxy/preauth';
import { METRICS_CONTENT_TYPE, newTraceId, type Logger } from '@appproxy/telemetry';
import {
  createServer,
  type IncomingMessage,
  type OutgoingHttpHeaders,
  type Server,
  type ServerResponse,
} from 'node:http';
import type { AuditSink } from '../audit.js';
import { renderError } from '../error-pages.js';
import type { AdminContext } from './operations.js';
import { openApiDocument } from './openapi.js';
import { operationRoutes } from './routes.js';
import {
  AdminSignIn,
  CONSOLE_PREFIX,
  CONSOLE_SIGN_IN_PATHS,
  type AdminSession,
} from './session.js';

/**
 * The admin listener (`relay.adminListen`): `/healthz`, `/readyz`, `/metrics` and
 * `/api/v1/openapi.json` open; the `/api/v1` routes for admin tokens (`Authorization: Bearer
 * apx_…`) and admins' OIDC sessions (`relay.admins`); the console under `/console/`.
 */

export interface AdminRequest {
  params: Record<string, string>;
  query: URLSearchParams;
  /** The JSON body (≤ 64 KiB), undefined when there is none. */
  body: unknown;
  actor: string;
  ctx: AdminContext;
  correlationId: string;
  /** The admin's console session, when the request came with one rather than a token. */
  session?: AdminSession;
}

/** One `/api/v1` route; the OpenAPI document is generated from these. */
export interface AdminRoute {
  method: 'GET' | 'POST' | 'DELETE';
  /** OpenAPI style: `/api/v1/apps/{name}/tests`. */
  path: string;
  operationId: string;
  summary: string;
  /** Parts of the OpenAPI operation object. */
  openapi?: { requestBody?: object; responses?: object; parameters?: object[] };
  handler(req: AdminRequest): Promise<{ status: number; body: unknown }>;
}

/** What the server needs from the process hosting it (a Relay, or the workers' primary). */
export interface AdminHost {
  config(): RelayConfig;
  readonly store: StateStore;
  readonly audit: AuditSink;
  readonly log: Logger;
  health(): { ready: boolean; body: object };
  metrics(): Promise<string> | string;
  /** "Test application" (adm-diag); the primary forwards it to a worker. */
  testApp(name: string, o: AppTestOptions): Promise<unknown>;
  /** The relay's OIDC relying party (admins sign in with it), when a provider is configured. */
  relyingParty(): RelyingParty | undefined;
}

/** What the console gets besides the request: the host and, signed in, the operations' context. */
export interface ConsoleApi {
  host: AdminHost;
  /** Set for an admin's session (actor `user:<name>`). */
  ctx: AdminContext | undefined;
  correlationId: string;
}

/**
 * The console's pages under `/console/` (and what `/` redirects to). `session` is undefined
 * for an anonymous browser; a signed-in non-admin never reaches it (403 NOT_AN_ADMIN).
 * Resolves false when it does not serve the path (404).
 */
export interface ConsoleHandler {
  (
    req: IncomingMessage,
    res: ServerResponse,
    session: AdminSession | undefined,
    api: ConsoleApi,
  ): Promise<boolean>;
}

export interface AdminServerOptions {
  /** Routes beyond the built-in `/api/v1` ones (e.g. app tests). */
  routes?: AdminRoute[];
  console?: ConsoleHandler;
}

/** An error a route answers with: a stable code, a one-line message, an HTTP status. */
interface CodedError {
  code: string;
  status: number;
  message: string;
}

/** Largest JSON request body. */
export const MAX_BODY_BYTES = 64 * 1024;
const API_PREFIX = '/api/v1';
const OPENAPI_PATH = `${API_PREFIX}/openapi.json`;

interface CompiledRoute {
  route: AdminRoute;
  pattern: RegExp;
  names: string[];
}

/**
 * The admin HTTP server. Every answer carries `X-AppProxy-Correlation-Id`; errors are
 * `{ error: { code, message, correlationId } }`.
 *
 * @example
 * const server = createAdminServer(host, { routes: [testRoute], console: consolePages });
 * server.listen(9090, '127.0.0.1');
 */
export function createAdminServer(
  host: AdminHost,
  options: AdminServerOptions | AdminRoute[] = {},
): Server {
  const opts = Array.isArray(options) ? { routes: options } : options;
  const routes = [...builtinRoutes(), ...(opts.routes ?? [])];
  const compiled = routes.map(compile);
  let document: object | undefined;
  const signIn = adminSignInOf(host);

  const handle = async (req: IncomingMessage, res: ServerResponse, correlationId: string) => {
    const url = new URL(req.url ?? '/', 'http://admin');
    const path = url.pathname;
    const send = (status: number, body: unknown, headers: OutgoingHttpHeaders = {}) =>
      sendJson(res, status, body, headers);
    const fail = (e: CodedError, headers: OutgoingHttpHeaders = {}) =>
      sendError(res, e, correlationId, headers);

    // Open: probes, metrics, the API description.
    if (path === '/healthz') return send(200, { status: 'ok' });
    if (path === '/readyz') {
      const { ready, body } = host.health();
      return send(ready ? 200 : 503, body);
    }
    if (path === '/metrics') {
      const text = await host.metrics();
      res.writeHead(200, { 'content-type': METRICS_CONTENT_TYPE, 'cache-control': 'no-store' });
      return void res.end(text);
    }
    if (path === OPENAPI_PATH && (req.method === 'GET' || req.method === 'HEAD')) {
      document ??= openApiDocument(routes);
      return send(200, document);
    }
    if (path === '/') {
      res.writeHead(302, { location: CONSOLE_PREFIX, 'cache-control': 'no-store' });
      return void res.end();
    }

    const oidc = signIn();
    if (oidc && (await oidc.handle(req, res, correlationId))) return;
    if (!oidc && CONSOLE_SIGN_IN_PATHS.has(path))
      return fail({
        code: 'NOT_FOUND',
        status: 404,
        message: 'the admin sign-in is off: set relay.admins (with an identityProvider)',
      });

    const isApi = path === API_PREFIX || path.startsWith(`${API_PREFIX}/`);
    if (!isApi && path !== '/console' && !path.startsWith(CONSOLE_PREFIX))
      return fail(notFound(path));

    // Who asks: an admin token, else the admin session cookie.
    const auth = await authenticate(req, host, oidc);
    const cookies = auth.setCookie.length > 0 ? { 'set-cookie': auth.setCookie } : {};
    if (auth.kind === 'invalid-token')
      return fail(
        {
          code: 'UNAUTHENTICATED',
          status: 401,
          message: 'the admin token is unknown, expired or revoked',
        },
        { 'www-authenticate': 'Bearer realm="appproxy-admin", error="invalid_token"' },
      );
    if (auth.kind === 'not-admin') {
      host.log.info('admin request refused', {
        requestId: correlationId,
        code: 'NOT_AN_ADMIN',
        user: auth.user,
        path,
      });
      if (!isApi && !wantsJson(req)) {
        const page = renderError('NOT_AN_ADMIN', {
          correlationId,
          accept: req.headers.accept,
          signedInAs: auth.user,
          signOutHref: '/console/signout',
          headers: cookies,
        });
        return void res.writeHead(page.status, page.headers).end(page.body);
      }
      return fail(
        {
          code: 'NOT_AN_ADMIN',
          status: 403,
          message: `${auth.user} is signed in but is not one of relay.admins`,
        },
        cookies,
      );
    }
    const ctx: AdminContext | undefined =
      auth.kind === 'anonymous'
        ? undefined
        : {
            config: host.config(),
            store: host.store,
            // What this request does is found in the audit log by the id its answer carries.
            audit: { record: (e) => host.audit.record({ correlationId, ...e }) },
            actor: auth.actor,
          };

    if (!isApi) {
      const session = auth.kind === 'session' ? auth.session : undefined;
      for (const [k, v] of Object.entries(cookies)) res.setHeader(k, v);
      if (opts.console && (await opts.console(req, res, session, { host, ctx, correlationId })))
        return;
      return fail(notFound(path));
    }

    const method = req.method === 'HEAD' ? 'GET' : (req.method ?? 'GET');
    const matches = compiled
      .map((c) => ({ c, m: c.pattern.exec(path) }))
      .filter((x): x is { c: CompiledRoute; m: RegExpExecArray } => x.m !== null);
    if (matches.length === 0) return fail(notFound(path));
    const match = matches.find((x) => x.c.route.method === method);
    if (!match) {
      const allow = [...new Set(matches.map((x) => x.c.route.method))].join(', ');
      return fail(
        {
          code: 'METHOD_NOT_ALLOWED',
          status: 405,
          message: `${method} is not allowed here (allowed: ${allow})`,
        },
        { allow },
      );
    }
    if (!ctx)
      return fail(
        {
          code: 'UNAUTHENTICATED',
          status: 401,
          message:
            'send an admin token as Authorization: Bearer apx_…, or sign in at /console/signin',
        },
        { ...cookies, 'www-authenticate': 'Bearer realm="appproxy-admin"' },
      );
    if (auth.kind === 'session' && method !== 'GET' && !oidc!.checkCsrf(auth.session, req))
      return fail(
        {
          code: 'CSRF_TOKEN_INVALID',
          status: 403,
          message: 'a state-changing request with a session needs the X-CSRF-Token header',
        },
        cookies,
      );
    const body = await readJsonBody(req);
    if ('error' in body) return fail(body.error, { ...cookies, connection: 'close' });
    const params: Record<string, string> = {};
    for (const [i, name] of match.c.names.entries()) {
      try {
        params[name] = decodeURIComponent(match.m[i + 1]!);
      } catch {
        return fail({
          code: 'BAD_REQUEST',
          status: 400,
          message: `${name} is not valid percent-encoding`,
        });
      }
    }
    let answer: { status: number; body: unknown };
    try {
      answer = await match.c.route.handler({
        params,
        query: url.searchParams,
        body: body.value,
        actor: ctx.actor,
        ctx,
        correlationId,
        ...(auth.kind === 'session' && { session: auth.session }),
      });
    } catch (err) {
      const coded = asCoded(err);
      if (!coded) throw err;
      return fail(coded, cookies);
    }
    host.log.info('admin request', {
      requestId: correlationId,
      method,
      path,
      status: answer.status,
      actor: ctx.actor,
    });
    if (answer.status === 204) {
      res.writeHead(204, { 'cache-control': 'no-store', ...cookies });
      return void res.end();
    }
    send(answer.status, answer.body, cookies);
  };

  return createServer((req, res) => {
    // The format of every correlation id: a trace id, as the proxy's (docs/tracing.md).
    const correlationId = newTraceId();
    res.setHeader('x-appproxy-correlation-id', correlationId);
    handle(req, res, correlationId).catch((err: unknown) => {
      host.log.error('admin request failed', {
        requestId: correlationId,
        path: (req.url ?? '').split('?')[0],
        error: err,
      });
      if (res.headersSent) return void res.destroy();
      sendError(
        res,
        {
          code: 'INTERNAL_ERROR',
          status: 500,
          message: 'the admin server failed to handle this request',
        },
        correlationId,
      );
    });
  });
}

/** The admin sign-in of the relying party serving now (rebuilt when it or the config changes). */
function adminSignInOf(host: AdminHost): () => AdminSignIn | undefined {
  let cached: { rp: RelyingParty; config: RelayConfig; signIn: AdminSignIn } | undefined;
  return () => {
    const config = host.config();
    const rp = host.relyingParty();
    if (!rp || !config.relay.admins) return undefined;
    if (cached?.rp !== rp || cached.config !== config) {
      const signIn = new AdminSignIn(rp, config, { log: host.log, audit: host.audit });
      if (cached === undefined) host.log.info('admin sign-in', { redirectUri: signIn.redirectUri });
      cached = { rp, config, signIn };
    }
    return cached.signIn;
  };
}

type Authenticated =
  | { kind: 'token'; actor: string; setCookie: string[] }
  | { kind: 'session'; actor: string; session: AdminSession; setCookie: string[] }
  | { kind: 'not-admin'; user: string; setCookie: string[] }
  | { kind: 'invalid-token'; setCookie: string[] }
  | { kind: 'anonymous'; setCookie: string[] };

/** An admin token (`Authorization: Bearer apx_…`) first, else the admin session cookie. */
async function authenticate(
  req: IncomingMessage,
  host: AdminHost,
  signIn: AdminSignIn | undefined,
): Promise<Authenticated> {
  const authorization = req.headers.authorization;
  if (authorization !== undefined) {
    const m = /^Bearer[ ]+(\S+)\s*$/i.exec(authorization);
    const token = m?.[1];
    if (token === undefined) return { kind: 'invalid-token', setCookie: [] };
    // The store parses the token (`apx_<id>_<secret>`) and refuses a malformed one unread.
    const record = await host.store.verifyAdminToken(token);
    if (!record) return { kind: 'invalid-token', setCookie: [] };
    return { kind: 'token', actor: `token:${record.name}`, setCookie: [] };
  }
  if (!signIn) return { kind: 'anonymous', setCookie: [] };
  const state = await signIn.session(req);
  if (state.kind === 'admin')
    return {
      kind: 'session',
      actor: `user:${state.session.user}`,
      session: state.session,
      setCookie: state.setCookie,
    };
  return state;
}

type BodyResult = { value: unknown } | { error: CodedError };

/** The request's JSON body: 413 beyond 64 KiB, 415 when not JSON, 400 when malformed. */
async function readJsonBody(req: IncomingMessage): Promise<BodyResult> {
  const length = req.headers['content-length'];
  const chunked = req.headers['transfer-encoding'] !== undefined;
  if (!chunked && (length === undefined || length === '0')) return { value: undefined };
  const tooLarge = {
    error: {
      code: 'BODY_TOO_LARGE',
      status: 413,
      message: `the request body is larger than ${MAX_BODY_BYTES} bytes`,
    },
  };
  if (length !== undefined && Number(length) > MAX_BODY_BYTES) return tooLarge;
  const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) return tooLarge;
    chunks.push(chunk);
  }
  if (size === 0) return { value: undefined };
  if (type !== 'application/json')
    return {
      error: {
        code: 'UNSUPPORTED_MEDIA_TYPE',
        status: 415,
        message: 'the request body must be application/json',
      },
    };
  try {
    return { value: JSON.parse(Buffer.concat(chunks).toString('utf8')) };
  } catch {
    return {
      error: { code: 'INVALID_JSON', status: 400, message: 'the request body is not valid JSON' },
    };
  }
}

function compile(route: AdminRoute): CompiledRoute {
  const names: string[] = [];
  const source = route.path
    .split(/(\{[A-Za-z0-9_]+\})/)
    .map((part) => {
      const name = /^\{([A-Za-z0-9_]+)\}$/.exec(part)?.[1];
      if (name === undefined) return part.replace(/[.*+?^$()|[\]\\]/g, '\\$&');
      names.push(name);
      return '([^/]+)';
    })
    .join('');
  return { route, pattern: new RegExp(`^${source}$`), names };
}

function asCoded(err: unknown): CodedError | undefined {
  if (!(err instanceof Error)) return undefined;
  const { code, status } = err as Error & { code?: unknown; status?: unknown };
  if (typeof code !== 'string' || typeof status !== 'number' || status < 400 || status > 599)
    return undefined;
  return { code, status, message: err.message };
}

const notFound = (path: string): CodedError => ({
  code: 'NOT_FOUND',
  status: 404,
  message: `nothing is served at ${path.slice(0, 200)}`,
});

function wantsJson(req: IncomingMessage): boolean {
  return req.headers.accept?.includes('application/json') ?? false;
}

function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: OutgoingHttpHeaders = {},
): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    ...headers,
    'content-type': 'application/json; charset=utf-8',
    'cache-control': 'no-store',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}

function sendError(
  res: ServerResponse,
  e: CodedError,
  correlationId: string,
  headers: OutgoingHttpHeaders = {},
): void {
  sendJson(res, e.status, { error: { code: e.code, message: e.message, correlationId } }, headers);
}

/** The built-in `/api/v1` routes (the operations). */
function builtinRoutes(): AdminRoute[] {
  return [
    ...operationRoutes(),
    {
      method: 'GET',
      path: `${API_PREFIX}/session`,
      operationId: 'getSession',
      summary:
        'Who is asking: the actor, and for a console session its user, groups and CSRF token',
      openapi: {
        responses: {
          '200': {
            description: 'The caller',
            content: {
              'application/json': {
                schema: {
                  type: 'object',
                  required: ['actor'],
                  properties: {
                    actor: { type: 'string', examples: ['token:ops', 'user:alice'] },
                    user: { type: 'string' },
                    name: { type: 'string' },
                    groups: { type: 'array', items: { type: 'string' } },
                    csrf: { type: 'string' },
                  },
                },
              },
            },
          },
        },
      },
      handler: async (r) => ({ status: 200, body: { actor: r.actor, ...r.session } }),
    },
  ];
}
