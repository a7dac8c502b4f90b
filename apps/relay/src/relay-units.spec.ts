import { CONNECTOR_ERROR_CODES } from '@appproxy/tunnel';
import { describe, expect, it } from 'vitest';
import { RELAY_ERRORS, renderError } from './error-pages.js';
import { TrustedProxies, forwardedHeaders } from './forwarded.js';
import { buildProgram } from './cli.js';
import { dropRelayOwnedHeaders } from './link-translation.js';

describe('error pages', () => {
  it('every code has a status and a hint', () => {
    for (const [code, e] of Object.entries(RELAY_ERRORS)) {
      expect(e.status, code).toBeGreaterThanOrEqual(400);
      expect(e.hint.length, code).toBeGreaterThan(10);
    }
  });

  it('has a page for every code a connector can answer with', () => {
    for (const code of CONNECTOR_ERROR_CODES) expect(RELAY_ERRORS, code).toHaveProperty(code);
  });

  it('renders JSON for API clients and escaped HTML for people', async () => {
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
    // Its inline style is allowed by hash, nothing else is.
    const csp = String(html.headers['content-security-policy']);
    expect(csp).toMatch(/^default-src 'none'; style-src 'sha256-[A-Za-z0-9+/]+=*'; /);
    const style = /<style>([\s\S]*?)<\/style>/.exec(html.body)![1]!;
    const { createHash } = await import('node:crypto');
    expect(csp).toContain(`'sha256-${createHash('sha256').update(style).digest('base64')}'`);
    expect(csp).toContain("frame-ancestors 'none'");
  });
});

describe('backend response headers only the relay may set', () => {
  it('drops relay cookies and x-appproxy-*/appproxy-* headers, keeps the rest', () => {
    const headers = {
      'set-cookie': [
        '__Host-appproxy_session=fixated; Path=/; Secure',
        ' appproxy_txn_1=x',
        '__Host-appproxy_affinity',
        'app_session=kept; Path=/',
        'appproxy=kept-too',
      ],
      'x-appproxy-error': 'FORGED',
      'x-appproxy-correlation-id': 'forged',
      'appproxy-identity': 'forged',
      'x-app': 'kept',
    };
    dropRelayOwnedHeaders(headers);
    expect(headers).toStrictEqual({
      'set-cookie': ['app_session=kept; Path=/', 'appproxy=kept-too'],
      'x-app': 'kept',
    });
    const only: Record<string, string> = { 'set-cookie': 'appproxy_session=x' };
    dropRelayOwnedHeaders(only);
    expect(only).toStrictEqual({});
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

describe('pre-authentication pages and cookies', () => {
  it('refusal pages say who is signed in, escaped, with a way to switch account', async () => {
    const { renderError: render } = await import('./error-pages.js');
    const html = render('NOT_ASSIGNED', {
      app: 'Payroll',
      correlationId: 'c-3',
      hint: 'Only <Finance> may use it.',
      signedInAs: 'bob <bob@example.com>',
      signOutHref: '/.appproxy/signout',
    });
    expect(html.status).toBe(403);
    expect(html.body).toContain('Only &lt;Finance&gt; may use it.');
    expect(html.body).toContain('bob &lt;bob@example.com&gt;');
    expect(html.body).toContain('<a href="/.appproxy/signout">');
    const json = JSON.parse(
      render('SIGN_IN_FAILED', {
        correlationId: 'c-4',
        accept: 'application/json',
        reason: 'APPPROXY_PREAUTH_STATE_MISMATCH',
        headers: { 'www-authenticate': 'Bearer' },
      }).body,
    );
    expect(json.error).toMatchObject({
      code: 'SIGN_IN_FAILED',
      status: 400,
      reason: 'APPPROXY_PREAUTH_STATE_MISMATCH',
    });
  });
});
