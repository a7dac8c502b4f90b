import { createHash } from 'node:crypto';

/** Where sign-in starts on every app's external host. */
export const SIGNIN_PATH = '/.appproxy/signin';
/** The OIDC redirect URI path on every app's external host. */
export const CALLBACK_PATH = '/.appproxy/callback';
/** Sign-out on every app's external host. */
export const SIGNOUT_PATH = '/.appproxy/signout';
/** Where the provider sends the user after RP-initiated logout (`post_logout_redirect_uri`). */
export const SIGNED_OUT_PATH = '/.appproxy/signed-out';

// Static scripts, so that the CSP can name them by hash: no per-request nonce, nothing of the
// request inside a <script>. The interstitial reads the URL (fragment included) from the
// browser itself; the continue page reads its target from the link's href.
const interstitials = new Map<string, { script: string; csp: string }>();

/** The interstitial's script for a sign-in path and its CSP, built once per path. */
function interstitialOf(signInPath: string): { script: string; csp: string } {
  let built = interstitials.get(signInPath);
  if (!built) {
    // The path goes into a script: only the characters of a path that need no escaping there.
    if (!/^\/[A-Za-z0-9._~/-]*$/.test(signInPath))
      throw new TypeError(`interstitialPage: not a plain path: ${signInPath}`);
    const script =
      "location.replace('" +
      signInPath +
      "?rd='+encodeURIComponent(location.pathname+location.search+location.hash));";
    built = { script, csp: `${BASE_CSP}; script-src ${sha256(script)}` };
    interstitials.set(signInPath, built);
  }
  return built;
}
const CONTINUE_SCRIPT = "location.replace(document.getElementById('continue').href);";
const STYLE =
  'body{font:16px/1.5 system-ui,sans-serif;margin:3rem auto;max-width:36rem;padding:0 1rem;color:#222}a{color:#0b57d0}';

const sha256 = (s: string) => `'sha256-${createHash('sha256').update(s).digest('base64')}'`;

const BASE_CSP = `default-src 'none'; style-src ${sha256(STYLE)}; base-uri 'none'; form-action 'none'; frame-ancestors 'none'`;

/** A page the relay sends as is: status, headers (CSP included) and HTML. */
export interface Page {
  status: number;
  headers: Record<string, string>;
  body: string;
}

const NO_STORE = 'no-store';

/**
 * The page an anonymous browser gets instead of the app: a script continues to sign-in with
 * the full URL — `#fragment` included, which the relay never sees — and without JavaScript a
 * meta refresh continues without the fragment (what Entra application proxy does). 401, never
 * cached, CSP with the script's hash; the target is always this host's own sign-in path
 * (`signInPath`: `/.appproxy/signin`, or the app's under its `reservedPrefix`).
 *
 * @example
 * const page = interstitialPage('/reports?year=2025');
 * res.writeHead(page.status, page.headers).end(page.body);
 */
export function interstitialPage(
  pathAndQuery: string,
  realm?: string,
  signInPath: string = SIGNIN_PATH,
): Page {
  const { script, csp } = interstitialOf(signInPath);
  const noScriptTarget = `${signInPath}?rd=${encodeURIComponent(pathAndQuery)}`;
  const body = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<meta name="robots" content="noindex">
<title>Signing in…</title>
<noscript><meta http-equiv="refresh" content="0;url=${escapeHtml(noScriptTarget)}"></noscript>
<style>${STYLE}</style>
<script>${script}</script>
</head><body>
<p>Signing you in… <a href="${escapeHtml(noScriptTarget)}">Continue</a></p>
</body></html>
`;
  return {
    status: 401,
    headers: {
      'content-type': 'text/html; charset=utf-8',
      'cache-control': NO_STORE,
      'content-security-policy': csp,
      'referrer-policy': 'no-referrer',
      'x-content-type-options': 'nosniff',
      'www-authenticate': bearerChallenge(realm),
    },
    body,
  };
}

/**
 * A 200 page that moves on to `target` (a same-origin path) from the app's own origin: used
 * after the callback when the session cookie is `SameSite=Strict`, which browsers would not
 * send on a redirect chain that began at the provider.
 */
export function continuePage(target: string): Page {
  const body = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<meta name="robots" content="noindex">
<title>Signed in</title>
<meta http-equiv="refresh" content="0;url=${escapeHtml(target)}">
<style>${STYLE}</style>
</head><body>
<p>Signed in. <a id="continue" href="${escapeHtml(target)}">Continue</a></p>
<script>${CONTINUE_SCRIPT}</script>
</body></html>
`;
  return {
    status: 200,
    headers: {
      'content-type': 'text/html; charset=utf-8',
      'cache-control': NO_STORE,
      'content-security-policy': `${BASE_CSP}; script-src ${sha256(CONTINUE_SCRIPT)}`,
      'referrer-policy': 'no-referrer',
      'x-content-type-options': 'nosniff',
    },
    body,
  };
}

/** The page after sign-out: "you are signed out of <app>", with a link to sign in again. */
export function signedOutPage(appName: string, homePath: string): Page {
  const body = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<meta name="robots" content="noindex">
<title>Signed out</title>
<style>${STYLE}</style>
</head><body>
<h1>Signed out</h1>
<p>You have signed out of ${escapeHtml(appName)}.</p>
<p><a href="${escapeHtml(homePath)}">Sign in again</a></p>
</body></html>
`;
  return {
    status: 200,
    headers: {
      'content-type': 'text/html; charset=utf-8',
      'cache-control': NO_STORE,
      'content-security-policy': BASE_CSP,
      'referrer-policy': 'no-referrer',
      'x-content-type-options': 'nosniff',
    },
    body,
  };
}

/**
 * `WWW-Authenticate` for RFC 6750: `Bearer realm="…"`, plus `error` and `error_description`
 * when a token was presented and refused.
 *
 * @example
 * bearerChallenge('https://app.example.com', 'invalid_token', 'The access token expired');
 * // 'Bearer realm="https://app.example.com", error="invalid_token", error_description="The access token expired"'
 */
export function bearerChallenge(
  realm?: string,
  error?: 'invalid_request' | 'invalid_token' | 'insufficient_scope',
  description?: string,
): string {
  const params: string[] = [];
  if (realm) params.push(`realm=${quote(realm)}`);
  if (error) params.push(`error=${quote(error)}`);
  if (error && description) params.push(`error_description=${quote(description)}`);
  return params.length ? `Bearer ${params.join(', ')}` : 'Bearer';
}

function quote(v: string): string {
  // RFC 9110 quoted-string; only printable ASCII, so a header can never be split.
  return `"${v.replace(/[^\x20-\x7e]/g, '').replace(/["\\]/g, '\\$&')}"`;
}

export function escapeHtml(v: string): string {
  return v.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
