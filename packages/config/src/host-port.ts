import { isIPv4, isIPv6 } from 'node:net';

/** An address to listen on. */
export interface HostPort {
  host: string;
  port: number;
}

/** What a listen address looks like, for messages. */
export const HOST_PORT_EXPECTED = 'expected host:port, [ipv6]:port, :port or a port number';

/** The host used when only a port is given: every IPv4 interface. */
export const ANY_HOST = '0.0.0.0';

const HOSTNAME =
  /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$/;

/** True for a DNS name (`relay.example.com`, `localhost`) or an IPv4/IPv6 address. */
export function isHostnameOrIp(v: string): boolean {
  return HOSTNAME.test(v) || isIPv4(v) || isIPv6(v);
}

/**
 * A listen address from `host:port`, `[::1]:443`, `:8443` (all interfaces) or a bare port
 * (number or digits). Port 0 asks the system for a free port.
 *
 * @throws {RangeError} when the input is not such an address. The message does not repeat
 * the input.
 * @example
 * parseHostPort('127.0.0.1:9090'); // { host: '127.0.0.1', port: 9090 }
 * parseHostPort('[::1]:443'); // { host: '::1', port: 443 }
 * parseHostPort(':8443'); // { host: '0.0.0.0', port: 8443 }
 * parseHostPort(443); // { host: '0.0.0.0', port: 443 }
 */
export function parseHostPort(v: string | number): HostPort {
  if (typeof v === 'number') return { host: ANY_HOST, port: checkPort(v) };
  if (typeof v !== 'string') throw new RangeError(HOST_PORT_EXPECTED);
  const text = v.trim();
  if (/^\d+$/.test(text)) return { host: ANY_HOST, port: checkPort(Number(text)) };
  let host: string;
  let portText: string;
  if (text.startsWith('[')) {
    const m = /^\[([^\]]*)\]:(\d+)$/.exec(text);
    if (!m) throw new RangeError('expected [ipv6]:port, e.g. [::1]:443');
    if (!isIPv6(m[1]!)) throw new RangeError('the address in brackets is not an IPv6 address');
    host = m[1]!;
    portText = m[2]!;
  } else {
    const colon = text.lastIndexOf(':');
    if (colon < 0) throw new RangeError('missing port');
    host = text.slice(0, colon) || ANY_HOST;
    portText = text.slice(colon + 1);
    if (host.includes(':')) throw new RangeError('put an IPv6 address in brackets, e.g. [::1]:443');
    if (!isHostnameOrIp(host)) throw new RangeError('not a valid host name or IP address');
  }
  if (!/^\d+$/.test(portText)) throw new RangeError('the port must be a number from 0 to 65535');
  return { host, port: checkPort(Number(portText)) };
}

function checkPort(port: number): number {
  if (!Number.isInteger(port) || port < 0 || port > 65_535)
    throw new RangeError('the port must be a number from 0 to 65535');
  return port;
}
