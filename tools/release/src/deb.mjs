// Debian packages: the single-file executable in /usr/bin, a systemd unit, maintainer
// scripts (system user, state directory), conffiles, built with dpkg-deb as root:root.
import { chmod, copyFile, mkdir, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { run } from './run.mjs';

/** What differs between the two packages. */
export const DEB_PACKAGES = {
  relay: {
    name: 'appproxy-relay',
    summary: 'self-hosted application proxy: the public relay',
    description: [
      'The public edge of AppProxy: terminates HTTPS for the published apps,',
      'pre-authenticates users at any OpenID Connect identity provider and forwards',
      'each request through a connector that dialled out to it (reverse HTTP/2 over',
      'mutual TLS). Ships a single executable with its own Node.js runtime and a',
      'hardened systemd unit; edit /etc/appproxy/appproxy.yaml, then',
      '`systemctl enable --now appproxy-relay`.',
    ],
    stateMode: '0750',
    // [source in packaging/, path in the package, mode, conffile?]
    files: [
      ['relay/appproxy-relay.service', 'usr/lib/systemd/system/appproxy-relay.service', 0o644],
      ['relay/appproxy.yaml', 'etc/appproxy/appproxy.yaml', 0o644, true],
      ['relay/default', 'etc/default/appproxy-relay', 0o644, true],
    ],
  },
  connector: {
    name: 'appproxy-connector',
    summary: 'self-hosted application proxy: the outbound-only connector',
    description: [
      'The agent of AppProxy that runs next to the internal apps: it dials out to the',
      'relay (no inbound firewall port), serves the requests the relay sends down its',
      'tunnels and forwards them to the internal URLs, with single sign-on to the',
      'apps. Ships a single executable with its own Node.js runtime and a hardened',
      'systemd unit; register once, then `systemctl enable --now appproxy-connector`.',
    ],
    stateMode: '0700',
    files: [
      [
        'connector/appproxy-connector.service',
        'usr/lib/systemd/system/appproxy-connector.service',
        0o644,
      ],
      ['connector/default', 'etc/default/appproxy-connector', 0o644, true],
    ],
  },
};

async function duKiB(dir) {
  let bytes = 0;
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) bytes += (await stat(join(entry.parentPath, entry.name))).size;
  }
  return Math.ceil(bytes / 1024);
}

/** Debian's machine-readable copyright: ours, Node's, and each bundled npm package. */
function copyright({ nodeVersion, bundled, year }) {
  const lines = [
    'Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/',
    'Upstream-Name: AppProxy',
    '',
    'Files: *',
    `Copyright: ${year} AppProxy contributors`,
    'License: Apache-2.0',
    ' On Debian systems, the full text of the Apache License, Version 2.0 is in',
    ' /usr/share/common-licenses/Apache-2.0.',
    '',
    'Files: usr/bin/*',
    `Comment: The executable embeds Node.js ${nodeVersion} (MIT; its bundled`,
    ' dependencies under their own licenses, see',
    ` https://github.com/nodejs/node/blob/${nodeVersion}/LICENSE) and these npm packages:`,
    ...bundled.map((p) => ` ${p.name} ${p.version} (${p.license})`),
    'Copyright: Node.js contributors and the authors of the packages above',
    'License: Apache-2.0 and MIT and others as listed',
    '',
  ];
  return lines.join('\n');
}

/**
 * Builds `<name>_<version>_amd64.deb` in `outDir` from the executable.
 * @returns the .deb's path.
 */
export async function buildDeb({
  app,
  version,
  executable,
  packaging,
  work,
  outDir,
  nodeVersion,
  bundled,
}) {
  const spec = DEB_PACKAGES[app];
  const root = join(work, `${spec.name}-deb`);
  await rm(root, { recursive: true, force: true });
  const put = async (path, contents, mode) => {
    const target = join(root, path);
    await mkdir(join(target, '..'), { recursive: true });
    if (Buffer.isBuffer(contents) || typeof contents === 'string')
      await writeFile(target, contents);
    else await copyFile(contents.from, target);
    await chmod(target, mode);
  };

  await put(`usr/bin/${spec.name}`, { from: executable }, 0o755);
  for (const [source, path, mode] of spec.files) {
    await put(path, { from: join(packaging, source) }, mode);
  }
  const doc = `usr/share/doc/${spec.name}`;
  const maintainer =
    process.env.APPPROXY_DEB_MAINTAINER ?? 'AppProxy contributors <appproxy@localhost>';
  // RFC 5322 date, from SOURCE_DATE_EPOCH when set (reproducible builds).
  const when = new Date(
    process.env.SOURCE_DATE_EPOCH ? Number(process.env.SOURCE_DATE_EPOCH) * 1000 : Date.now(),
  );
  const date = when.toUTCString().replace('GMT', '+0000');
  await put(
    `${doc}/copyright`,
    copyright({ nodeVersion, bundled, year: when.getUTCFullYear() }),
    0o644,
  );
  await put(
    `${doc}/changelog.gz`,
    gzipSync(
      `${spec.name} (${version}) unstable; urgency=medium\n\n  * Release ${version}.\n\n -- ${maintainer}  ${date}\n`,
      { level: 9 },
    ),
    0o644,
  );
  await put(`${doc}/README`, await readFile(join(packaging, 'deb/README'), 'utf8'), 0o644);

  const scripts = { PACKAGE: spec.name, STATE_MODE: spec.stateMode };
  const template = async (file) =>
    (await readFile(join(packaging, 'deb', file), 'utf8')).replace(
      /@([A-Z_]+)@/g,
      (_, key) => scripts[key],
    );
  await put(`usr/share/lintian/overrides/${spec.name}`, await template('lintian-overrides'), 0o644);
  for (const script of ['postinst', 'prerm', 'postrm']) {
    await put(`DEBIAN/${script}`, await template(script), 0o755);
  }
  const conffiles = spec.files.filter((f) => f[3]).map((f) => `/${f[1]}`);
  await put('DEBIAN/conffiles', `${conffiles.join('\n')}\n`, 0o644);
  const installedSize = await duKiB(root);
  await put(
    'DEBIAN/control',
    [
      `Package: ${spec.name}`,
      `Version: ${version}`,
      'Architecture: amd64',
      `Maintainer: ${maintainer}`,
      `Installed-Size: ${installedSize}`,
      // The executable is Node's official Linux build: glibc ≥ 2.28, libstdc++, libgcc;
      // (deb-systemd-invoke, in the maintainer scripts, is in the essential init-system-helpers.)
      'Depends: adduser, libc6 (>= 2.28), libgcc-s1, libstdc++6',
      'Section: net',
      'Priority: optional',
      `Description: ${spec.summary}`,
      ...spec.description.map((l) => ` ${l}`),
      '',
    ].join('\n'),
    0o644,
  );

  const deb = join(outDir, `${spec.name}_${version}_amd64.deb`);
  // gzip, which every dpkg reads; at -6 it packs the 129 MB executable in ~8 s of CPU, -9
  // (dpkg-deb's default) in ~21 s for 0.6 % less. zstd would be faster but needs dpkg ≥ 1.21.18.
  await run('dpkg-deb', ['--root-owner-group', '-Zgzip', '-z6', '--build', root, deb]);
  return deb;
}
