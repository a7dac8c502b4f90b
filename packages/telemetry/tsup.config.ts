import { defineConfig } from 'tsup';
import { libraryBuild } from '../../tsup.shared';

// `cli-start` is its own entry: the CLIs' bin.ts loads it, and nothing else, on any Node.
export default defineConfig({ ...libraryBuild, entry: ['src/index.ts', 'src/cli-start.ts'] });
