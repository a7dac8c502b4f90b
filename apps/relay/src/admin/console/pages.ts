import { AUDIT_TYPES } from '@appproxy/config';
import { escapeHtml } from '../../error-pages.js';
import type { AuditEventView, ConnectorView } from '../operations.js';
import { CONSOLE_CSS, CONSOLE_JS } from './assets.js';

/**
 * The admin console's pages, pure: data in, HTML out. Every value from outside (app, user,
 * group names, audit fields) goes through {@link escapeHtml}; the pages carry no inline
 * script or style, so the console's CSP needs no hash and no 'unsafe-inline'.
 */

/** Who is signed in (the admin session's fields the pages show). */
export interface ConsoleViewer {
  user: string;
  name?: string;
  /** Sent back as `X-CSRF-Token` by the page's script on every change. */
  csrf: string;
}

/** The fields of an `AppView` (admin operations) the console shows. */
export interface ConsoleApp {
  name: string;
  externalUrl: string;
  internalUrl: string;
  connectorGroup: string;
  preauth: string;
  sso: string;
}

/** A connector group and its apps. */
export interface ConsoleGroup {
  name: string;
  apps: string[];
}

/** The fields of a `ConnectorView` (one `connectors list --json` row) the console shows. */
export type ConsoleConnector = Pick<
  ConnectorView,
  'id' | 'group' | 'hostname' | 'version' | 'state' | 'lastSeen' | 'tunnels' | 'inFlight'
> & { instances: Array<Pick<ConnectorView['instances'][number], 'name' | 'tunnels'>> };

export interface ConsoleRegistrationToken {
  id: string;
  group: string;
  createdAt: string;
  expiresAt: string;
}

/** An audit event as the operations return it (dates as ISO strings). */
/** What the audit page shows of an event: the API's view (`type` read as text). */
export type ConsoleAuditEvent = Omit<AuditEventView, 'type' | 'instance'> & {
  type: string;
  instance?: string;
};

/** An app's newest `admin.app.tested` event, as the apps page shows it. */
export interface ConsoleLastTest {
  ok: boolean;
  at: string;
  actor?: string;
}

/** The audit page's filters, as typed into its GET form. */
export interface AuditFilters {
  since: string;
  user: string;
  app: string;
  type: string;
}

/**
 * The audit types the type filter offers, each group of several led by its prefix
 * (`admin.` matches every admin event); any other value can be typed in the URL.
 */
export const AUDIT_TYPE_CHOICES: readonly string[] = AUDIT_TYPES.flatMap((type, i) => {
  const group = type.includes('.') ? `${type.split('.', 1)[0]}.` : undefined;
  const first = group !== undefined && !AUDIT_TYPES.slice(0, i).some((t) => t.startsWith(group));
  const several = AUDIT_TYPES.filter((t) => group !== undefined && t.startsWith(group)).length > 1;
  return first && several ? [group, type] : [type];
});

/** The token lifetimes the create form offers (the API takes any duration). */
const TOKEN_TTL_CHOICES = ['15m', '1h', '24h', '7d'] as const;

const e = (v: string | number | boolean | null | undefined): string =>
  v === undefined || v === null ? '' : escapeHtml(String(v));

/** `2026-11-30T17:05:12.345Z` → `2026-11-30 17:05:12 UTC` (the script writes the same). */
export function formatTime(iso: string | null | undefined): string {
  return iso ? `${iso.replace('T', ' ').replace(/\.\d+Z$|Z$/, '')} UTC` : '-';
}

const time = (iso: string | null | undefined) =>
  iso ? `<time datetime="${e(iso)}">${e(formatTime(iso))}</time>` : '-';

type ConsolePage = 'overview' | 'apps' | 'tokens' | 'audit';

const NAV: Array<[ConsolePage, string, string]> = [
  ['overview', '/console/', 'Overview'],
  ['apps', '/console/apps', 'Applications'],
  ['tokens', '/console/tokens', 'Registration tokens'],
  ['audit', '/console/audit', 'Audit log'],
];

/** The frame of every console page: head (CSRF meta, the two assets), navigation, sign-out. */
function renderLayout(o: {
  page: ConsolePage | 'message';
  title: string;
  viewer?: ConsoleViewer;
  main: string;
}): string {
  const viewer = o.viewer;
  const nav =
    o.page === 'message'
      ? ''
      : `<nav>${NAV.map(
          ([page, href, label]) =>
            `<a href="${href}"${page === o.page ? ' aria-current="page"' : ''}>${label}</a>`,
        ).join('')}</nav>`;
  const who = viewer
    ? `<span class="who">Signed in as <strong id="viewer">${e(viewer.name ? `${viewer.name} (${viewer.user})` : viewer.user)}</strong></span><a class="sign-out" id="sign-out" href="/console/signout">Sign out</a>`
    : '';
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
${viewer ? `<meta name="appproxy-csrf" content="${e(viewer.csrf)}">\n` : ''}<title>${e(o.title)} · AppProxy admin</title>
<link rel="stylesheet" href="${CONSOLE_CSS.path}">
<script src="${CONSOLE_JS.path}" defer></script>
</head>
<body data-page="${e(o.page)}">
<header class="top"><span class="brand">AppProxy admin</span>${nav}${who}</header>
<main>
${o.main}
</main>
</body></html>
`;
}

/** Connectors by group: state, version, relay instances, tunnels, last seen (live every 5 s). */
export function renderOverview(
  viewer: ConsoleViewer,
  groups: readonly ConsoleGroup[],
  connectors: readonly ConsoleConnector[],
): string {
  const shown = connectors.filter((c) => c.state !== 'revoked');
  // Connectors of a group the configuration no longer names still show, after the others.
  const names = [
    ...groups.map((g) => g.name),
    ...new Set(shown.map((c) => c.group).filter((g) => !groups.some((x) => x.name === g))),
  ];
  const sections = names.map((name) => {
    const group = groups.find((g) => g.name === name);
    const mine = shown.filter((c) => c.group === name);
    const active = mine.filter((c) => c.state === 'active').length;
    const rows =
      mine.length > 0
        ? mine.map(connectorRow).join('\n')
        : '<tr><td class="empty" colspan="8">No connector registered in this group.</td></tr>';
    const apps = group
      ? group.apps.length > 0
        ? `Applications: ${group.apps.map((a) => e(a)).join(', ')}`
        : 'No application uses this group.'
      : 'This group is not in the configuration any more.';
    return `<section class="group">
<h2>${e(name)} <span class="counts" data-counts="${e(name)}">${active} active, ${mine.length - active} inactive</span></h2>
<p class="note">${apps}</p>
<table data-group="${e(name)}"><thead><tr><th>Connector</th><th>Host</th><th>State</th><th>Version</th><th>Relay instances (tunnels)</th><th>Tunnels</th><th>In flight</th><th>Last seen</th></tr></thead>
<tbody>
${rows}
</tbody></table>
</section>`;
  });
  return renderLayout({
    page: 'overview',
    title: 'Overview',
    viewer,
    main: `<h1>Connectors by group</h1>
<p class="live" id="live-status">Updated ${e(formatTime(new Date().toISOString()))} · refreshes every 5 s</p>
${sections.join('\n') || '<p class="note">No connector group is configured.</p>'}`,
  });
}

function connectorRow(c: ConsoleConnector): string {
  const instances =
    c.instances
      .filter((i) => i.tunnels > 0)
      .map((i) => `${i.name} (${i.tunnels})`)
      .join(', ') || '-';
  return `<tr data-connector="${e(c.id)}"><td><code>${e(c.id)}</code></td><td>${e(c.hostname || '-')}</td><td><span class="badge state-${e(c.state)}">${e(c.state)}</span></td><td>${e(c.version || '-')}</td><td>${e(instances)}</td><td class="num">${c.tunnels}</td><td class="num">${c.inFlight}</td><td>${time(c.lastSeen)}</td></tr>`;
}

/** Every app: group, URLs, pre-authentication and SSO, its last test, a Test button. */
export function renderApps(
  viewer: ConsoleViewer,
  apps: readonly ConsoleApp[],
  lastTests: ReadonlyMap<string, ConsoleLastTest>,
): string {
  const rows = apps.map((a) => {
    const last = lastTests.get(a.name);
    const lastCell = last
      ? `<span class="badge ${last.ok ? 'pass' : 'fail'}">${last.ok ? 'pass' : 'fail'}</span> ${time(last.at)}${last.actor ? ` <span class="note">by ${e(last.actor)}</span>` : ''}`
      : '<span class="never">never tested</span>';
    return `<tr data-app="${e(a.name)}"><td><strong>${e(a.name)}</strong></td><td>${e(a.connectorGroup)}</td><td class="url"><a href="${e(a.externalUrl)}" rel="noreferrer">${e(a.externalUrl)}</a></td><td class="url"><code>${e(a.internalUrl)}</code></td><td>${e(a.preauth)}</td><td>${e(a.sso)}</td><td class="last-test">${lastCell}</td><td><button type="button" data-test-app="${e(a.name)}">Test</button></td></tr>
<tr class="test-result" hidden><td colspan="8"><div class="result"></div></td></tr>`;
  });
  return renderLayout({
    page: 'apps',
    title: 'Applications',
    viewer,
    main: `<h1>Applications</h1>
<form class="inline" id="test-options"><label>Test single sign-on as user (optional)<input id="test-user" name="user" autocomplete="off" placeholder="alice"></label></form>
<p class="note">Test resolves the internal host, connects, checks TLS, sends a GET and dry-runs single sign-on through every connector of the app's group.</p>
<table id="apps"><thead><tr><th>Application</th><th>Connector group</th><th>External URL</th><th>Internal URL</th><th>Pre-auth</th><th>SSO</th><th>Last test</th><th></th></tr></thead>
<tbody>
${rows.join('\n') || '<tr><td class="empty" colspan="8">No application is published.</td></tr>'}
</tbody></table>`,
  });
}

/** Unexpired, unused registration tokens, revoke buttons, and the create form. */
export function renderTokens(
  viewer: ConsoleViewer,
  groups: readonly string[],
  tokens: readonly ConsoleRegistrationToken[],
): string {
  const rows = tokens.map(
    (t) =>
      `<tr data-token="${e(t.id)}"><td><code>${e(t.id)}</code></td><td>${e(t.group)}</td><td>${time(t.createdAt)}</td><td>${time(t.expiresAt)}</td><td><button type="button" class="danger" data-revoke-token="${e(t.id)}">Revoke</button></td></tr>`,
  );
  return renderLayout({
    page: 'tokens',
    title: 'Registration tokens',
    viewer,
    main: `<h1>Registration tokens</h1>
<p class="note">A connector registers once with a token: <code>appproxy-connector register --relay … --token …</code>. Tokens are single-use and expire.</p>
<form class="inline" id="create-token"><label>Connector group<select name="group">${groups
      .map((g) => `<option value="${e(g)}">${e(g)}</option>`)
      .join(
        '',
      )}</select></label><label>Valid for<select name="ttl">${TOKEN_TTL_CHOICES.map((t) => `<option${t === '1h' ? ' selected' : ''}>${t}</option>`).join('')}</select></label><button type="submit">Create token</button></form>
<p class="callout error" id="action-error" hidden></p>
<div class="callout secret" id="created-token" hidden><strong>Copy this token now: it is shown only once.</strong><code id="token-value"></code><span id="token-meta"></span> <button type="button" class="secondary" id="copy-token">Copy</button></div>
<table id="tokens"><thead><tr><th>Id</th><th>Connector group</th><th>Created</th><th>Expires</th><th></th></tr></thead>
<tbody>
${rows.join('\n') || '<tr><td class="empty" colspan="5">No registration token can be used now.</td></tr>'}
</tbody></table>`,
  });
}

/** The audit log, newest first, with its GET filter form. */
export function renderAudit(
  viewer: ConsoleViewer,
  filters: AuditFilters,
  events: readonly ConsoleAuditEvent[],
  o: { error?: string; limit?: number } = {},
): string {
  const choices = [...AUDIT_TYPE_CHOICES];
  if (filters.type && !choices.includes(filters.type)) choices.unshift(filters.type);
  const typeOptions = [
    `<option value="">any</option>`,
    ...choices.map(
      (t) =>
        `<option value="${e(t)}"${t === filters.type ? ' selected' : ''}>${e(t.endsWith('.') ? `${t}*` : t)}</option>`,
    ),
  ].join('');
  const rows = events.map(
    (ev) =>
      `<tr data-event="${e(ev.id)}" data-type="${e(ev.type)}"><td>${time(ev.at)}</td><td class="type"><code>${e(ev.type).replaceAll('.', '.<wbr>')}</code></td><td class="who">${e(ev.actor)}</td><td>${e(ev.user)}</td><td>${e(ev.app)}</td><td>${e(ev.clientAddress)}</td><td>${e(ev.code)}</td><td>${e([ev.connector && `connector ${ev.connector}`, ev.group && `group ${ev.group}`].filter(Boolean).join(', '))}</td><td class="mono">${e(detailText(ev.detail))}</td><td class="mono">${e(ev.correlationId)}</td></tr>`,
  );
  const full = o.limit !== undefined && events.length >= o.limit;
  return renderLayout({
    page: 'audit',
    title: 'Audit log',
    viewer,
    main: `<h1>Audit log</h1>
<form class="filters" method="get" action="/console/audit" id="audit-filters"><label>Since (e.g. 1h, 7d, or an ISO time)<input name="since" value="${e(filters.since)}"></label><label>User<input name="user" value="${e(filters.user)}"></label><label>Application<input name="app" value="${e(filters.app)}"></label><label>Type<select name="type">${typeOptions}</select></label><button type="submit">Filter</button></form>
${o.error ? `<p class="callout error" id="filter-error">${e(o.error)}</p>` : ''}
<table id="audit"><thead><tr><th>Time</th><th>Type</th><th>Actor</th><th>User</th><th>Application</th><th>Client</th><th>Code</th><th>Connector</th><th>Detail</th><th>Correlation id</th></tr></thead>
<tbody>
${rows.join('\n') || '<tr><td class="empty" colspan="10">No event matches.</td></tr>'}
</tbody></table>
${full ? `<p class="note">Showing the newest ${o.limit} events; narrow the filters to see older ones.</p>` : ''}`,
  });
}

function detailText(detail: ConsoleAuditEvent['detail']): string {
  return detail
    ? Object.entries(detail)
        .map(([k, v]) => `${k}=${v === null ? 'null' : String(v)}`)
        .join(' ')
    : '';
}

/** A page that only says something (not found, the store is down), with its correlation id. */
export function renderMessage(o: {
  title: string;
  text: string;
  correlationId: string;
  viewer?: ConsoleViewer;
}): string {
  return renderLayout({
    page: 'message',
    title: o.title,
    ...(o.viewer && { viewer: o.viewer }),
    main: `<div class="message"><h1>${e(o.title)}</h1><p>${e(o.text)}</p>
<p><a href="/console/">Back to the overview</a></p>
<dl class="facts"><dt>Correlation id</dt><dd id="correlation-id">${e(o.correlationId)}</dd><dt>Time (UTC)</dt><dd>${e(new Date().toISOString())}</dd></dl></div>`,
  });
}
