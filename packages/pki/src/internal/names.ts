import { isIP } from 'node:net';
import { domainToASCII } from 'node:url';
import { PkiError } from '../errors.js';

/** A subjectAltName entry, in @peculiar/x509's JSON form. */
export interface HostSan {
  type: 'dns' | 'ip';
  value: string;
}

/** RFC 5280 `ub-common-name`. */
const MAX_COMMON_NAME = 64;

// The id also becomes `urn:appproxy:connector:<id>`, so only characters a URN takes unescaped.
const CONNECTOR_NAME = /^[A-Za-z0-9][A-Za-z0-9._~:-]*$/;

const DNS_LABEL = /^(?!-)[a-z0-9_-]{1,63}(?<!-)$/;

/** The common name of a connector certificate: 1–64 URN-safe characters. */
export function connectorName(name: unknown): string {
  if (typeof name !== 'string' || name.length > MAX_COMMON_NAME || !CONNECTOR_NAME.test(name)) {
    throw new PkiError(
      'APPPROXY_PKI_NAME_INVALID',
      `connector name must be 1–${MAX_COMMON_NAME} characters of A–Z a–z 0–9 . _ ~ : - ` +
        `(got ${JSON.stringify(name)})`,
    );
  }
  return name;
}

/** A free-form subject name (a CSR's CN, which the CA ignores): just not empty. */
export function subjectName(name: unknown): string {
  if (typeof name !== 'string' || name.trim() === '') {
    throw new PkiError('APPPROXY_PKI_NAME_INVALID', 'a common name is required');
  }
  return name;
}

/**
 * SAN entries for host names and IP literals: IPv4/IPv6 (brackets allowed) become IP SANs,
 * the rest DNS SANs, lower-cased, IDNs in punycode, `*.` allowed as the whole first label.
 */
export function hostSans(hosts: unknown): HostSan[] {
  if (!Array.isArray(hosts) || hosts.length === 0) {
    throw new PkiError(
      'APPPROXY_PKI_NAME_INVALID',
      'at least one host name or IP address is required',
    );
  }
  const sans = new Map<string, HostSan>();
  for (const host of hosts) {
    const san = hostSan(host);
    sans.set(`${san.type}:${san.value}`, san);
  }
  return [...sans.values()];
}

function hostSan(host: unknown): HostSan {
  const raw = typeof host === 'string' ? host.trim() : '';
  const bare = raw.startsWith('[') && raw.endsWith(']') ? raw.slice(1, -1) : raw;
  if (isIP(bare)) return { type: 'ip', value: bare };
  const wildcard = bare.startsWith('*.');
  const rest = domainToASCII((wildcard ? bare.slice(2) : bare).replace(/\.$/, ''));
  const labels = rest.split('.');
  // WHATWG parsing turns '1.2.3' or '0x7f.1' into an IPv4 address: not a name we were given.
  const valid =
    rest !== '' && rest.length <= 253 && !isIP(rest) && labels.every((l) => DNS_LABEL.test(l));
  if (!valid) {
    throw new PkiError(
      'APPPROXY_PKI_NAME_INVALID',
      `not a host name or IP address: ${JSON.stringify(host)}`,
    );
  }
  return { type: 'dns', value: wildcard ? `*.${rest}` : rest };
}

/** The CN of a server certificate: its first name that fits, as clients look at SANs only. */
export function serverCommonName(sans: HostSan[], fallback: string): string {
  return sans.find((san) => san.value.length <= MAX_COMMON_NAME)?.value ?? fallback;
}
