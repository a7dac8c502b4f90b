import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { configJsonSchema } from './index.js';

type JsonSchema = {
  [key: string]: unknown;
  properties?: Record<string, JsonSchema>;
  items?: JsonSchema;
  anyOf?: JsonSchema[];
};

const committed = JSON.parse(
  readFileSync(new URL('../appproxy.schema.json', import.meta.url), 'utf8'),
) as unknown;
const schema = configJsonSchema() as JsonSchema;

function objects(node: JsonSchema, path = '$'): [string, JsonSchema][] {
  const found: [string, JsonSchema][] = node.type === 'object' ? [[path, node]] : [];
  for (const [k, child] of Object.entries(node.properties ?? {}))
    found.push(...objects(child, `${path}.${k}`));
  if (node.items) found.push(...objects(node.items, `${path}[]`));
  for (const alt of node.anyOf ?? []) found.push(...objects(alt, path));
  return found;
}

describe('configJsonSchema', () => {
  it('matches the committed appproxy.schema.json (run `npm run schema -w @appproxy/config`)', () => {
    expect(committed).toStrictEqual(schema);
  });

  it('is draft 2020-12 and describes the YAML as written, not the resolved shape', () => {
    expect(schema.$schema).toBe('https://json-schema.org/draft/2020-12/schema');
    expect(schema.required).toStrictEqual(['relay']);
    const relay = schema.properties!.relay!;
    expect(Object.keys(relay.properties!)).toEqual(
      expect.arrayContaining(['pingInterval', 'drainTimeout']),
    );
    expect(relay.properties).not.toHaveProperty('pingIntervalMs');
    expect(relay.required).toStrictEqual(['listen', 'tunnelListen', 'certificates']);
    const app = schema.properties!.apps!.items!;
    expect(app.properties).toHaveProperty('backendTimeout');
    expect(app.properties).not.toHaveProperty('backendTimeoutMs');
    expect(app.properties!.backendTimeout!.default).toBe('default');
    expect(app.properties!.preAuthentication).toMatchObject({
      enum: ['oidc', 'passthrough'],
      default: 'oidc',
    });
    expect(app.required).toStrictEqual(['name', 'internalUrl', 'externalUrl']);
  });

  it('refuses unknown keys in every object, as the loader does', () => {
    const all = objects(schema);
    expect(all.map(([path]) => path)).toEqual(
      expect.arrayContaining([
        '$',
        '$.relay',
        '$.relay.certificates[]',
        '$.identityProvider',
        '$.apps[]',
        '$.apps[].cookies',
      ]),
    );
    // Maps whose keys are the user's (header names) are the only open objects.
    const maps = new Set(['$.apps[].sso.headers', '$.telemetry.otlp.headers']);
    for (const [path, node] of all)
      expect([path, node.additionalProperties]).toStrictEqual([
        path,
        maps.has(path) ? { type: 'string', minLength: 1 } : false,
      ]);
  });
});
