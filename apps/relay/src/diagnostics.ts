import type { PublishedAppConfig, StateStore } from '@appproxy/config';
import type { ConnectorGroups } from '@appproxy/routing';
import { resolveLoginIdentity, type LoginIdentityKind, type SsoIdentity } from '@appproxy/sso';
import type { Logger } from '@appproxy/telemetry';
import {
  CAPABILITY,
  CONTROL,
  DIAGNOSE_TOTAL_TIMEOUT_MS,
  type DiagnoseAnswer,
  type DiagnoseCheck,
  type DiagnoseRequest,
  type DiagnoseSso,
  type RequestMetaInit,
  type TunnelSession,
} from '@appproxy/tunnel';
import { AdminError } from './admin/operations.js';
import type { Edge } from './edge.js';
import type { AuditSink } from './audit.js';

/** One check of an app test (adm-interfaces §5), as a connector ran it. */
/** One check of an app test, as the connector answered it (tunnel protocol §3.7). */
export type AppTestCheck = DiagnoseCheck;

/** The outcome of `apps test` / `POST /api/v1/apps/{name}/tests` (adm-interfaces §5). */
export interface AppTestResult {
  app: string;
  ok: boolean;
  at: string;
  user?: string;
  connectors: Array<{
    id: string;
    hostname?: string;
    ok: boolean;
    checks: AppTestCheck[];
    error?: { code: string; message: string; fix?: string };
  }>;
  /** Why no connector could run the test (`CONNECTOR_UNAVAILABLE`). */
  error?: { code: string; message: string; fix?: string };
}

export interface AppTestOptions {
  /** Only this connector of the app's group. */
  connector?: string;
  /** The user whose single sign-on is dry-run (`--user alice`). */
  user?: string;
  /** Who asked, for the audit event: `cli`, `token:ops`, `user:alice`. @default 'unknown' */
  actor?: string;
}

export interface AppTestDeps {
  edge: Pick<Edge, 'config' | 'sso' | 'backendTls'>;
  groups: ConnectorGroups<TunnelSession>;
  store: StateStore;
  audit?: Pick<AuditSink, 'record'>;
  log: Logger;
}

/** How long the relay waits for a connector's answer: its checks' bound and some slack. */
const ANSWER_TIMEOUT_MS = DIAGNOSE_TOTAL_TIMEOUT_MS + 5_000;
/** Control bodies are at most 64 KiB; larger backend TLS material goes by id alone. */
const MAX_BODY_BYTES = 60 * 1024;

/**
 * Tests an app through each connector of its group that has a live tunnel here (or the one
 * named), in parallel (`diagnose` control, docs/tunnel-protocol.md §3.7), and audits the
 * test as `admin.app.tested`. An unknown app or connector is AdminError 404 `NOT_FOUND`;
 * a group without a live connector is a result with `ok: false` and `CONNECTOR_UNAVAILABLE`.
 *
 * @example
 * const result = await testApp(deps, 'Wiki', { user: 'alice', actor: 'cli' });
 * result.connectors[0].checks.map((c) => c.name); // ['resolve', 'connect', 'tls', 'sso', 'http']
 */
export async function testApp(
  deps: AppTestDeps,
  name: string,
  o: AppTestOptions = {},
): Promise<AppTestResult> {
  const app = deps.edge.config.apps.find((a) => a.name === name);
  if (!app) throw new AdminError('NOT_FOUND', `no app named "${name}"`, 404);
  if (app.internalUrl.includes('*'))
    throw new AdminError(
      'BAD_REQUEST',
      `"${name}" is a wildcard app: its internal host depends on the request, so it cannot be tested as a whole`,
      400,
    );
  const group = app.connectorGroup;
  const live = deps.groups.connectors().filter((c) => c.group === group && c.accepting > 0);
  const result: AppTestResult = {
    app: name,
    ok: false,
    at: new Date().toISOString(),
    ...(o.user !== undefined && { user: o.user }),
    connectors: [],
  };
  let ids = live.map((c) => c.connectorId);
  if (o.connector !== undefined) {
    const id = o.connector;
    if (!ids.includes(id)) {
      const record = await deps.store.getConnector(id);
      if (!record || record.group !== group)
        throw new AdminError('NOT_FOUND', `no connector ${id} in group ${group}`, 404);
      result.connectors.push({
        id,
        ...(record.hostname && { hostname: record.hostname }),
        ok: false,
        checks: [],
        error: {
          code: 'CONNECTOR_UNAVAILABLE',
          message: `connector ${id} has no tunnel to this relay`,
          fix: 'start the connector (appproxy-connector start) and check that it reaches the relay',
        },
      });
    }
    ids = ids.filter((i) => i === id);
  }
  if (ids.length === 0 && result.connectors.length === 0)
    result.error = {
      code: 'CONNECTOR_UNAVAILABLE',
      message: `no connector of group ${group} has a tunnel to this relay`,
      fix: `start a connector of group ${group} (appproxy-relay token create --group ${group}, then appproxy-connector register and start)`,
    };
  const request = diagnoseRequest(deps.edge, app, o.user);
  result.connectors.push(
    ...(await Promise.all(
      ids.map((id) => {
        const tunnel = deps.groups.pick(group, { connectorId: id });
        return typeof tunnel === 'string'
          ? Promise.resolve(unavailable(id))
          : throughConnector(tunnel, request);
      }),
    )),
  );
  result.ok = result.connectors.length > 0 && result.connectors.every((c) => c.ok);
  const failed = result.connectors.flatMap((c) =>
    c.error ? [c.error.code] : c.checks.filter((k) => !k.ok).map((k) => k.name),
  );
  deps.log.info('app tested', {
    app: name,
    ok: result.ok,
    connectors: result.connectors.length,
    ...(failed.length && { failed: [...new Set(failed)] }),
    actor: o.actor,
  });
  deps.audit?.record({
    type: 'admin.app.tested',
    actor: o.actor ?? 'unknown',
    app: name,
    group,
    ...(o.user !== undefined && { user: o.user }),
    ...(o.connector !== undefined && { connector: o.connector }),
    ...(!result.ok && { code: result.error?.code ?? 'APP_TEST_FAILED' }),
    detail: { ok: result.ok, connectors: result.connectors.length },
  });
  return result;
}

function unavailable(id: string): AppTestResult['connectors'][number] {
  return {
    id,
    ok: false,
    checks: [],
    error: { code: 'CONNECTOR_UNAVAILABLE', message: `connector ${id} went away during the test` },
  };
}

/** One connector's run: CONNECTOR_TOO_OLD without the capability, else its checks. */
async function throughConnector(
  tunnel: TunnelSession,
  request: DiagnoseRequest,
): Promise<AppTestResult['connectors'][number]> {
  const id = tunnel.connectorId;
  const hello = tunnel.hello;
  const base = { id, ...(hello?.hostname && { hostname: hello.hostname }) };
  if (!tunnel.hasCapability(CAPABILITY.diagnose))
    return {
      ...base,
      ok: false,
      checks: [],
      error: {
        code: 'CONNECTOR_TOO_OLD',
        message: `connector ${hello?.hostname ?? id} (version ${hello?.version ?? 'unknown'}) cannot run app tests: upgrade the connector`,
        fix: 'upgrade the connector to this relay’s version',
      },
    };
  try {
    const answer = await tunnel.control(CONTROL.diagnose, request, ANSWER_TIMEOUT_MS);
    const checks = (answer.body as DiagnoseAnswer | undefined)?.checks;
    if (answer.status !== 200 || !Array.isArray(checks)) {
      const error = (answer.body as { error?: { code?: string; message?: string } } | undefined)
        ?.error;
      return {
        ...base,
        ok: false,
        checks: [],
        error: {
          code: error?.code ?? 'DIAGNOSE_FAILED',
          message: `the connector answered ${answer.status}${error?.message ? `: ${error.message}` : ''}`,
        },
      };
    }
    return { ...base, ok: checks.every((c) => c.ok), checks };
  } catch (err) {
    return {
      ...base,
      ok: false,
      checks: [],
      error: { code: 'DIAGNOSE_FAILED', message: (err as Error).message },
    };
  }
}

/**
 * What the connector needs to test `app`: its internal URL, the Host a proxied request
 * would carry, its backend TLS settings (as proxied requests get them) and the SSO dry run
 * for `user`.
 */
export function diagnoseRequest(
  edge: Pick<Edge, 'sso' | 'backendTls'>,
  app: PublishedAppConfig,
  user: string | undefined,
): DiagnoseRequest {
  const internal = new URL(app.internalUrl);
  const { sso, headers } = ssoDryRun(edge, app, user);
  const tls = edge.backendTls.get(app.name);
  const request: DiagnoseRequest = {
    app: app.name,
    url: app.internalUrl,
    host: app.translateHeaders ? internal.host : new URL(app.externalUrl).host,
    verifyTls: app.validateBackendTls,
    ...(app.backendProxy !== undefined && { backendProxy: app.backendProxy }),
    ...(tls && { backendTls: tls }),
    ...(Object.keys(headers).length && { headers }),
    sso,
  };
  // A CA bundle too large for a control body: the id alone (a connector that carried a
  // request of the app holds the material).
  if (tls && Buffer.byteLength(JSON.stringify(request)) > MAX_BODY_BYTES)
    request.backendTls = { id: tls.id };
  return request;
}

/** The user as a sign-in would give them, every field the mapping may read set to the name. */
function syntheticIdentity(user: string, claimPaths: readonly string[]): SsoIdentity {
  const at = user.includes('@');
  return {
    sub: user,
    issuer: 'appproxy-diagnostics',
    name: user,
    preferredUsername: user,
    ...(at && { upn: user, email: user }),
    claims: Object.fromEntries(claimPaths.map((p) => [p, user])),
  };
}

/**
 * The app's single sign-on for `user`, with the relay's own code (`SingleSignOn.apply`):
 * the mapped login identity, the headers it adds (given to the GET), the SPN for Kerberos;
 * or why there is nothing to dry-run.
 */
function ssoDryRun(
  edge: Pick<Edge, 'sso'>,
  app: PublishedAppConfig,
  user: string | undefined,
): { sso: DiagnoseSso; headers: Record<string, string> } {
  const headers: Record<string, string> = {};
  const settings = app.sso;
  if (!settings) return { sso: { mode: 'none' }, headers };
  const base: DiagnoseSso = {
    mode: settings.mode,
    loginIdentityKind: settings.loginIdentity,
    ...(settings.kerberos && { spn: settings.kerberos.spn }),
  };
  if (app.preAuthentication !== 'oidc')
    return {
      sso: { ...base, skip: 'a passthrough app: nobody is signed in, so no single sign-on' },
      headers,
    };
  if (user === undefined)
    return { sso: { ...base, skip: 'no user named (--user) for the dry run' }, headers };
  const identity = syntheticIdentity(user, edge.sso.claimPaths);
  const out: Record<string, unknown> = {};
  const meta = {} as RequestMetaInit;
  const refusal = edge.sso.apply(app, identity, out, meta);
  if (refusal)
    return {
      sso: {
        ...base,
        user,
        refused: {
          code: refusal.code,
          message: `the login identity (${settings.loginIdentity}) of ${user} needs ${refusal.claim}`,
          fix: `name the user as the identity provider would (e.g. alice@corp.example for upn or email), or check the app's sso.loginIdentity`,
        },
      },
      headers,
    };
  for (const [k, v] of Object.entries(out)) if (typeof v === 'string') headers[k] = v;
  const loginIdentity =
    meta.kerberos?.user ??
    resolveLoginIdentity(identity, settings.loginIdentity as LoginIdentityKind);
  return {
    sso: {
      ...base,
      user,
      loginIdentity,
      ...(Object.keys(headers).length && { headers: Object.keys(headers) }),
    },
    headers,
  };
}
