export { SsoError, type SsoErrorCode } from './errors.js';
export {
  isLoginIdentityKind,
  LOGIN_IDENTITY_KINDS,
  resolveLoginIdentity,
  type LoginIdentityKind,
  type SsoIdentity,
} from './identity.js';
export { HeaderTemplates, TEMPLATE_PLACEHOLDERS } from './templates.js';
export { DEFAULT_STRIP_REQUEST_HEADERS, HeaderStripper } from './strip.js';
