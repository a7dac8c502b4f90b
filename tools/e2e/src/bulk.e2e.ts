import { downloadChunks, expectedDownloadSha256, startSampleApp } from '@appproxy/sample-app';
import { createHash } from 'node:crypto';
import { request as httpsRequest } from 'node:https';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Stack } from './harness.js';

type SampleApp = Awaited<ReturnType<typeof startSampleApp>>;
let sample: SampleApp;
let stack: Stack;
const HOST = 'bulk.apps.localhost';
const MIB = Number(process.env.APPPROXY_E2E_BULK_MIB ?? 1024);
/**
 * How much a process may grow over its RSS before the transfer: a body buffered whole would
 * take the whole body (1 GiB); streaming takes socket and TLS buffers, and garbage the next
 * collection frees. Growth, not an absolute size: the idle size moves with every module the
 * CLIs load, and with the machine's load the collector runs later.
 */
const RSS_GROWTH_LIMIT = 160 * 1024 * 1024;

beforeAll(async () => {
  sample = await startSampleApp({ basePath: '/' });
  stack = await new Stack({
    apps: [
      {
        name: 'Bulk',
        internalUrl: `http://127.0.0.1:${sample.port}/`,
        externalUrl: `https://${HOST}/`,
        extra: '    backendTimeout: long\n',
      },
    ],
  }).start();
});

afterAll(async () => {
  await stack?.stop();
  await sample?.close();
});

/** Samples relay and connector RSS until stopped; returns the peaks and where they began. */
function watchRss() {
  const start = { relay: stack.relay!.rss(), connector: stack.connector!.rss() };
  const peak = { relay: 0, connector: 0 };
  const sample = () => {
    peak.relay = Math.max(peak.relay, stack.relay!.rss());
    peak.connector = Math.max(peak.connector, stack.connector!.rss());
  };
  sample();
  const timer = setInterval(sample, 100);
  return (what: string) => {
    clearInterval(timer);
    sample();
    const mib = (n: number) => `${(n / 2 ** 20).toFixed(0)} MiB`;
    console.info(
      `${what}: relay RSS ${mib(start.relay)} → peak ${mib(peak.relay)}, connector ${mib(start.connector)} → peak ${mib(peak.connector)}`,
    );
    return { relay: peak.relay - start.relay, connector: peak.connector - start.connector };
  };
}

describe(`bulk transfer of ${MIB} MiB`, () => {
  it('download is byte-identical and memory stays flat', async () => {
    const stop = watchRss();
    const { sha, bytes } = await new Promise<{ sha: string; bytes: number }>((resolve, reject) => {
      const req = httpsRequest({
        host: '127.0.0.1',
        port: stack.ports.public,
        servername: HOST,
        ca: stack.ca,
        path: `/download?mib=${MIB}`,
        headers: { host: HOST },
        agent: false,
      });
      req.on('response', (res) => {
        const hash = createHash('sha256');
        let n = 0;
        res.on('data', (c: Buffer) => {
          hash.update(c);
          n += c.length;
        });
        res.on('end', () => resolve({ sha: hash.digest('hex'), bytes: n }));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end();
    });
    const growth = stop(`download ${MIB} MiB`);
    expect(bytes).toBe(MIB * 1024 * 1024);
    expect(sha).toBe(expectedDownloadSha256(MIB));
    expect(growth.relay).toBeLessThan(RSS_GROWTH_LIMIT);
    expect(growth.connector).toBeLessThan(RSS_GROWTH_LIMIT);
  });

  it('upload is byte-identical and memory stays flat', async () => {
    const stop = watchRss();
    const result = await new Promise<{ bytes: number; sha256: string }>((resolve, reject) => {
      const req = httpsRequest({
        host: '127.0.0.1',
        port: stack.ports.public,
        servername: HOST,
        ca: stack.ca,
        method: 'PUT',
        path: '/upload',
        headers: {
          host: HOST,
          'content-type': 'application/octet-stream',
          'content-length': String(MIB * 1024 * 1024),
        },
        agent: false,
      });
      req.on('response', (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve(JSON.parse(Buffer.concat(chunks).toString())));
      });
      req.on('error', reject);
      Readable.from(downloadChunks(MIB)).pipe(req);
    });
    const growth = stop(`upload ${MIB} MiB`);
    expect(result.bytes).toBe(MIB * 1024 * 1024);
    expect(result.sha256).toBe(expectedDownloadSha256(MIB));
    expect(growth.relay).toBeLessThan(RSS_GROWTH_LIMIT);
    expect(growth.connector).toBeLessThan(RSS_GROWTH_LIMIT);
  });
});
