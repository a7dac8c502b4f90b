// The admin listener from the outside, for e2e tests: an admin's console session through the
// dev IdP (no browser), and JSON calls with a token or a session.

/** A session on the admin listener (its CSRF token: `GET /api/v1/session`). */
export interface AdminLogin {
  /** 200 admin, 403 signed in but not one of relay.admins. */
  status: number;
  cookie: string;
}

/**
 * Signs `username` in to the admin console at `admin` (`http://127.0.0.1:<port>`) through
 * the dev IdP: `/console/signin`, the provider's login form, `/console/callback`, cookies kept
 * by hand. Resolves with the admin cookie and the callback's status (403 for a non-admin).
 */
export async function adminSignIn(
  admin: string,
  username: string,
  password: string,
): Promise<AdminLogin> {
  const adminJar = new Map<string, string>();
  const idpJar = new Map<string, string>();
  let res = await call(`${admin}/console/signin?return=%2Fconsole%2F`, adminJar);
  let location = redirectOf(res, 'sign-in start');
  for (let hop = 0; hop < 10 && !location.startsWith(`${admin}/console/callback`); hop++) {
    const r = await call(location, idpJar);
    if (r.status >= 300 && r.status < 400) {
      location = new URL(r.headers.get('location')!, location).href;
      continue;
    }
    const action = /<form method="post" action="([^"]+)"/.exec(await r.text())?.[1];
    if (!action) throw new Error(`admin sign-in: no login form at ${location}`);
    const post = await call(new URL(action.replaceAll('&amp;', '&'), location).href, idpJar, {
      method: 'POST',
      body: new URLSearchParams({ username, password }).toString(),
    });
    location = new URL(redirectOf(post, 'login'), location).href;
  }
  res = await call(location, adminJar);
  const cookie = [...adminJar]
    .filter(([name]) => name.startsWith('appproxy_admin'))
    .map(([k, v]) => `${k}=${v}`)
    .join('; ');
  if (!cookie) throw new Error(`admin sign-in: no session cookie (callback ${res.status})`);
  return { status: res.status, cookie };
}

function redirectOf(res: Response, what: string): string {
  const location = res.headers.get('location');
  if (res.status < 300 || res.status >= 400 || !location)
    throw new Error(`admin sign-in: ${what} answered ${res.status}, not a redirect`);
  return location;
}

function keep(jar: Map<string, string>, lines: string[]): void {
  for (const line of lines) {
    const [pair, ...attrs] = line.split(';');
    const eq = pair!.indexOf('=');
    const name = pair!.slice(0, eq).trim();
    if (attrs.some((a) => /^\s*max-age=0\s*$/i.test(a))) jar.delete(name);
    else jar.set(name, pair!.slice(eq + 1).trim());
  }
}

async function call(
  url: string,
  jar: Map<string, string>,
  init: { method?: string; body?: string } = {},
): Promise<Response> {
  const res = await fetch(url, {
    redirect: 'manual',
    ...init,
    headers: {
      accept: 'text/html',
      ...(jar.size && { cookie: [...jar].map(([k, v]) => `${k}=${v}`).join('; ') }),
      ...(init.body && { 'content-type': 'application/x-www-form-urlencoded' }),
    },
  });
  keep(jar, res.headers.getSetCookie());
  return res;
}
