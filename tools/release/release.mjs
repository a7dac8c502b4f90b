#!/usr/bin/env node
// `npm run release` → dist/release/: for relay and connector a single-file executable, a
// .deb and a self-contained npm tarball; an npm tarball per library. See docs/install.md.
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { bundleCli, bundledPackages } from './src/bundle.mjs';
import { buildDeb } from './src/deb.mjs';
import { packCli, packLibraries } from './src/npm.mjs';
import { run } from './src/run.mjs';
import { buildExecutable, pinnedNode } from './src/sea.mjs';

const root = resolve(import.meta.dirname, '../..');
const outDir = join(root, 'dist/release');
const packaging = join(root, 'packaging');
const APPS = ['relay', 'connector'];

const started = performance.now();
const elapsed = () => `${((performance.now() - started) / 1000).toFixed(1)} s`;
const log = (msg) => process.stdout.write(`release: ${msg} (${elapsed()})\n`);

async function releaseApp(app, node, work) {
  const { name, version } = JSON.parse(
    await readFile(join(root, 'apps', app, 'package.json'), 'utf8'),
  );
  const appWork = join(work, app);
  await mkdir(appWork, { recursive: true });
  const bundle = join(appWork, `appproxy-${app}.cjs`);
  const { inputs } = await bundleCli({ root, app, outfile: bundle });
  log(`${name}: bundled`);
  const executable = join(outDir, `appproxy-${app}-${version}-linux-x64`);
  await buildExecutable({ node, bundle, work: appWork, output: executable });
  log(`${name}: single-file executable`);
  const bundled = await bundledPackages(root, inputs);
  const deb = await buildDeb({
    app,
    version,
    executable,
    packaging,
    work: appWork,
    outDir,
    nodeVersion: node.version,
    bundled,
  });
  log(`${name}: ${basename(deb)}`);
  const tgz = await packCli({ root, app, bundle, work: appWork, outDir });
  log(`${name}: ${basename(tgz)}`);
}

async function main() {
  if (process.platform !== 'linux' || process.arch !== 'x64')
    throw new Error(
      `builds linux-x64 artifacts on linux-x64 only (this is ${process.platform}-${process.arch})`,
    );
  await rm(outDir, { recursive: true, force: true });
  await mkdir(outDir, { recursive: true });
  const work = await mkdtemp(join(tmpdir(), 'appproxy-release-'));
  try {
    const node = await pinnedNode();
    log(`embedding Node ${node.version} from ${node.binary}`);
    // Libraries ship their tsup build (dist/); nx reuses its cache after `npm run build`.
    const libraries = (await readdir(join(root, 'packages'))).sort();
    const nx = join(root, 'node_modules/nx/dist/bin/nx.js');
    const built = run(process.execPath, [nx, 'run-many', '-t', 'build', '-p', 'tag:type:lib'], {
      cwd: root,
    }).then(() => log('libraries built'));
    // Settle everything before the scratch directory goes, then report the first failure.
    const results = await Promise.allSettled([
      ...APPS.map((app) => releaseApp(app, node, work)),
      built,
    ]);
    const failed = results.find((r) => r.status === 'rejected');
    if (failed) throw failed.reason;
    await packLibraries({ root, packages: libraries, outDir });
    log(`${libraries.length} library tarballs`);
  } finally {
    await rm(work, { recursive: true, force: true });
  }

  const files = (await readdir(outDir)).filter((f) => f !== 'SHA256SUMS').sort();
  const sums = [];
  for (const f of files) {
    const data = await readFile(join(outDir, f));
    sums.push(`${createHash('sha256').update(data).digest('hex')}  ${f}`);
    const mb = ((await stat(join(outDir, f))).size / 1e6).toFixed(2).padStart(7);
    process.stdout.write(`  ${mb} MB  dist/release/${f}\n`);
  }
  await writeFile(join(outDir, 'SHA256SUMS'), `${sums.join('\n')}\n`);
  log(`done: ${files.length} files in dist/release/, SHA256SUMS`);
}

main().catch((err) => {
  process.stderr.write(`release: ${err instanceof Error ? err.message : err}\n`);
  process.exit(1);
});
