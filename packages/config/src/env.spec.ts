import { describe, expect, it } from 'vitest';
import { substituteEnv } from './index.js';

describe('substituteEnv', () => {
  const env = { HOST: 'relay.example.com', PORT: '8443', EMPTY: '', SECRET: 's3cr3t' };

  it.each([
    ['no references', 'no references'],
    ['${HOST}:${PORT}', 'relay.example.com:8443'],
    ['https://${HOST}/', 'https://relay.example.com/'],
    ['${MISSING:-fallback}', 'fallback'],
    ['${EMPTY:-fallback}', 'fallback'],
    ['${MISSING:-}', ''],
    ['${EMPTY}', ''],
    ['${HOST:-unused}', 'relay.example.com'],
    ['$${HOST}', '${HOST}'],
    ['cost: $5 and $$ and $', 'cost: $5 and $$ and $'],
    ['$HOST', '$HOST'],
    ['${HOST}${PORT}', 'relay.example.com8443'],
  ])('%s → %s', (input, output) => {
    expect(substituteEnv(input, env)).toMatchObject({ value: output, missing: [] });
  });

  it('says when a value came from a variable (it may be a secret)', () => {
    expect(substituteEnv('${SECRET}', env).substituted).toBe(true);
    expect(substituteEnv('${MISSING:-default}', env).substituted).toBe(false);
    expect(substituteEnv('$${SECRET}', env).substituted).toBe(false);
  });

  it('lists missing variables without a default', () => {
    expect(substituteEnv('${A}/${HOST}/${B}', env)).toMatchObject({ missing: ['A', 'B'] });
  });

  it.each(['${HOST', '${}', '${1X}', '${HO ST}', '${HOST:default}'])(
    'refuses malformed %s',
    (input) => {
      const r = substituteEnv(input, env);
      expect(r.error).toMatch(/\$\{/);
      expect(r.substituted).toBe(false);
    },
  );
});
