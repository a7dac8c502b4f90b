// npm tarballs. Each CLI: its bundle alone (no dependencies, so it installs with no other
// tarball and no registry). Each library: `npm pack` of packages/*, whose exact-version
// `@appproxy/*` dependencies resolve to the sibling tarballs installed in the same command.
import { chmod, copyFile, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from './run.mjs';

const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';

/**
 * Packs `apps/<app>` as `appproxy-<app>-<version>.tgz` with `bundle` as its only code.
 * @returns the tarball's path.
 */
export async function packCli({ root, app, bundle, work, outDir }) {
  const source = JSON.parse(await readFile(join(root, 'apps', app, 'package.json'), 'utf8'));
  const binName = Object.keys(source.bin)[0];
  const stage = join(work, `npm-${app}`);
  await rm(stage, { recursive: true, force: true });
  await mkdir(join(stage, 'dist'), { recursive: true });
  await copyFile(bundle, join(stage, 'dist/bin.cjs'));
  await chmod(join(stage, 'dist/bin.cjs'), 0o755);
  await copyFile(join(root, 'apps', app, 'README.md'), join(stage, 'README.md'));
  await copyFile(join(root, 'LICENSE'), join(stage, 'LICENSE'));
  const manifest = {
    name: source.name,
    version: source.version,
    description: source.description,
    license: source.license,
    // What the bundle needs (node:sqlite); the bin itself says so in one line on older Nodes.
    engines: source.engines,
    bin: { [binName]: './dist/bin.cjs' },
    files: ['dist'],
  };
  await writeFile(join(stage, 'package.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  const out = await run(npm, ['pack', '--json', '--pack-destination', outDir], { cwd: stage });
  return join(outDir, JSON.parse(out)[0].filename);
}

/**
 * Packs every `packages/*` library (built dist/ included).
 * @returns the tarballs' paths.
 */
export async function packLibraries({ root, packages, outDir }) {
  const args = ['pack', '--json', '--pack-destination', outDir];
  for (const p of packages) args.push('--workspace', `packages/${p}`);
  const out = await run(npm, args, { cwd: root });
  return JSON.parse(out).map((p) => join(outDir, p.filename));
}
