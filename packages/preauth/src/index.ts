export {
  RelyingParty,
  MAX_ID_TOKEN_HINT_LENGTH,
  ProtectedApp,
  type Authentication,
  type PreauthResponse,
  type ProtectedAppOptions,
  type RelyingPartyOptions,
  type SessionOptions,
} from './relying-party.js';
export {
  OidcProvider,
  ASYMMETRIC_ALGORITHMS,
  type OidcProviderOptions,
  type ProviderMetadata,
  type TokenEndpointAuthMethod,
  type TokenSet,
} from './provider.js';
export { JwksCache, type JwksCacheOptions } from './jwks.js';
export { Keyring, type SealingSecret, type SealPurpose, type Unsealed } from './keyring.js';
export { AccessPolicy, type AccessDecision, type AccessRules, type Assignment } from './policy.js';
export {
  identityFromClaims,
  signedInAs,
  DEFAULT_CLAIM_NAMES,
  MAX_GROUPS,
  type ClaimNames,
  type Identity,
} from './identity.js';
export {
  COOKIE_PREFIXES,
  isRelayCookie,
  sessionCookieName,
  type AppCookiePolicy,
  type CookieToSet,
} from './cookies.js';
export { bearerToken, isApiRequest, type PreauthRequest } from './request.js';
export { safeReturnUrl, MAX_RETURN_URL_LENGTH } from './return-url.js';
export {
  CALLBACK_PATH,
  SIGNED_OUT_PATH,
  SIGNIN_PATH,
  SIGNOUT_PATH,
  bearerChallenge,
  interstitialPage,
  type Page,
} from './pages.js';
export { PreauthError, type PreauthErrorCode, type PreauthErrorReason } from './errors.js';
export type { FetchLike } from './internal/http.js';
