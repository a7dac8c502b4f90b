import { defineConfig } from 'tsup';
import { cliBuild } from '../../tsup.shared';

export default defineConfig(cliBuild);
