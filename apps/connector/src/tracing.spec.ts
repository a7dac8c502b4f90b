import { describe, expect, it } from 'vitest';
import { otlpSettings } from './tracing.js';

describe('otlpSettings (--otlp-endpoint, OTEL_EXPORTER_OTLP_ENDPOINT)', () => {
  it('none without a flag or variable', () => {
    expect(otlpSettings({}, {})).toBeUndefined();
  });

  it('the flag first, then the traces variable, then the base variable', () => {
    const env = {
      OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://traces:4318/v1/traces',
      OTEL_EXPORTER_OTLP_ENDPOINT: 'http://base:4318',
    };
    expect(otlpSettings({ otlpEndpoint: 'http://flag:4318' }, env)).toEqual({
      endpoint: 'http://flag:4318/',
    });
    expect(otlpSettings({}, env)).toEqual({ endpoint: 'http://traces:4318/v1/traces' });
    expect(otlpSettings({}, { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://base:4318' })).toEqual({
      endpoint: 'http://base:4318/',
    });
  });

  it('headers and timeout', () => {
    expect(
      otlpSettings(
        { otlpEndpoint: 'https://c.example', otlpHeader: ['x-api-key=k=1'], otlpTimeout: 3000 },
        {},
      ),
    ).toEqual({ endpoint: 'https://c.example/', headers: { 'x-api-key': 'k=1' }, timeoutMs: 3000 });
  });

  it.each([
    [{ otlpEndpoint: 'ftp://c' }, '--otlp-endpoint must be an http(s) URL'],
    [{ otlpEndpoint: 'http://u:p@c' }, '--otlp-endpoint must be an http(s) URL'],
    [{ otlpEndpoint: 'not a url' }, '--otlp-endpoint must be an http(s) URL'],
    [{ otlpEndpoint: 'http://c', otlpHeader: ['novalue'] }, '--otlp-header must be name=value'],
    [{ otlpHeader: ['a=b'] }, '--otlp-header and --otlp-timeout need --otlp-endpoint'],
  ])('refuses %j', (opts, message) => {
    const r = otlpSettings(opts, {});
    expect(r && 'error' in r && r.error).toMatch(message);
  });

  it('names the variable the bad endpoint came from', () => {
    const traces = otlpSettings({}, { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'ftp://c' });
    expect(traces && 'error' in traces && traces.error).toMatch(
      /^OTEL_EXPORTER_OTLP_TRACES_ENDPOINT must be/,
    );
    const general = otlpSettings({}, { OTEL_EXPORTER_OTLP_ENDPOINT: 'ftp://c' });
    expect(general && 'error' in general && general.error).toMatch(
      /^OTEL_EXPORTER_OTLP_ENDPOINT must be/,
    );
  });
});
