import { readFileSync, writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { createBodyRewriter, UrlMap, type BodyKind, type PublishedAppUrls } from './index.js';

// The corpus: realistic intranet pages, each translated as a response of its app.
// Expected outputs live in __fixtures__/translated/; UPDATE_GOLDEN=1 rewrites them (review the diff).
const fixture = (name: string) => readFileSync(new URL(`./__fixtures__/${name}`, import.meta.url));
const apps = JSON.parse(fixture('apps.json').toString()) as PublishedAppUrls[];
const map = new UrlMap(apps);
const nothingMapped = new UrlMap([
  { internalUrl: 'http://unrelated.corp.local/', externalUrl: 'https://unrelated.example.com/' },
]);

export const CORPUS: { file: string; app: string; kind: BodyKind }[] = [
  { file: 'sharepoint-portal.html', app: 'HR site', kind: 'html' },
  { file: 'jenkins-dashboard.html', app: 'Jenkins', kind: 'html' },
  { file: 'aspnet-webforms.html', app: 'Expenses', kind: 'html' },
  { file: 'inline-svg.html', app: 'Travel', kind: 'html' },
  { file: 'legacy-malformed.html', app: 'Benefits', kind: 'html' },
  { file: 'windows-1252.html', app: 'Expenses', kind: 'html' },
  { file: 'portal.css', app: 'HR site', kind: 'css' },
];

function translate(
  input: Buffer,
  chunkSizes: number[] | 'whole',
  options: { kind: BodyKind; app?: string; scripts?: boolean; map?: UrlMap },
): Buffer {
  const r = createBodyRewriter(options.kind, {
    map: options.map ?? map,
    ...(options.app !== undefined && { app: options.app }),
    scripts: options.scripts ?? false,
  });
  const out: Buffer[] = [];
  if (chunkSizes === 'whole') out.push(r.write(input));
  else {
    let k = 0;
    for (let i = 0; i < input.length; k++) {
      const n = chunkSizes[k % chunkSizes.length]!;
      out.push(r.write(input.subarray(i, i + n)));
      i += n;
    }
  }
  out.push(r.end());
  return Buffer.concat(out);
}

function golden(name: string, actual: Buffer): Buffer {
  const url = new URL(`./__fixtures__/translated/${name}`, import.meta.url);
  if (process.env.UPDATE_GOLDEN) writeFileSync(url, actual);
  return readFileSync(url);
}

// Deterministic "random" chunk sizes.
const jagged = Array.from({ length: 97 }, (_, i) => 1 + ((i * 7919) % 613));

describe.each(CORPUS)('$file', ({ file, app, kind }) => {
  const input = fixture(file);

  for (const scripts of [false, true]) {
    const suffix = scripts ? '.scripts' : '';
    it(`translates as expected${scripts ? ' with scripts' : ''}, whole, one byte at a time, in 1 KiB and jagged chunks`, () => {
      const whole = translate(input, 'whole', { kind, app, scripts });
      expect(whole.equals(golden(`${file}${suffix}`, whole))).toBe(true);
      expect(translate(input, [1], { kind, app, scripts }).equals(whole)).toBe(true);
      expect(translate(input, [1024], { kind, app, scripts }).equals(whole)).toBe(true);
      expect(translate(input, jagged, { kind, app, scripts }).equals(whole)).toBe(true);
    });
  }

  it('passes every byte through untouched when no published URL is in it', () => {
    for (const chunks of ['whole', [1], jagged] as const) {
      const out = translate(input, chunks === 'whole' ? 'whole' : [...chunks], {
        kind,
        scripts: true,
        map: nothingMapped,
      });
      expect(out.equals(input)).toBe(true);
    }
  });
});
