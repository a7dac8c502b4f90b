import { readFileSync } from 'node:fs';
import { expect, it } from 'vitest';
import { MIN_NODE } from './node-guard.js';

it('the Node guard’s minimum is engines.node of package.json', () => {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
    engines: { node: string };
  };
  expect(pkg.engines.node).toBe(`>=${MIN_NODE.replace(/(\.0)+$/, '')}`);
});
