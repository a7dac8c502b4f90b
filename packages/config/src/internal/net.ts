import { isIP } from 'node:net';

/**
 * True for an IP address or a CIDR block (`10.0.0.0/8`, `2001:db8::/32`), as accepted by
 * `net.BlockList`.
 */
export function isIpOrCidr(v: string): boolean {
  const [addr, bits, ...rest] = v.split('/');
  const family = isIP(addr!);
  if (family === 0 || rest.length > 0) return false;
  if (bits === undefined) return true;
  return /^\d{1,3}$/.test(bits) && Number(bits) <= (family === 4 ? 32 : 128);
}
