export { SsoError, type KdcErrorInfo, type SsoErrorCode } from './errors.js';
export {
  isLoginIdentityKind,
  LOGIN_IDENTITY_KINDS,
  resolveLoginIdentity,
  type LoginIdentityKind,
  type SsoIdentity,
} from './identity.js';
export { HeaderTemplates, TEMPLATE_PLACEHOLDERS } from './templates.js';
export { DEFAULT_STRIP_REQUEST_HEADERS, HeaderStripper } from './strip.js';
export { fileKeyStore, type SigningKeyStore, type StoredSigningKey } from './keystore.js';
export {
  AssertionSigner,
  KEY_RETIRE_SKEW_MS,
  type AssertionOptions,
  type AssertionSignerOptions,
} from './assertion.js';
export { AppSso, type SsoSettings } from './app-sso.js';
export { KerberosDelegator, type KerberosDelegatorOptions } from './kerberos/index.js';
