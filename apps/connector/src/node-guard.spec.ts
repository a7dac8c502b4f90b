import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { MIN_NODE, nodeTooOld, onlyInformational } from './node-guard.js';

describe('node guard', () => {
  it('names the Node it needs and the one it found', () => {
    expect(nodeTooOld('appproxy-connector', 'v20.20.2')).toBe(
      'appproxy-connector needs Node ≥ 22; this is 20.20.2 — use the single-file executable or a newer Node',
    );
    expect(nodeTooOld('appproxy-connector', 'v21.7.3')).toMatch(/needs Node ≥ 22;/);
  });

  it('accepts the minimum and anything newer', () => {
    for (const v of ['v22.0.0', 'v22.0.1', 'v22.20.0', 'v23.0.0', 'v24.1.0'])
      expect(nodeTooOld('appproxy-connector', v)).toBeUndefined();
  });

  it('matches engines.node of package.json', () => {
    const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
      engines: { node: string };
    };
    expect(pkg.engines.node).toBe(`>=${MIN_NODE.replace(/(\.0)+$/, '')}`);
  });

  it('lets --help and --version through', () => {
    expect(onlyInformational(['--version'])).toBe(true);
    expect(onlyInformational(['start', '--help'])).toBe(true);
    expect(onlyInformational([])).toBe(true);
    expect(onlyInformational(['start', '--config', 'x.yaml'])).toBe(false);
  });
});
