// docs/monitoring: the Grafana dashboard and the Prometheus alert rules use only metrics the
// relay (workers primary included) and the connector export, and the rules do what their
// promtool unit tests say.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, Stack, freePort, systemTool } from './harness.js';

const DIR = join(ROOT, 'docs', 'monitoring');
const read = (file: string) => readFileSync(join(DIR, file), 'utf8');

/** Series Prometheus itself makes up (none are used today; listed so a use is deliberate). */
const PROMETHEUS_OWN = new Set(['up']);
const KEYWORDS = new Set([
  'by',
  'without',
  'on',
  'ignoring',
  'group_left',
  'group_right',
  'bool',
  'and',
  'or',
  'unless',
  'offset',
  'inf',
  'nan',
]);

/** The metric names a PromQL expression (or Grafana query) reads. */
function metricNames(expr: string): string[] {
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""') // strings (label values, label_values' args are not)
    .replace(/\{[^}]*\}/g, '') // label matchers
    .replace(/\[[^\]]*\]/g, '') // ranges
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, '') // label lists
    .replace(/label_values\(([^,)]+),[^)]*\)/g, '$1') // Grafana: label_values(metric, label)
    .replace(/\$\{?\w+\}?/g, '') // Grafana variables
    .replace(/\b\d+(?:\.\d+)?(?:e[+-]?\d+)?(?:ms|s|m|h|d|w|y)?\b/gi, ''); // numbers, durations
  const names = new Set<string>();
  for (const m of bare.matchAll(/[A-Za-z_:][A-Za-z0-9_:]*(?=\s*(\()?)/g)) {
    if (m[1] || KEYWORDS.has(m[0].toLowerCase())) continue; // functions, keywords
    names.add(m[0]);
  }
  return [...names];
}

function alertExpressions(): Array<{ where: string; expr: string }> {
  const doc = parse(read('appproxy-alerts.yml')) as {
    groups: Array<{ name: string; rules: Array<{ alert: string; expr: string }> }>;
  };
  return doc.groups.flatMap((g) =>
    g.rules.map((r) => ({ where: `alert ${r.alert}`, expr: r.expr })),
  );
}

interface Panel {
  title: string;
  panels?: Panel[];
  targets?: Array<{ expr: string }>;
}
function dashboardExpressions(): Array<{ where: string; expr: string }> {
  const doc = JSON.parse(read('appproxy-dashboard.json')) as {
    panels: Panel[];
    templating: { list: Array<{ name: string; query: unknown }> };
  };
  const walk = (p: Panel): Array<{ where: string; expr: string }> => [
    ...(p.targets ?? []).map((t) => ({ where: `panel "${p.title}"`, expr: t.expr })),
    ...(p.panels ?? []).flatMap(walk),
  ];
  return [
    ...doc.panels.flatMap(walk),
    ...doc.templating.list
      .filter((v) => typeof v.query === 'string' && v.query.startsWith('label_values('))
      .map((v) => ({ where: `variable $${v.name}`, expr: v.query as string })),
  ];
}

/** Family names from `# TYPE` lines, plus the sample names a histogram family owns. */
function exported(text: string): Set<string> {
  const names = new Set<string>();
  for (const m of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    names.add(m[1]!);
    if (m[2] === 'histogram') for (const s of ['_bucket', '_sum', '_count']) names.add(m[1] + s);
  }
  return names;
}

let stack: Stack;
let connectorMetricsPort: number;

beforeAll(async () => {
  connectorMetricsPort = await freePort();
  // Workers: the primary's own series (appproxy_relay_workers…) are in the scrape too.
  stack = await new Stack({
    workers: 2,
    connectorArgs: ['--metrics-listen', `127.0.0.1:${connectorMetricsPort}`],
    apps: [
      {
        name: 'Monitored',
        internalUrl: `http://127.0.0.1:${await freePort()}/`,
        externalUrl: 'https://monitored.apps.localhost/',
      },
    ],
  }).start();
}, 60_000);

afterAll(async () => {
  await stack?.stop();
});

describe('docs/monitoring', () => {
  it('reads metric names out of PromQL the way Prometheus would', () => {
    expect(
      metricNames(
        'histogram_quantile(0.99, sum by (le, app) (rate(a_seconds_bucket{app=~"$app",x="by(y)"}[5m]))) / on (app) group_left b_total offset 5m > 3 * 86400 and time() - c',
      ).sort(),
    ).toStrictEqual(['a_seconds_bucket', 'b_total', 'c']);
    expect(metricNames('label_values(appproxy_connectors, group)')).toStrictEqual([
      'appproxy_connectors',
    ]);
  });

  it('every metric the dashboard and the alert rules use is exported', async () => {
    const relay = await (await fetch(`http://127.0.0.1:${stack.ports.admin}/metrics`)).text();
    const connector = await (
      await fetch(`http://127.0.0.1:${connectorMetricsPort}/metrics`)
    ).text();
    const have = new Set([...exported(relay), ...exported(connector), ...PROMETHEUS_OWN]);
    // The scrape is whole: the primary's series and the workers' merged ones.
    expect(have).toContain('appproxy_relay_workers');
    expect(have).toContain('appproxy_certificate_expiry_timestamp_seconds');
    expect(have).toContain('appproxy_connector_requests_total');
    // Both workers count the one connector from the store: merged, it is still one, and the
    // certificate's expiry is a time, not a sum of two.
    expect(relay).toMatch(/^appproxy_connectors\{group="Default",state="active"\} 1$/m);
    const expiry =
      /^appproxy_certificate_expiry_timestamp_seconds\{[^}]*source="configured"\} (\S+)$/m.exec(
        relay,
      );
    expect(Number(expiry?.[1])).toBeLessThan(Date.now() / 1000 + 20 * 365 * 86400);

    const uses = [...alertExpressions(), ...dashboardExpressions()];
    expect(uses.length).toBeGreaterThan(30);
    const used = new Set(uses.flatMap((u) => metricNames(u.expr)));
    // The three alerts the issue names read these.
    for (const name of [
      'appproxy_connectors',
      'appproxy_requests_total',
      'appproxy_certificate_expiry_timestamp_seconds',
    ])
      expect(used).toContain(name);
    const missing = uses.flatMap((u) =>
      metricNames(u.expr)
        .filter((n) => !have.has(n))
        .map((n) => `${u.where}: ${n}`),
    );
    expect(missing).toStrictEqual([]);
  });

  it('the dashboard is a Grafana dashboard with a data source input and unique panel ids', () => {
    const doc = JSON.parse(read('appproxy-dashboard.json')) as {
      uid: string;
      schemaVersion: number;
      panels: Array<{ id: number; type: string; datasource?: { uid: string } }>;
    };
    expect(doc.uid).toBe('appproxy-overview');
    expect(doc.schemaVersion).toBeGreaterThanOrEqual(36);
    const ids = doc.panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const p of doc.panels.filter((p) => p.type !== 'row'))
      expect(p.datasource?.uid).toBe('${datasource}');
  });

  const promtool = systemTool('promtool', 'prometheus');
  it.runIf(promtool)('promtool accepts the rules and their unit tests pass', () => {
    const run = (...args: string[]) =>
      execFileSync(promtool!, args, { cwd: DIR, encoding: 'utf8', stdio: 'pipe' });
    expect(run('check', 'rules', 'appproxy-alerts.yml')).toContain('SUCCESS: 8 rules found');
    expect(run('test', 'rules', 'appproxy-alerts.test.yml')).toContain('SUCCESS');
  });
});
