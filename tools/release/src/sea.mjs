// Node's single executable application: the bundle as a SEA blob, injected into a copy of
// the workspace's pinned Node binary (https://nodejs.org/api/single-executable-applications.html).
import { chmod, copyFile, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { run } from './run.mjs';

const require = createRequire(import.meta.url);
// The fuse Node's binary carries; postject flips it so the binary runs the blob.
const SEA_FUSE = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2';

/** The pinned Node (the `node` dev dependency), not whatever runs this script. */
export async function pinnedNode() {
  const pkg = require.resolve('node/package.json');
  const binary = join(dirname(pkg), 'bin/node');
  const version = (await run(binary, ['--version'])).trim();
  const expected = `v${require('node/package.json').version}`;
  if (version !== expected)
    throw new Error(`${binary} says ${version}, the node package pins ${expected}`);
  return { binary, version };
}

/**
 * Makes `output`, an executable that runs `bundle` (a CommonJS file) with the pinned Node.
 * `work` is a scratch directory for the blob.
 */
export async function buildExecutable({ node, bundle, work, output }) {
  const blob = join(work, 'sea-prep.blob');
  const config = join(work, 'sea-config.json');
  await writeFile(
    config,
    JSON.stringify({
      main: bundle,
      output: blob,
      disableExperimentalSEAWarning: true,
      // V8 code cache of the bundle, so start-up skips compiling it.
      useCodeCache: true,
    }),
  );
  await run(node.binary, ['--experimental-sea-config', config], { cwd: work });
  await copyFile(node.binary, output);
  await chmod(output, 0o755);
  const postject = join(dirname(require.resolve('postject/package.json')), 'dist/cli.js');
  await run(process.execPath, [
    postject,
    output,
    'NODE_SEA_BLOB',
    blob,
    '--sentinel-fuse',
    SEA_FUSE,
  ]);
  await chmod(output, 0o755);
}
