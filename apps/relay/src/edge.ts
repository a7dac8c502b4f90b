import type { PublishedAppConfig, RelayConfig } from '@appproxy/config';
import { AppTable } from '@appproxy/routing';
import type { Logger } from '@appproxy/telemetry';
import { EdgePages } from './edge-pages.js';
import type { BackendTlsMeta } from '@appproxy/tunnel';
import { backendTlsByApp } from './backend-tls.js';
import { TrustedProxies } from './forwarded.js';
import { LinkTranslation } from './link-translation.js';
import { Portal } from './portal.js';
import type { AuditSink } from './audit.js';
import { SignIn } from './sign-in.js';
import { SingleSignOn } from './single-sign-on.js';
import { Throttle } from './throttle.js';
import { SniCertificates } from './tls-contexts.js';

/**
 * Client request headers the relay never forwards as they are: `Host` (→ :authority),
 * `Expect` (undici cannot do `100-continue`; the relay's own server already answered it)
 * and the forwarding headers it sets itself.
 */
const REPLACED_REQUEST_HEADERS: ReadonlySet<string> = new Set([
  'host',
  'expect',
  'forwarded',
  'x-forwarded-for',
  'x-forwarded-proto',
  'x-forwarded-host',
]);

/**
 * Everything request handling reads from `appproxy.yaml`, built from one configuration at
 * once: the app table, sign-in, single sign-on, link translation, the public certificates,
 * the trusted proxies and the connector group names. A reload builds a new one and swaps it
 * in whole; each request reads the one current when it arrived, start to end, so no request
 * ever sees half of two configurations.
 */
export class Edge {
  readonly apps: AppTable<PublishedAppConfig>;
  readonly signIn: SignIn;
  readonly sso: SingleSignOn;
  readonly links: LinkTranslation;
  readonly certificates: SniCertificates;
  readonly trustedProxies: TrustedProxies;
  readonly groups: ReadonlySet<string>;
  /** `relay.limits.requestsPerSecond` and the apps' `limits` (full buckets on each reload). */
  readonly throttle: Throttle;
  /** HSTS, home pages and branded pages (`edge-pages.ts`). */
  readonly pages: EdgePages;
  /** The My Apps portal (`portal:`), when configured. */
  readonly portal: Portal | undefined;
  /** Each app's `backendTls`, read from its files: id and material for the connector. */
  readonly backendTls: ReadonlyMap<string, Required<BackendTlsMeta>>;
  /**
   * Client request headers never forwarded as sent, for `endToEndHeaders`' one pass: the
   * ones the relay replaces and the spoofable identity and address headers (SSO's list).
   */
  readonly requestDrop: { has(name: string): boolean };

  /**
   * @param previous the edge this one replaces: its OpenID relying party is kept when the
   *   provider settings did not change (no new discovery; sign-ins in progress and the
   *   replay cache carry over).
   * @throws when the configuration cannot serve (a certificate or key that does not load,
   *   an SSO template that does not parse, …) — a reload then keeps the previous edge.
   */
  constructor(
    readonly config: RelayConfig,
    log: Logger,
    previous?: Edge,
    audit?: AuditSink,
  ) {
    this.certificates = new SniCertificates(config.relay.certificates);
    this.sso = new SingleSignOn(config, log);
    this.signIn = new SignIn(config, log, {
      keepClaims: this.sso.claimPaths,
      ...(previous && { previous: previous.signIn }),
      ...(audit && { audit }),
    });
    this.apps = new AppTable(config.apps);
    this.links = new LinkTranslation(config.apps);
    this.trustedProxies = new TrustedProxies(config.relay.trustedProxies);
    this.groups = new Set(config.connectorGroups.map((g) => g.name));
    // Workers split the limits; relay.workers is restart-only, so a reload keeps the running count.
    this.throttle = new Throttle(config, {
      share: previous?.throttle.share ?? config.relay.workers,
    });
    this.pages = new EdgePages(config.apps, config.relay.pages);
    this.backendTls = backendTlsByApp(config.apps);
    this.portal = Portal.of(config);
    const { sso } = this;
    this.requestDrop = { has: (name) => REPLACED_REQUEST_HEADERS.has(name) || sso.strips(name) };
  }
}
