import { parseConfig } from '@appproxy/config';
import { AppTable } from '@appproxy/routing';
import type { OutgoingHttpHeaders } from 'node:http';
import { describe, expect, it } from 'vitest';
import { LinkTranslation } from './link-translation.js';

const config = parseConfig(
  `relay:
  listen: 443
  tunnelListen: 8443
  certificates: [{ cert: ${import.meta.filename}, key: ${import.meta.filename} }]
apps:
  - name: Sites
    internalUrl: http://*.corp.local:8080/
    externalUrl: https://*.apps.example.com/
    preAuthentication: passthrough
  - name: Wiki
    internalUrl: http://wiki.corp.local/
    externalUrl: https://wiki.apps.example.com/
    preAuthentication: passthrough
`,
  { env: {} },
);
const table = new AppTable(config.apps);
const links = new LinkTranslation(config.apps);
/** The app as routing fills it in for `host`. */
const appOn = (host: string) =>
  (table.route(host, '/') as { app: (typeof config.apps)[number] }).app;

describe('LinkTranslation of wildcard apps', () => {
  it('maps each concrete host both ways, beside the exact apps', () => {
    for (const label of ['hr', 'it']) {
      const app = appOn(`${label}.apps.example.com`);
      const out: OutgoingHttpHeaders = {
        location: `http://${label}.corp.local:8080/next?a=1`,
        'content-location': 'http://wiki.corp.local/page',
      };
      links.response(out, app, undefined);
      expect(out.location).toBe(`https://${label}.apps.example.com/next?a=1`);
      expect(out['content-location']).toBe('https://wiki.apps.example.com/page');
      const req: OutgoingHttpHeaders = {
        referer: `https://${label}.apps.example.com/from`,
        origin: `https://${label}.apps.example.com`,
      };
      links.request(req, app);
      expect(req).toEqual({
        referer: `http://${label}.corp.local:8080/from`,
        origin: `http://${label}.corp.local:8080`,
      });
    }
  });

  it('never maps one host of the wildcard app to another, nor exact apps into it', () => {
    const out: OutgoingHttpHeaders = { location: 'http://it.corp.local:8080/x' };
    links.response(out, appOn('hr.apps.example.com'), undefined);
    expect(out.location).toBe('http://it.corp.local:8080/x');
    const wiki: OutgoingHttpHeaders = { location: 'http://hr.corp.local:8080/x' };
    links.response(wiki, appOn('wiki.apps.example.com'), undefined);
    expect(wiki.location).toBe('http://hr.corp.local:8080/x');
    // The exact app keeps its own mapping.
    const own: OutgoingHttpHeaders = { location: 'http://wiki.corp.local/y' };
    links.response(own, appOn('wiki.apps.example.com'), undefined);
    expect(own.location).toBe('https://wiki.apps.example.com/y');
  });

  it('cookies of a concrete host get its external host', () => {
    const out: OutgoingHttpHeaders = {
      'set-cookie': ['sid=1; Domain=hr.corp.local; Path=/'],
    };
    links.response(out, appOn('hr.apps.example.com'), undefined);
    expect(String(out['set-cookie'])).toContain('Domain=hr.apps.example.com');
  });
});
