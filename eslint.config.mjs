import nx from '@nx/eslint-plugin';
import prettier from 'eslint-config-prettier';

export default [
  ...nx.configs['flat/base'],
  ...nx.configs['flat/typescript'],
  ...nx.configs['flat/javascript'],
  { ignores: ['**/dist', '**/node_modules', '.nx', 'var', 'bench'] },
  {
    files: ['**/*.ts', '**/*.mjs', '**/*.js'],
    rules: {
      // Apps assemble packages; packages never import apps or tools.
      '@nx/enforce-module-boundaries': [
        'error',
        {
          enforceBuildableLibDependency: false,
          allow: [],
          depConstraints: [
            { sourceTag: 'type:lib', onlyDependOnLibsWithTags: ['type:lib'] },
            { sourceTag: 'type:app', onlyDependOnLibsWithTags: ['type:lib'] },
            {
              sourceTag: 'type:tool',
              onlyDependOnLibsWithTags: ['type:lib', 'type:app', 'type:tool'],
            },
          ],
        },
      ],
      // `x!` after a length/lookup check is clearer than a redundant guard.
      '@typescript-eslint/no-non-null-assertion': 'off',
      // `.on('error', () => {})` marks an error as handled elsewhere (the 'close' path).
      '@typescript-eslint/no-empty-function': 'off',
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_' },
      ],
    },
  },
  {
    // Build configs share tsup.shared.ts at the workspace root; they are not project code.
    files: ['**/tsup.config.ts'],
    rules: { '@nx/enforce-module-boundaries': 'off' },
  },
  prettier,
];
