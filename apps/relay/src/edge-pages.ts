import type {
  HstsConfig,
  PageTemplate,
  PageTemplateName,
  PageVariable,
  PagesConfig,
  PublishedAppConfig,
} from '@appproxy/config';
import type { OutgoingHttpHeaders } from 'node:http';
import { escapeHtml, type RenderedError } from './error-pages.js';

/** Which template may replace a page, and the values of its variables. */
export interface PageBrand {
  template: PageTemplateName;
  vars: Record<PageVariable, string>;
}

/** The sign-in interstitial's variables. */
export function signInBrand(app: string, correlationId: string): PageBrand {
  return {
    template: 'signin',
    vars: {
      code: 'SIGN_IN_REQUIRED',
      correlationId,
      app,
      user: '',
      time: new Date().toISOString(),
      title: 'Signing in…',
      hint: 'Signing you in…',
    },
  };
}

/** The value of `Strict-Transport-Security` for an app's setting. */
export function hstsValue(h: HstsConfig): string {
  return `max-age=${h.maxAgeSeconds}${h.includeSubDomains ? '; includeSubDomains' : ''}${h.preload ? '; preload' : ''}`;
}

/** Per app what the edge adds: its HSTS header value, its home page and external path. */
interface AppEdge {
  hsts?: string;
  homePage?: string;
  externalPath: string;
}

/**
 * Issue 12 items 4, 5, 9 for one configuration: HSTS on an app's responses (the backend's
 * and the relay's own), the home page redirect of an app's external root, and the branded
 * pages of `relay.pages`. Built with the {@link Edge}, so a reload switches all of it.
 */
export class EdgePages {
  readonly #apps = new Map<string, AppEdge>();
  /** Host → the longest HSTS among its apps, for pages no app owns (unknown paths). */
  readonly #hostHsts = new Map<string, { value: string; maxAge: number }>();
  readonly #templates: PagesConfig['templates'];

  constructor(apps: readonly PublishedAppConfig[], pages: PagesConfig | undefined) {
    this.#templates = pages?.templates ?? {};
    for (const app of apps) {
      const url = new URL(app.externalUrl);
      const hsts = app.hsts && hstsValue(app.hsts);
      this.#apps.set(app.name, {
        externalPath: url.pathname,
        ...(hsts && { hsts }),
        ...(app.homePage !== undefined && { homePage: app.homePage }),
      });
      if (app.hsts) {
        const prior = this.#hostHsts.get(url.host);
        if (!prior || prior.maxAge < app.hsts.maxAgeSeconds)
          this.#hostHsts.set(url.host, { value: hsts!, maxAge: app.hsts.maxAgeSeconds });
      }
    }
  }

  /**
   * A response from the backend: the app's HSTS replaces the backend's own when the app
   * sets one; otherwise the backend's stays as sent.
   */
  backendHeaders(out: OutgoingHttpHeaders, app: PublishedAppConfig): void {
    const hsts = this.#apps.get(app.name)?.hsts;
    if (hsts !== undefined) out['strict-transport-security'] = hsts;
  }

  /**
   * The home page redirect (302) for a GET or HEAD of exactly the app's external path (no
   * query), or undefined.
   */
  homeRedirect(app: PublishedAppConfig, method: string, target: string): RenderedError | undefined {
    const edge = this.#apps.get(app.name);
    if (edge?.homePage === undefined || target !== edge.externalPath) return undefined;
    if (method !== 'GET' && method !== 'HEAD') return undefined;
    return {
      status: 302,
      headers: { location: edge.homePage, 'content-length': 0, 'cache-control': 'no-store' },
      body: '',
    };
  }

  /**
   * A page the relay answers itself, made final: the branded template when there is one,
   * and the HSTS of its app — or, for a page no app owns, of the host's apps.
   */
  finish(page: RenderedError, host: string, app: string | undefined): RenderedError {
    let out = page;
    // forbidden.html and maintenance.html fall back to error.html; the interstitial does not
    // (it needs its own head for the script).
    const kind = page.brand?.template;
    const template =
      kind && (this.#templates[kind] ?? (kind !== 'signin' ? this.#templates.error : undefined));
    if (template) out = render(page, template);
    const hsts =
      app !== undefined ? this.#apps.get(app)?.hsts : this.#hostHsts.get(stripPort(host))?.value;
    if (hsts !== undefined)
      out = { ...out, headers: { ...out.headers, 'strict-transport-security': hsts } };
    return out;
  }

  /** Headers of a page the relay answers itself (HSTS), for callers that build their own. */
  hstsFor(host: string, app: string | undefined): string | undefined {
    return app !== undefined
      ? this.#apps.get(app)?.hsts
      : this.#hostHsts.get(stripPort(host))?.value;
  }
}

function stripPort(host: string): string {
  // The app table's hosts carry a port only when it is not 443.
  return host.toLowerCase().replace(/:443$/, '');
}

/** The template filled in, with a CSP allowing only its own styles (and the sign-in script). */
function render(page: RenderedError, template: PageTemplate): RenderedError {
  const vars = page.brand!.vars;
  let body = '';
  for (const part of template.parts)
    body += typeof part === 'string' ? part : escapeHtml(vars[part.v]);
  let scriptSrc = '';
  if (page.brand!.template === 'signin') {
    // The built-in interstitial's own <noscript> refresh and hashed script, unchanged: the
    // template gets the same behaviour (the #fragment kept) under the same script-src.
    const head = [
      ...page.body.matchAll(/<noscript>[\s\S]*?<\/noscript>|<script>[\s\S]*?<\/script>/g),
    ]
      .map((m) => m[0])
      .join('\n');
    body = body.replace(/<\/head\s*>/i, (end) => `${head}\n${end}`);
    const csp = String(page.headers['content-security-policy'] ?? '');
    scriptSrc = /script-src ([^;]+)/.exec(csp)?.[1] ?? "'none'";
  }
  const styles = template.styleHashes.length > 0 ? template.styleHashes.join(' ') : "'none'";
  const csp = [
    "default-src 'none'",
    `style-src ${styles}`,
    'img-src data:',
    ...(scriptSrc ? [`script-src ${scriptSrc}`] : []),
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; ');
  const headers: OutgoingHttpHeaders = {
    ...page.headers,
    'content-type': 'text/html; charset=utf-8',
    'content-security-policy': csp,
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'no-referrer',
  };
  delete headers['content-length'];
  return { status: page.status, headers, body };
}
