import type { DocPath } from './path.js';

/**
 * Wildcard apps (`https://*.apps.example.com/` → `http://*.corp.local:8080/`): the label `*`
 * matches goes into the internal host. `*` can only be the whole first label, on both URLs
 * or on neither: anything else would be accepted and never match.
 */

/** A host whose first label is `*`. */
export const isWildcardHost = (hostname: string): boolean => hostname.startsWith('*.');

/** Why a URL's host cannot be a wildcard host, or undefined (no `*`, or a good one). */
export function wildcardHostProblem(
  hostname: string,
  kind: 'internal' | 'external',
): string | undefined {
  if (!hostname.includes('*')) return undefined;
  if (/^\*\.[^*]+$/.test(hostname) && !hostname.endsWith('.')) return undefined;
  const example = kind === 'external' ? 'https://*.apps.example.com/' : 'http://*.corp.local/';
  return `* must be the whole first label of the host, as in ${example}`;
}

/** Cross-field rules of one wildcard app (`apps[i]` as written, URLs already valid). */
export function wildcardAppIssues(
  app: { internalUrl: string; externalUrl: string; preAuthentication?: unknown },
  at: DocPath,
): Array<{ path: DocPath; message: string }> {
  const internal = isWildcardHost(new URL(app.internalUrl).hostname);
  const external = isWildcardHost(new URL(app.externalUrl).hostname);
  if (internal && !external)
    return [
      {
        path: [...at, 'internalUrl'],
        message:
          'a wildcard internalUrl needs a wildcard externalUrl (https://*.apps.example.com/): no external host says which label to use',
      },
    ];
  if (!external) return [];
  const issues: Array<{ path: DocPath; message: string }> = [];
  if (!internal)
    issues.push({
      path: [...at, 'internalUrl'],
      message:
        'a wildcard externalUrl needs a wildcard internalUrl (http://*.corp.local/): the label * matches goes into the internal host',
    });
  if ((app.preAuthentication ?? 'oidc') === 'oidc')
    issues.push({
      path: [...at, 'preAuthentication'],
      message:
        'a wildcard app needs preAuthentication: passthrough (sign-in needs a redirect URI registered per host)',
    });
  return issues;
}
