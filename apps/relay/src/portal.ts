import type { PortalConfig, PublishedAppConfig, RelayConfig } from '@appproxy/config';
import { AccessPolicy, signedInAs, type Identity } from '@appproxy/preauth';
import { parseRequestHost } from '@appproxy/routing';
import { createHash } from 'node:crypto';
import { escapeHtml, renderError, type RenderedError } from './error-pages.js';
import { PORTAL, type GateRequest, type SignIn } from './sign-in.js';

/** One tile of the portal. */
export interface PortalEntry {
  name: string;
  url: string;
  icon?: string;
  description?: string;
}

const STYLE = `body{font:16px/1.5 system-ui,sans-serif;max-width:56rem;margin:2rem auto;padding:0 1rem;color:#222}
header{display:flex;justify-content:space-between;align-items:baseline;gap:1rem;flex-wrap:wrap}
h1{font-size:1.5rem;margin:0}ul{list-style:none;padding:0;display:grid;grid-template-columns:repeat(auto-fill,minmax(15rem,1fr));gap:1rem}
li a{display:flex;gap:.75rem;align-items:flex-start;padding:1rem;border:1px solid #ddd;border-radius:8px;color:inherit;text-decoration:none}
li a:hover,li a:focus{border-color:#06c}img{width:40px;height:40px;object-fit:contain;flex:none}
.name{font-weight:600;color:#06c}.url,.desc{display:block;font-size:.85rem;color:#555;overflow-wrap:anywhere}`;

/**
 * Strict CSP: nothing loads but the page's own stylesheet (by hash) and the apps' icons
 * (https, or paths on the portal's host); no script at all, no CDN, no framing.
 */
const CSP = [
  "default-src 'none'",
  `style-src 'sha256-${createHash('sha256').update(STYLE).digest('base64')}'`,
  "img-src 'self' https:",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

/**
 * The My Apps portal (`portal:`): a page the relay serves itself on its own host, behind
 * the identity provider like an oidc app, listing the apps the signed-in user is assigned
 * to — the same assignment check that answers `NOT_ASSIGNED` — and, with
 * `showPassthrough`, the passthrough apps for everyone.
 */
export class Portal {
  readonly #hostname: string;
  readonly #oidc: Array<{ app: PublishedAppConfig; policy: AccessPolicy }>;
  readonly #open: PublishedAppConfig[];

  constructor(
    readonly config: PortalConfig,
    apps: readonly PublishedAppConfig[],
  ) {
    this.#hostname = new URL(config.externalUrl).hostname.toLowerCase();
    this.#oidc = apps
      .filter((a) => a.preAuthentication === 'oidc')
      .map((app) => ({ app, policy: new AccessPolicy({ assignment: app.assignment }) }));
    this.#open = config.showPassthrough
      ? apps.filter((a) => a.preAuthentication === 'passthrough')
      : [];
  }

  /** The portal of `config`, when it has one (and an identity provider to sign in with). */
  static of(config: RelayConfig): Portal | undefined {
    return config.portal && config.identityProvider
      ? new Portal(config.portal, config.apps)
      : undefined;
  }

  /** True when `host` (the request's Host, port ignored as for apps) is the portal's. */
  serves(host: string): boolean {
    return parseRequestHost(host)?.hostname === this.#hostname;
  }

  /**
   * What `identity` sees: the apps whose assignment lets it in (rules such as client IP
   * ranges are checked when the app is opened), then the passthrough apps; by name.
   */
  entries(identity: Identity): PortalEntry[] {
    const assigned = this.#oidc
      .filter(({ policy }) => {
        const d = policy.check(identity);
        return d.ok || d.code !== 'NOT_ASSIGNED';
      })
      .map(({ app }) => app);
    return [...assigned, ...this.#open]
      .sort((a, b) => a.name.localeCompare(b.name))
      .map((a) => ({
        name: a.name,
        url: a.externalUrl,
        ...(a.icon !== undefined && { icon: a.icon }),
        ...(a.description !== undefined && { description: a.description }),
      }));
  }

  /** Answers a request on the portal's host: sign-in paths, the page, or a refusal. */
  async handle(signIn: SignIn, req: GateRequest, correlationId: string): Promise<RenderedError> {
    const accept = acceptOf(req);
    const path = req.url.split('?', 1)[0]!;
    if (path.startsWith('/.appproxy/')) {
      const reserved = await signIn.portal(req, correlationId);
      return 'page' in reserved ? reserved.page : notFound(correlationId, accept);
    }
    if (req.method !== 'GET' && req.method !== 'HEAD')
      return renderError('METHOD_NOT_ALLOWED', { app: PORTAL, correlationId, accept });
    if (path !== '/') return notFound(correlationId, accept);
    const outcome = await signIn.portal(req, correlationId);
    if ('page' in outcome) return outcome.page;
    const user = signedInAs(outcome.identity);
    const entries = this.entries(outcome.identity);
    const headers = {
      'cache-control': 'no-store',
      'x-content-type-options': 'nosniff',
      'referrer-policy': 'no-referrer',
      'x-appproxy-correlation-id': correlationId,
      ...(outcome.setCookie.length > 0 && { 'set-cookie': outcome.setCookie }),
    };
    if (accept?.includes('application/json'))
      return {
        status: 200,
        headers: { ...headers, 'content-type': 'application/json; charset=utf-8' },
        body: JSON.stringify({ user, apps: entries }),
      };
    return {
      status: 200,
      headers: {
        ...headers,
        'content-type': 'text/html; charset=utf-8',
        'content-security-policy': CSP,
      },
      body: renderPortal(user, entries),
    };
  }
}

/** The page: every value escaped; icons only from `https:` or the portal's own paths. */
export function renderPortal(user: string, entries: readonly PortalEntry[]): string {
  const tiles = entries
    .map(
      (e) =>
        `<li><a href="${escapeHtml(e.url)}">${
          e.icon ? `<img src="${escapeHtml(e.icon)}" alt="">` : ''
        }<span><span class="name">${escapeHtml(e.name)}</span><span class="url">${escapeHtml(e.url)}</span>${
          e.description ? `<span class="desc">${escapeHtml(e.description)}</span>` : ''
        }</span></a></li>`,
    )
    .join('\n');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>My Apps</title><style>${STYLE}</style></head>
<body><header><h1>My Apps</h1><p>Signed in as <strong id="user">${escapeHtml(user)}</strong> · <a id="sign-out" href="/.appproxy/signout">Sign out</a></p></header>
${entries.length > 0 ? `<ul id="apps">\n${tiles}\n</ul>` : '<p id="no-apps">No applications are assigned to you.</p>'}
</body></html>
`;
}

function notFound(correlationId: string, accept: string | undefined): RenderedError {
  return renderError('APP_NOT_FOUND', { app: PORTAL, correlationId, accept });
}

function acceptOf(req: GateRequest): string | undefined {
  const a = req.headers.accept;
  return Array.isArray(a) ? a.join(', ') : a;
}
