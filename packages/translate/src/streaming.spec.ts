import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { createBodyRewriter, UrlMap, type BodyKind, type PublishedAppUrls } from './index.js';

// Streaming must not change the result: random documents from tricky pieces, cut at random
// places, give the same bytes as the whole document.
const apps = JSON.parse(
  readFileSync(new URL('./__fixtures__/apps.json', import.meta.url), 'utf8'),
) as PublishedAppUrls[];
const map = new UrlMap(apps);

const HTML_PIECES = [
  '<a href="http://expenses.corp.local:8080/r?a=1&amp;b=2">x</a>',
  "<a href='//expenses.corp.local:8080/s'>s</a>",
  '<a href=http://travel.corp.local/travel/t>t</a>',
  '<A HREF = "  HTTP://EXPENSES:8080/u  ">u</A>',
  '<img src="/jenkins/static/a.png" srcset="http://jenkins.corp.local:8080/jenkins/a.png 1x, /jenkins/b.png 2x">',
  '<meta http-equiv="refresh" content="0; url=http://benefits.corp.local/x">',
  '<meta content="http://benefits.corp.local/og.png" property="og:image">',
  '<div style="background:url( \'https://payroll.corp.local/p.png\' )">d</div>',
  '<style>a{b:url(http://sharepoint.corp.local/sites/hr/i.png)} /* url(http://sharepoint/x) */ @import "http://sharepoint/sites/hr/c.css";</style>',
  '<script>var u = "http://expenses.corp.local:8080/api", v = "http:\\/\\/expenses.corp.local:8080\\/v"; if (a<b) {}</script>',
  '<svg><script><![CDATA[ var s = "http://travel.corp.local/travel/svg" ]]></script><use xlink:href="http://travel.corp.local/travel/i.svg#a"/></svg>',
  '<!-- http://expenses.corp.local:8080/comment -->',
  '<textarea>http://expenses.corp.local:8080/ta <a href="http://expenses.corp.local:8080/no"></textarea>',
  '<a href="javascript:go(\'http://expenses.corp.local:8080/js\')" onclick="location=\'http://benefits.corp.local/oc\'">j</a>',
  '<a href="http://feedback.corp.local/f">f</a>',
  '<input type="image" src="http://bücher.corp.local/b.png">',
  '<p>text with http://expenses.corp.local:8080/ in it & a < stray and > too</p>',
  '<![CDATA[ bogus http://benefits.corp.local/ ]]>',
  '<object data="http://expenses.corp.local:8080/o.swf" archive="http://expenses.corp.local:8080/a.jar http://x/b.jar"></object>',
  '<form action="http://benefits.corp.local/post"><button formaction="/jenkins/b">b</button></form>',
  '<div data-src="http://jenkins:8080/jenkins/lazy.png" data-note="see http://jenkins:8080/jenkins/">n</div>',
  '\n   \t',
  '<br/>',
  '</div>',
];

const CSS_PIECES = [
  'a{background:url(http://sharepoint.corp.local/a.png)}',
  "b{background:URL( 'http://sharepoint/sites/hr/b.png' )}",
  '@import "http://sharepoint.corp.local/c.css";',
  '@import url(http://expenses.corp.local:8080/d.css) screen;',
  '/* url(http://sharepoint.corp.local/comment.png) */',
  'c::before{content:"url(http://sharepoint.corp.local/string)"}',
  'd{background:url(data:image/png;base64,iVBORw0KGgo=)}',
  'e{src:url("/sites/hr/f.woff2") format("woff2")}',
  '\n',
];

function random(seed: number) {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s ^ (s >>> 15), 0x2c1b3c6d) + 0x9e3779b9) >>> 0;
    return s / 2 ** 32;
  };
}

function rewrite(kind: BodyKind, input: Buffer, cuts: number[], scripts: boolean): string {
  const r = createBodyRewriter(kind, { map, app: kind === 'css' ? 'HR site' : 'Jenkins', scripts });
  const out: Buffer[] = [];
  let at = 0;
  for (const cut of cuts) {
    out.push(r.write(input.subarray(at, cut)));
    at = cut;
  }
  out.push(r.write(input.subarray(at)), r.end());
  return Buffer.concat(out).toString('latin1');
}

describe.each([
  ['html', HTML_PIECES],
  ['css', CSS_PIECES],
] as const)('%s: random documents, random cuts', (kind, pieces) => {
  it.each([false, true])(
    'scripts %s: chunked output equals whole output (300 documents)',
    (scripts) => {
      const next = random(kind === 'html' ? 1 : 2);
      for (let doc = 0; doc < 300; doc++) {
        const parts: string[] = [];
        const n = 1 + Math.floor(next() * 12);
        for (let i = 0; i < n; i++) parts.push(pieces[Math.floor(next() * pieces.length)]!);
        const input = Buffer.from(parts.join(''));
        const whole = rewrite(kind, input, [], scripts);
        const cuts: number[] = [];
        for (let at = 0; at < input.length;) {
          at += 1 + Math.floor(next() * 40);
          if (at < input.length) cuts.push(at);
        }
        expect(rewrite(kind, input, cuts, scripts), parts.join('')).toBe(whole);
      }
    },
  );
});

it('translates what the pieces promise (a sample)', () => {
  const out = rewrite('html', Buffer.from(HTML_PIECES.join('')), [], true);
  expect(out).toContain('<a href="https://expenses.example.com/r?a=1&amp;b=2">');
  expect(out).toContain("<a href='https://expenses.example.com/s'>");
  expect(out).toContain('<A HREF = "  https://expenses.example.com/u  ">');
  expect(out).toContain('srcset="https://ci.example.com/a.png 1x, /b.png 2x"');
  expect(out).toContain('<img src="/static/a.png"');
  expect(out).toContain('content="0; url=https://benefits.example.com/x"');
  expect(out).toContain("url( 'https://payroll.example.com/p.png' )");
  expect(out).toContain('/* url(http://sharepoint/x) */');
  expect(out).toContain('v = "https:\\/\\/expenses.example.com\\/v"');
  expect(out).toContain('var s = "https://apps.example.com/trips/svg"');
  expect(out).toContain('<!-- http://expenses.corp.local:8080/comment -->');
  expect(out).toContain(
    '<textarea>http://expenses.corp.local:8080/ta <a href="http://expenses.corp.local:8080/no"></textarea>',
  );
  expect(out).toContain("javascript:go('https://expenses.example.com/js')");
  expect(out).toContain("location='https://benefits.example.com/oc'");
  expect(out).toContain('<a href="http://feedback.corp.local/f">');
  expect(out).toContain('<input type="image" src="https://books.example.com/b.png">');
  expect(out).toContain('<p>text with http://expenses.corp.local:8080/ in it');
  expect(out).toContain('archive="https://expenses.example.com/a.jar http://x/b.jar"');
  expect(out).toContain('<button formaction="/b">');
  expect(out).toContain(
    'data-src="https://ci.example.com/lazy.png" data-note="see http://jenkins:8080/jenkins/"',
  );
});
