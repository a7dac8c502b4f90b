import { describe, expect, it } from 'vitest';
import {
  ctsDecrypt,
  ctsEncrypt,
  decrypt,
  deriveKey,
  EncryptionKey,
  encrypt,
  hmacMd5Checksum,
  iterationsFromParams,
  KerberosCryptoError,
  nfold,
  stringToKey,
} from './crypto.js';

const hex = (s: string) => Buffer.from(s.replace(/\s/g, ''), 'hex');

describe('n-fold (RFC 3961 Appendix A.1)', () => {
  const vectors: [number, string, string][] = [
    [64, '012345', 'be072631276b1955'],
    [56, 'password', '78a07b6caf85fa'],
    [64, 'Rough Consensus, and Running Code', 'bb6ed30870b7f0e0'],
    [168, 'password', '59e4a8ca7c0385c3c37b3f6d2000247cb6e6bd5b3e'],
    [
      192,
      'MASSACHVSETTS INSTITVTE OF TECHNOLOGY',
      'db3b0d8f0b061e603282b308a50841229ad798fab9540c1b',
    ],
    [168, 'Q', '518a54a215a8452a518a54a215a8452a518a54a215'],
    [168, 'ba', 'fb25d531ae8974499f52fd92ea9857c4ba24cf297e'],
    [64, 'kerberos', '6b65726265726f73'],
    [128, 'kerberos', '6b65726265726f737b9b5b2b93132b93'],
    [168, 'kerberos', '8372c236344e5f1550cd0747e15d62ca7a5a3bcea4'],
    [256, 'kerberos', '6b65726265726f737b9b5b2b93132b935c9bdcdad95c9899c4cae4dee6d6cae4'],
  ];
  it.each(vectors)('%i-fold(%j)', (bits, input, want) => {
    expect(nfold(Buffer.from(input), bits / 8).toString('hex')).toBe(want);
  });
});

describe('string-to-key (RFC 3962 Appendix B)', () => {
  const salt = 'ATHENA.MIT.EDUraeburn';
  const vectors: [number, string, string, string, string][] = [
    [
      1,
      'password',
      salt,
      '42263c6e89f4fc28b8df68ee09799f15',
      'fe697b52bc0d3ce14432ba036a92e65bbb52280990a2fa27883998d72af30161',
    ],
    [
      2,
      'password',
      salt,
      'c651bf29e2300ac27fa469d693bdda13',
      'a2e16d16b36069c135d5e9d2e25f896102685618b95914b467c67622225824ff',
    ],
    [
      1200,
      'password',
      salt,
      '4c01cd46d632d01e6dbe230a01ed642a',
      '55a6ac740ad17b4846941051e1e8b0a7548d93b0ab30a8bc3ff16280382b8c2a',
    ],
    [
      1200,
      'X'.repeat(64),
      'pass phrase equals block size',
      '59d1bb789a828b1aa54ef9c2883f69ed',
      '89adee3608db8bc71f1bfbfe459486b05618b70cbae22092534e56c553ba4b34',
    ],
  ];
  it.each(vectors)('%i iterations, %j', (iterations, password, s, k128, k256) => {
    expect(stringToKey(17, password, s, iterations).value.toString('hex')).toBe(k128);
    expect(stringToKey(18, password, s, iterations).value.toString('hex')).toBe(k256);
  });

  it('takes the iteration count from s2kparams, 4096 by default', () => {
    expect(iterationsFromParams(undefined)).toBe(4096);
    expect(iterationsFromParams(hex('000004b0'))).toBe(1200);
    expect(() => iterationsFromParams(hex('04b0'))).toThrow(KerberosCryptoError);
  });
});

describe('AES-CTS (RFC 3962 Appendix B, key "chicken teriyaki", IV 0)', () => {
  const key = Buffer.from('chicken teriyaki');
  const vectors: [string, string][] = [
    ['4920776f756c64206c696b652074686520', 'c6353568f2bf8cb4d8a580362da7ff7f97'],
    [
      '4920776f756c64206c696b65207468652047656e6572616c20476175277320',
      'fc00783e0efdb2c1d445d4c8eff7ed2297687268d6ecccc0c07b25e25ecfe5',
    ],
    [
      '4920776f756c64206c696b65207468652047656e6572616c2047617527732043',
      '39312523a78662d5be7fcbcc98ebf5a897687268d6ecccc0c07b25e25ecfe584',
    ],
    [
      '4920776f756c64206c696b65207468652047656e6572616c20476175277320436869636b656e2c20706c656173652c',
      '97687268d6ecccc0c07b25e25ecfe584b3fffd940c16a18c1b5549d2f838029e39312523a78662d5be7fcbcc98ebf5',
    ],
    [
      '4920776f756c64206c696b65207468652047656e6572616c20476175277320436869636b656e2c20706c656173652c20',
      '97687268d6ecccc0c07b25e25ecfe5849dad8bbb96c4cdc03bc103e1a194bbd839312523a78662d5be7fcbcc98ebf5a8',
    ],
    [
      '4920776f756c64206c696b65207468652047656e6572616c20476175277320436869636b656e2c20706c656173652c20616e6420776f6e746f6e20736f75702e',
      '97687268d6ecccc0c07b25e25ecfe58439312523a78662d5be7fcbcc98ebf5a84807efe836ee89a526730dbc2f7bc8409dad8bbb96c4cdc03bc103e1a194bbd8',
    ],
  ];
  it.each(vectors)('%s', (plain, cipher) => {
    expect(ctsEncrypt(key, hex(plain)).toString('hex')).toBe(cipher);
    expect(ctsDecrypt(key, hex(cipher)).toString('hex')).toBe(plain);
  });
});

describe('DK and encryption (RFC 3961 simplified profile)', () => {
  it('derives Kc/Ke of the RFC 3962 key with the usage constants (KRB5KDF vectors)', () => {
    const k = hex('42263C6E89F4FC28B8DF68EE09799F15');
    expect(deriveKey(k, hex('0000000299')).toString('hex')).toBe(
      '34280a382bc92769b2da2f9ef066854b',
    );
    expect(deriveKey(k, hex('00000002AA')).toString('hex')).toBe(
      '5b14fc4e250e14ddf9dccf1af6674f53',
    );
    const k256 = hex('FE697B52BC0D3CE14432BA036A92E65BBB52280990A2FA27883998D72AF30161');
    expect(deriveKey(k256, hex('0000000299')).toString('hex')).toBe(
      'bfab388bdcb238e9f9c98d6a878304f04d30c82556375ac507a7a852790f4674',
    );
  });

  it('round-trips every length and refuses a flipped bit or the wrong usage', () => {
    for (const etype of [17, 18]) {
      const key = stringToKey(etype, 'secret', 'CORP.TESTalice', 1);
      for (const n of [0, 1, 15, 16, 17, 31, 32, 100]) {
        const plain = Buffer.alloc(n, n);
        const c = encrypt(key, 3, plain);
        expect(c.length).toBe(n + 16 + 12);
        expect(decrypt(key, 3, c)).toEqual(plain);
        const bad = Buffer.from(c);
        bad[bad.length >> 1]! ^= 1;
        expect(() => decrypt(key, 3, bad)).toThrow(KerberosCryptoError);
        expect(() => decrypt(key, 4, c)).toThrow(KerberosCryptoError);
      }
    }
  });

  it('never shows key bytes when logged', () => {
    const key = new EncryptionKey(18, Buffer.alloc(32, 0xab));
    expect(JSON.stringify(key)).toBe('{"etype":18}');
  });
});

describe('HMAC-MD5 checksum (-138)', () => {
  it('is HMAC-MD5(HMAC-MD5(key, "signaturekey\\0"), MD5(usage LE ‖ data))', () => {
    // Fixed by this formula (RFC 4757 §4); computed independently with openssl(1):
    //   ksign=$(printf 'signaturekey\0' | openssl dgst -md5 -mac HMAC -macopt hexkey:00..0f)
    //   printf '\x11\0\0\0abc' | openssl dgst -md5 -binary | openssl dgst -md5 -mac HMAC -macopt hexkey:$ksign
    const key = hex('000102030405060708090a0b0c0d0e0f');
    expect(hmacMd5Checksum(key, 17, Buffer.from('abc')).toString('hex')).toBe(
      '1fc079e5dbc116f5b790e5640a033f34',
    );
  });
});
