// Nothing here may need a newer Node than 18: the guard must be able to say which one it needs.
import { nodeTooOld, onlyInformational } from './node-guard.js';

const argv = process.argv.slice(2);
const tooOld = nodeTooOld('appproxy-relay', process.version);
if (tooOld && !onlyInformational(argv)) {
  process.stderr.write(`${tooOld}\n`);
  process.exit(2);
}

import('./cli.js')
  .then(({ main }) => main(argv))
  .then(
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
