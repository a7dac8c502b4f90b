import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { LineCounter, parseDocument } from 'yaml';
import type * as z from 'zod';
import { substituteEnv } from './env.js';
import { ConfigError, type ConfigIssue } from './errors.js';
import { crossCheck, type PathIssue } from './internal/cross-checks.js';
import { SourceLocator } from './internal/locate.js';
import { issueMessage, unknownKeyMessage } from './internal/messages.js';
import { formatPath, isUnder, type DocPath } from './internal/path.js';
import { readPageTemplates } from './pages.js';
import { relayConfigSchema, type RelayConfig } from './schema.js';

/** Options of {@link parseConfig}. */
export interface ParseConfigOptions {
  /** Where `${NAME}` references are looked up. @default process.env */
  env?: NodeJS.ProcessEnv;
  /** Name of the source in messages. @default 'appproxy.yaml' */
  sourceName?: string;
  /** Folder relative paths (`stateDir`, certificates) are resolved against. @default process.cwd() */
  baseDir?: string;
}

/** Options of {@link loadConfig}. */
export interface LoadConfigOptions {
  /** Where `${NAME}` references are looked up. @default process.env */
  env?: NodeJS.ProcessEnv;
}

/**
 * Reads and validates an `appproxy.yaml`. Relative paths in it are resolved against the
 * file's folder.
 *
 * @throws {ConfigError} `APPPROXY_CONFIG_UNREADABLE` when the file cannot be read;
 * `APPPROXY_CONFIG_INVALID` listing every issue (`file:line:col path: message`) otherwise.
 * @example
 * import { ConfigError, loadConfig } from '@appproxy/config';
 *
 * try {
 *   const config = await loadConfig('/etc/appproxy/appproxy.yaml');
 *   console.log(config.apps.map((a) => a.externalUrl));
 * } catch (err) {
 *   if (!(err instanceof ConfigError)) throw err;
 *   console.error(err.message);
 *   process.exitCode = 2;
 * }
 */
export async function loadConfig(file: string, opts: LoadConfigOptions = {}): Promise<RelayConfig> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const reason =
      e.code === 'ENOENT'
        ? 'no such file'
        : e.code === 'EISDIR'
          ? 'is a directory'
          : (e.code ?? e.message);
    throw new ConfigError(
      'APPPROXY_CONFIG_UNREADABLE',
      [{ path: '', message: `cannot read the configuration (${reason})` }],
      {
        sourceName: file,
        cause: err,
      },
    );
  }
  return parseConfig(text, { env: opts.env, sourceName: file, baseDir: dirname(resolve(file)) });
}

/**
 * Validates `appproxy.yaml` text and returns it resolved: `${NAME}` / `${NAME:-default}`
 * substituted (`$${` is a literal `${`), every default applied, paths absolute.
 *
 * @throws {ConfigError} `APPPROXY_CONFIG_INVALID` listing every issue found, not just the first.
 * @example
 * import { parseConfig } from '@appproxy/config';
 *
 * const yaml = [
 *   'relay:',
 *   '  listen: 0.0.0.0:443',
 *   '  tunnelListen: :8443',
 *   '  certificates: [{ cert: ./tls/site.pem, key: ./tls/site-key.pem }]', // must exist under baseDir
 *   'apps:',
 *   '  - name: Wiki',
 *   '    internalUrl: http://wiki.corp.local',
 *   '    externalUrl: https://wiki.example.com',
 *   '    preAuthentication: passthrough',
 * ].join('\n');
 * const config = parseConfig(yaml, { baseDir: '/etc/appproxy', env: {} });
 * config.apps[0].internalUrl; // 'http://wiki.corp.local/'
 * config.apps[0].backendTimeoutMs; // 85000
 */
export function parseConfig(text: string, opts: ParseConfigOptions = {}): RelayConfig {
  const sourceName = opts.sourceName ?? 'appproxy.yaml';
  const baseDir = resolve(opts.baseDir ?? process.cwd());
  const fail = (issues: ConfigIssue[]) =>
    new ConfigError('APPPROXY_CONFIG_INVALID', issues, { sourceName });

  const lineCounter = new LineCounter();
  // merge: `<<: *defaults` works as in docker compose files.
  const doc = parseDocument(text, {
    lineCounter,
    prettyErrors: false,
    uniqueKeys: true,
    merge: true,
  });
  const locator = new SourceLocator(doc, lineCounter);
  if (doc.errors.length > 0) {
    throw fail(
      doc.errors.map((e) => ({
        path: '',
        message: e.message.split('\n')[0]!,
        ...locator.at(e.pos[0]),
      })),
    );
  }
  let raw: unknown;
  try {
    raw = doc.toJS() ?? {};
  } catch (err) {
    // e.g. too many alias expansions ("billion laughs").
    throw fail([{ path: '', message: (err as Error).message }]);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw fail([
      {
        path: '',
        message: 'must be a mapping with relay, identityProvider, connectorGroups and apps',
        ...locator.locate([]),
      },
    ]);
  }

  const env = substituteTree(raw, opts.env ?? process.env);
  const issues: PathIssue[] = [...env.issues];

  const knownKeys = new Map<string, string[]>();
  const parsed = relayConfigSchema.safeParse(env.value, {
    error: (iss) => {
      if (iss.code === 'unrecognized_keys') {
        const shape = (iss.inst as { shape?: Record<string, unknown> } | undefined)?.shape;
        knownKeys.set(formatPath((iss.path ?? []) as DocPath), Object.keys(shape ?? {}));
      }
      return issueMessage(iss);
    },
  });
  if (!parsed.success) issues.push(...fromZod(parsed.error.issues, knownKeys, env.value));
  issues.push(
    ...crossCheck(env.value, { baseDir, template: (path) => env.templates.get(formatPath(path)) }),
  );

  // A value with a missing variable is reported once, for the variable.
  const reported = issues.filter(
    (issue, i) => i < env.issues.length || !env.issues.some((e) => isUnder(issue.path, e.path)),
  );
  if (reported.length > 0 || !parsed.success) throw fail(locateAll(reported, locator));

  const config = parsed.data;
  config.relay.stateDir = resolve(baseDir, config.relay.stateDir);
  config.relay.certificates = config.relay.certificates.map((p) =>
    'pfx' in p
      ? { ...p, pfx: resolve(baseDir, p.pfx) }
      : { cert: resolve(baseDir, p.cert), key: resolve(baseDir, p.key) },
  );
  if (config.relay.pages)
    config.relay.pages = readPageTemplates(resolve(baseDir, config.relay.pages.dir)).pages;
  if (config.relay.acme?.caBundle)
    config.relay.acme.caBundle = resolve(baseDir, config.relay.acme.caBundle);
  for (const app of config.apps) {
    const t = app.backendTls;
    if (t)
      for (const k of ['ca', 'cert', 'key'] as const)
        if (t[k] !== undefined) t[k] = resolve(baseDir, t[k]);
  }
  return config;
}

function fromZod(
  list: readonly z.core.$ZodIssue[],
  knownKeys: Map<string, string[]>,
  input: unknown,
): PathIssue[] {
  const out: PathIssue[] = [];
  for (const issue of list) {
    const path = issue.path as DocPath;
    if (issue.code === 'unrecognized_keys') {
      const known = knownKeys.get(formatPath(path)) ?? [];
      for (const key of issue.keys)
        out.push({ path: [...path, key], message: unknownKeyMessage(key, known), target: 'key' });
    } else {
      // Schema-level messages (e.g. of unions) would otherwise describe a missing key as a bad value.
      out.push({
        path,
        message: valueAt(input, path) === undefined ? 'is required' : issue.message,
      });
    }
  }
  return out;
}

function valueAt(root: unknown, path: DocPath): unknown {
  let v = root;
  for (const seg of path) {
    if (typeof v !== 'object' || v === null || !Object.hasOwn(v, seg)) return undefined;
    v = (v as Record<string | number, unknown>)[seg];
  }
  return v;
}

function locateAll(issues: PathIssue[], locator: SourceLocator): ConfigIssue[] {
  const seen = new Set<string>();
  const located: ConfigIssue[] = [];
  for (const issue of issues) {
    const path = formatPath(issue.path);
    const id = `${path}\0${issue.message}`;
    if (seen.has(id)) continue;
    seen.add(id);
    const pos = locator.locate(issue.path, issue.target);
    located.push({
      path,
      message: issue.message,
      ...(pos && { line: pos.line, column: pos.column }),
    });
  }
  // Source order; issues without a position (rare) keep their order at the end.
  return located
    .map((issue, i) => ({ issue, i }))
    .sort(
      (a, b) =>
        (a.issue.line ?? Infinity) - (b.issue.line ?? Infinity) ||
        (a.issue.column ?? 0) - (b.issue.column ?? 0) ||
        a.i - b.i,
    )
    .map(({ issue }) => issue);
}

interface SubstitutedTree {
  value: unknown;
  issues: PathIssue[];
  /** Formatted path → the string as written, for every string that took a variable's value. */
  templates: Map<string, string>;
}

/** `${NAME}` substitution in every string value (not in keys). */
function substituteTree(root: unknown, env: NodeJS.ProcessEnv): SubstitutedTree {
  const issues: PathIssue[] = [];
  const templates = new Map<string, string>();
  const walk = (v: unknown, path: (string | number)[]): unknown => {
    if (typeof v === 'string') {
      const s = substituteEnv(v, env);
      if (s.error) issues.push({ path, message: s.error });
      for (const name of new Set(s.missing))
        issues.push({ path, message: `environment variable ${name} is not set` });
      if (s.substituted) templates.set(formatPath(path), v);
      return s.value;
    }
    if (Array.isArray(v)) return v.map((item, i) => walk(item, [...path, i]));
    if (typeof v === 'object' && v !== null) {
      return Object.fromEntries(
        Object.entries(v).map(([k, item]) => [k, walk(item, [...path, k])]),
      );
    }
    return v;
  };
  return { value: walk(root, []), issues, templates };
}
