// A real sign-in through a relay at this provider, without a browser (the bench, e2e tests):
// the relay's sign-in start, the provider's login form, the callback — cookies kept by hand.
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';

/**
 * Signs in to an app: returns the `Cookie` header of the session the relay set (one cookie or
 * its chunks).
 *
 * @param {object} o
 * @param {string} o.base the relay, `https://127.0.0.1:<port>`
 * @param {string} o.host the app's external host, with its port if not 443 (Host header; SNI
 *   without the port)
 * @param {string} o.username
 * @param {string} o.password
 * @returns {Promise<string>}
 */
export async function signIn({ base, host, username, password }) {
  const { status, cookie } = await signInAt({
    base,
    host,
    start: '/.appproxy/signin?rd=%2F',
    callback: '/.appproxy/callback',
    cookie: /appproxy_session/,
    username,
    password,
  });
  if (status < 300 || status >= 400)
    throw new Error(`sign-in: callback answered ${status}, not a redirect`);
  return cookie;
}

/**
 * The same through any sign-in of the relay, named by its start, its callback path and its
 * session cookie (the admin console's: `/console/signin`, `/console/callback`,
 * `appproxy_admin`, on the admin listener over http). Resolves with the callback's status
 * (a refused callback, such as a non-admin's 403, still sets its cookie) and the session's
 * `Cookie` header.
 *
 * @param {object} o
 * @param {string} o.base the relay, `https://127.0.0.1:<port>` or `http://…`
 * @param {string} [o.host] the Host header (default: the host of `base`)
 * @param {string} o.start path and query where the sign-in starts
 * @param {string} o.callback the callback's path
 * @param {RegExp} o.cookie the session cookie's name (and its chunks')
 * @param {string} o.username
 * @param {string} o.password
 * @returns {Promise<{ status: number, cookie: string }>}
 */
export async function signInAt({ base, host, start, callback, cookie, username, password }) {
  const relayJar = new Map();
  const idpJar = new Map();
  const hostHeader = host ?? new URL(base).host;
  // 1. The relay starts the sign-in: a transaction cookie and a redirect to the provider.
  let res = await relay(base, hostHeader, start, relayJar);
  let location = expectRedirect(res, 'sign-in start');
  // 2. The provider, up to its login form.
  for (let hop = 0; hop < 10 && !new URL(location).pathname.endsWith(callback); hop++) {
    const r = await idp(location, idpJar);
    if (r.status >= 300 && r.status < 400) {
      location = new URL(r.headers.get('location'), location).href;
      continue;
    }
    const action = /<form method="post" action="([^"]+)"/.exec(await r.text())?.[1];
    if (!action) throw new Error(`sign-in: no login form at ${location}`);
    const post = await idp(new URL(action.replaceAll('&amp;', '&'), location).href, idpJar, {
      method: 'POST',
      body: new URLSearchParams({ username, password }).toString(),
    });
    location = new URL(expectRedirect(post, 'login'), location).href;
  }
  // 3. The callback on the relay: the session cookie.
  const back = new URL(location);
  res = await relay(base, hostHeader, `${back.pathname}${back.search}`, relayJar);
  const session = [...relayJar].filter(([name]) => cookie.test(name));
  if (session.length === 0)
    throw new Error(`sign-in: the relay set no session cookie (callback ${res.statusCode})`);
  return { status: res.statusCode, cookie: session.map(([k, v]) => `${k}=${v}`).join('; ') };
}

function expectRedirect(res, what) {
  const status = res.status ?? res.statusCode;
  const location =
    typeof res.headers.get === 'function' ? res.headers.get('location') : res.headers.location;
  if (status < 300 || status >= 400 || !location)
    throw new Error(`sign-in: ${what} answered ${status}, not a redirect`);
  return location;
}

function keep(jar, lines) {
  for (const line of lines ?? []) {
    const [pair, ...attrs] = line.split(';');
    const eq = pair.indexOf('=');
    const name = pair.slice(0, eq).trim();
    if (attrs.some((a) => /^\s*max-age=0\s*$/i.test(a))) jar.delete(name);
    else jar.set(name, pair.slice(eq + 1).trim());
  }
}

const cookieHeader = (jar) => [...jar].map(([k, v]) => `${k}=${v}`).join('; ');

function relay(base, host, path, jar) {
  const u = new URL(base);
  const request = u.protocol === 'http:' ? httpRequest : httpsRequest;
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: u.hostname,
        port: u.port,
        // `host` may carry a port (the Host header's); SNI takes the name alone.
        servername: host.replace(/:\d+$/, ''),
        rejectUnauthorized: false,
        path,
        headers: { host, accept: 'text/html', ...(jar.size && { cookie: cookieHeader(jar) }) },
        agent: false,
      },
      (res) => {
        keep(jar, res.headers['set-cookie']);
        res.resume();
        res.on('end', () => resolve(res));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

async function idp(url, jar, init = {}) {
  const res = await fetch(url, {
    redirect: 'manual',
    ...init,
    headers: {
      accept: 'text/html',
      ...(jar.size && { cookie: cookieHeader(jar) }),
      ...(init.body && { 'content-type': 'application/x-www-form-urlencoded' }),
    },
  });
  keep(jar, res.headers.getSetCookie());
  return res;
}
