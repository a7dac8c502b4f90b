export { ConnectorCA, type CertificateCheck, type IssuedCertificate } from './ca.js';
export { createKeyAndCsr } from './csr.js';
export {
  certificateFingerprint,
  describeCertificate,
  type CertificateDescription,
} from './describe.js';
export { createDevCertificates } from './dev.js';
export { PkiError, type CertificateCheckCode, type PkiErrorCode } from './errors.js';
