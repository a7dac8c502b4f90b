import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

/**
 * The relay’s pages a template may replace (`relay.pages.dir`): `error.html` for every
 * error, `forbidden.html` for the 403 refusals, `maintenance.html` for `MAINTENANCE`,
 * `signin.html` for the sign-in interstitial. `forbidden` and `maintenance` fall back to
 * `error.html`, then to the built-in page; `signin` to the built-in one.
 */
export const PAGE_TEMPLATES = ['error', 'forbidden', 'maintenance', 'signin'] as const;
export type PageTemplateName = (typeof PAGE_TEMPLATES)[number];

/** `{{name}}` a template may use; every value is HTML-escaped. */
export const PAGE_VARIABLES = [
  'code',
  'correlationId',
  'app',
  'user',
  'time',
  'title',
  'hint',
] as const;
export type PageVariable = (typeof PAGE_VARIABLES)[number];

/** Largest template read. */
const MAX_TEMPLATE_BYTES = 256 * 1024;

/** One template, checked and split at its variables. */
export interface PageTemplate {
  /** Absolute path it was read from. */
  file: string;
  /** Text and variables in order: strings are copied, `{ v }` is replaced (escaped). */
  parts: Array<string | { v: PageVariable }>;
  /**
   * CSP sources (`'sha256-…'`) of its inline `<style>` elements, which contain no
   * variables, so the hash is known at load.
   */
  styleHashes: string[];
}

/** `relay.pages`, resolved: the directory and the templates found in it. */
export interface PagesConfig {
  /** Absolute. */
  dir: string;
  templates: Partial<Record<PageTemplateName, PageTemplate>>;
}

const VARIABLE = /\{\{([^{}]*)\}\}/g;
const STYLE = /<style\b[^>]*>([\s\S]*?)<\/style\s*>/gi;

/**
 * Checks one template: only known variables, none inside `<style>`, no `<script>` (the pages'
 * CSP allows none; the sign-in page gets the relay's own hashed script), and for `signin` a
 * `</head>` to put it before. Returns the problem as a sentence, or the compiled template.
 */
export function compilePageTemplate(
  name: PageTemplateName,
  file: string,
  text: string,
): PageTemplate | string {
  if (/<script\b/i.test(text))
    return 'must not contain <script> (the pages’ Content-Security-Policy allows no inline script)';
  if (name === 'signin' && !/<\/head\s*>/i.test(text))
    return 'must have a </head>: the relay puts its sign-in script before it';
  const styleHashes: string[] = [];
  for (const [, css] of text.matchAll(STYLE)) {
    if (css!.includes('{{')) return 'must not use {{variables}} inside <style>';
    styleHashes.push(`'sha256-${createHash('sha256').update(css!).digest('base64')}'`);
  }
  const parts: PageTemplate['parts'] = [];
  let last = 0;
  for (const m of text.matchAll(VARIABLE)) {
    const v = m[1]!.trim();
    if (!(PAGE_VARIABLES as readonly string[]).includes(v))
      return `unknown variable {{${m[1]}}} (known: ${PAGE_VARIABLES.map((k) => `{{${k}}}`).join(', ')})`;
    parts.push(text.slice(last, m.index), { v: v as PageVariable });
    last = m.index + m[0].length;
  }
  parts.push(text.slice(last));
  return { file, parts, styleHashes };
}

/**
 * Reads the templates of `relay.pages.dir`. Problems are sentences about the directory or a
 * file in it (`error.html: …`); an `.html` file that is no known template is one (a typo
 * would otherwise silently keep the built-in page).
 */
export function readPageTemplates(dir: string): { pages: PagesConfig; problems: string[] } {
  const pages: PagesConfig = { dir, templates: {} };
  const problems: string[] = [];
  let names: string[];
  try {
    if (!statSync(dir).isDirectory()) return { pages, problems: [`not a directory: ${dir}`] };
    names = readdirSync(dir).sort();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return {
      pages,
      problems: [
        code === 'ENOENT' || code === 'ENOTDIR'
          ? `directory not found: ${dir}`
          : `cannot read directory (${code ?? 'error'}): ${dir}`,
      ],
    };
  }
  for (const entry of names) {
    if (!entry.toLowerCase().endsWith('.html')) continue;
    const name = entry.slice(0, -5) as PageTemplateName;
    if (!PAGE_TEMPLATES.includes(name)) {
      problems.push(
        `${entry}: not a page template (known: ${PAGE_TEMPLATES.map((t) => `${t}.html`).join(', ')})`,
      );
      continue;
    }
    const file = join(dir, entry);
    let text: string;
    try {
      if (statSync(file).size > MAX_TEMPLATE_BYTES) {
        problems.push(`${entry}: larger than ${MAX_TEMPLATE_BYTES / 1024} KiB`);
        continue;
      }
      text = readFileSync(file, 'utf8');
    } catch (err) {
      problems.push(`${entry}: cannot read (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
      continue;
    }
    const compiled = compilePageTemplate(name, file, text);
    if (typeof compiled === 'string') problems.push(`${entry}: ${compiled}`);
    else pages.templates[name] = compiled;
  }
  return { pages, problems };
}
