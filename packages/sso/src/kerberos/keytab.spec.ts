import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { stringToKey } from './crypto.js';
import { KeytabError, keysFor, parseKeytab } from './keytab.js';

const KTUTIL = ['/usr/bin/ktutil', '/usr/sbin/ktutil'].find((p) => existsSync(p));
const dir = mkdtempSync(join(tmpdir(), 'appproxy-keytab-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe.skipIf(!KTUTIL)('keytab written by MIT ktutil (krb5-user)', () => {
  // ktutil reads each password from stdin; the default salt is REALM + name components.
  const file = join(dir, 'svc.keytab');
  const script = [
    'addent -password -p appproxy@CORP.TEST -k 2 -e aes256-cts-hmac-sha1-96',
    'Old-Pass-1',
    'addent -password -p appproxy@CORP.TEST -k 3 -e aes128-cts-hmac-sha1-96',
    'Secret-1',
    'addent -password -p appproxy@CORP.TEST -k 3 -e aes256-cts-hmac-sha1-96',
    'Secret-1',
    'addent -password -p HTTP/web.corp.test@CORP.TEST -k 7 -e aes256-cts-hmac-sha1-96',
    'Web-Pass-1',
    `wkt ${file}`,
    'quit',
  ].join('\n');
  if (KTUTIL)
    execFileSync(KTUTIL, [], { input: script + '\n', stdio: ['pipe', 'ignore', 'ignore'] });

  it('parses every entry: principal, kvno, etype, and the key string-to-key gives', () => {
    const entries = parseKeytab(readFileSync(file));
    expect(entries.map((e) => [e.principal, e.nameType, e.kvno, e.key.etype])).toEqual([
      ['appproxy@CORP.TEST', 1, 2, 18],
      ['appproxy@CORP.TEST', 1, 3, 17],
      ['appproxy@CORP.TEST', 1, 3, 18],
      ['HTTP/web.corp.test@CORP.TEST', 1, 7, 18],
    ]);
    expect(entries[2]!.key.value).toEqual(stringToKey(18, 'Secret-1', 'CORP.TESTappproxy').value);
    expect(entries[3]!.key.value).toEqual(
      stringToKey(18, 'Web-Pass-1', 'CORP.TESTHTTPweb.corp.test').value,
    );
  });

  it('picks the highest kvno, AES-256 first, by principal', () => {
    const keys = keysFor(parseKeytab(readFileSync(file)), 'appproxy@corp.test');
    expect(keys.map((k) => k.etype)).toEqual([18, 17]);
    expect(keys[0]!.value).toEqual(stringToKey(18, 'Secret-1', 'CORP.TESTappproxy').value);
    expect(keysFor(parseKeytab(readFileSync(file)), 'nobody@CORP.TEST')).toEqual([]);
  });
});

describe('keytab format', () => {
  it('reads 0x0501 (little-endian, count includes the realm, no name type)', () => {
    const parts = [
      Buffer.from([5, 1]),
      Buffer.from([0, 0, 0, 0]), // size, filled below
      Buffer.from([2, 0]), // 1 component + realm
      Buffer.from([1, 0]),
      Buffer.from('R'),
      Buffer.from([3, 0]),
      Buffer.from('svc'),
      Buffer.from([0, 0, 0, 0]), // timestamp
      Buffer.from([9]), // kvno
      Buffer.from([17, 0]), // etype
      Buffer.from([16, 0]),
      Buffer.alloc(16, 0xaa),
    ];
    const size = parts.slice(2).reduce((n, b) => n + b.length, 0);
    parts[1]!.writeInt32LE(size, 0);
    const [e] = parseKeytab(Buffer.concat(parts));
    expect(e).toMatchObject({ principal: 'svc@R', kvno: 9 });
    expect(e!.key.etype).toBe(17);
    expect(e!.key.value).toEqual(Buffer.alloc(16, 0xaa));
  });

  it('skips holes and refuses other files', () => {
    expect(parseKeytab(Buffer.from([5, 2, 0xff, 0xff, 0xff, 0xfc, 0, 0, 0, 0]))).toEqual([]);
    expect(() => parseKeytab(Buffer.from('junk'))).toThrow(KeytabError);
    expect(() => parseKeytab(Buffer.from([5, 2, 0, 0, 0, 50, 0]))).toThrow(/past the end/);
  });
});
