import { BlockList, isIP } from 'node:net';

/**
 * Decides whether X-Forwarded-* from a client may be kept: only when the client is one of
 * the configured front proxies. Everyone else's are replaced.
 */
export class TrustedProxies {
  readonly #list = new BlockList();
  readonly #empty: boolean;
  constructor(entries: readonly string[]) {
    this.#empty = entries.length === 0;
    for (const entry of entries) {
      const [addr, bits] = entry.split('/');
      const type = isIP(addr!) === 6 ? 'ipv6' : 'ipv4';
      if (bits === undefined) this.#list.addAddress(addr!, type);
      else this.#list.addSubnet(addr!, Number(bits), type);
    }
  }
  has(address: string | undefined): boolean {
    if (this.#empty || !address) return false;
    const plain = address.startsWith('::ffff:') ? address.slice(7) : address;
    return this.#list.check(plain, isIP(plain) === 6 ? 'ipv6' : 'ipv4');
  }
}

export interface ForwardedInput {
  clientAddress: string | undefined;
  externalHost: string;
  trusted: boolean;
  existing: { for?: string | string[]; proto?: string | string[]; host?: string | string[] };
}

const first = (v: string | string[] | undefined) => (Array.isArray(v) ? v.join(', ') : v);

/** The X-Forwarded-* headers to send to the backend. */
export function forwardedHeaders(input: ForwardedInput): Record<string, string> {
  const client = input.clientAddress?.startsWith('::ffff:')
    ? input.clientAddress.slice(7)
    : (input.clientAddress ?? 'unknown');
  if (input.trusted) {
    const prior = first(input.existing.for);
    return {
      'x-forwarded-for': prior ? `${prior}, ${client}` : client,
      'x-forwarded-proto': first(input.existing.proto) ?? 'https',
      'x-forwarded-host': first(input.existing.host) ?? input.externalHost,
    };
  }
  return {
    'x-forwarded-for': client,
    'x-forwarded-proto': 'https',
    'x-forwarded-host': input.externalHost,
  };
}
