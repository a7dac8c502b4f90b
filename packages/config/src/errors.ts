/** Stable codes of a configuration that cannot be used. */
export type ConfigErrorCode = 'APPPROXY_CONFIG_INVALID' | 'APPPROXY_CONFIG_UNREADABLE';

/** One problem in a configuration, located as precisely as the source allows. */
export interface ConfigIssue {
  /** Where in the document, e.g. `apps[2].internalUrl`; `''` for the document itself. */
  path: string;
  /** What is wrong, for a person. Never contains the value of an environment variable. */
  message: string;
  /** 1-based line of the offending node, when known. */
  line?: number;
  /** 1-based column of the offending node, when known. */
  column?: number;
}

/**
 * The configuration cannot be read or is not valid. `message` lists every issue, one per
 * line, as `file:line:col path: message`, ready to print as is.
 *
 * @example
 * try {
 *   await loadConfig('appproxy.yaml');
 * } catch (err) {
 *   if (err instanceof ConfigError) console.error(err.message); // appproxy.yaml:14:18 apps[2].internalUrl: must be an absolute http(s) URL
 * }
 */
export class ConfigError extends Error {
  readonly code: ConfigErrorCode;
  readonly issues: ConfigIssue[];
  constructor(
    code: ConfigErrorCode,
    issues: ConfigIssue[],
    options: { sourceName: string; cause?: unknown },
  ) {
    super(issues.map((issue) => formatIssue(options.sourceName, issue)).join('\n'), {
      cause: options.cause,
    });
    this.name = 'ConfigError';
    this.code = code;
    this.issues = issues;
  }
}

/**
 * One issue as a line: `appproxy.yaml:14:18 apps[2].internalUrl: must be an absolute http(s) URL`.
 *
 * @example
 * formatIssue('appproxy.yaml', { path: 'apps[0].name', message: 'is required' }); // 'appproxy.yaml apps[0].name: is required'
 */
export function formatIssue(sourceName: string, issue: ConfigIssue): string {
  const where =
    issue.line === undefined ? sourceName : `${sourceName}:${issue.line}:${issue.column ?? 1}`;
  return issue.path ? `${where} ${issue.path}: ${issue.message}` : `${where}: ${issue.message}`;
}

/** Stable codes of a registration token that cannot be redeemed. */
export type TokenErrorCode =
  | 'APPPROXY_TOKEN_INVALID'
  | 'APPPROXY_TOKEN_EXPIRED'
  | 'APPPROXY_TOKEN_USED'
  | 'APPPROXY_TOKEN_REVOKED';

const TOKEN_MESSAGES: Record<TokenErrorCode, string> = {
  APPPROXY_TOKEN_INVALID: 'registration token is not valid',
  APPPROXY_TOKEN_EXPIRED: 'registration token has expired; create a new one',
  APPPROXY_TOKEN_USED: 'registration token has already been used; create a new one',
  APPPROXY_TOKEN_REVOKED: 'registration token has been revoked; create a new one',
};

/**
 * A registration token was refused. The message never contains the token's secret.
 *
 * @example
 * try {
 *   store.redeemRegistrationToken(id, secret);
 * } catch (err) {
 *   if (err instanceof TokenError && err.code === 'APPPROXY_TOKEN_USED') console.error(err.message);
 * }
 */
export class TokenError extends Error {
  readonly code: TokenErrorCode;
  constructor(
    code: TokenErrorCode,
    message: string = TOKEN_MESSAGES[code],
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'TokenError';
    this.code = code;
  }
}

/** Stable codes of a state database that cannot be used. */
export type StateStoreErrorCode =
  | 'APPPROXY_STATE_INCOMPATIBLE'
  | 'APPPROXY_STATE_DIR_UNUSABLE'
  | 'APPPROXY_STORE_UNAVAILABLE'
  | 'APPPROXY_STORE_KEY_WRONG'
  | 'APPPROXY_STORE_KEY_MISSING';

/**
 * The state cannot be used: written by a newer relay (`APPPROXY_STATE_INCOMPATIBLE`), its
 * directory cannot be created or written (`APPPROXY_STATE_DIR_UNUSABLE`), the PostgreSQL
 * store cannot be reached (`APPPROXY_STORE_UNAVAILABLE`, never with the password), or
 * `relay.storeKey` is missing or not the key the store's materials were sealed with
 * (`APPPROXY_STORE_KEY_MISSING`, `APPPROXY_STORE_KEY_WRONG`).
 */
export class StateStoreError extends Error {
  readonly code: StateStoreErrorCode;
  constructor(code: StateStoreErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StateStoreError';
    this.code = code;
  }
}
