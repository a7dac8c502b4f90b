import { describe, expect, it } from 'vitest';
import { RELAY_ERRORS, renderError } from './error-pages.js';
import { TrustedProxies, forwardedHeaders } from './forwarded.js';
import { buildProgram } from './cli.js';

describe('error pages', () => {
  it('every code has a status and a hint', () => {
    for (const [code, e] of Object.entries(RELAY_ERRORS)) {
      expect(e.status, code).toBeGreaterThanOrEqual(400);
      expect(e.hint.length, code).toBeGreaterThan(10);
    }
  });

  it('renders JSON for API clients and escaped HTML for people', () => {
    const json = renderError('BACKEND_TIMEOUT', {
      app: 'Exp',
      correlationId: 'c-1',
      accept: 'application/json',
    });
    expect(json.status).toBe(504);
    expect(JSON.parse(json.body).error).toMatchObject({
      code: 'BACKEND_TIMEOUT',
      app: 'Exp',
      correlationId: 'c-1',
    });
    const html = renderError('APP_NOT_FOUND', { app: '<script>x</script>', correlationId: 'c-2' });
    expect(html.headers['content-type']).toContain('text/html');
    expect(html.body).not.toContain('<script>x');
    expect(html.body).toContain('&lt;script&gt;');
    expect(html.headers['x-appproxy-correlation-id']).toBe('c-2');
  });
});

describe('X-Forwarded-*', () => {
  it('replaces client-supplied values unless the peer is a trusted proxy', () => {
    const trusted = new TrustedProxies(['10.0.0.0/8', '192.0.2.7']);
    expect(trusted.has('10.1.2.3')).toBe(true);
    expect(trusted.has('::ffff:192.0.2.7')).toBe(true);
    expect(trusted.has('203.0.113.9')).toBe(false);
    expect(new TrustedProxies([]).has('10.1.2.3')).toBe(false);
    const existing = { for: '6.6.6.6', proto: 'http', host: 'evil' };
    expect(
      forwardedHeaders({
        clientAddress: '::ffff:203.0.113.9',
        externalHost: 'a.example',
        trusted: false,
        existing,
      }),
    ).toEqual({
      'x-forwarded-for': '203.0.113.9',
      'x-forwarded-proto': 'https',
      'x-forwarded-host': 'a.example',
    });
    expect(
      forwardedHeaders({
        clientAddress: '10.1.2.3',
        externalHost: 'a.example',
        trusted: true,
        existing,
      }),
    ).toEqual({
      'x-forwarded-for': '6.6.6.6, 10.1.2.3',
      'x-forwarded-proto': 'http',
      'x-forwarded-host': 'evil',
    });
  });
});

describe('appproxy-relay CLI', () => {
  it('rejects unknown commands and missing options with commander codes', async () => {
    const silence = { writeErr: () => {}, writeOut: () => {} };
    const unknown = buildProgram().configureOutput(silence);
    await expect(unknown.parseAsync(['bogus'], { from: 'user' })).rejects.toMatchObject({
      code: 'commander.unknownCommand',
      exitCode: 1,
    });
    const program = buildProgram();
    program.commands.forEach((c) => c.configureOutput(silence).exitOverride());
    await expect(program.parseAsync(['start'], { from: 'user' })).rejects.toMatchObject({
      code: 'commander.missingMandatoryOptionValue',
    });
  });
});
