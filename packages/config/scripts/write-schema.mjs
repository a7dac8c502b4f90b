// Regenerates appproxy.schema.json from the zod schema: `npm run schema -w @appproxy/config`
// (builds first). A unit test fails while the committed file is out of date.
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as prettier from 'prettier';
import { configJsonSchema } from '../dist/index.js';

const file = fileURLToPath(new URL('../appproxy.schema.json', import.meta.url));
const options = { ...(await prettier.resolveConfig(file)), filepath: file };
writeFileSync(file, await prettier.format(JSON.stringify(configJsonSchema(), null, 2), options));
console.log(`wrote ${file}`);
