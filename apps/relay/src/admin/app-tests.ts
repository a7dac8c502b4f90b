import type { AppTestOptions, AppTestResult } from '../diagnostics.js';
import { AdminError } from './operations.js';
import type { AdminRoute } from './server.js';

/** What the route needs of its host: the Relay, or the workers' primary forwarding to one. */
export interface AppTester {
  testApp(name: string, o: { connector?: string; user?: string }): Promise<unknown>;
}

const check = {
  type: 'object',
  required: ['name', 'ok', 'detail'],
  properties: {
    name: { type: 'string', description: 'resolve, connect, tls, http or sso' },
    ok: { type: 'boolean' },
    skipped: { type: 'boolean' },
    warn: { type: 'boolean', description: 'passed, with something to look at' },
    ms: { type: 'number' },
    detail: { type: 'string' },
    fix: { type: 'string' },
    data: { type: 'object', additionalProperties: true },
  },
};
const error = {
  type: 'object',
  required: ['code', 'message'],
  properties: { code: { type: 'string' }, message: { type: 'string' }, fix: { type: 'string' } },
};

/** JSON Schema of {@link AppTestResult}, for the OpenAPI document. */
const APP_TEST_RESULT_SCHEMA = {
  type: 'object',
  required: ['app', 'ok', 'at', 'connectors'],
  properties: {
    app: { type: 'string' },
    ok: { type: 'boolean' },
    at: { type: 'string', format: 'date-time' },
    user: { type: 'string' },
    error,
    connectors: {
      type: 'array',
      items: {
        type: 'object',
        required: ['id', 'ok', 'checks'],
        properties: {
          id: { type: 'string' },
          hostname: { type: 'string' },
          ok: { type: 'boolean' },
          checks: { type: 'array', items: check },
          error,
        },
      },
    },
  },
};

/** The body of `POST /api/v1/apps/{name}/tests`: `{ connector?, user? }` or none. */
export function appTestOptions(body: unknown): { connector?: string; user?: string } {
  if (body === undefined || body === null) return {};
  const bad = (why: string) => new AdminError('BAD_REQUEST', why, 400);
  if (typeof body !== 'object' || Array.isArray(body))
    throw bad('the body must be a JSON object { connector?, user? }');
  const { connector, user, ...rest } = body as Record<string, unknown>;
  const extra = Object.keys(rest);
  if (extra.length) throw bad(`unknown field ${extra[0]} (connector, user)`);
  const text = (v: unknown, field: string) => {
    if (v === undefined) return undefined;
    if (typeof v !== 'string' || v.trim() === '' || v.length > 256)
      throw bad(`${field} must be a non-empty string`);
    return v.trim();
  };
  const c = text(connector, 'connector');
  const u = text(user, 'user');
  return { ...(c !== undefined && { connector: c }), ...(u !== undefined && { user: u }) };
}

/**
 * `POST /api/v1/apps/{name}/tests` (adm-interfaces §5): "Test application" through the
 * app's connectors; 200 with the result (also when `ok` is false), 404 `NOT_FOUND` for an
 * unknown app or connector.
 */
export function appTestRoute(host: AppTester): AdminRoute {
  return {
    method: 'POST',
    path: '/api/v1/apps/{name}/tests',
    operationId: 'testApp',
    summary:
      'Test an app through its connectors: resolve, connect, TLS, a GET of the internal URL and the SSO dry run',
    openapi: {
      requestBody: {
        required: false,
        content: {
          'application/json': {
            schema: {
              type: 'object',
              additionalProperties: false,
              properties: {
                connector: { type: 'string', description: 'only this connector of the group' },
                user: { type: 'string', description: 'dry-run single sign-on for this user' },
              },
            },
          },
        },
      },
      responses: {
        '200': {
          description: 'The result (ok false when a check failed)',
          content: { 'application/json': { schema: APP_TEST_RESULT_SCHEMA } },
        },
        '400': {
          description: 'BAD_REQUEST: a body other than { connector?, user? }, or a wildcard app',
        },
      },
    },
    async handler(req) {
      const o: AppTestOptions = { ...appTestOptions(req.body), actor: req.actor };
      const result = (await host.testApp(req.params.name!, o)) as AppTestResult;
      return { status: 200, body: result };
    },
  };
}
