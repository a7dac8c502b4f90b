import { describe, expect, it } from 'vitest';
import { Krb5ConfError, krb5ConfPath, parseKdcAddress, parseKrb5Conf } from './krb5-conf.js';

describe('krb5.conf', () => {
  it('reads default_realm and each realm’s KDCs, skipping the rest', () => {
    const conf = parseKrb5Conf(`# comment
[libdefaults]
	default_realm = CORP.TEST
	forwardable = true
; another comment
[realms]
	CORP.TEST = {
		kdc = dc1.corp.test
		kdc = 10.0.0.2:1088
		admin_server = dc1.corp.test
		auth_to_local = {
			kdc = not-a-kdc
		}
	}
	OTHER.TEST = {
		kdc = "[::1]:88"
	}
[domain_realm]
	.corp.test = CORP.TEST
`);
    expect(conf.defaultRealm).toBe('CORP.TEST');
    expect(conf.kdcs.get('CORP.TEST')).toEqual(['dc1.corp.test', '10.0.0.2:1088']);
    expect(conf.kdcs.get('OTHER.TEST')).toEqual(['[::1]:88']);
  });

  it('names the line of a syntax error', () => {
    expect(() => parseKrb5Conf('[realms]\n R = {\n  kdc\n }\n')).toThrow(/line 3/);
    expect(() => parseKrb5Conf('[realms]\n R = {\n  kdc = x\n')).toThrow(Krb5ConfError);
  });

  it('path: option, else KRB5_CONFIG, else /etc/krb5.conf', () => {
    expect(krb5ConfPath('/a', { KRB5_CONFIG: '/b' })).toBe('/a');
    expect(krb5ConfPath(undefined, { KRB5_CONFIG: '/b:/c' })).toBe('/b');
    expect(krb5ConfPath(undefined, {})).toBe('/etc/krb5.conf');
  });

  it('KDC addresses: host, host:port, [v6]:port, default port 88', () => {
    expect(parseKdcAddress('dc1')).toEqual({ host: 'dc1', port: 88 });
    expect(parseKdcAddress('dc1:1088')).toEqual({ host: 'dc1', port: 1088 });
    expect(parseKdcAddress('tcp/dc1:1088')).toEqual({ host: 'dc1', port: 1088 });
    expect(parseKdcAddress('[::1]:750')).toEqual({ host: '::1', port: 750 });
    expect(parseKdcAddress('::1')).toEqual({ host: '::1', port: 88 });
  });
});
