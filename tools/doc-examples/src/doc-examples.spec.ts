import { readFileSync } from 'node:fs';
import { PassThrough, pipeline, Readable } from 'node:stream';
import { isDeepStrictEqual } from 'node:util';
import * as cookies from '@appproxy/cookies';
import * as translate from '@appproxy/translate';
import { describe, expect, it } from 'vitest';
import { examplesIn, instrument } from './examples.js';

// Names the examples may use without defining them: a map of the corpus apps (Expenses,
// Travel, …) and an http-proxy-like response pair.
const map = new translate.UrlMap(
  JSON.parse(
    readFileSync(
      new URL('../../../packages/translate/src/__fixtures__/apps.json', import.meta.url),
      'utf8',
    ),
  ) as translate.PublishedAppUrls[],
);
function prelude() {
  const proxyRes = Object.assign(
    Readable.from([Buffer.from('<a href="http://expenses.corp.local:8080/">x</a>')]),
    {
      statusCode: 200,
      headers: { 'content-type': 'text/html' },
    },
  );
  const res = Object.assign(new PassThrough(), { writeHead: () => res });
  res.resume();
  return { map, proxyRes, res, pipeline, done: () => {} };
}

const packages = [
  { name: 'cookies', exports: cookies as Record<string, unknown> },
  { name: 'translate', exports: translate as Record<string, unknown> },
];

describe.each(packages)('@appproxy/$name JSDoc examples', ({ name, exports }) => {
  const examples = examplesIn(new URL(`../../../packages/${name}/src/`, import.meta.url));

  it('every public function and class has one', () => {
    const documented = new Set(
      examples.flatMap((e) => [...e.code.matchAll(/\b([A-Za-z]\w+)\b/g)].map((m) => m[1]!)),
    );
    const callable = Object.entries(exports)
      .filter(([, v]) => typeof v === 'function')
      .map(([k]) => k);
    expect(callable.filter((k) => !documented.has(k))).toStrictEqual([]);
  });

  it.each(examples.map((e) => [`${e.file}:${e.line}`, e] as const))(
    '%s runs as documented',
    async (_where, example) => {
      const { js, checks } = instrument(example.code);
      const failures: string[] = [];
      const __equal = (actual: () => unknown, expected: () => unknown, what: string) => {
        const a = actual();
        const e = expected();
        if (!isDeepStrictEqual(a, e))
          failures.push(`${what}: got ${JSON.stringify(a)}, expected ${JSON.stringify(e)}`);
      };
      const __truthy = (check: () => unknown, what: string) => {
        if (!check()) failures.push(`${what} is false`);
      };
      const scope = { ...exports, ...prelude(), __equal, __truthy };
      const names = Object.keys(scope);
      const run = new Function(...names, `return (async () => {\n${js}\n})();`) as (
        ...a: unknown[]
      ) => Promise<void>;
      await run(...names.map((n) => scope[n as keyof typeof scope]));
      expect(failures).toStrictEqual([]);
      expect(checks, 'an example promises at least one value').toBeGreaterThan(0);
    },
  );
});
