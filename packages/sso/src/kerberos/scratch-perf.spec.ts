import { it } from 'vitest';
import { randomBytes, randomInt } from 'node:crypto';
import { encodeApReq, encodeAuthenticator } from './messages.js';
import { EncryptionKey } from './crypto.js';
import { gssChecksum, gssKrb5InitialToken, spnegoNegTokenInit } from './spnego.js';
it('perf', async () => {
  const time = (name: string, fn: () => unknown, n = 20000) => {
    for (let i = 0; i < 2000; i++) fn();
    const s = process.cpuUsage();
    for (let i = 0; i < n; i++) fn();
    const u = process.cpuUsage(s);
    console.log(name, ((u.user + u.system) / n).toFixed(1), 'us');
  };
  const key = new EncryptionKey(18, randomBytes(32));
  const ticket = randomBytes(1200);
  const a = {
    crealm: 'CORP.TEST',
    cname: { type: 1, components: ['alice'] },
    ctimeMs: Date.now(),
    cusec: 5,
    checksum: { type: 0x8003, value: gssChecksum(0x3c) },
    seqNumber: 12345,
  };
  time('authenticator', () => encodeAuthenticator(a));
  time('apreq', () => encodeApReq(ticket, key, a, 11));
  const ap = encodeApReq(ticket, key, a, 11);
  time('spnego', () => spnegoNegTokenInit(gssKrb5InitialToken(ap)));
  time('b64', () => spnegoNegTokenInit(gssKrb5InitialToken(ap)).toString('base64'));
  time('randomInt', () => randomInt(0, 2 ** 31 - 1));
}, 60000);
