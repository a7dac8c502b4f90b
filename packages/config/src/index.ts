export { DURATION_PATTERN, parseDuration } from './duration.js';
export { substituteEnv, type Substitution } from './env.js';
export {
  ConfigError,
  StateStoreError,
  TokenError,
  formatIssue,
  type ConfigErrorCode,
  type ConfigIssue,
  type StateStoreErrorCode,
  type TokenErrorCode,
} from './errors.js';
export { parseHostPort, type HostPort } from './host-port.js';
export {
  loadConfig,
  parseConfig,
  type LoadConfigOptions,
  type ParseConfigOptions,
} from './load.js';
export {
  PAGE_TEMPLATES,
  PAGE_VARIABLES,
  compilePageTemplate,
  readPageTemplates,
  type PageTemplate,
  type PageTemplateName,
  type PageVariable,
  type PagesConfig,
} from './pages.js';
export {
  BACKEND_TIMEOUT_DEFAULT_MS,
  HSTS_ONE_YEAR_SECONDS,
  type HstsConfig,
  BACKEND_TIMEOUT_LONG_MS,
  configJsonSchema,
  type AppLimits,
  type CertificateSource,
  type ClaimNamesConfig,
  type SsoConfig,
  type CookiePolicy,
  type IdentityProviderConfig,
  type PublishedAppConfig,
  type AcmeConfig,
  type PortalConfig,
  type TelemetryConfig,
  type BackendTlsConfig,
  type RelayConfig,
  type RelayLimits,
} from './schema.js';
export { ensureStateDir, stateDirProblem } from './state-dir.js';
export {
  ATTACHMENT_WINDOW_MS,
  AUDIT_QUERY_DEFAULT_LIMIT,
  AUDIT_QUERY_MAX_LIMIT,
  AUDIT_TYPES,
  STORE_KEY_MIN_LENGTH,
  type AdminTokenRecord,
  type AuditEvent,
  type AuditQuery,
  type AuditType,
  type NewAuditEvent,
  type RegistrationTokenRecord,
  type ConnectorAttachment,
  type ConnectorRecord,
  type ConnectorSeen,
  type CreatedRegistrationToken,
  type InstanceHeartbeat,
  type InstanceRecord,
  type StateStore,
  type StateStoreOptions,
} from './state-store.js';
export { openStateStore } from './open-store.js';
export { STATE_DB_FILE } from './sqlite-store.js';
export { describePostgresUrl } from './postgres-store.js';
