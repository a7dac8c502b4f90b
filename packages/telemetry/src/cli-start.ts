/**
 * How an AppProxy CLI starts: refuse a Node that is too old with one line (exit 2) — except
 * for `--help` and `--version`, which work anywhere — then load the CLI and run it. Imports
 * nothing, so that a `bin.ts` can run it on any Node ≥ 18 before anything that needs a newer
 * one is loaded (subpath `@appproxy/telemetry/cli-start`).
 */

/** The one line to print when `version` (e.g. `v20.20.2`) is older than `min`; else undefined. */
export function nodeTooOld(cli: string, version: string, min: string): string | undefined {
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

/**
 * A CLI's whole `bin`: the Node check, then `load()`'s `main(argv)`, whose code becomes the
 * exit code (the process exits shortly after, even if a client keeps a socket open); a
 * failure to load or run is one line on stderr, exit 1.
 *
 * @example
 * startCli({ name: 'appproxy-relay', minNode: '22.13.0', load: () => import('./cli.js') });
 */
export function startCli(opts: {
  name: string;
  /** `engines.node` of the CLI's package.json, as `major.minor.patch`. */
  minNode: string;
  load: () => Promise<{ main: (argv: string[]) => Promise<number> }>;
}): void {
  const argv = process.argv.slice(2);
  const tooOld = nodeTooOld(opts.name, process.version, opts.minNode);
  if (tooOld && !onlyInformational(argv)) {
    process.stderr.write(`${tooOld}\n`);
    process.exit(2);
  }
  opts
    .load()
    .then(({ main }) => main(argv))
    .then(
      (code) => {
        process.exitCode = code;
        // Listeners and timers are closed by now; exit even if a client keeps a socket open.
        setTimeout(() => process.exit(code), 200).unref();
      },
      (err: unknown) => {
        process.stderr.write(`${opts.name}: ${(err as Error).message}\n`);
        process.exit(1);
      },
    );
}
