import { describe, expect, it } from 'vitest';
import { nodeTooOld, onlyInformational } from './cli-start.js';

describe('cli-start: the Node guard', () => {
  it('names the Node it needs and the one it found', () => {
    expect(nodeTooOld('appproxy-relay', 'v20.20.2', '22.13.0')).toBe(
      'appproxy-relay needs Node ≥ 22.13; this is 20.20.2 — use the single-file executable or a newer Node',
    );
    expect(nodeTooOld('appproxy-relay', 'v22.12.9', '22.13.0')).toMatch(/needs Node ≥ 22\.13/);
    expect(nodeTooOld('appproxy-connector', 'v21.7.3', '22.0.0')).toMatch(/needs Node ≥ 22;/);
  });

  it('accepts the minimum and anything newer', () => {
    for (const v of ['v22.13.0', 'v22.13.1', 'v22.20.0', 'v23.0.0', 'v24.1.0'])
      expect(nodeTooOld('appproxy-relay', v, '22.13.0')).toBeUndefined();
    expect(nodeTooOld('appproxy-connector', 'v22.0.0', '22.0.0')).toBeUndefined();
  });

  it('lets --help and --version through', () => {
    expect(onlyInformational(['--version'])).toBe(true);
    expect(onlyInformational(['start', '--help'])).toBe(true);
    expect(onlyInformational([])).toBe(true);
    expect(onlyInformational(['start', '--config', 'x.yaml'])).toBe(false);
  });
});
