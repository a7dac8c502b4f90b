// Loaded into a CLI with `node --import` (NODE_OPTIONS) by tests that give apps internal
// hosts such as `team-a.localhost`: names under `.localhost` resolve to loopback, as RFC 6761
// §6.3 lets resolvers do (systemd-resolved, browsers and curl do; glibc with plain
// /etc/hosts does not). APPPROXY_E2E_LOCALHOST_NAMES=`beta=127.0.0.2,…` gives one name
// another loopback address. Everything else goes to the system resolver as before.
import dns from 'node:dns';

const fixed = new Map(
  (process.env.APPPROXY_E2E_LOCALHOST_NAMES ?? '')
    .split(',')
    .filter(Boolean)
    .map((pair) => /** @type {[string, string]} */ (pair.split('=', 2))),
);
const original = dns.lookup;

/** @type {typeof dns.lookup} */
// @ts-expect-error -- the overloads of dns.lookup, implemented once
dns.lookup = function lookup(hostname, options, callback) {
  const name = typeof hostname === 'string' ? hostname.toLowerCase().replace(/\.$/, '') : '';
  if (!name.endsWith('.localhost')) return original.call(this, hostname, options, callback);
  const cb = typeof options === 'function' ? options : callback;
  const address = fixed.get(name.slice(0, -'.localhost'.length)) ?? '127.0.0.1';
  const all = typeof options === 'object' && options !== null && options.all;
  process.nextTick(() => (all ? cb(null, [{ address, family: 4 }]) : cb(null, address, 4)));
};
