import type { Options } from 'tsup';

const common: Options = {
  format: ['esm'],
  target: 'node22',
  // Keep 'node:' imports: node:sqlite has no unprefixed form.
  removeNodeProtocol: false,
  sourcemap: true,
  clean: true,
};

/** Build of a `packages/*` library: ESM + type declarations from src/index.ts. */
export const libraryBuild: Options = { ...common, entry: ['src/index.ts'], dts: true };

/** Build of an `apps/*` CLI: one executable ESM file from src/bin.ts. */
export const cliBuild: Options = {
  ...common,
  entry: ['src/bin.ts'],
  banner: { js: '#!/usr/bin/env node' },
};
