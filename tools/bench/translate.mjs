// `npm run bench:translate [-- --quick]`: MB/s of HTML link translation on the corpus of
// packages/translate/src/__fixtures__, whole and in 1 KiB chunks, beside htmlparser2's own
// Parser and Tokenizer with no-op handlers and Cloudflare's lol-html (html-rewriter-wasm) doing
// the same job. A benchmark, not a test: it prints a table and writes
// bench/translate-results.json; nothing gates on it.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import zlib from 'node:zlib';
import { HTMLRewriter } from 'html-rewriter-wasm';
import { Parser, Tokenizer } from 'htmlparser2';
import { createBodyRewriter, createBodyTranslation, UrlMap } from '@appproxy/translate';

const quick = process.argv.includes('--quick');
const SECONDS = quick ? 0.5 : 2;
const CHUNK = 1024;
const fixtures = new URL('../../packages/translate/src/__fixtures__/', import.meta.url);
const read = (name) => readFileSync(new URL(name, fixtures));
const map = new UrlMap(JSON.parse(read('apps.json').toString()));

const CORPUS = [
  ['sharepoint-portal.html', 'HR site'],
  ['jenkins-dashboard.html', 'Jenkins'],
  ['aspnet-webforms.html', 'Expenses'],
  ['inline-svg.html', 'Travel'],
  ['legacy-malformed.html', 'Benefits'],
  ['windows-1252.html', 'Expenses'],
].map(([file, app]) => ({ file, app, bytes: read(file) }));

function chunks(buf, size) {
  if (size === Infinity) return [buf];
  const out = [];
  for (let i = 0; i < buf.length; i += size) out.push(buf.subarray(i, i + size));
  return out;
}

/**
 * Runs `fn` (sync or async) over the inputs for SECONDS after a warm-up. Returns MB/s of input
 * per CPU-second of this process (all its threads: zlib's pool, GC) — "per core", and robust
 * to other load on a shared machine — and per wall-clock second.
 */
async function measure(fn, inputs) {
  const bytes = inputs.reduce((n, i) => n + i.length, 0);
  const deadline = (s) => performance.now() + s * 1000;
  for (let end = deadline(SECONDS / 2); performance.now() < end;) await fn();
  let rounds = 0;
  const start = performance.now();
  const cpu = process.cpuUsage();
  for (let end = deadline(SECONDS); performance.now() < end; rounds++) await fn();
  const used = process.cpuUsage(cpu);
  const cpuSeconds = (used.user + used.system) / 1e6;
  const wallSeconds = (performance.now() - start) / 1000;
  return { cpu: (bytes * rounds) / cpuSeconds / 1e6, wall: (bytes * rounds) / wallSeconds / 1e6 };
}

const noop = () => {};
const tokenizerCallbacks = Object.fromEntries(
  [
    'onattribdata',
    'onattribentity',
    'onattribend',
    'onattribname',
    'oncdata',
    'onclosetag',
    'oncomment',
    'ondeclaration',
    'onend',
    'onopentagend',
    'onopentagname',
    'onprocessinginstruction',
    'onselfclosingtag',
    'ontext',
    'ontextentity',
  ].map((k) => [k, noop]),
);

// The attributes lol-html is asked to rewrite: the same URL-bearing set as ours, minus the
// ones that need parsing (srcset, style, meta refresh), which lol-html leaves to the handler.
const LOL_ATTRIBUTES = [
  'href',
  'src',
  'action',
  'formaction',
  'poster',
  'background',
  'cite',
  'data',
  'xlink:href',
  'data-src',
];

const contenders = {
  'htmlparser2 Parser, no-op handlers': (pages) => {
    for (const parts of pages) {
      const p = new Parser({});
      for (const c of parts) p.write(c.toString('latin1'));
      p.end();
    }
  },
  'htmlparser2 Tokenizer, no-op callbacks': (pages) => {
    for (const parts of pages) {
      const t = new Tokenizer({ decodeEntities: false }, tokenizerCallbacks);
      for (const c of parts) t.write(c.toString('latin1'));
      t.end();
    }
  },
  '@appproxy/translate': (pages, apps) => {
    for (const [i, parts] of pages.entries()) {
      const r = createBodyRewriter('html', { map, app: apps[i] });
      for (const c of parts) r.write(c);
      r.end();
    }
  },
  '@appproxy/translate, scripts on': (pages, apps) => {
    for (const [i, parts] of pages.entries()) {
      const r = createBodyRewriter('html', { map, app: apps[i], scripts: true });
      for (const c of parts) r.write(c);
      r.end();
    }
  },
  // translateRootRelative: string literals in inline scripts that start with the app's
  // internal path (the corpus's HR site and Travel apps have one) — its cost beside scripts on.
  '@appproxy/translate, + rootRelative': (pages, apps) => {
    for (const [i, parts] of pages.entries()) {
      const r = createBodyRewriter('html', {
        map,
        app: apps[i],
        scripts: true,
        rootRelative: true,
      });
      for (const c of parts) r.write(c);
      r.end();
    }
  },
  'lol-html (html-rewriter-wasm)': async (pages, apps) => {
    for (const [i, parts] of pages.entries()) {
      // Output chunks are views into wasm memory; a proxy would write them out at once.
      const rewriter = new HTMLRewriter(noop);
      for (const name of LOL_ATTRIBUTES) {
        rewriter.on(`[${name.replace(':', '\\:')}]`, {
          element(el) {
            const v = el.getAttribute(name);
            const t = v && map.toExternal(v.trim(), apps[i]);
            if (t) el.setAttribute(name, t);
          },
        });
      }
      try {
        for (const c of parts) await rewriter.write(c);
        await rewriter.end();
      } finally {
        rewriter.free();
      }
    }
  },
};

async function pipelineRate(coding, encode, page, app, size) {
  const compress = { identity: (b) => b, gzip: zlib.gzipSync, br: zlib.brotliCompressSync }[coding];
  const body = chunks(compress(page), size);
  const run = async () => {
    const t = createBodyTranslation(
      { statusCode: 200, headers: { 'content-type': 'text/html', 'content-encoding': coding } },
      { map, app, encode },
    );
    await pipeline(Readable.from(body), t.transform, new Writable({ write: (_c, _e, cb) => cb() }));
  };
  return measure(run, [page]);
}

const sharepoint = CORPUS[0];
const inputs = [
  {
    label: `SharePoint-like page (${(sharepoint.bytes.length / 1024).toFixed(0)} KiB)`,
    pages: [sharepoint],
  },
  {
    label: `whole corpus (${CORPUS.length} pages, ${(CORPUS.reduce((n, p) => n + p.bytes.length, 0) / 1024).toFixed(0)} KiB)`,
    pages: CORPUS,
  },
];

// lol-html refuses some legacy markup outright (e.g. a <textarea> where it cannot tell raw
// text from markup); it is measured on the pages it accepts, and the table says which it refused.
const lolRefused = new Set();
for (const page of CORPUS) {
  try {
    await contenders['lol-html (html-rewriter-wasm)']([[page.bytes]], [page.app]);
  } catch {
    lolRefused.add(page.file);
  }
}

const results = [];
process.stderr.write(
  `machine: ${cpus().length} × ${cpus()[0]?.model ?? '?'}, Node ${process.version}, load ${loadavg()
    .map((l) => l.toFixed(1))
    .join(' ')}${quick ? ', --quick' : ''}\n`,
);
for (const input of inputs) {
  for (const [name, fn] of Object.entries(contenders)) {
    const row = { input: input.label, contender: name };
    const accepted = name.startsWith('lol-html')
      ? input.pages.filter((p) => !lolRefused.has(p.file))
      : input.pages;
    if (accepted.length < input.pages.length)
      row.note = `refused ${input.pages
        .filter((p) => lolRefused.has(p.file))
        .map((p) => p.file)
        .join(', ')}; measured on the rest`;
    for (const [mode, size] of [
      ['whole', Infinity],
      ['1 KiB chunks', CHUNK],
    ]) {
      const pages = accepted.map((p) => chunks(p.bytes, size));
      const apps = accepted.map((p) => p.app);
      row[mode] = await measure(
        () => fn(pages, apps),
        accepted.map((p) => p.bytes),
      );
    }
    results.push(row);
    process.stderr.write('.');
  }
}
const streams = [];
for (const [coding, encode] of [
  ['identity', 'same'],
  ['gzip', 'same'],
  ['gzip', 'identity'],
  ['br', 'same'],
  ['br', 'identity'],
]) {
  const row = { coding, encode };
  for (const size of [CHUNK, 16 * 1024])
    row[size] = await pipelineRate(coding, encode, sharepoint.bytes, sharepoint.app, size);
  streams.push(row);
  process.stderr.write('.');
}
process.stderr.write('\n');

const pad = (s, n) => String(s).padEnd(n);
const num = (x) => x.cpu.toFixed(1).padStart(8);
for (const input of inputs) {
  process.stdout.write(`\n${input.label}: MB/s of input per CPU-second\n`);
  process.stdout.write(`${pad('', 40)} ${'whole'.padStart(8)} ${'1 KiB'.padStart(8)}\n`);
  for (const r of results.filter((x) => x.input === input.label))
    process.stdout.write(
      `${pad(r.contender, 40)} ${num(r.whole)} ${num(r['1 KiB chunks'])}${r.note ? `  (${r.note})` : ''}\n`,
    );
}
process.stdout.write(
  `\ncreateBodyTranslation Transform (a stream; zlib works in its thread pool), SharePoint-like page: MB/s of HTML per CPU-second\n`,
);
process.stdout.write(
  `${pad('backend coding → client coding', 40)} ${'1 KiB'.padStart(8)} ${'16 KiB'.padStart(8)}\n`,
);
for (const s of streams) {
  const label = `${s.coding} → ${s.encode === 'same' ? s.coding : 'identity'}`;
  process.stdout.write(`${pad(label, 40)} ${num(s[CHUNK])} ${num(s[16 * 1024])}\n`);
}

mkdirSync(new URL('../../bench/', import.meta.url), { recursive: true });
writeFileSync(
  new URL('../../bench/translate-results.json', import.meta.url),
  `${JSON.stringify({ date: new Date().toISOString(), node: process.version, cpus: cpus().length, cpu: cpus()[0]?.model, loadavg: loadavg(), quick, results, streams }, null, 2)}\n`,
);
