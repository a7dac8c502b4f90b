// One CommonJS file per CLI: the app, its workspace packages (from source) and its npm
// dependencies. CommonJS because Node 24's single executable applications run a CommonJS
// main script; the npm tarballs ship the same file.
import { build } from 'esbuild';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

// Our sources load a few files with `createRequire(import.meta.url)` (undici's dispatcher
// modules, package.json). In a CommonJS bundle the plain `require` does that job and lets
// esbuild inline the module, so the line that shadows it is dropped.
const SHADOWED_REQUIRE = /^const require = createRequire\(import\.meta\.url\);$/m;

const workspaceRequire = {
  name: 'workspace-require',
  setup(b) {
    b.onLoad({ filter: /\/(apps|packages)\/[^/]+\/src\/.*\.ts$/ }, async (args) => {
      const source = await readFile(args.path, 'utf8');
      if (!SHADOWED_REQUIRE.test(source)) return undefined;
      return { contents: source.replace(SHADOWED_REQUIRE, ''), loader: 'ts' };
    });
  },
};

/**
 * Bundles `apps/<app>/src/bin.ts` into `outfile`.
 * @returns the bundle's size in bytes and the inputs it took.
 */
export async function bundleCli({ root, app, outfile }) {
  const result = await build({
    entryPoints: [join(root, 'apps', app, 'src/bin.ts')],
    outfile,
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node22',
    // Resolves @appproxy/* to packages/*/src through tsconfig paths.
    tsconfig: join(root, 'apps', app, 'tsconfig.json'),
    // pg's optional native binding (pg-native) is never used: the pure JavaScript client is.
    external: ['node:*', 'pg-native'],
    banner: { js: '#!/usr/bin/env node' },
    legalComments: 'eof',
    metafile: true,
    logLevel: 'silent',
    plugins: [workspaceRequire],
  });
  // import.meta is empty in CommonJS: any use left is a bug that shows only at run time.
  const problems = result.warnings.filter((w) => /import\.meta|require/.test(w.text));
  if (problems.length > 0)
    throw new Error(
      `bundle of ${app}: ${problems.map((w) => `${w.location?.file}:${w.location?.line}: ${w.text}`).join('; ')}`,
    );
  const inputs = Object.keys(result.metafile.inputs);
  const size = Object.values(result.metafile.outputs)[0].bytes;
  return { size, inputs };
}

/** The npm packages a bundle took files from: name, version, license. */
export async function bundledPackages(root, inputs) {
  const dirs = new Set();
  for (const input of inputs) {
    const m = /^(.*node_modules\/(?:@[^/]+\/)?[^/]+)\//.exec(input);
    if (m) dirs.add(m[1]);
  }
  const packages = [];
  for (const dir of dirs) {
    const pkg = JSON.parse(await readFile(join(root, dir, 'package.json'), 'utf8'));
    packages.push({ name: pkg.name, version: pkg.version, license: pkg.license ?? 'see package' });
  }
  return packages.sort((a, b) => a.name.localeCompare(b.name));
}
