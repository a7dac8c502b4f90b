// Nothing here may need a newer Node than 18: the guard must be able to say which one it needs.
import { startCli } from '@appproxy/telemetry/cli-start';
import { MIN_NODE } from './node-guard.js';

startCli({ name: 'appproxy-relay', minNode: MIN_NODE, load: () => import('./cli.js') });
