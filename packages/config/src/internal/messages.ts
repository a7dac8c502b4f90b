import type * as z from 'zod';

/**
 * Short messages for zod's built-in issues, phrased for people editing YAML. They never
 * repeat the input (it may come from a secret environment variable). Schema-level messages
 * (`{ error: '…' }`) take precedence over these.
 */
export function issueMessage(iss: z.core.$ZodRawIssue): string | undefined {
  switch (iss.code) {
    case 'invalid_type':
      if (iss.input === undefined) return 'is required';
      return `must be ${TYPE_NAMES[iss.expected] ?? iss.expected}, got ${describe(iss.input)}`;
    case 'invalid_value':
      return `must be one of: ${iss.values.map(String).join(', ')}`;
    case 'too_small':
      if (iss.origin === 'array')
        return `must have at least ${String(iss.minimum)} ${Number(iss.minimum) === 1 ? 'entry' : 'entries'}`;
      if (iss.origin === 'string')
        return Number(iss.minimum) === 1
          ? 'must not be empty'
          : `must be at least ${String(iss.minimum)} characters`;
      return `must be ${iss.inclusive ? 'at least' : 'greater than'} ${String(iss.minimum)}`;
    case 'too_big':
      if (iss.origin === 'array') return `must have at most ${String(iss.maximum)} entries`;
      if (iss.origin === 'string') return `must be at most ${String(iss.maximum)} characters`;
      return `must be ${iss.inclusive ? 'at most' : 'less than'} ${String(iss.maximum)}`;
    case 'unrecognized_keys':
      return 'unknown key';
    case 'invalid_format':
      return 'has an invalid format';
    case 'invalid_union':
      return 'has an invalid value';
    default:
      return undefined;
  }
}

const TYPE_NAMES: Record<string, string> = {
  string: 'a string',
  number: 'a number',
  int: 'an integer',
  boolean: 'true or false',
  array: 'a list',
  object: 'a mapping',
};

function describe(v: unknown): string {
  if (v === null) return 'an empty value';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  if (typeof v === 'boolean') return 'a boolean';
  if (typeof v === 'number') return 'a number';
  if (typeof v === 'string') return 'a string';
  return typeof v;
}

/** Edit distance, to suggest the key a typo meant. */
function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = cur;
    }
  }
  return row[b.length]!;
}

/** `unknown key`, with `(did you mean "x"?)` when a known key is close. */
export function unknownKeyMessage(key: string, known: readonly string[]): string {
  const lower = key.toLowerCase();
  let best: string | undefined;
  let bestScore = Infinity;
  for (const k of known) {
    const score = k.toLowerCase() === lower ? 0 : distance(lower, k.toLowerCase());
    if (score < bestScore) {
      best = k;
      bestScore = score;
    }
  }
  const close =
    best !== undefined && bestScore <= Math.max(1, Math.min(3, Math.floor(key.length / 4)));
  return close ? `unknown key (did you mean "${best}"?)` : 'unknown key';
}
