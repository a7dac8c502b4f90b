import type { CookieToSet, PreauthRequest, PreauthResponse, ProtectedApp } from '../index.js';
import type { FakeOp } from './fake-op.js';

export const SECRET = 'k'.repeat(16) + 'test-secret-0123456789';
export const OTHER_SECRET = 'o'.repeat(16) + 'other-secret-0123456789';

/** A clock the tests move by hand. */
export function testClock(start = Date.now()) {
  let now = start;
  return {
    now: () => now,
    advance(ms: number) {
      now += ms;
    },
  };
}

/** A browser's cookie jar, fed by the relay's Set-Cookie instructions. */
export class Jar {
  readonly cookies: Record<string, string> = {};
  apply(list: CookieToSet[]): this {
    for (const c of list) {
      if (c.maxAge === 0) delete this.cookies[c.name];
      else this.cookies[c.name] = c.value;
    }
    return this;
  }
}

export function browserRequest(
  url: string,
  jar: Jar,
  extra: Partial<PreauthRequest> = {},
): PreauthRequest {
  return {
    method: 'GET',
    url,
    headers: { accept: 'text/html,application/xhtml+xml,*/*;q=0.8', 'sec-fetch-mode': 'navigate' },
    cookies: { ...jar.cookies },
    clientIp: '127.0.0.1',
    ...extra,
  };
}

/** Path + query of an absolute URL. */
export function pathOf(url: string): string {
  const u = new URL(url);
  return `${u.pathname}${u.search}`;
}

/**
 * signin → (the fake provider signs the user in at once) → callback, as a browser would.
 * Returns the callback's answer; the jar holds the cookies afterwards.
 */
export async function signInFlow(
  app: ProtectedApp,
  op: FakeOp,
  jar: Jar,
  rd = '/',
): Promise<{ signIn: PreauthResponse; callback: PreauthResponse; callbackUrl: string }> {
  const signIn = await app.signIn(
    browserRequest(`/.appproxy/signin?rd=${encodeURIComponent(rd)}`, jar),
  );
  if (signIn.status !== 302)
    throw new Error(`signin answered ${signIn.status} ${signIn.error?.message}`);
  jar.apply(signIn.cookies);
  const callbackUrl = pathOf(op.authorize(signIn.headers.location!));
  const callback = await app.callback(browserRequest(callbackUrl, jar));
  jar.apply(callback.cookies);
  return { signIn, callback, callbackUrl };
}
