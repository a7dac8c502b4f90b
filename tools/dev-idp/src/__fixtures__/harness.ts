// A small relay stand-in on node:http that uses @appproxy/preauth the way the relay will
// (handle → authenticate → authorize → forward), and a "browser" that follows redirects and
// keeps cookies by hand, runs the interstitial's script, and fills in HTML forms.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import {
  isRelayCookie,
  signedInAs,
  type PreauthRequest,
  type PreauthResponse,
  type ProtectedApp,
} from '@appproxy/preauth';
import { joinCookies, relayCookieLines } from '@appproxy/cookies';
import { afterEach } from 'vitest';

/** What the harness's "backend" saw of a forwarded request. */
export interface Forwarded {
  path: string;
  identity: unknown;
  cookieNames: string[];
  authorization: string | undefined;
}

export interface Harness {
  origin: string;
  /** Every request the backend received. */
  forwarded: Forwarded[];
}

/** Serves `makeApp(origin)` (built at the first request) on 127.0.0.1:0, plain HTTP. */
export async function startHarness(makeApp: (origin: string) => ProtectedApp): Promise<Harness> {
  const forwarded: Forwarded[] = [];
  let app: ProtectedApp | undefined;
  const server = createServer((req, res) => {
    // Built at the first request: the relying party needs the provider, which needs our origin.
    app ??= makeApp(origin);
    handle(app, req, res, forwarded).catch((err: unknown) => {
      res.writeHead(500).end(String(err));
    });
  });
  const sockets = new Set<Socket>();
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  afterEach(
    () =>
      new Promise<void>((r) => {
        sockets.forEach((s) => s.destroy());
        server.close(() => r());
      }),
  );
  return { origin, forwarded };
}

async function handle(
  app: ProtectedApp,
  req: IncomingMessage,
  res: ServerResponse,
  forwarded: Forwarded[],
): Promise<void> {
  const cookies = joinCookies(req.headers.cookie, isRelayCookie);
  const requestCookies = req.headers.cookie;
  const preq: PreauthRequest = {
    method: req.method!,
    url: req.url!,
    headers: req.headers,
    cookies,
    clientIp: req.socket.remoteAddress!,
  };
  const reserved = await app.handle(preq);
  if (reserved) return send(res, reserved, requestCookies);
  const auth = await app.authenticate(preq);
  if (!auth.ok) return send(res, auth.response, requestCookies);
  const decision = app.authorize(auth.identity, preq);
  if (!decision.ok) {
    res.writeHead(403, { 'content-type': 'application/json' });
    res.end(
      JSON.stringify({
        code: decision.code,
        reason: decision.reason,
        signedInAs: signedInAs(auth.identity),
      }),
    );
    return;
  }
  // "Forward": what the connector would receive — relay cookies and accepted bearer tokens removed.
  const seen: Forwarded = {
    path: req.url!,
    identity: auth.identity,
    cookieNames: Object.keys(cookies).filter((n) => !isRelayCookie(n)),
    authorization: auth.stripAuthorization ? undefined : req.headers.authorization,
  };
  forwarded.push(seen);
  res.setHeader('set-cookie', relayCookieLines(auth.cookies, requestCookies));
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(JSON.stringify(seen));
}

function send(res: ServerResponse, r: PreauthResponse, requestCookies: string | undefined): void {
  res.setHeader('set-cookie', relayCookieLines(r.cookies, requestCookies));
  if (r.error) {
    res.writeHead(r.status, { ...r.headers, 'content-type': 'application/json' });
    res.end(JSON.stringify({ code: r.error.code, description: r.error.description }));
    return;
  }
  res.writeHead(r.status, r.headers).end(r.body);
}

// --- the browser ---------------------------------------------------------------------

export interface Page {
  url: string;
  status: number;
  headers: Headers;
  body: string;
}

/**
 * Follows redirects, keeps cookies per origin (ignoring Path and Domain — every cookie here is
 * host-only with Path=/ or scoped to a path it is only ever sent to), and sends the `Accept`
 * of a navigation. The fragment of a URL is never sent, as in a real browser.
 */
export class Browser {
  readonly jars = new Map<string, Map<string, string>>();
  /** Every URL requested, in order (fragments removed). */
  readonly visited: string[] = [];

  jar(origin: string): Map<string, string> {
    let jar = this.jars.get(origin);
    if (!jar) this.jars.set(origin, (jar = new Map()));
    return jar;
  }

  /** Requests `url` and follows redirects; returns the final page, `url` including the fragment it ended with. */
  async open(
    url: string,
    init: { method?: string; body?: string; headers?: Record<string, string> } = {},
  ): Promise<Page> {
    let current = new URL(url);
    let method = init.method ?? 'GET';
    let body = init.body;
    for (let hop = 0; hop < 20; hop++) {
      const fragment = current.hash;
      const target = new URL(current);
      target.hash = '';
      this.visited.push(target.href);
      const jar = this.jar(target.origin);
      const headers: Record<string, string> = {
        accept: 'text/html,application/xhtml+xml,*/*;q=0.8',
        'sec-fetch-mode': 'navigate',
        ...init.headers,
      };
      if (jar.size) headers.cookie = [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
      if (body !== undefined) headers['content-type'] = 'application/x-www-form-urlencoded';
      const res = await fetch(target, { method, headers, body, redirect: 'manual' });
      for (const line of res.headers.getSetCookie()) {
        const [pair, ...attrs] = line.split(';');
        const eq = pair!.indexOf('=');
        const name = pair!.slice(0, eq).trim();
        const value = pair!.slice(eq + 1).trim();
        const expired =
          attrs.some((a) => /^\s*max-age=0\s*$/i.test(a)) ||
          attrs.some((a) => /expires=Thu, 01 Jan 1970/i.test(a));
        if (expired) jar.delete(name);
        else jar.set(name, value);
      }
      const location = res.headers.get('location');
      if (res.status >= 300 && res.status < 400 && location) {
        const next = new URL(location, target);
        // A redirect without a fragment keeps the request's (RFC 9110 §10.2.2).
        if (!next.hash && fragment) next.hash = fragment;
        current = next;
        if (
          res.status === 303 ||
          ((res.status === 301 || res.status === 302) && method === 'POST')
        ) {
          method = 'GET';
          body = undefined;
        }
        await res.arrayBuffer();
        continue;
      }
      const page = {
        url: `${target.href}${fragment}`,
        status: res.status,
        headers: res.headers,
        body: await res.text(),
      };
      return page;
    }
    throw new Error('too many redirects');
  }

  /** Runs the interstitial's inline script as the browser would, and follows where it goes. */
  async runScript(page: Page): Promise<Page> {
    const script = /<script>([\s\S]*?)<\/script>/.exec(page.body)?.[1];
    if (!script) throw new Error('page has no script');
    const url = new URL(page.url);
    let target: string | undefined;
    const location = {
      pathname: url.pathname,
      search: url.search,
      hash: url.hash,
      replace: (u: string) => {
        target = u;
      },
    };
    const document = {
      getElementById: (id: string) => {
        const m = new RegExp(`id="${id}" href="([^"]*)"`).exec(page.body);
        return m ? { href: new URL(decodeHtml(m[1]!), url).href } : null;
      },
    };
    new Function('location', 'document', script)(location, document);
    if (!target) throw new Error('the script did not navigate');
    return this.open(new URL(target, url).href);
  }

  /** Follows `<meta http-equiv="refresh">` (what a browser without JavaScript does). */
  async followMetaRefresh(page: Page): Promise<Page> {
    const m = /<meta http-equiv="refresh" content="0;url=([^"]*)">/.exec(page.body);
    if (!m) throw new Error('page has no meta refresh');
    return this.open(new URL(decodeHtml(m[1]!), page.url).href);
  }

  /** Submits the form with id or action matching `which`, with `fields` over its hidden inputs. */
  async submit(page: Page, which: RegExp, fields: Record<string, string>): Promise<Page> {
    const forms = [...page.body.matchAll(/<form([^>]*)>([\s\S]*?)<\/form>/g)];
    const form = forms.find((f) => which.test(f[1]!));
    if (!form) throw new Error(`no form matching ${which} in ${page.url}`);
    const action = /action="([^"]*)"/.exec(form[1]!)![1]!;
    const values = new URLSearchParams();
    for (const input of form[2]!.matchAll(/<input([^>]*)>/g)) {
      const name = /name="([^"]*)"/.exec(input[1]!)?.[1];
      const value = /value="([^"]*)"/.exec(input[1]!)?.[1];
      if (name && /type="hidden"/.test(input[1]!)) values.set(name, decodeHtml(value ?? ''));
    }
    for (const [k, v] of Object.entries(fields)) values.set(k, v);
    return this.open(new URL(decodeHtml(action), page.url).href, {
      method: 'POST',
      body: values.toString(),
    });
  }
}

function decodeHtml(v: string): string {
  return v
    .replace(/&#(\d+);/g, (_m, n: string) => String.fromCharCode(Number(n)))
    .replace(/&amp;/g, '&');
}
