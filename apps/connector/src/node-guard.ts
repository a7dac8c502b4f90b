/**
 * The oldest Node this CLI runs on: `engines.node` of its package.json (Node 22 is the oldest
 * the connector is tested on). Kept free of
 * imports so that bin.ts can run it on any Node ≥ 18.
 */
export const MIN_NODE = '22.0.0';

/** The one line to print when `version` (e.g. `v20.20.2`) is older than `min`; else undefined. */
export function nodeTooOld(cli: string, version: string, min = MIN_NODE): string | undefined {
  const have = version.replace(/^v/, '').split('.').map(Number);
  const need = min.split('.').map(Number);
  for (let i = 0; i < 3; i++) {
    const diff = (have[i] ?? 0) - (need[i] ?? 0);
    if (diff > 0) return undefined;
    if (diff < 0) {
      const shown = min.replace(/(\.0)+$/, '');
      return `${cli} needs Node ≥ ${shown}; this is ${have.join('.')} — use the single-file executable or a newer Node`;
    }
  }
  return undefined;
}

/** Arguments that only print help or the version: these work on any Node the guard runs on. */
export function onlyInformational(argv: string[]): boolean {
  return (
    argv.length === 0 ||
    argv[0] === 'help' ||
    argv.some((a) => a === '--help' || a === '-h' || a === '--version' || a === '-V')
  );
}
