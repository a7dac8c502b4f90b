/**
 * Wire constants of the AppProxy tunnel, version 1 (docs/tunnel-protocol.md).
 * Everything both sides must agree on lives here and nowhere else.
 */
export const TUNNEL_PROTOCOL_VERSION = 1;

/** ALPN of a tunnel connection (reverse HTTP/2: the relay is the h2 client). */
export const ALPN_TUNNEL = 'appproxy-tunnel/1';
/** ALPN of a registration connection on the same port (plain HTTP/1.1, no client certificate yet). */
export const ALPN_REGISTRATION = 'http/1.1';

/** Request metadata the relay adds to a proxied stream; never taken from a client. */
export const META = {
  /** Origin of the internal URL the connector must contact (`http://host:port`). */
  target: 'appproxy-target',
  requestId: 'appproxy-request-id',
  app: 'appproxy-app',
  /** Backend timeout in milliseconds. */
  timeout: 'appproxy-timeout-ms',
  /** `0` turns off backend certificate validation for this app. */
  tlsVerify: 'appproxy-backend-tls-verify',
  /** `http://[user:pass@]host:port` forward proxy to reach the backend through (the app's `backendProxy`). */
  backendProxy: 'appproxy-backend-proxy',
  /** Milliseconds an idle backend connection is kept for reuse (the app's `backendKeepAlive`). */
  backendKeepAlive: 'appproxy-backend-keep-alive-ms',
  /** The app's `backendTls`: the id (digest) of its material, on every request. */
  backendTlsId: 'appproxy-backend-tls-id',
  /** With the id, until the connector has it cached: the material, base64url JSON. */
  backendTls: 'appproxy-backend-tls',
  /** Marks a control stream (`hello`); proxied streams never carry it. */
  control: 'appproxy-control',
  /** Set by the connector on a response it made itself (the backend never answered). */
  error: 'appproxy-error',
  /** With `error`: the cause for the relay's logs (never shown to the user). */
  errorDetail: 'appproxy-error-detail',
  /**
   * The signed-in user of an oidc app: base64url of the identity's JSON (`sub`, `issuer`,
   * `name`, `email`, `preferredUsername`, `upn`, `groups`, `roles`, `amr`). For the
   * connector (logs, single sign-on); never forwarded to a backend.
   */
  identity: 'appproxy-identity',
  /** On an extended CONNECT stream: the protocol of the HTTP/1.1 `Upgrade` header. */
  upgrade: 'appproxy-upgrade',
  /**
   * Connection affinity (NTLM/Negotiate passthrough): requests with the same id ride one
   * dedicated backend connection, never the shared pool; released by `CONTROL.release`.
   */
  affinity: 'appproxy-affinity',
  /**
   * Kerberos single sign-on (`sso.mode: kerberos`): the service principal name of the
   * backend, e.g. `HTTP/intranet.corp.example`; with {@link META.ssoUser}.
   */
  kerberosSpn: 'appproxy-kerberos-spn',
  /** The login identity the connector asks a Kerberos ticket for (S4U2Self), percent-encoded UTF-8. */
  ssoUser: 'appproxy-sso-user',
} as const;

/** Every metadata header starts with this; the relay strips client headers that do. */
export const META_PREFIX = 'appproxy-';

/**
 * Control streams the relay opens toward the connector (`appproxy-control: <name>`); they
 * carry no proxied request. See docs/tunnel-protocol.md §3.1 and §6.
 */
export const CONTROL = {
  /** Who are you? → `ConnectorHello`. The first stream of every tunnel. */
  hello: 'hello',
  /** Make a new key and answer with a CSR for it → `{ csr }`. */
  renew: 'renew',
  /** Here is your renewed certificate (request body `{ certificate }`) → 204. */
  certificate: 'certificate',
  /**
   * The client connection pinned to an affinity id closed (body `{ affinity }`) → 204: the
   * connector closes that id's backend connection.
   */
  release: 'release',
  /**
   * The relay instances changed (body {@link InstanceList}) → 204: the connector dials the
   * instances it lacks and drains those no longer listed (§3.6). The hello carries the same body.
   */
  instances: 'instances',
  /**
   * Test an app from this connector (body {@link DiagnoseRequest}) → 200 {@link DiagnoseAnswer}:
   * resolve, connect, TLS, a GET and the SSO dry run (§3.7). Only to connectors that declare
   * {@link CAPABILITY.diagnose}.
   */
  diagnose: 'diagnose',
} as const;
export type ControlName = (typeof CONTROL)[keyof typeof CONTROL];

/** What a connector may declare in its hello. */
export const CAPABILITY = {
  websocket: 'websocket',
  /** Kerberos constrained delegation is configured (`--kerberos-keytab`, `--kerberos-principal`). */
  kerberos: 'kerberos',
  /** Reads `appproxy-backend-tls` (apps' `backendTls`); an older connector would ignore it. */
  backendTls: 'backend-tls',
  /** Answers the `diagnose` control (§3.7); an older connector would answer it 404. */
  diagnose: 'diagnose',
} as const;

/** The connector's answer to the relay's hello stream. */
export interface ConnectorHello {
  protocol: number;
  connectorId: string;
  version: string;
  hostname: string;
  capabilities: string[];
}

/** One relay instance of a fleet sharing a store (`relay.instance`). */
export interface RelayInstance {
  name: string;
  /** How connectors reach this instance's tunnel port; absent: only through the URL they registered with. */
  tunnelUrl?: string;
}

/**
 * Body of the relay's `hello` and `instances` control streams (§3.6): the instance that sent
 * it and every live instance of its fleet (itself included).
 */
export interface InstanceList {
  instance: { name: string };
  instances: RelayInstance[];
}

/** Most instances a list may name; beyond, the rest is ignored. */
export const MAX_INSTANCES = 256;
const MAX_INSTANCE_NAME = 200;

/**
 * Reads an {@link InstanceList} from a control body: undefined when the body is absent or not
 * a list (an older relay sends none). Entries with a bad name are dropped, a `tunnelUrl` that
 * is not an `https://` URL is dropped (the instance is then reached through the bootstrap URL
 * only), a repeated name keeps its first entry.
 */
export function parseInstanceList(body: unknown): InstanceList | undefined {
  if (typeof body !== 'object' || body === null) return undefined;
  const { instance, instances } = body as { instance?: unknown; instances?: unknown };
  const name = (instance as { name?: unknown } | undefined)?.name;
  if (!validName(name) || !Array.isArray(instances)) return undefined;
  const seen = new Set<string>();
  const list: RelayInstance[] = [];
  for (const entry of instances.slice(0, MAX_INSTANCES) as unknown[]) {
    const { name: n, tunnelUrl } = (entry ?? {}) as { name?: unknown; tunnelUrl?: unknown };
    if (!validName(n) || seen.has(n)) continue;
    seen.add(n);
    const url = typeof tunnelUrl === 'string' ? httpsOrigin(tunnelUrl) : undefined;
    list.push(url ? { name: n, tunnelUrl: url } : { name: n });
  }
  return { instance: { name }, instances: list };
}

function validName(name: unknown): name is string {
  return typeof name === 'string' && name.length > 0 && name.length <= MAX_INSTANCE_NAME;
}

/** `https://host:port` of an https URL (its path ignored), or undefined. */
export function httpsOrigin(url: string): string | undefined {
  try {
    const u = new URL(url);
    return u.protocol === 'https:' && !u.username ? u.origin : undefined;
  } catch {
    return undefined;
  }
}

/**
 * HTTP/2 settings of both ends. Large windows keep one bulk stream near line rate on
 * fast links while bounding what one stream can hold in memory to the window.
 */
export const TUNNEL_SETTINGS = {
  initialWindowSize: 4 * 1024 * 1024,
  maxFrameSize: 64 * 1024,
  maxConcurrentStreams: 10_000,
  maxHeaderListSize: 256 * 1024,
} as const;
/** Connection-level receive window each side grants (per session, not per stream). */
export const SESSION_WINDOW = 32 * 1024 * 1024;

/**
 * Liveness defaults of both ends: a quiet tunnel is PINGed every 500 ms and a peer from
 * which nothing arrived for three intervals (1.5 s) is dead, so a frozen peer is found
 * within 2 s (docs/tunnel-protocol.md §5).
 */
export const DEFAULT_PING_INTERVAL_MS = 500;
export const PING_TIMEOUT_INTERVALS = 3;

/**
 * Payload of the PING a draining connector sends before its GOAWAY (§5): the relay opens no
 * new stream on the tunnel once it sees it; its ACK tells the connector that the streams
 * the relay opened before have been sent, so the GOAWAY that follows refuses (almost) none.
 */
export const DRAIN_NOTICE = Buffer.from('apdrain1', 'latin1');
