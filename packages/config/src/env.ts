/** The outcome of substituting one string. */
export interface Substitution {
  /** The string with every reference replaced (references to missing variables are left as written). */
  value: string;
  /** True when at least one `${…}` reference was replaced: the value may hold a secret. */
  substituted: boolean;
  /** Names of referenced variables that are not set and have no default. */
  missing: string[];
  /** Set when the string has a malformed reference, e.g. `${` without `}`. */
  error?: string;
}

const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * Replaces `${NAME}` and `${NAME:-default}` in a string with values from `env`, as a shell
 * or docker compose does: the default applies when the variable is unset or empty. `$${`
 * stands for a literal `${`; any other `$` is kept as is.
 *
 * @example
 * substituteEnv('${HOST:-localhost}:${PORT}', { PORT: '8443' }).value; // 'localhost:8443'
 * substituteEnv('price: $${AMOUNT}', {}).value; // 'price: ${AMOUNT}'
 * substituteEnv('${SECRET}', {}).missing; // ['SECRET']
 */
export function substituteEnv(text: string, env: NodeJS.ProcessEnv): Substitution {
  let value = '';
  let substituted = false;
  const missing: string[] = [];
  let i = 0;
  while (i < text.length) {
    const dollar = text.indexOf('$', i);
    if (dollar < 0) {
      value += text.slice(i);
      break;
    }
    value += text.slice(i, dollar);
    if (text.startsWith('$${', dollar)) {
      value += '${';
      i = dollar + 3;
      continue;
    }
    if (text[dollar + 1] !== '{') {
      value += '$';
      i = dollar + 1;
      continue;
    }
    const close = text.indexOf('}', dollar + 2);
    if (close < 0) {
      return {
        value: text,
        substituted: false,
        missing: [],
        error: 'unterminated ${ (write $${ for a literal ${)',
      };
    }
    const body = text.slice(dollar + 2, close);
    const sep = body.indexOf(':-');
    const name = sep < 0 ? body : body.slice(0, sep);
    if (!NAME.test(name)) {
      return {
        value: text,
        substituted: false,
        missing: [],
        error:
          'invalid variable reference: use ${NAME} or ${NAME:-default} (write $${ for a literal ${)',
      };
    }
    const set = env[name];
    if (set !== undefined && (sep < 0 || set !== '')) {
      value += set;
      substituted = true;
    } else if (sep >= 0) {
      value += body.slice(sep + 2);
    } else {
      missing.push(name);
      value += text.slice(dollar, close + 1);
    }
    i = close + 1;
  }
  return { value, substituted, missing };
}
