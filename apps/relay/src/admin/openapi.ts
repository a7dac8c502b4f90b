import { RELAY_VERSION } from '../version.js';
import { VIEW_SCHEMAS } from './routes.js';
import type { AdminRoute } from './server.js';

/** The error body of every refusal. */
const ERROR_SCHEMA = {
  type: 'object',
  required: ['error'],
  properties: {
    error: {
      type: 'object',
      required: ['code', 'message', 'correlationId'],
      properties: {
        code: { type: 'string', examples: ['NOT_FOUND'] },
        message: { type: 'string' },
        correlationId: { type: 'string' },
      },
    },
  },
} as const;

const errorResponse = (description: string) => ({
  description,
  content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
});

/**
 * The OpenAPI 3.1 document of the admin API, generated from its route table: each route's
 * parameters (path parameters are added when the route does not describe them), request body
 * and responses, plus the errors every route can answer.
 */
export function openApiDocument(routes: readonly AdminRoute[]): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const route of routes) {
    const described = (route.openapi?.parameters ?? []) as Array<{ name?: string; in?: string }>;
    const pathParams = [...route.path.matchAll(/\{([A-Za-z0-9_]+)\}/g)]
      .map((m) => m[1]!)
      .filter((name) => !described.some((p) => p.in === 'path' && p.name === name))
      .map((name) => ({ name, in: 'path', required: true, schema: { type: 'string' } }));
    const operation: Record<string, unknown> = {
      operationId: route.operationId,
      summary: route.summary,
      parameters: [...pathParams, ...described],
      responses: {
        ...(route.openapi?.responses ?? { '200': { description: 'OK' } }),
        '401': { $ref: '#/components/responses/Unauthenticated' },
        '403': { $ref: '#/components/responses/Forbidden' },
        ...(pathParams.length > 0 && { '404': errorResponse('Not found') }),
      },
    };
    if (route.openapi?.requestBody) operation.requestBody = route.openapi.requestBody;
    (paths[route.path] ??= {})[route.method.toLowerCase()] = operation;
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'AppProxy admin API',
      version: RELAY_VERSION,
      description:
        'The relay’s admin API on relay.adminListen. Authenticate with an admin token (`appproxy-relay admin-token create`) as `Authorization: Bearer apx_…`, or an admin’s console session (cookie, plus `X-CSRF-Token` on state-changing requests).',
    },
    servers: [{ url: '/' }],
    security: [{ adminToken: [] }, { adminSession: [] }],
    paths,
    components: {
      securitySchemes: {
        adminToken: { type: 'http', scheme: 'bearer', description: 'apx_<id>_<secret>' },
        adminSession: { type: 'apiKey', in: 'cookie', name: 'appproxy_admin' },
      },
      schemas: { Error: ERROR_SCHEMA, ...VIEW_SCHEMAS },
      responses: {
        Unauthenticated: errorResponse(
          'UNAUTHENTICATED: no, or an unknown, expired or revoked, admin token',
        ),
        Forbidden: errorResponse(
          'NOT_AN_ADMIN, or CSRF_TOKEN_INVALID for a session without X-CSRF-Token',
        ),
      },
    },
  };
}
