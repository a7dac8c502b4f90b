/**
 * The parts of krb5.conf a client needs: `[libdefaults] default_realm` and
 * `[realms] REALM = { kdc = host[:port] … }`. Other sections and relations are skipped.
 */
export interface Krb5Conf {
  defaultRealm?: string;
  /** KDC addresses by realm, in file order, as written (`host`, `host:port`, `[v6]:port`). */
  kdcs: Map<string, string[]>;
}

export class Krb5ConfError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'Krb5ConfError';
  }
}

/** Parses krb5.conf text (MIT profile syntax). */
export function parseKrb5Conf(text: string): Krb5Conf {
  const conf: Krb5Conf = { kdcs: new Map() };
  let section = '';
  const stack: string[] = []; // open `{` groups: their relation names
  const lines = text.split(/\r?\n/);
  for (let n = 0; n < lines.length; n++) {
    const line = lines[n]!.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const sec = /^\[([^\]]+)\]$/.exec(line);
    if (sec) {
      if (stack.length) throw new Krb5ConfError(`line ${n + 1}: section inside { }`);
      section = sec[1]!.trim().toLowerCase();
      continue;
    }
    if (line.startsWith('}')) {
      if (!stack.length) throw new Krb5ConfError(`line ${n + 1}: unmatched }`);
      stack.pop();
      continue;
    }
    const rel = /^([^=\s]+)\s*=\s*(.*)$/.exec(line);
    if (!rel) {
      if (line.startsWith('include') || line.startsWith('module')) continue;
      throw new Krb5ConfError(`line ${n + 1}: expected "name = value"`);
    }
    const name = rel[1]!;
    let value = rel[2]!.trim();
    if (value === '{') {
      stack.push(name);
      continue;
    }
    if (value.startsWith('"') && value.endsWith('"') && value.length >= 2)
      value = value.slice(1, -1);
    if (section === 'libdefaults' && stack.length === 0 && name === 'default_realm')
      conf.defaultRealm = value;
    if (section === 'realms' && stack.length === 1 && name === 'kdc') {
      const realm = stack[0]!;
      const list = conf.kdcs.get(realm) ?? [];
      list.push(value);
      conf.kdcs.set(realm, list);
    }
  }
  if (stack.length) throw new Krb5ConfError(`unclosed { for ${stack.at(-1)}`);
  return conf;
}

/** The krb5.conf path: the option, else `KRB5_CONFIG` (first of a `:` list), else /etc/krb5.conf. */
export function krb5ConfPath(option: string | undefined, env = process.env): string {
  if (option) return option;
  const fromEnv = env.KRB5_CONFIG?.split(':').find((p) => p !== '');
  return fromEnv ?? '/etc/krb5.conf';
}

/** Splits `host[:port]` / `[v6]:port` / `tcp/host:port` into host and port (default 88). */
export function parseKdcAddress(address: string): { host: string; port: number } {
  const a = address.replace(/^(tcp|udp|kkdcp)\//i, '');
  const v6 = /^\[([^\]]+)\](?::(\d+))?$/.exec(a);
  if (v6) return { host: v6[1]!, port: v6[2] ? Number(v6[2]) : 88 };
  const m = /^([^:]+)(?::(\d+))?$/.exec(a);
  if (!m) return { host: a, port: 88 }; // a bare IPv6 address
  const port = m[2] ? Number(m[2]) : 88;
  if (!(port > 0 && port < 65536)) throw new Krb5ConfError(`bad KDC port in ${address}`);
  return { host: m[1]!, port };
}
