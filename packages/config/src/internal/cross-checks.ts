import { statSync } from 'node:fs';
import { resolve } from 'node:path';
import type { DocPath } from './path.js';
import { readPageTemplates } from '../pages.js';
import { checkAppUrl } from './urls.js';
import { wildcardAppIssues } from './wildcard.js';

/** An issue before it is located in the source. */
export interface PathIssue {
  path: DocPath;
  message: string;
  /** Point at the map key instead of the value (unknown keys). @default 'value' */
  target?: 'value' | 'key';
}

export interface CrossCheckContext {
  /** Folder relative paths are resolved against. */
  baseDir: string;
  /** The text as written in the file when the string at `path` came from `${VAR}` substitution. */
  template(path: DocPath): string | undefined;
}

const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Rules that span entries: unique names and external URLs, group references, OIDC apps need
 * an identity provider, certificate files exist. They run on the document as written (after
 * `${VAR}` substitution), skipping values of the wrong type (the schema reports those), so
 * they are reported together with schema issues.
 */
export function crossCheck(doc: unknown, ctx: CrossCheckContext): PathIssue[] {
  const issues: PathIssue[] = [];
  if (!isRecord(doc)) return issues;
  // Names are quoted in messages unless they came from the environment (may be secret).
  const quoted = (path: DocPath, v: string) =>
    ctx.template(path) === undefined ? ` ${JSON.stringify(v)}` : '';

  let groups: Set<string> | undefined = new Set(['Default']);
  if (Array.isArray(doc.connectorGroups)) {
    groups = new Set();
    const seen = new Map<string, number>();
    doc.connectorGroups.forEach((g, i) => {
      if (!isRecord(g) || typeof g.name !== 'string') return;
      const path = ['connectorGroups', i, 'name'];
      const first = seen.get(g.name);
      if (first !== undefined)
        issues.push({
          path,
          message: `duplicate connector group name${quoted(path, g.name)} (also connectorGroups[${first}])`,
        });
      else seen.set(g.name, i);
      groups!.add(g.name);
    });
  } else if (doc.connectorGroups !== undefined) {
    groups = undefined;
  }

  if (Array.isArray(doc.apps)) {
    const names = new Map<string, number>();
    const externals = new Map<string, number>();
    doc.apps.forEach((app, i) => {
      if (!isRecord(app)) return;
      if (typeof app.name === 'string') {
        const path = ['apps', i, 'name'];
        const first = names.get(app.name);
        if (first !== undefined)
          issues.push({
            path,
            message: `duplicate app name${quoted(path, app.name)} (also apps[${first}])`,
          });
        else names.set(app.name, i);
      }
      if (typeof app.externalUrl === 'string') {
        const checked = checkAppUrl(app.externalUrl, 'external');
        if (checked.ok) {
          const url = new URL(checked.url);
          const key = `${url.host}${url.pathname}`;
          const first = externals.get(key);
          if (first !== undefined)
            issues.push({
              path: ['apps', i, 'externalUrl'],
              message: `same external URL as apps[${first}]`,
            });
          else externals.set(key, i);
        }
      }
      if (typeof app.internalUrl === 'string' && typeof app.externalUrl === 'string') {
        const internal = checkAppUrl(app.internalUrl, 'internal');
        const external = checkAppUrl(app.externalUrl, 'external');
        if (internal.ok && external.ok)
          issues.push(
            ...wildcardAppIssues(
              {
                internalUrl: internal.url,
                externalUrl: external.url,
                preAuthentication: app.preAuthentication,
              },
              ['apps', i],
            ),
          );
      }
      const group = app.connectorGroup ?? 'Default';
      if (groups && typeof group === 'string' && group !== '' && !groups.has(group)) {
        const path = ['apps', i, 'connectorGroup'];
        const hint =
          app.connectorGroup === undefined
            ? ' (set connectorGroup, or add it to connectorGroups)'
            : '';
        const named =
          ctx.template(path) === undefined ? `named ${JSON.stringify(group)}` : 'by that name';
        issues.push({ path, message: `no connector group ${named}${hint}` });
      }
      const tls = app.backendTls;
      if (isRecord(tls))
        for (const k of ['ca', 'cert', 'key'] as const) {
          const v = tls[k];
          if (typeof v !== 'string' || v === '') continue;
          const path = ['apps', i, 'backendTls', k];
          const problem = fileProblem(resolve(ctx.baseDir, v));
          if (problem)
            issues.push({
              path,
              message: `${problem}: ${ctx.template(path) ?? resolve(ctx.baseDir, v)}`,
            });
        }
      if (app.preAuthentication === 'passthrough') {
        for (const key of ['assignment', 'rules', 'session', 'bearerAudiences', 'sso']) {
          if (app[key] !== undefined)
            issues.push({
              path: ['apps', i, key],
              target: 'key',
              message: 'applies only to preAuthentication: oidc',
            });
        }
      }
      if ((app.preAuthentication ?? 'oidc') === 'oidc' && doc.identityProvider === undefined) {
        issues.push({
          path: ['apps', i, 'preAuthentication'],
          message:
            'oidc requires an identityProvider section (or set preAuthentication: passthrough)',
        });
      }
    });
  }

  if (isRecord(doc.relay) && doc.relay.admins !== undefined && doc.identityProvider === undefined)
    issues.push({
      path: ['relay', 'admins'],
      message: 'the admin sign-in requires an identityProvider section',
    });

  if (isRecord(doc.portal) && typeof doc.portal.externalUrl === 'string') {
    const path = ['portal', 'externalUrl'];
    if (doc.identityProvider === undefined)
      issues.push({ path, message: 'the portal requires an identityProvider section' });
    const checked = checkAppUrl(doc.portal.externalUrl, 'external');
    if (checked.ok && Array.isArray(doc.apps)) {
      const host = new URL(checked.url).hostname;
      const i = doc.apps.findIndex(
        (a) =>
          isRecord(a) &&
          typeof a.externalUrl === 'string' &&
          checkAppUrl(a.externalUrl, 'external').ok &&
          new URL(a.externalUrl).hostname === host,
      );
      if (i !== -1) issues.push({ path, message: `same host as apps[${i}].externalUrl` });
    }
  }

  const certificates = isRecord(doc.relay) ? doc.relay.certificates : undefined;
  if (Array.isArray(certificates)) {
    certificates.forEach((pair, i) => {
      if (!isRecord(pair)) return;
      for (const k of ['cert', 'key', 'pfx'] as const) {
        const v = pair[k];
        if (typeof v !== 'string' || v === '') continue;
        const path = ['relay', 'certificates', i, k];
        const problem = fileProblem(resolve(ctx.baseDir, v));
        if (problem)
          issues.push({
            path,
            message: `${problem}: ${ctx.template(path) ?? resolve(ctx.baseDir, v)}`,
          });
      }
    });
  }
  const pages = isRecord(doc.relay) && isRecord(doc.relay.pages) ? doc.relay.pages : undefined;
  if (pages && typeof pages.dir === 'string' && pages.dir !== '') {
    for (const message of readPageTemplates(resolve(ctx.baseDir, pages.dir)).problems)
      issues.push({ path: ['relay', 'pages', 'dir'], message });
  }
  const acme = isRecord(doc.relay) ? doc.relay.acme : undefined;
  if (isRecord(acme) && typeof acme.caBundle === 'string' && acme.caBundle !== '') {
    const path = ['relay', 'acme', 'caBundle'];
    const problem = fileProblem(resolve(ctx.baseDir, acme.caBundle));
    if (problem)
      issues.push({
        path,
        message: `${problem}: ${ctx.template(path) ?? resolve(ctx.baseDir, acme.caBundle)}`,
      });
  }
  return issues;
}

function fileProblem(file: string): string | undefined {
  try {
    return statSync(file).isFile() ? undefined : 'not a file';
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return code === 'ENOENT' || code === 'ENOTDIR'
      ? 'file not found'
      : `cannot read file (${code ?? 'error'})`;
  }
}
