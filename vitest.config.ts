import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

// Unit tests import the packages' sources; end-to-end tests spawn the built CLIs
// (`npm test` builds first), so both see the code as it is in the tree.
const src = (name: string) =>
  fileURLToPath(new URL(`./packages/${name}/src/index.ts`, import.meta.url));
const alias = {
  '@appproxy/tunnel': src('tunnel'),
  '@appproxy/pki': src('pki'),
  '@appproxy/config': src('config'),
  '@appproxy/routing': src('routing'),
  '@appproxy/telemetry': src('telemetry'),
  '@appproxy/preauth': src('preauth'),
  '@appproxy/cookies': src('cookies'),
  '@appproxy/translate': src('translate'),
  '@appproxy/sso': src('sso'),
};

export default defineConfig({
  test: {
    projects: [
      {
        resolve: { alias },
        test: {
          name: 'unit',
          include: [
            'packages/*/src/**/*.spec.ts',
            'apps/*/src/**/*.spec.ts',
            'tools/*/src/**/*.spec.{ts,mjs}',
            'examples/*/src/**/*.spec.{ts,mjs}',
          ],
          testTimeout: 30_000,
        },
      },
      {
        resolve: { alias },
        test: {
          name: 'e2e',
          include: ['tools/e2e/**/*.e2e.ts'],
          testTimeout: 120_000,
          hookTimeout: 120_000,
          fileParallelism: false,
        },
      },
    ],
  },
});
