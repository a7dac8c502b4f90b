import { defineConfig } from 'tsup';

export default defineConfig({
  entry: ['src/index.ts'],
  format: ['esm'],
  target: 'node22',
  // Keep 'node:' imports: node:sqlite has no unprefixed form.
  removeNodeProtocol: false,
  dts: true,
  sourcemap: true,
  clean: true,
});
