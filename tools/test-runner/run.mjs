#!/usr/bin/env node
// Runs the whole vitest suite and ends with one plain line, `N passed, N failed[, N skipped]`,
// derived from vitest's JSON report (CI reads that line). With APPPROXY_REQUIRE_ALL=1 (set
// by .ci/run) a skipped test fails the run: tests may skip locally when a system tool is
// missing, never in CI.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '../..');
const report = join(root, 'test-results.json');
rmSync(report, { force: true });

const vitest = join(root, 'node_modules/vitest/vitest.mjs');
const result = spawnSync(
  process.execPath,
  [
    vitest,
    'run',
    '--reporter=default',
    '--reporter=json',
    `--outputFile.json=${report}`,
    ...process.argv.slice(2),
  ],
  { cwd: root, stdio: 'inherit' },
);

let passed = 0;
let failed = 0;
let skipped = 0;
if (existsSync(report)) {
  const json = JSON.parse(readFileSync(report, 'utf8'));
  passed = json.numPassedTests ?? 0;
  // A file that failed without running a test (an import error, a failing hook) counts once.
  const brokenFiles = (json.testResults ?? []).filter(
    (f) => f.status === 'failed' && !(f.assertionResults ?? []).some((a) => a.status === 'failed'),
  ).length;
  failed = (json.numFailedTests ?? 0) + brokenFiles;
  skipped = (json.numPendingTests ?? 0) + (json.numTodoTests ?? 0);
} else {
  failed = 1;
  console.error('test-runner: vitest wrote no report');
}

let code = result.status ?? 1;
if (skipped > 0 && process.env.APPPROXY_REQUIRE_ALL === '1') {
  console.error(
    `test-runner: ${skipped} test(s) skipped, and APPPROXY_REQUIRE_ALL=1 forbids skips (a system tool is missing?)`,
  );
  code = code || 1;
}
if (passed + failed === 0) code = code || 1;
console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
process.exit(code);
