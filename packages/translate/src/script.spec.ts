import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { createBodyRewriter, UrlMap, type PublishedAppUrls } from './index.js';

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
