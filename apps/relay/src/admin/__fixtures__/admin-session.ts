import type { RelayConfig } from '@appproxy/config';
import type { Identity, RelyingParty } from '@appproxy/preauth';
import { ADMIN_COOKIE, CONSOLE_PREFIX, adminOrigin } from '../session.js';

/**
 * A `Cookie` header with an admin session for `identity`, sealed as the callback seals it
 * (unit tests; end-to-end tests sign in through the dev IdP instead). `ageSec` backdates it.
 */
export async function adminSessionCookie(
  rp: RelyingParty,
  config: RelayConfig,
  identity: Partial<Identity> & { sub: string },
  opts: { ageSec?: number; lifetimeSec?: number } = {},
): Promise<string> {
  const now = Math.floor(Date.now() / 1000) - (opts.ageSec ?? 0);
  const sealed = await rp.keyring.seal('admin-session', {
    v: 1,
    iss: rp.provider.issuer,
    aud: new URL(`${adminOrigin(config)}${CONSOLE_PREFIX}`).origin,
    iat: now,
    exp: now + (opts.lifetimeSec ?? 8 * 3600),
    lat: now,
    id: { issuer: rp.provider.issuer, groups: [], roles: [], amr: [], ...identity },
  });
  return `${ADMIN_COOKIE}=${sealed}`;
}
