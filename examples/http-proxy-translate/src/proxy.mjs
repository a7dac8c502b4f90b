// A reverse proxy on http-proxy that publishes one internal app under another host and path,
// the way AppProxy's relay does: request headers translated in, response headers, cookies and
// HTML/CSS bodies translated out, and a proxy cookie of its own kept away from the backend.
import { randomBytes } from 'node:crypto';
import { pipeline } from 'node:stream';
import httpProxy from 'http-proxy';
import { getCookie, relaySetCookie, stripCookies } from '@appproxy/cookies';
import {
  createBodyTranslation,
  translateRequestHeaders,
  translateResponseHeaders,
  UrlMap,
} from '@appproxy/translate';

/** The proxy's own cookie: set once per browser, never forwarded to the backend. */
export const VISITOR_COOKIE = 'xp_visitor';

// RFC 9110 §7.6.1: meaningful for one connection only, never forwarded.
const HOP_BY_HOP = [
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'te',
  'trailer',
  'upgrade',
];

function withoutHopByHop(headers) {
  const out = { ...headers };
  const listed = String(out.connection ?? '')
    .split(',')
    .map((s) => s.trim().toLowerCase())
    .filter(Boolean);
  for (const name of [...HOP_BY_HOP, ...listed]) delete out[name];
  return out;
}

/**
 * Creates the request handler of a translating proxy.
 *
 * @param {object} options
 * @param {{ name: string, internalUrl: string, externalUrl: string }[]} options.apps every published
 *   app (links to all of them are translated), one of which is `options.app`
 * @param {string} options.app the app this proxy serves
 * @param {{ httpOnly?: boolean, secure?: boolean, persistent?: boolean, sameSite?: 'Strict'|'Lax'|'None' }} [options.cookies]
 *   the app's cookie policy (use `secure: false` only when the external URL is http)
 * @param {boolean} [options.translateHeaders] @default true
 * @param {boolean} [options.translateBody] @default true
 * @param {boolean} [options.translateScripts] @default false
 */
export function createTranslatingProxy(options) {
  const map = new UrlMap(options.apps);
  const app = map.app(options.app);
  if (!app) throw new Error(`no app named ${options.app}`);
  const ctx = { map, app: app.name };
  const policy = options.cookies ?? {};
  const proxy = httpProxy.createProxyServer({ selfHandleResponse: true, xfwd: true });

  proxy.on('proxyRes', (proxyRes, req, res) => {
    const status = proxyRes.statusCode ?? 502;
    let headers = withoutHopByHop(proxyRes.headers);
    if (options.translateHeaders ?? true)
      headers = translateResponseHeaders(headers, {
        ...ctx,
        cookiePolicy: policy,
        ...(req.headers.origin && { requestOrigin: req.headers.origin }),
      });
    const body =
      (options.translateBody ?? true) &&
      createBodyTranslation(
        { statusCode: status, headers },
        { map, app: app.name, scripts: options.translateScripts ?? false, method: req.method },
      );
    const out = body ? body.headers : headers;
    if (req.visitor) {
      const own = relaySetCookie(VISITOR_COOKIE, req.visitor, policy, { path: app.externalPath });
      out['set-cookie'] = [...[out['set-cookie'] ?? []].flat(), own];
    }
    res.writeHead(status, proxyRes.statusMessage, out);
    const done = (err) => {
      if (err) res.destroy();
    };
    if (body) pipeline(proxyRes, body.transform, res, done);
    else pipeline(proxyRes, res, done);
  });

  proxy.on('error', (_err, _req, res) => {
    if (!res.headersSent) res.writeHead?.(502, { 'content-type': 'text/plain' });
    res.end?.('bad gateway\n');
  });

  return function handle(req, res) {
    // External path → internal path; anything outside the app's external prefix is not ours.
    const url = req.url ?? '/';
    let rest;
    if (url.startsWith(app.externalPath)) rest = url.slice(app.externalPath.length);
    else if (`${url.split('?')[0]}/` === app.externalPath)
      rest = url.slice(app.externalPath.length - 1);
    if (rest === undefined) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      return;
    }
    req.url = app.internalPath + rest;

    // The proxy's own cookie: issue one if missing, and never forward it.
    if (getCookie(req.headers.cookie, VISITOR_COOKIE) === undefined)
      req.visitor = randomBytes(9).toString('base64url');
    const cookie = stripCookies(req.headers.cookie, [VISITOR_COOKIE]);
    if (cookie === undefined) delete req.headers.cookie;
    else req.headers.cookie = cookie;

    // Host, Origin, Referer to their internal values (off: the backend sees the external host).
    if (options.translateHeaders ?? true) req.headers = translateRequestHeaders(req.headers, ctx);
    // changeOrigin stays off: Host is already what the backend should see.
    proxy.web(req, res, { target: app.internalOrigin });
  };
}
