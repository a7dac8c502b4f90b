import { request } from 'node:http';
import { Agent } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import {
  authenticateMessage,
  md4,
  negotiateMessage,
  ntProofStr,
  ntowfv2,
  parseAuthenticate,
  startNtlmBackend,
  verifyNtlmV2,
  type NtlmBackend,
} from './ntlm-backend.js';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

// MS-NLMP §4.2.4 (NTLMv2 authentication): User "User", Domain "Domain", Password
// "Password", server challenge 0123456789abcdef, client challenge aa…, time 0, target info
// MsvAvNbDomainName "Domain", MsvAvNbComputerName "Server".
const SERVER_CHALLENGE = hex('0123456789abcdef');
const TEMP = hex(`01010000 00000000 00000000 00000000 aaaaaaaa aaaaaaaa 00000000
  02000c00 44006f00 6d006100 69006e00 01000c00 53006500 72007600 65007200 00000000 00000000`);

describe('NTLM backend fixture: crypto against the specifications', () => {
  it('MD4: RFC 1320 §A.5 test suite', () => {
    const vectors: Array<[string, string]> = [
      ['', '31d6cfe0d16ae931b73c59d7e0c089c0'],
      ['a', 'bde52cb31de33e46245e05fbdbd6fb24'],
      ['abc', 'a448017aaf21d8525fc10ae87aa6729d'],
      ['message digest', 'd9130a8164549fe818874806e1c7014b'],
      ['abcdefghijklmnopqrstuvwxyz', 'd79e1c308aa5bbcdeea8ed63df412da9'],
      [
        'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789',
        '043f8582f241db351ce627e153e7f0e4',
      ],
      ['1234567890'.repeat(8), 'e33b4ddc9c38f2199c3e7b164fcc0536'],
    ];
    for (const [input, digest] of vectors)
      expect(md4(Buffer.from(input, 'latin1')).toString('hex')).toBe(digest);
  });

  it('NT hash of "Password" (MS-NLMP §4.2.2.1.2)', () => {
    expect(md4(Buffer.from('Password', 'utf16le')).toString('hex')).toBe(
      'a4f49c406510bdcab6824ee7c30fd852',
    );
  });

  it('NTOWFv2 and NTProofStr (MS-NLMP §4.2.4.1.1, §4.2.4.2.2)', () => {
    const key = ntowfv2('Password', 'User', 'Domain');
    expect(key.toString('hex')).toBe('0c868a403bfd7a93a3001ef22ef02e3f');
    // The user name is case-insensitive, the domain is not.
    expect(ntowfv2('Password', 'user', 'Domain')).toEqual(key);
    expect(ntowfv2('Password', 'User', 'DOMAIN')).not.toEqual(key);
    expect(ntProofStr(key, SERVER_CHALLENGE, TEMP).toString('hex')).toBe(
      '68cd0ab851e51c96aabc927bebef6a1c',
    );
  });

  it('verifies the specification’s NTLMv2 response, and only for the right password and challenge', () => {
    const ntResponse = Buffer.concat([hex('68cd0ab851e51c96aabc927bebef6a1c'), TEMP]);
    const auth = { user: 'User', domain: 'Domain', ntResponse };
    expect(verifyNtlmV2(auth, 'Password', SERVER_CHALLENGE)).toBe(true);
    expect(verifyNtlmV2(auth, 'password', SERVER_CHALLENGE)).toBe(false);
    expect(verifyNtlmV2(auth, 'Password', hex('0123456789abcdee'))).toBe(false);
    expect(
      verifyNtlmV2(
        { ...auth, ntResponse: ntResponse.subarray(0, 24) },
        'Password',
        SERVER_CHALLENGE,
      ),
    ).toBe(false);
  });

  it('parses an AUTHENTICATE message (MS-NLMP §4.2.4.3)', () => {
    const ntResponse = Buffer.concat([hex('68cd0ab851e51c96aabc927bebef6a1c'), TEMP]);
    const domain = Buffer.from('Domain', 'utf16le');
    const user = Buffer.from('User', 'utf16le');
    const ws = Buffer.from('COMPUTER', 'utf16le');
    const head = Buffer.alloc(64);
    head.write('NTLMSSP\0', 0, 'latin1');
    head.writeUInt32LE(3, 8);
    let at = 64;
    const field = (pos: number, b: Buffer) => {
      head.writeUInt16LE(b.length, pos);
      head.writeUInt16LE(b.length, pos + 2);
      head.writeUInt32LE(at, pos + 4);
      at += b.length;
    };
    field(12, Buffer.alloc(0));
    field(20, ntResponse);
    field(28, domain);
    field(36, user);
    field(44, ws);
    head.writeUInt32LE(0x00000001, 60); // UNICODE
    const parsed = parseAuthenticate(Buffer.concat([head, ntResponse, domain, user, ws]));
    expect(parsed).toMatchObject({ user: 'User', domain: 'Domain', workstation: 'COMPUTER' });
    expect(verifyNtlmV2(parsed, 'Password', SERVER_CHALLENGE)).toBe(true);
  });
});

describe('NTLM backend fixture: connection-bound', () => {
  let backend: NtlmBackend;
  beforeAll(async () => {
    backend = await startNtlmBackend({ users: { alice: 'Secret-1' } });
  });
  afterAll(() => backend.close());

  const get = (agent: Agent, authorization?: string) =>
    new Promise<{ status: number; wwwAuthenticate?: string; body: string }>((resolve, reject) => {
      const req = request(
        {
          host: '127.0.0.1',
          port: backend.port,
          path: '/',
          agent,
          headers: authorization ? { authorization } : {},
        },
        (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (body += c));
          res.on('end', () =>
            resolve({
              status: res.statusCode!,
              wwwAuthenticate: res.headers['www-authenticate'],
              body,
            }),
          );
        },
      );
      req.on('error', reject);
      req.end();
    });

  it('challenges without authorization, and answers a type 1 with a type-2 challenge', async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    expect(await get(agent)).toMatchObject({ status: 401, wwwAuthenticate: 'NTLM' });
    const challenge = await get(agent, `NTLM ${negotiateMessage().toString('base64')}`);
    expect(challenge.status).toBe(401);
    const type2 = Buffer.from(challenge.wwwAuthenticate!.slice(5), 'base64');
    const type3 = authenticateMessage(type2, 'alice', 'CORP', 'Secret-1');
    const done = await get(agent, `NTLM ${type3.toString('base64')}`);
    expect(done.status).toBe(200);
    expect(done.body).toMatch(/^authenticated as CORP\\alice on connection \d+$/m);
    // The connection stays authenticated.
    expect(await get(agent)).toMatchObject({ status: 200, body: done.body });
    agent.destroy();
  });

  it('refuses a type 3 on another connection than its type 1, and a wrong password', async () => {
    const a = new Agent({ keepAlive: true, maxSockets: 1 });
    const b = new Agent({ keepAlive: true, maxSockets: 1 });
    const challenge = await get(a, `NTLM ${negotiateMessage().toString('base64')}`);
    const type2 = Buffer.from(challenge.wwwAuthenticate!.slice(5), 'base64');
    const type3 = authenticateMessage(type2, 'alice', 'CORP', 'Secret-1');
    expect((await get(b, `NTLM ${type3.toString('base64')}`)).status).toBe(401);
    const again = await get(a, `NTLM ${negotiateMessage().toString('base64')}`);
    const wrong = authenticateMessage(
      Buffer.from(again.wwwAuthenticate!.slice(5), 'base64'),
      'alice',
      'CORP',
      'wrong',
    );
    expect((await get(a, `NTLM ${wrong.toString('base64')}`)).status).toBe(401);
    a.destroy();
    b.destroy();
  });

  it('authenticates curl --ntlm (a real NTLMv2 client), one connection for several URLs', async () => {
    const url = `http://127.0.0.1:${backend.port}/`;
    const { stdout } = await promisify(execFile)('curl', [
      '-s',
      '--ntlm',
      '-u',
      'CORP\\alice:Secret-1',
      url,
      url,
      url,
    ]);
    const lines = stdout.trim().split('\n');
    expect(lines).toHaveLength(3);
    expect(new Set(lines).size).toBe(1);
    expect(lines[0]).toMatch(/^authenticated as CORP\\alice on connection \d+$/);
  });
});
