export {
  BACKEND_TLS_ID,
  backendTlsId,
  decodeBackendTls,
  encodeBackendTls,
  type BackendTlsMaterial,
  type BackendTlsMeta,
} from './backend-tls.js';
export {
  DIAGNOSE_CHECK_TIMEOUT_MS,
  DIAGNOSE_TOTAL_TIMEOUT_MS,
  parseDiagnoseRequest,
  type DiagnoseAnswer,
  type DiagnoseCheck,
  type DiagnoseRequest,
  type DiagnoseSso,
} from './diagnose.js';
export { Backoff, type BackoffOptions } from './backoff.js';
export { FORWARD_BUFFER_BYTES, forwardBody, resetStream } from './body.js';
export {
  TunnelDialer,
  type TunnelDialerOptions,
  type TunnelDown,
  type TunnelUp,
} from './dialer.js';
export { TunnelError, type TunnelErrorCode } from './errors.js';
export { endToEndHeaders, isHopByHop } from './headers.js';
export { watchLiveness, type LivenessOptions } from './liveness.js';
export {
  TunnelListener,
  type InstancesAnnounced,
  type TunnelListenerOptions,
  type TunnelRefusal,
} from './listener.js';
export {
  AFFINITY_ID,
  CONNECTOR_ERROR_CODES,
  decodeRequestMeta,
  encodeRequestMeta,
  isConnectorErrorCode,
  type ConnectorErrorCode,
  type RequestMeta,
  type RequestMetaInit,
  type TunnelIdentity,
} from './meta.js';
export { connectThroughProxy } from './outbound-proxy.js';
export type { PeerIdentity } from './peer.js';
export {
  ALPN_REGISTRATION,
  ALPN_TUNNEL,
  CAPABILITY,
  CONTROL,
  DEFAULT_PING_INTERVAL_MS,
  META,
  META_PREFIX,
  MAX_INSTANCES,
  TUNNEL_PROTOCOL_VERSION,
  parseInstanceList,
  type ConnectorHello,
  type ControlName,
  type InstanceList,
  type RelayInstance,
} from './protocol.js';
export {
  REGISTRATION_PATH,
  formatRegistrationToken,
  parseRegistrationToken,
  registerWithRelay,
  type RegistrationRequest,
  type RegistrationResult,
  type RegistrationToken,
} from './registration.js';
export { TunnelSession, type TunnelSessionState } from './session.js';
export {
  RelayFleet,
  type FleetTunnelRef,
  type FleetWarning,
  type InstancesChanged,
  type RelayFleetOptions,
} from './fleet.js';
