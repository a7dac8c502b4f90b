// The Kerberos rows' backend: the end-to-end tests' Samba AD domain controller and Apache
// with mod_auth_gssapi (tools/e2e/src/samba-ad.ts), bundled by esbuild into bench/ so plain
// Node runs it. Started once, on the first row that needs it; stopped with the bench.
import { build } from 'esbuild';
import { existsSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const root = resolve(import.meta.dirname, '../..');

/** Where the tools live on Debian; undefined when one is missing. */
function tool(name) {
  for (const dir of ['/usr/sbin', '/usr/bin', ...(process.env.PATH ?? '').split(':')])
    if (dir && existsSync(join(dir, name))) return join(dir, name);
  return undefined;
}

/** Why the Kerberos rows cannot run here, or undefined. */
export function kerberosBackendMissing() {
  const missing = ['samba', 'samba-tool', 'apache2'].filter((t) => !tool(t));
  return missing.length
    ? `${missing.join(', ')} not installed (apt-get install -y samba-ad-dc samba-ad-provision krb5-user apache2 libapache2-mod-auth-gssapi)`
    : undefined;
}

let started;

/**
 * The domain controller and Apache, once: `{ dc, apache, spn, stop }`. `dc.serviceKeytab`,
 * `dc.servicePrincipal` and `dc.kdc` are what the connector's `--kerberos-*` flags take.
 */
export function startKerberosBackend() {
  started ??= (async () => {
    const dir = join(root, 'bench');
    mkdirSync(dir, { recursive: true });
    const outfile = join(dir, 'samba-ad.bundle.mjs');
    await build({
      entryPoints: [join(root, 'tools/e2e/src/samba-ad.ts')],
      bundle: true,
      platform: 'node',
      format: 'esm',
      packages: 'external',
      outfile,
      // The harness finds the repository from its own directory.
      define: { 'import.meta.dirname': JSON.stringify(join(root, 'tools/e2e/src')) },
      logLevel: 'warning',
    });
    const fixture = await import(pathToFileURL(outfile).href);
    const dc = await fixture.startSambaDc({
      sambaBin: tool('samba'),
      sambaToolBin: tool('samba-tool'),
    });
    const apache = await fixture.startApacheGssapi({
      keytab: dc.httpKeytab,
      realm: dc.realm,
      krb5Conf: dc.krb5Conf,
      apacheBin: tool('apache2'),
      processes: 8,
    });
    return {
      dc,
      apache,
      spn: fixture.TARGET_SPN,
      stop: async () => {
        await apache.stop();
        await dc.stop();
      },
    };
  })();
  return started;
}

/** Stops what {@link startKerberosBackend} started, if anything. */
export async function stopKerberosBackend() {
  if (started) await (await started).stop();
}
