import { ConnectorGroups } from '@appproxy/routing';
import { META } from '@appproxy/tunnel';
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import { constants, type ClientHttp2Stream } from 'node:http2';
import { PassThrough } from 'node:stream';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Dispatch, MAX_ATTEMPTS, RELAY_GRACE_MS, type DispatchTunnel } from './dispatch.js';
import { REPLAY_LIMIT, RequestBody } from './request-body.js';

/** A tunnel stream the test drives: it answers, refuses or closes as told. */
class FakeStream extends PassThrough {
  rstCode: number | undefined;
  readonly received: Buffer[] = [];
  constructor(
    readonly headers: OutgoingHttpHeaders,
    readonly endStream: boolean,
  ) {
    // A tunnel stream closes when it is reset or both sides are done, not when the request
    // body ends.
    super({ autoDestroy: false });
    this.on('data', (c: Buffer) => this.received.push(c));
  }
  answer(status = 200, extra: IncomingHttpHeaders = {}): void {
    this.emit('response', { ':status': status, ...extra });
  }
  close(code: number): void {
    this.rstCode = code;
    this.destroy();
  }
}

type Behaviour = (stream: FakeStream) => void;

class FakeTunnel implements DispatchTunnel {
  readonly streams: FakeStream[] = [];
  inFlight = 0;
  accepting = true;
  state = 'ready';
  constructor(
    readonly connectorId: string,
    readonly behave: Behaviour,
    readonly capabilities: string[] = [],
    readonly id = `${connectorId}/1`,
  ) {}
  hasCapability(name: string): boolean {
    return this.capabilities.includes(name);
  }
  request(headers: OutgoingHttpHeaders, opts: { endStream?: boolean } = {}): ClientHttp2Stream {
    const stream = new FakeStream(headers, opts.endStream ?? false);
    this.streams.push(stream);
    setImmediate(() => this.behave(stream));
    return stream as unknown as ClientHttp2Stream;
  }
}

const answers: Behaviour = (s) => s.answer(200);
const refuses: Behaviour = (s) => s.close(constants.NGHTTP2_REFUSED_STREAM);
const breaks: Behaviour = (s) => s.close(constants.NGHTTP2_INTERNAL_ERROR);
const silent: Behaviour = () => {};

function groupOf(...tunnels: FakeTunnel[]): ConnectorGroups<FakeTunnel> {
  const groups = new ConnectorGroups<FakeTunnel>();
  for (const t of tunnels) groups.add('Default', t);
  return groups;
}

/** Runs a dispatch to its end: which tunnel answered, or which error came. */
function run(
  groups: ConnectorGroups<FakeTunnel>,
  opts: {
    method?: string;
    body?: RequestBody;
    capability?: string | string[];
    slot?: () => undefined;
  } = {},
) {
  const retries: string[] = [];
  let dispatch!: Dispatch<FakeTunnel>;
  const outcome = new Promise<string>((resolve) => {
    dispatch = new Dispatch(
      groups,
      {
        group: 'Default',
        headers: { ':method': opts.method ?? 'GET', ':path': '/' },
        method: opts.method ?? 'GET',
        body: opts.body,
        timeoutMs: 1000,
        ...(opts.capability && { capability: opts.capability }),
        ...(opts.slot && { slot: opts.slot }),
      },
      {
        onResponse: (_h, _s, tunnel) => resolve(`response from ${tunnel.connectorId}`),
        onError: (code) => resolve(code),
        onRetry: (tunnel) => retries.push(tunnel.connectorId),
      },
    );
    dispatch.start();
  });
  return { outcome, retries, dispatch };
}

/** A request body of `size` bytes that the client has sent whole. */
function bodyOf(size: number): RequestBody {
  const source = new PassThrough();
  const body = new RequestBody(source);
  source.end(Buffer.alloc(size, 'x'));
  return body;
}

afterEach(() => {
  vi.useRealTimers();
});

describe('Dispatch', () => {
  it('hands the first response on, with the tunnel that gave it', async () => {
    const a = new FakeTunnel('a', answers);
    expect(await run(groupOf(a)).outcome).toBe('response from a');
    expect(a.streams[0]!.endStream).toBe(true);
  });

  it('sends a refused stream to another connector, body replayed whole', async () => {
    const a = new FakeTunnel('a', refuses);
    // Answers once the whole body has arrived.
    const b = new FakeTunnel('b', (s) =>
      s.writableFinished ? s.answer(200) : s.once('finish', () => s.answer(200)),
    );
    const body = bodyOf(1000);
    const { outcome, retries } = run(groupOf(a, b), { method: 'POST', body });
    expect(await outcome).toBe('response from b');
    expect(retries).toEqual(['a']);
    expect(Buffer.concat(b.streams[0]!.received).length).toBe(1000);
  });

  it('retries a GET whose stream broke before any answer, not a POST that sent its body', async () => {
    const get = run(groupOf(new FakeTunnel('a', breaks), new FakeTunnel('b', answers)));
    expect(await get.outcome).toBe('response from b');
    // Past the replay buffer, a body sent once cannot be sent again.
    const post = run(groupOf(new FakeTunnel('a', breaks), new FakeTunnel('b', answers)), {
      method: 'POST',
      body: bodyOf(REPLAY_LIMIT + 1),
    });
    expect(await post.outcome).toBe('CONNECTOR_LOST');
    expect(post.retries).toEqual([]);
  });

  it(`opens at most ${MAX_ATTEMPTS} streams for one request`, async () => {
    const tunnels = ['a', 'b', 'c', 'd'].map((id) => new FakeTunnel(id, breaks));
    const { outcome, retries } = run(groupOf(...tunnels));
    expect(await outcome).toBe('CONNECTOR_LOST');
    expect(retries).toHaveLength(MAX_ATTEMPTS - 1);
    expect(tunnels.reduce((n, t) => n + t.streams.length, 0)).toBe(MAX_ATTEMPTS);
  });

  it('says why nothing could be tried: no connector, none capable, no stream slot', async () => {
    expect(await run(groupOf()).outcome).toBe('CONNECTOR_UNAVAILABLE');
    expect(
      await run(groupOf(new FakeTunnel('a', answers)), { capability: 'websocket' }).outcome,
    ).toBe('UPGRADE_UNSUPPORTED');
    const ws = new FakeTunnel('a', answers, ['websocket']);
    expect(await run(groupOf(ws), { capability: 'websocket' }).outcome).toBe('response from a');
    // A Kerberos app's request (alone or as an upgrade) where no connector has a keytab.
    expect(await run(groupOf(ws), { capability: 'kerberos' }).outcome).toBe('SSO_NOT_CONFIGURED');
    expect(await run(groupOf(ws), { capability: ['websocket', 'kerberos'] }).outcome).toBe(
      'SSO_NOT_CONFIGURED',
    );
    const krb = new FakeTunnel('k', answers, ['websocket', 'kerberos']);
    expect(await run(groupOf(ws, krb), { capability: ['websocket', 'kerberos'] }).outcome).toBe(
      'response from k',
    );
    expect(
      await run(groupOf(new FakeTunnel('a', answers)), { slot: () => undefined }).outcome,
    ).toBe('TOO_MANY_STREAMS');
  });

  it("turns a connector's error answer into its code (unknown codes: BACKEND_UNREACHABLE)", async () => {
    const answering = (code: string) =>
      new FakeTunnel('a', (s) => s.answer(504, { [META.error]: code }));
    expect(await run(groupOf(answering('BACKEND_TIMEOUT'))).outcome).toBe('BACKEND_TIMEOUT');
    expect(await run(groupOf(answering('SOMETHING_NEW'))).outcome).toBe('BACKEND_UNREACHABLE');
  });

  it('gives up after the backend timeout plus the grace, and resets the stream', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const a = new FakeTunnel('a', silent);
    const { outcome } = run(groupOf(a));
    await vi.advanceTimersByTimeAsync(1000 + RELAY_GRACE_MS);
    expect(await outcome).toBe('BACKEND_TIMEOUT');
    expect(a.streams[0]!.destroyed).toBe(true);
  });

  it('cancelled (the client left): the stream is reset, a late answer is not handed on', async () => {
    const a = new FakeTunnel('a', silent);
    const { dispatch, outcome } = run(groupOf(a));
    await new Promise((r) => setImmediate(r));
    dispatch.cancel('client went away');
    const stream = a.streams[0]!;
    expect(stream.destroyed).toBe(true);
    stream.answer(200);
    const settled = await Promise.race([outcome, new Promise((r) => setTimeout(r, 20, 'none'))]);
    expect(settled).toBe('none');
  });
});
