// A leak on purpose, for proving that the soak's gate catches one: loaded into the connector
// with `--import` when the soak runs with `SOAK_LEAK_KIB=<n>`, it keeps <n> KiB (written,
// so resident) for every backend request the connector makes (undici's `request:create`
// diagnostics channel). Bench only: nothing in the product loads it.
import { subscribe } from 'node:diagnostics_channel';

const bytes = Number(process.env.SOAK_LEAK_KIB) * 1024;
const kept = [];
if (bytes > 0) subscribe('undici:request:create', () => kept.push(Buffer.alloc(bytes, 0x5a)));
