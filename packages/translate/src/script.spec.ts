import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  createBodyRewriter,
  createBodyTranslation,
  UrlMap,
  type PublishedAppUrls,
} from './index.js';

const apps = JSON.parse(
  readFileSync(new URL('./__fixtures__/apps.json', import.meta.url), 'utf8'),
) as PublishedAppUrls[];
const map = new UrlMap(apps);

// JSON as ASP.NET, PHP and SharePoint write it: plain, `\/`-escaped and `\u002f`-escaped slashes.
const json = JSON.stringify({
  plain: 'http://expenses.corp.local:8080/api/reports?x=1',
  short: 'http://expenses:8080/api/',
  list: ['http://travel.corp.local/travel/trips/1', 'http://feedback.corp.local/form'],
  relative: '/api/reports',
  text: 'see http://benefits.corp.local/faq for details',
})
  .concat(
    String.raw`{"escaped":"http:\/\/expenses.corp.local:8080\/api\/v2","sp":"http:\u002f\u002fsharepoint.corp.local\u002fsites\u002fhr","SP":"HTTP:\u002F\u002Fsharepoint.corp.local\u002F_layouts"}`,
  )
  .concat(
    '{"mixed":"http:\\/\\/expenses.corp.local:8080/x","lookalike":"http://expenses.corp.local.evil.example/"}',
  );

const expected = JSON.stringify({
  plain: 'https://expenses.example.com/api/reports?x=1',
  short: 'https://expenses.example.com/api/',
  list: ['https://apps.example.com/trips/trips/1', 'http://feedback.corp.local/form'],
  relative: '/api/reports',
  text: 'see https://benefits.example.com/faq for details',
})
  .concat(
    String.raw`{"escaped":"https:\/\/expenses.example.com\/api\/v2","sp":"https:\u002f\u002fhr.example.com","SP":"https:\u002F\u002Fintranet.example.com\u002Fsp\u002F_layouts"}`,
  )
  .concat(
    '{"mixed":"http:\\/\\/expenses.corp.local:8080/x","lookalike":"http://expenses.corp.local.evil.example/"}',
  );

function rewrite(input: Buffer, size: number): string {
  const r = createBodyRewriter('script', { map, app: 'Expenses' });
  const out: Buffer[] = [];
  for (let i = 0; i < input.length; i += size) out.push(r.write(input.subarray(i, i + size)));
  out.push(r.end());
  return Buffer.concat(out).toString();
}

describe('script and JSON bodies (scripts on)', () => {
  it('translate absolute URLs in every slash escaping, whole and one byte at a time', () => {
    const input = Buffer.from(json);
    expect(rewrite(input, input.length)).toBe(expected);
    expect(rewrite(input, 1)).toBe(expected);
    expect(rewrite(input, 7)).toBe(expected);
  });
});

describe('rootRelative: string literals that start with the internal path', () => {
  // DokuWiki published from /dokuwiki/ at /, Jupyter from /jupyter/ at /nb/.
  const wikiMap = new UrlMap([
    {
      name: 'Wiki',
      internalUrl: 'http://wiki.corp.local/dokuwiki/',
      externalUrl: 'https://wiki.example.com/',
    },
    {
      name: 'Jupyter',
      internalUrl: 'http://nb.corp.local:8888/jupyter/',
      externalUrl: 'https://apps.example.com/nb/',
    },
    {
      name: 'Same',
      internalUrl: 'http://same.corp.local/s/',
      externalUrl: 'https://s.example.com/s/',
    },
  ]);
  const page = [
    '<html><head><script>',
    'var DOKU_BASE=\'/dokuwiki/\'; var TPL="/dokuwiki/lib/tpl/"; var t=`/dokuwiki/x`;',
    "var other='/dokuwikix/'; var bare='/dokuwiki'; var abs='http://wiki.corp.local/dokuwiki/a';",
    '</script></head><body data-base-url="/dokuwiki/" onclick="go(\'/dokuwiki/y\')">',
    '<a href="/dokuwiki/doku.php?id=start">start</a> text \'/dokuwiki/\' in prose stays',
    '</body></html>',
  ].join('\n');

  function translate(
    body: string,
    contentType: string,
    options: { app: string; scripts?: boolean; json?: boolean; rootRelative?: boolean },
    size: number,
  ): string | undefined {
    const t = createBodyTranslation(
      { statusCode: 200, headers: { 'content-type': contentType } },
      { map: wikiMap, flushAfterMs: 0, ...options },
    );
    if (!t) return undefined;
    const input = Buffer.from(body);
    const out: Buffer[] = [];
    t.transform.on('data', (c: Buffer) => out.push(c));
    for (let i = 0; i < input.length; i += size) t.transform.write(input.subarray(i, i + size));
    t.transform.end();
    return Buffer.concat(out).toString();
  }

  it.each([1, 7, 4096])('HTML inline scripts, in %i-byte chunks', async (size) => {
    const out = translate(page, 'text/html', { app: 'Wiki', rootRelative: true }, size);
    await new Promise((r) => setImmediate(r));
    expect(out).toBe(
      [
        '<html><head><script>',
        'var DOKU_BASE=\'/\'; var TPL="/lib/tpl/"; var t=`/x`;',
        // Another path, no slash, and absolute URLs (no `scripts`) stay.
        "var other='/dokuwikix/'; var bare='/dokuwiki'; var abs='http://wiki.corp.local/dokuwiki/a';",
        // data-* and href are URL attributes (root-relative links: always); event handlers
        // are scripts (only with `scripts`); text is text.
        '</script></head><body data-base-url="/" onclick="go(\'/dokuwiki/y\')">',
        '<a href="/doku.php?id=start">start</a> text \'/dokuwiki/\' in prose stays',
        '</body></html>',
      ].join('\n'),
    );
  });

  it('off: inline script strings stay', async () => {
    const out = translate(page, 'text/html', { app: 'Wiki' }, 4096);
    await new Promise((r) => setImmediate(r));
    expect(out).toContain("var DOKU_BASE='/dokuwiki/'");
    expect(out).toContain('data-base-url="/"');
  });

  it('JavaScript responses: the prefix with rootRelative, absolute URLs only with scripts', async () => {
    const js =
      "require.config({ baseUrl: '/jupyter/static/' }); fetch('http://nb.corp.local:8888/jupyter/api');";
    const rooted = translate(js, 'text/javascript', { app: 'Jupyter', rootRelative: true }, 3);
    const both = translate(
      js,
      'application/javascript',
      { app: 'Jupyter', rootRelative: true, scripts: true },
      3,
    );
    await new Promise((r) => setImmediate(r));
    expect(rooted).toBe(
      "require.config({ baseUrl: '/nb/static/' }); fetch('http://nb.corp.local:8888/jupyter/api');",
    );
    expect(both).toBe(
      "require.config({ baseUrl: '/nb/static/' }); fetch('https://apps.example.com/nb/api');",
    );
    // Neither option: JavaScript passes untouched.
    expect(translate(js, 'text/javascript', { app: 'Jupyter' }, 3)).toBeUndefined();
    // Same path inside and out: nothing to do.
    const same = translate("x='/s/a'", 'text/javascript', { app: 'Same', rootRelative: true }, 1);
    await new Promise((r) => setImmediate(r));
    expect(same).toBe("x='/s/a'");
  });

  it('JSON: absolute URLs with json only, never the prefix', async () => {
    const body = '{"base":"/jupyter/","api":"http://nb.corp.local:8888/jupyter/api"}';
    expect(
      translate(body, 'application/json', { app: 'Jupyter', scripts: true, rootRelative: true }, 5),
    ).toBeUndefined();
    const out = translate(
      body,
      'application/json',
      { app: 'Jupyter', json: true, rootRelative: true },
      5,
    );
    await new Promise((r) => setImmediate(r));
    expect(out).toBe('{"base":"/jupyter/","api":"https://apps.example.com/nb/api"}');
  });
});
