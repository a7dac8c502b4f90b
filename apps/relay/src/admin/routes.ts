import { parseDuration, type AuditQuery } from '@appproxy/config';
import * as ops from './operations.js';
import { AdminError } from './operations.js';
import type { AdminRequest, AdminRoute } from './server.js';

/**
 * The `/api/v1` routes over the admin operations (the same ones the CLI runs), with the JSON
 * schemas of what they answer for the OpenAPI document.
 */

const str = { type: 'string' } as const;
const time = { type: 'string', format: 'date-time' } as const;
const nullable = (s: object) => ({ oneOf: [s, { type: 'null' }] });
const obj = (properties: Record<string, object>, required = Object.keys(properties)) => ({
  type: 'object',
  required,
  properties,
});
const list = (key: string, ref: string) =>
  obj({ [key]: { type: 'array', items: { $ref: `#/components/schemas/${ref}` } } });

/** Schemas of the views, by name (`#/components/schemas/<name>`). */
export const VIEW_SCHEMAS: Record<string, object> = {
  App: obj({
    name: str,
    externalUrl: str,
    internalUrl: str,
    connectorGroup: str,
    preauth: { enum: ['oidc', 'passthrough'] },
    sso: { enum: ['none', 'headers', 'jwt', 'kerberos'] },
    settings: { type: 'object', description: 'The app’s configuration after defaults, no secrets' },
  }),
  ConnectorGroup: obj({
    name: str,
    apps: { type: 'array', items: str },
    connectors: obj({ active: { type: 'integer' }, inactive: { type: 'integer' } }),
  }),
  Connector: obj({
    id: str,
    group: str,
    hostname: str,
    version: str,
    state: { enum: ['active', 'inactive', 'revoked'] },
    lastSeen: nullable(time),
    tunnels: { type: 'integer' },
    inFlight: { type: 'integer' },
    instances: {
      type: 'array',
      items: obj({
        name: str,
        tunnels: { type: 'integer' },
        inFlight: { type: 'integer' },
        seenAt: time,
      }),
    },
    capabilities: { type: 'array', items: str },
    kerberos: { type: 'boolean' },
    missingCapabilities: { type: 'array', items: str },
    certificateExpires: time,
  }),
  RegistrationToken: obj({ id: str, group: str, createdAt: time, expiresAt: time }),
  NewRegistrationToken: obj({
    token: { type: 'string', description: 'Shown once: give it to `appproxy-connector register`' },
    id: str,
    group: str,
    expiresAt: time,
  }),
  AdminToken: obj({
    id: str,
    name: str,
    createdAt: time,
    expiresAt: nullable(time),
    lastUsedAt: nullable(time),
    createdBy: nullable(str),
  }),
  NewAdminToken: obj({
    token: { type: 'string', description: 'Shown once: apx_<id>_<secret>' },
    id: str,
    name: str,
    expiresAt: nullable(time),
  }),
  AuditEvent: obj(
    {
      id: str,
      at: time,
      type: str,
      instance: str,
      actor: str,
      user: str,
      app: str,
      clientAddress: str,
      code: str,
      connector: str,
      group: str,
      correlationId: str,
      detail: {
        type: 'object',
        additionalProperties: { type: ['string', 'number', 'boolean', 'null'] },
      },
    },
    ['id', 'at', 'type', 'instance'],
  ),
};

const json = (description: string, schema: object) => ({
  description,
  content: { 'application/json': { schema } },
});
const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const noContent = { '204': { description: 'Done' } };
const badRequest = {
  '400': json('BAD_REQUEST, UNKNOWN_GROUP, INVALID_JSON', { $ref: '#/components/schemas/Error' }),
};
const body = (schema: object) => ({
  required: true,
  content: { 'application/json': { schema } },
});
const query = (name: string, description: string, schema: object = str) => ({
  name,
  in: 'query',
  required: false,
  description,
  schema,
});
const ttl = {
  oneOf: [
    { type: 'string', examples: ['1h', '30d'] },
    { type: 'integer', minimum: 1 },
  ],
  description: 'A duration (1h, 30d) or milliseconds',
};

/** The operations' routes. */
export function operationRoutes(): AdminRoute[] {
  return [
    {
      method: 'GET',
      path: '/api/v1/apps',
      operationId: 'listApps',
      summary: 'Published apps with their effective settings and connector group',
      openapi: { responses: { '200': json('The apps', list('apps', 'App')) } },
      handler: async ({ ctx }) => ({ status: 200, body: { apps: ops.listApps(ctx) } }),
    },
    {
      method: 'GET',
      path: '/api/v1/apps/{name}',
      operationId: 'getApp',
      summary: 'One published app',
      openapi: { responses: { '200': json('The app', ref('App')) } },
      handler: async ({ ctx, params }) => {
        const app = ops.listApps(ctx).find((a) => a.name === params.name);
        if (!app) throw new AdminError('NOT_FOUND', `no app named "${params.name}"`, 404);
        return { status: 200, body: app };
      },
    },
    {
      method: 'GET',
      path: '/api/v1/connector-groups',
      operationId: 'listConnectorGroups',
      summary: 'Connector groups with their apps and connector counts',
      openapi: { responses: { '200': json('The groups', list('groups', 'ConnectorGroup')) } },
      handler: async ({ ctx }) => ({ status: 200, body: { groups: await ops.listGroups(ctx) } }),
    },
    {
      method: 'GET',
      path: '/api/v1/connectors',
      operationId: 'listConnectors',
      summary:
        'Connectors: state, version, instances, tunnels, requests in flight, capabilities, last seen',
      openapi: { responses: { '200': json('The connectors', list('connectors', 'Connector')) } },
      handler: async ({ ctx }) => ({
        status: 200,
        body: { connectors: await ops.listConnectors(ctx) },
      }),
    },
    {
      method: 'GET',
      path: '/api/v1/connectors/{id}',
      operationId: 'getConnector',
      summary: 'One connector',
      openapi: { responses: { '200': json('The connector', ref('Connector')) } },
      handler: async ({ ctx, params }) => {
        const found = (await ops.listConnectors(ctx)).find((c) => c.id === params.id);
        if (!found) throw new AdminError('NOT_FOUND', `no connector with id ${params.id}`, 404);
        return { status: 200, body: found };
      },
    },
    {
      method: 'DELETE',
      path: '/api/v1/connectors/{id}',
      operationId: 'deleteConnector',
      summary: 'Delete a connector: its certificate is revoked and its tunnels close',
      openapi: { responses: noContent },
      handler: async ({ ctx, params }) => {
        await ops.deleteConnector(ctx, params.id!);
        return { status: 204, body: undefined };
      },
    },
    {
      method: 'GET',
      path: '/api/v1/registration-tokens',
      operationId: 'listRegistrationTokens',
      summary: 'Registration tokens that can still be used (unredeemed, unexpired, unrevoked)',
      openapi: {
        responses: { '200': json('The tokens', list('tokens', 'RegistrationToken')) },
      },
      handler: async ({ ctx }) => ({
        status: 200,
        body: { tokens: await ops.listRegistrationTokens(ctx) },
      }),
    },
    {
      method: 'POST',
      path: '/api/v1/registration-tokens',
      operationId: 'createRegistrationToken',
      summary: 'Create a one-time registration token for a connector group (shown once)',
      openapi: {
        requestBody: body(obj({ group: str, ttl }, ['group'])),
        responses: { '201': json('The token', ref('NewRegistrationToken')), ...badRequest },
      },
      handler: async (r) => {
        const b = bodyObject(r);
        const group = b.group;
        if (typeof group !== 'string' || group === '')
          throw new AdminError('BAD_REQUEST', 'group must name a connector group', 400);
        const ttlMs = b.ttl === undefined ? 3_600_000 : durationOf('ttl', b.ttl);
        return { status: 201, body: await ops.createRegistrationToken(r.ctx, { group, ttlMs }) };
      },
    },
    {
      method: 'DELETE',
      path: '/api/v1/registration-tokens/{id}',
      operationId: 'revokeRegistrationToken',
      summary: 'Revoke a registration token',
      openapi: { responses: noContent },
      handler: async ({ ctx, params }) => {
        await ops.revokeRegistrationToken(ctx, params.id!);
        return { status: 204, body: undefined };
      },
    },
    {
      method: 'GET',
      path: '/api/v1/admin-tokens',
      operationId: 'listAdminTokens',
      summary: 'Admin tokens neither revoked nor expired',
      openapi: { responses: { '200': json('The tokens', list('tokens', 'AdminToken')) } },
      handler: async ({ ctx }) => ({
        status: 200,
        body: { tokens: await ops.listAdminTokens(ctx) },
      }),
    },
    {
      method: 'POST',
      path: '/api/v1/admin-tokens',
      operationId: 'createAdminToken',
      summary: 'Create an admin token (shown once)',
      openapi: {
        requestBody: body(obj({ name: str, ttl }, ['name'])),
        responses: {
          '201': json('The token', ref('NewAdminToken')),
          ...badRequest,
          '409': json('CONFLICT: a token of that name exists', ref('Error')),
        },
      },
      handler: async (r) => {
        const b = bodyObject(r);
        if (typeof b.name !== 'string')
          throw new AdminError('BAD_REQUEST', 'name must be a string', 400);
        const created = await ops.createAdminToken(r.ctx, {
          name: b.name,
          ...(b.ttl !== undefined && { ttlMs: durationOf('ttl', b.ttl) }),
        });
        return { status: 201, body: created };
      },
    },
    {
      method: 'DELETE',
      path: '/api/v1/admin-tokens/{id}',
      operationId: 'revokeAdminToken',
      summary: 'Revoke an admin token (by id or name)',
      openapi: { responses: noContent },
      handler: async ({ ctx, params }) => {
        await ops.revokeAdminToken(ctx, params.id!);
        return { status: 204, body: undefined };
      },
    },
    {
      method: 'GET',
      path: '/api/v1/audit',
      operationId: 'queryAudit',
      summary: 'Audit events, newest first',
      openapi: {
        parameters: [
          query('since', 'A duration back from now (1h, 7d) or an ISO time'),
          query('until', 'A duration back from now or an ISO time'),
          query('user', 'Only events of this user'),
          query('app', 'Only events of this app'),
          query('type', 'A type (signin.failed) or a prefix (admin.)'),
          query('limit', 'At most this many (default 200, at most 1000)', {
            type: 'integer',
            minimum: 1,
            maximum: 1000,
          }),
        ],
        responses: { '200': json('The events', list('events', 'AuditEvent')), ...badRequest },
      },
      handler: async ({ ctx, query: q }) => {
        const now = Date.now();
        const at = (name: string) => {
          const v = q.get(name);
          return v === null || v === '' ? undefined : timeOf(name, v, now);
        };
        const since = at('since');
        const until = at('until');
        const limit = q.get('limit');
        const filter: AuditQuery = {
          ...(since && { since }),
          ...(until && { until }),
          ...(q.get('user') && { user: q.get('user')! }),
          ...(q.get('app') && { app: q.get('app')! }),
          ...(q.get('type') && { type: q.get('type')! }),
          ...(limit !== null && { limit: /^\d+$/.test(limit) ? Number(limit) : NaN }),
        };
        return { status: 200, body: { events: await ops.queryAudit(ctx, filter) } };
      },
    },
  ];
}

function bodyObject(r: AdminRequest): Record<string, unknown> {
  if (typeof r.body !== 'object' || r.body === null || Array.isArray(r.body))
    throw new AdminError('BAD_REQUEST', 'the request body must be a JSON object', 400);
  return r.body as Record<string, unknown>;
}

/** A duration (`1h`, `30d`, or milliseconds); AdminError 400 otherwise (the CLI's too). */
export function durationOf(name: string, v: unknown): number {
  if (typeof v === 'number' || typeof v === 'string') {
    try {
      return parseDuration(v);
    } catch {
      // below
    }
  }
  throw new AdminError('BAD_REQUEST', `${name} must be a duration such as 1h or 30d`, 400);
}

/** `1h` (that long ago) or an ISO time; AdminError 400 otherwise (the console's filter too). */
export function timeOf(name: string, v: string, now: number): Date {
  if (/^\d{4}-\d{2}-\d{2}/.test(v)) {
    const t = Date.parse(v);
    if (Number.isFinite(t)) return new Date(t);
  } else {
    try {
      return new Date(now - parseDuration(v));
    } catch {
      // below
    }
  }
  throw new AdminError('BAD_REQUEST', `${name} must be a duration (1h, 7d) or an ISO time`, 400);
}
