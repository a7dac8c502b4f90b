// The admin listener from the outside, for e2e tests: an admin's console session through the
// dev IdP (no browser).
import { signInAt } from '@appproxy/dev-idp/sign-in';

/** A session on the admin listener (its CSRF token: `GET /api/v1/session`). */
export interface AdminLogin {
  /** 200 admin, 403 signed in but not one of relay.admins. */
  status: number;
  cookie: string;
}

/**
 * Signs `username` in to the admin console at `admin` (`http://127.0.0.1:<port>`) through
 * the dev IdP: `/console/signin`, the provider's login form, `/console/callback`. Resolves
 * with the admin cookie and the callback's status (403 for a non-admin).
 */
export function adminSignIn(
  admin: string,
  username: string,
  password: string,
): Promise<AdminLogin> {
  return signInAt({
    base: admin,
    start: '/console/signin?return=%2Fconsole%2F',
    callback: '/console/callback',
    cookie: /^appproxy_admin/,
    username,
    password,
  });
}
