import type { BackendTlsMaterial, BackendTlsMeta } from '@appproxy/tunnel';

/** TLS options towards one backend: what undici's `connect` and `tls.connect` take. */
export interface BackendTlsOptions {
  rejectUnauthorized: boolean;
  ca?: string;
  cert?: string;
  key?: string;
  /** SNI and the name verified (absent: the target's host). */
  servername?: string;
}

/**
 * The apps' backend TLS material the relay sent, by id: sent once per tunnel, then only
 * named (docs/tunnel-protocol.md §3.2). Bounded; an evicted id is answered
 * `BACKEND_TLS_INVALID` and the relay sends the material again with the next request.
 */
export class BackendTlsCache {
  readonly #byId = new Map<string, BackendTlsMaterial>();

  constructor(readonly max = 256) {}

  /**
   * The TLS options of a request; `undefined` when the request names material this
   * connector does not hold.
   *
   * @example
   * new BackendTlsCache().options(true, undefined); // { rejectUnauthorized: true }
   */
  options(verifyTls: boolean, meta: BackendTlsMeta | undefined): BackendTlsOptions | undefined {
    if (!meta) return { rejectUnauthorized: verifyTls };
    let material = meta.material;
    if (material) {
      if (!this.#byId.has(meta.id)) {
        if (this.#byId.size >= this.max) this.#byId.delete(this.#byId.keys().next().value!);
        this.#byId.set(meta.id, material);
      }
    } else material = this.#byId.get(meta.id);
    if (!material) return undefined;
    return {
      rejectUnauthorized: verifyTls,
      ...(material.ca !== undefined && { ca: material.ca }),
      ...(material.cert !== undefined && { cert: material.cert }),
      ...(material.key !== undefined && { key: material.key }),
      ...(material.serverName !== undefined && { servername: material.serverName }),
    };
  }
}
