// The connector's CPU for Kerberos SSO, in process: `KerberosDelegator.authorization()` as
// the connector calls it once per request of a `kerberos` app. A cached call (the common
// case) builds a fresh authenticator and SPNEGO token; a first call of a user does the KDC
// round trips (AS ×2 for the service's TGT, then S4U2Self and S4U2Proxy). Not part of npm test.
//
//   KRB_PRINCIPAL=appproxy@CORP.TEST KRB_KEYTAB=/path/service.keytab   (or KRB_PASSWORD=…)
//   KRB_KDC=127.0.0.1:88 [KRB_USER=alice] [KRB_SPN=HTTP/intranet.corp.test]
//   node tools/bench/kerberos-cost.mjs          (after npm run build)
import { KerberosDelegator } from '@appproxy/sso';

const env = process.env;
if (!env.KRB_PRINCIPAL || !env.KRB_KDC || !(env.KRB_KEYTAB || env.KRB_PASSWORD)) {
  console.error(
    'set KRB_PRINCIPAL, KRB_KDC and KRB_KEYTAB or KRB_PASSWORD (optional KRB_USER, KRB_SPN)',
  );
  process.exit(2);
}
const user = env.KRB_USER ?? 'alice';
const spn = env.KRB_SPN ?? 'HTTP/intranet.corp.test';
const options = {
  principal: env.KRB_PRINCIPAL,
  kdc: env.KRB_KDC.split(','),
  ...(env.KRB_KEYTAB ? { keytab: env.KRB_KEYTAB } : { password: env.KRB_PASSWORD }),
};

/** µs of CPU per cached call over `ms` milliseconds of CPU (after a warm-up). */
async function perCall(fn, ms = 1000) {
  for (let i = 0; i < 2000; i++) await fn();
  let calls = 0;
  const start = process.cpuUsage();
  const wall = performance.now();
  let used = 0;
  while (used < ms * 1000) {
    for (let i = 0; i < 500; i++, calls++) await fn();
    const u = process.cpuUsage(start);
    used = u.user + u.system;
  }
  return { cpuUs: used / calls, wallUs: ((performance.now() - wall) * 1000) / calls, calls };
}

/** The first call of a fresh delegator: service login + S4U2Self + S4U2Proxy. */
async function firstCall() {
  const k = new KerberosDelegator(options);
  const t = performance.now();
  await k.authorization(user, spn);
  const ms = performance.now() - t;
  const { kdcExchanges } = k.stats;
  k.close();
  return { ms, kdcExchanges };
}

const firsts = [];
for (let i = 0; i < 5; i++) firsts.push(await firstCall());
firsts.sort((a, b) => a.ms - b.ms);
const first = firsts[2];

// S4U only (TGT cached): a new user/SPN pair on a warm delegator, median of 5.
const warm = new KerberosDelegator(options);
await warm.authorization(user, spn);
const s4u = [];
for (let i = 0; i < 5; i++) {
  warm.close(); // drops tickets and TGT; log in again outside the timing
  await warm.authorization(user, spn);
  // Drop the service ticket only (a private field: the public close() drops the TGT too).
  warm['tickets'].clear();
  const t = performance.now();
  await warm.authorization(user, spn);
  s4u.push(performance.now() - t);
}
s4u.sort((a, b) => a - b);

const cached = await perCall(() => warm.authorization(user, spn));
warm.close();

console.log(`Kerberos SSO (${user} → ${spn} via ${options.kdc.join(', ')})`);
console.log(
  `  first call (login + S4U2Self + S4U2Proxy): ${first.ms.toFixed(1)} ms, ${first.kdcExchanges} KDC round trips (median of 5)`,
);
console.log(`  new user with the TGT cached (S4U2Self + S4U2Proxy): ${s4u[2].toFixed(1)} ms`);
console.log(
  `  cached call: ${cached.cpuUs.toFixed(1)} µs CPU, ${cached.wallUs.toFixed(1)} µs wall (${cached.calls} calls)`,
);
