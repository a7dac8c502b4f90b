import { main } from './cli.js';

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
    // Listeners and timers are closed by now; exit even if a client keeps a socket open.
    setTimeout(() => process.exit(code), 200).unref();
  },
  (err: unknown) => {
    process.stderr.write(`appproxy-relay: ${(err as Error).message}\n`);
    process.exit(1);
  },
);
