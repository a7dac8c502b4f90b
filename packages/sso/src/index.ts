export { SsoError, type SsoErrorCode } from './errors.js';
export {
  isLoginIdentityKind,
  LOGIN_IDENTITY_KINDS,
  resolveLoginIdentity,
  type LoginIdentityKind,
  type SsoIdentity,
} from './identity.js';
