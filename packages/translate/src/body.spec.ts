import { readFileSync } from 'node:fs';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import zlib from 'node:zlib';
import { describe, expect, it } from 'vitest';
import {
  createBodyRewriter,
  createBodyTranslation,
  planBodyTranslation,
  translatedBodyHeaders,
  TranslateError,
  UrlMap,
  type HeaderObject,
  type PublishedAppUrls,
} from './index.js';

const fixture = (name: string) => readFileSync(new URL(`./__fixtures__/${name}`, import.meta.url));
const apps = JSON.parse(fixture('apps.json').toString()) as PublishedAppUrls[];
const map = new UrlMap(apps);
const hasZstd = typeof (zlib as { zstdCompressSync?: unknown }).zstdCompressSync === 'function';

function chunked(buf: Buffer, size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < buf.length; i += size) out.push(buf.subarray(i, i + size));
  return out;
}

async function run(transform: NodeJS.ReadWriteStream, chunks: Buffer[]): Promise<Buffer> {
  const out: Buffer[] = [];
  await pipeline(
    Readable.from(chunks),
    transform,
    new Writable({
      write(c: Buffer, _e, cb) {
        out.push(c);
        cb();
      },
    }),
  );
  return Buffer.concat(out);
}

const html = (headers: HeaderObject = {}): { statusCode: number; headers: HeaderObject } => ({
  statusCode: 200,
  headers: { 'content-type': 'text/html; charset=utf-8', ...headers },
});

describe('planBodyTranslation', () => {
  it.each([
    [html(), {}, { kind: 'html', charset: 'utf-8', coding: 'identity' }],
    [
      { headers: { 'Content-Type': 'application/xhtml+xml' } },
      {},
      { kind: 'html', charset: undefined, coding: 'identity' },
    ],
    [
      { headers: { 'content-type': 'TEXT/CSS', 'content-encoding': 'br' } },
      {},
      { kind: 'css', charset: undefined, coding: 'br' },
    ],
    [
      html({ 'content-encoding': 'x-gzip' }),
      {},
      { kind: 'html', charset: 'utf-8', coding: 'gzip' },
    ],
    [
      html({ 'content-encoding': 'deflate' }),
      {},
      { kind: 'html', charset: 'utf-8', coding: 'deflate' },
    ],
    [
      { headers: { 'content-type': 'application/json' } },
      { json: true },
      { kind: 'json', charset: undefined, coding: 'identity' },
    ],
    [
      { headers: { 'content-type': 'application/ld+json' } },
      { json: true },
      { kind: 'json', charset: undefined, coding: 'identity' },
    ],
    [
      { headers: { 'content-type': 'text/javascript; charset=utf-8' } },
      { scripts: true },
      { kind: 'script', charset: 'utf-8', coding: 'identity' },
    ],
    [
      { statusCode: 404, headers: { 'content-type': 'text/html' } },
      {},
      { kind: 'html', charset: undefined, coding: 'identity' },
    ],
  ])('%j %j → %j', (response, options, plan) => {
    expect(planBodyTranslation(response, options)).toStrictEqual(plan);
  });

  it.each([
    ['image', { headers: { 'content-type': 'image/png' } }, {}],
    ['no content type', { headers: {} }, {}],
    ['JSON without json', { headers: { 'content-type': 'application/json' } }, {}],
    // Node-RED's GET /flows, saved back on deploy: scripts alone never rewrite app data.
    [
      'JSON with scripts only',
      { headers: { 'content-type': 'application/json' } },
      { scripts: true },
    ],
    [
      'JavaScript with json only',
      { headers: { 'content-type': 'text/javascript' } },
      { json: true },
    ],
    ['HTML turned off', html(), { html: false }],
    ['CSS turned off', { headers: { 'content-type': 'text/css' } }, { css: false }],
    ['HEAD', html(), { method: 'head' }],
    ['204', { statusCode: 204, headers: { 'content-type': 'text/html' } }, {}],
    ['304', { statusCode: 304, headers: { 'content-type': 'text/html' } }, {}],
    ['206', { statusCode: 206, headers: { 'content-type': 'text/html' } }, {}],
    ['Content-Range', html({ 'content-range': 'bytes 0-9/100' }), {}],
    ['empty', html({ 'content-length': '0' }), {}],
    ['no-transform', html({ 'cache-control': 'private, no-transform' }), {}],
    ['UTF-16', { headers: { 'content-type': 'text/html; charset=UTF-16LE' } }, {}],
    ['ISO-2022-JP', { headers: { 'content-type': 'text/html; charset="iso-2022-jp"' } }, {}],
    ['two codings', html({ 'content-encoding': 'gzip, br' }), {}],
    ['compress', html({ 'content-encoding': 'compress' }), {}],
  ])('passes through: %s', (_why, response, options) => {
    expect(planBodyTranslation(response, options)).toBeUndefined();
    expect(createBodyTranslation(response, { map, ...options })).toBeUndefined();
  });
});

describe('translatedBodyHeaders', () => {
  it('drops the length and digests, weakens the ETag, refuses ranges, keeps the rest', () => {
    const headers = {
      'Content-Length': '1200',
      'content-type': 'text/html; charset=windows-1252',
      'content-encoding': 'gzip',
      etag: '"abc"',
      'last-modified': 'Tue, 01 Oct 2024 10:00:00 GMT',
      'accept-ranges': 'bytes',
      'content-md5': 'x',
      digest: 'sha-256=x',
      'repr-digest': 'sha-256=:x:',
      vary: 'Accept-Encoding',
    };
    expect(translatedBodyHeaders(headers)).toStrictEqual({
      'content-type': 'text/html; charset=windows-1252',
      'content-encoding': 'gzip',
      etag: 'W/"abc"',
      'last-modified': 'Tue, 01 Oct 2024 10:00:00 GMT',
      'accept-ranges': 'none',
      vary: 'Accept-Encoding',
    });
    expect(
      translatedBodyHeaders({ etag: 'W/"abc"', 'content-encoding': 'br' }, { encode: 'identity' }),
    ).toStrictEqual({
      etag: 'W/"abc"',
    });
    expect(headers['Content-Length']).toBe('1200');
  });
});

describe('createBodyTranslation — encodings', () => {
  const page = fixture('sharepoint-portal.html');
  const expected = fixture('translated/sharepoint-portal.html');
  const codings = [
    ['identity', (b: Buffer) => b, (b: Buffer) => b],
    ['gzip', zlib.gzipSync, zlib.gunzipSync],
    ['deflate', zlib.deflateSync, zlib.inflateSync],
    ['deflate', zlib.deflateRawSync, zlib.inflateRawSync],
    ['br', zlib.brotliCompressSync, zlib.brotliDecompressSync],
    ...(hasZstd
      ? [
          [
            'zstd',
            (zlib as unknown as Record<string, (b: Buffer) => Buffer>).zstdCompressSync!,
            (zlib as unknown as Record<string, (b: Buffer) => Buffer>).zstdDecompressSync!,
          ],
        ]
      : []),
  ] as [string, (b: Buffer) => Buffer, (b: Buffer) => Buffer][];

  it.each(codings)(
    '%s (%#): decoded, translated, re-encoded the same way, whole and in 1 KiB chunks',
    async (coding, encode, decode) => {
      const body = encode(page);
      for (const size of [body.length, 1024]) {
        const t = createBodyTranslation(
          html({ 'content-encoding': coding, 'content-length': String(body.length) }),
          {
            map,
            app: 'HR site',
          },
        )!;
        expect(t.coding).toBe(coding);
        expect(t.headers['content-encoding']).toBe(coding);
        expect(t.headers['content-length']).toBeUndefined();
        const out = await run(t.transform, chunked(body, size));
        expect(decode(out).equals(expected)).toBe(true);
      }
    },
  );

  it.each(codings)(
    '%s (%#): a body that decodes to nothing leaves as a valid empty encoding, not zero bytes',
    async (coding, encode, decode) => {
      const t = createBodyTranslation(html({ 'content-encoding': coding }), {
        map,
        app: 'HR site',
      })!;
      const out = await run(t.transform, [encode(Buffer.alloc(0))]);
      if (coding !== 'identity') expect(out.length).toBeGreaterThan(0);
      expect(decode(out).length).toBe(0);
    },
  );

  it('gzip fed one byte at a time gives the same body', async () => {
    const small = fixture('legacy-malformed.html');
    const t = createBodyTranslation(html({ 'content-encoding': 'gzip' }), {
      map,
      app: 'Benefits',
    })!;
    const out = await run(t.transform, chunked(zlib.gzipSync(small), 1));
    expect(zlib.gunzipSync(out).equals(fixture('translated/legacy-malformed.html'))).toBe(true);
  });

  it("encode: 'identity' sends the decoded body and drops Content-Encoding", async () => {
    const t = createBodyTranslation(html({ 'content-encoding': 'br' }), {
      map,
      app: 'HR site',
      encode: 'identity',
    })!;
    expect(t.headers['content-encoding']).toBeUndefined();
    expect((await run(t.transform, [zlib.brotliCompressSync(page)])).equals(expected)).toBe(true);
  });

  it('an empty compressed body stays empty', async () => {
    const t = createBodyTranslation(html({ 'content-encoding': 'gzip' }), { map })!;
    expect((await run(t.transform, [])).length).toBe(0);
  });

  it.each([
    ['corrupt gzip', 'gzip', Buffer.from('this is not gzip at all')],
    ['truncated gzip', 'gzip', zlib.gzipSync(page).subarray(0, 500)],
    ['corrupt br', 'br', Buffer.from([0xff, 0xff, 0xff, 0xff])],
    ['one-byte deflate', 'deflate', Buffer.from([0x78])],
  ])('%s fails with APPPROXY_TRANSLATE_DECODE_FAILED', async (_name, coding, body) => {
    const t = createBodyTranslation(html({ 'content-encoding': coding }), { map })!;
    const err = await run(t.transform, [body]).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(TranslateError);
    expect(err).toMatchObject({ code: 'APPPROXY_TRANSLATE_DECODE_FAILED' });
  });

  it('flushes compressed output when the backend pauses, so progressive pages show', async () => {
    const t = createBodyTranslation(html({ 'content-encoding': 'gzip' }), {
      map,
      app: 'Benefits',
      flushAfterMs: 10,
    })!;
    const out: Buffer[] = [];
    t.transform.on('data', (c: Buffer) => out.push(c));
    const gz = zlib.createGzip();
    const compressed: Buffer[] = [];
    gz.on('data', (c: Buffer) => compressed.push(c));
    gz.write('<p><a href="http://benefits.corp.local/first">first</a></p>');
    await new Promise<void>((r) => gz.flush(zlib.constants.Z_SYNC_FLUSH, () => r()));
    t.transform.write(Buffer.concat(compressed));
    await sleep(100);
    const sofar = zlib
      .gunzipSync(Buffer.concat(out), { finishFlush: zlib.constants.Z_SYNC_FLUSH })
      .toString();
    expect(sofar).toBe('<p><a href="https://benefits.example.com/first">first</a></p>');
    t.transform.destroy();
  });
});

describe('createBodyTranslation — charsets', () => {
  it('keeps every byte of a windows-1252 page that is not a translated URL', async () => {
    const page = fixture('windows-1252.html');
    for (const contentType of [
      'text/html',
      'text/html; charset=ISO-8859-1',
      'text/html; charset=windows-1252',
    ]) {
      const t = createBodyTranslation(
        { headers: { 'content-type': contentType } },
        { map, app: 'Expenses' },
      )!;
      const out = await run(t.transform, chunked(page, 1));
      expect(out.equals(fixture('translated/windows-1252.html'))).toBe(true);
      const text = new TextDecoder('windows-1252').decode(out);
      expect(text).toContain('Spesenübersicht — “Reisekosten” für Jürgen Müller');
      expect(text).toContain('<a href="https://books.example.com/katalog?q=Straße">');
      expect(text).toContain(
        'href="https://expenses.example.com/Berichte/Übersicht.aspx?Jahr=2025&amp;Währung=€"',
      );
      expect(text).toContain('<a href="http://feedback.corp.local/Rückmeldung">');
    }
  });

  it('reads an IDN host in UTF-8 and in the page’s declared charset', () => {
    const utf8 = Buffer.from('<a href="http://bücher.corp.local/x">b</a>', 'utf8');
    const latin1 = Buffer.from('<a href="http://bücher.corp.local/x">b</a>', 'latin1');
    const rewrite = (b: Buffer, charset?: string) => {
      const r = createBodyRewriter('html', { map, ...(charset && { charset }) });
      return Buffer.concat([r.write(b), r.end()]).toString('latin1');
    };
    expect(rewrite(utf8)).toBe('<a href="https://books.example.com/x">b</a>');
    expect(rewrite(latin1)).toBe('<a href="https://books.example.com/x">b</a>');
    expect(rewrite(latin1, 'iso-8859-1')).toBe('<a href="https://books.example.com/x">b</a>');
  });

  it('passes a UTF-16 page (by its BOM) through untouched', async () => {
    const page = Buffer.concat([
      Buffer.from([0xff, 0xfe]),
      Buffer.from('<a href="http://benefits.corp.local/">x</a>', 'utf16le'),
    ]);
    const t = createBodyTranslation({ headers: { 'content-type': 'text/html' } }, { map })!;
    expect((await run(t.transform, chunked(page, 1))).equals(page)).toBe(true);
  });
});

describe('the reference’s link translation example', () => {
  // Benefits, Expenses and Travel are published and link to each other; Feedback is not published.
  const published = new UrlMap([
    {
      name: 'Benefits',
      internalUrl: 'http://benefits/',
      externalUrl: 'https://benefits-contoso.msappproxy.net/',
    },
    {
      name: 'Expenses',
      internalUrl: 'http://expenses/',
      externalUrl: 'https://expenses-contoso.msappproxy.net/',
    },
    {
      name: 'Travel',
      internalUrl: 'http://travel/',
      externalUrl: 'https://travel-contoso.msappproxy.net/',
    },
  ]);
  const page = Buffer.from(
    '<ul><li><a href="http://expenses/report">Expenses</a><li><a href="http://travel/book">Travel</a>' +
      '<li><a href="http://feedback/">Feedback</a><li><a href="http://benefits/plans">Plans</a></ul>',
  );

  it('with translation on for Benefits, links to Expenses and Travel go to their external URLs; Feedback stays', async () => {
    const t = createBodyTranslation(
      { headers: { 'content-type': 'text/html' } },
      { map: published, app: 'Benefits' },
    )!;
    expect((await run(t.transform, chunked(page, 7))).toString()).toBe(
      '<ul><li><a href="https://expenses-contoso.msappproxy.net/report">Expenses</a><li><a href="https://travel-contoso.msappproxy.net/book">Travel</a>' +
        '<li><a href="http://feedback/">Feedback</a><li><a href="https://benefits-contoso.msappproxy.net/plans">Plans</a></ul>',
    );
  });
});

describe('bounded memory', () => {
  const MAX = 65_536;
  const pathological: [string, string, string][] = [
    ['an unterminated attribute value', '<a title="', 'x'],
    ['a URL attribute of whitespace', '<a href="', ' '],
    ['a URL attribute that may still be javascript:', '<a href="javascript', ':'],
    ['an unterminated srcset', '<img srcset="http://benefits.corp.local/a.png 1x, ', 'b.png 2x, '],
    ['an unterminated <meta content>', '<meta http-equiv=refresh content="0; url=', 'x'],
    ['an unterminated <script> (scripts on)', '<script>var a = "', 'http://benefits.corp.local/x '],
    ['an unterminated <style>', '<style>a{b:c}', 'd{e:url( x ) f}'],
    ['url( followed by whitespace', '<style>a{background:url(', ' '],
    ['an endless tag name', '<', 'a'],
    ['an endless attribute name', '<a ', 'b'],
    ['an unterminated comment', '<!--', '<a href="http://benefits.corp.local/">'],
    [
      'an endless style attribute',
      '<div style="',
      'background:url(http://benefits.corp.local/i.png);',
    ],
  ];

  it.each(pathological)(
    '%s: held input stays under the bound, output is complete',
    (_name, head, unit) => {
      const r = createBodyRewriter('html', { map, scripts: true, maxPendingBytes: MAX });
      let inLength = 0;
      let outLength = 0;
      const block = Buffer.from(unit.repeat(Math.ceil(1024 / unit.length)));
      outLength += r.write(Buffer.from(head)).length;
      inLength += head.length;
      for (let i = 0; i < 2048; i++) {
        outLength += r.write(block).length;
        inLength += block.length;
      }
      outLength += r.end().length;
      expect(r.maxHeldBytes).toBeLessThanOrEqual(MAX + 2 * 1024);
      expect(outLength).toBeGreaterThanOrEqual(inLength);
    },
  );

  it('a 64 MiB page streams with backpressure: the transform never buffers more than a few chunks', async () => {
    const unit = fixture('jenkins-dashboard.html');
    const total = 64 * 1024 * 1024;
    let produced = 0;
    const source = Readable.from(
      (function* () {
        while (produced < total) {
          produced += unit.length;
          yield unit;
        }
      })(),
      { objectMode: false },
    );
    const t = createBodyTranslation(
      { headers: { 'content-type': 'text/html' } },
      { map, app: 'Jenkins' },
    )!;
    let received = 0;
    let peakBuffered = 0;
    let translated = 0;
    const expectedUnit = fixture('translated/jenkins-dashboard.html');
    await pipeline(
      source,
      t.transform,
      new Writable({
        highWaterMark: 16 * 1024,
        write(c: Buffer, _e, cb) {
          received += c.length;
          if (c.includes('https://ci.example.com/')) translated++;
          peakBuffered = Math.max(
            peakBuffered,
            t.transform.readableLength + t.transform.writableLength,
          );
          // A slow consumer: every 64th chunk waits a tick.
          if (received % 64 === 0) setImmediate(cb);
          else cb();
        },
      }),
    );
    expect(received).toBe((produced / unit.length) * expectedUnit.length);
    expect(translated).toBeGreaterThan(0);
    expect(peakBuffered).toBeLessThan(512 * 1024);
  });

  it('a zip bomb (32 MiB from ~32 KiB of gzip) inflates only as fast as the client reads', async () => {
    const bomb = zlib.gzipSync(Buffer.alloc(32 * 1024 * 1024, '<p>a</p>'), { level: 9 });
    expect(bomb.length).toBeLessThan(64 * 1024);
    for (const encode of ['same', 'identity'] as const) {
      const t = createBodyTranslation(html({ 'content-encoding': 'gzip' }), { map, encode })!;
      let peak = 0;
      let received = 0;
      await pipeline(
        Readable.from(chunked(bomb, 1024)),
        t.transform,
        new Writable({
          highWaterMark: 16 * 1024,
          write(c: Buffer, _e, cb) {
            received += c.length;
            peak = Math.max(peak, t.transform.readableLength);
            setImmediate(cb);
          },
        }),
      );
      expect(received).toBeGreaterThan(0);
      expect(peak).toBeLessThan(1024 * 1024);
    }
  });

  it('a paused consumer stops the producer', async () => {
    let produced = 0;
    const source = new Readable({
      read() {
        produced += 16 * 1024;
        this.push(Buffer.alloc(16 * 1024, 'a'));
      },
    });
    const t = createBodyTranslation({ headers: { 'content-type': 'text/css' } }, { map })!;
    source.pipe(t.transform);
    await sleep(200);
    expect(produced).toBeLessThan(1024 * 1024);
    source.destroy();
    t.transform.destroy();
  });
});

describe('options', () => {
  it('refuse an unknown app and a tiny pending bound', () => {
    expect(() => createBodyRewriter('html', { map, app: 'Nope' })).toThrow(
      expect.objectContaining({ code: 'APPPROXY_TRANSLATE_INVALID_OPTION' }),
    );
    expect(() => createBodyRewriter('html', { map, maxPendingBytes: 10 })).toThrow(
      expect.objectContaining({ code: 'APPPROXY_TRANSLATE_INVALID_OPTION' }),
    );
  });
});
