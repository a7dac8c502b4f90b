import { readFileSync } from 'node:fs';
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import { describe, expect, it } from 'vitest';
import {
  requestHeaderPasses,
  responseHeaderPasses,
  translateAllowOrigin,
  translateContentLocation,
  translateDestination,
  translateHost,
  translateLink,
  translateLocation,
  translateOrigin,
  translateReferer,
  translateRefresh,
  translateRequestHeaders,
  translateResponseHeaders,
  translateSetCookie,
  UrlMap,
  type HeaderObject,
  type PublishedAppUrls,
} from './index.js';

const apps = JSON.parse(
  readFileSync(new URL('./__fixtures__/apps.json', import.meta.url), 'utf8'),
) as PublishedAppUrls[];
const map = new UrlMap(apps);
const expenses = { map, app: 'Expenses' };
const jenkins = { map, app: 'Jenkins' };

function run(
  pass: (h: HeaderObject, c: typeof expenses) => void,
  headers: HeaderObject,
  ctx = expenses,
) {
  pass(headers, ctx);
  return headers;
}

describe('response passes, each alone', () => {
  it('Location: published internal URLs become external; root-relative ones follow the app prefix', () => {
    expect(
      run(translateLocation, { location: 'http://expenses.corp.local:8080/login?r=%2F' }),
    ).toStrictEqual({
      location: 'https://expenses.example.com/login?r=%2F',
    });
    expect(run(translateLocation, { location: 'http://travel.corp.local/travel/' })).toStrictEqual({
      location: 'https://apps.example.com/trips/',
    });
    expect(run(translateLocation, { location: '/jenkins/login' }, jenkins)).toStrictEqual({
      location: '/login',
    });
    expect(run(translateLocation, { location: 'login' }, jenkins)).toStrictEqual({
      location: 'login',
    });
    expect(run(translateLocation, { location: 'http://feedback.corp.local/' })).toStrictEqual({
      location: 'http://feedback.corp.local/',
    });
    expect(run(translateLocation, { Location: 'http://expenses:8080/x' })).toStrictEqual({
      Location: 'https://expenses.example.com/x',
    });
  });

  it('Content-Location', () => {
    expect(
      run(translateContentLocation, {
        'content-location': 'http://expenses.corp.local:8080/r/1.json',
      }),
    ).toStrictEqual({
      'content-location': 'https://expenses.example.com/r/1.json',
    });
  });

  it('Refresh, with or without quotes and url=', () => {
    expect(
      run(translateRefresh, { refresh: '5; url=http://expenses.corp.local:8080/done' }),
    ).toStrictEqual({
      refresh: '5; url=https://expenses.example.com/done',
    });
    expect(run(translateRefresh, { refresh: "0;URL='http://benefits.corp.local/'" })).toStrictEqual(
      {
        refresh: "0;URL='https://benefits.example.com/'",
      },
    );
    expect(run(translateRefresh, { refresh: '30' })).toStrictEqual({ refresh: '30' });
  });

  it('Link: every URI reference', () => {
    expect(
      run(translateLink, {
        link: '<http://expenses.corp.local:8080/a.css>; rel=preload; as=style, </b.js>; rel=preload, <http://feedback.corp.local/>; rel=help',
      }),
    ).toStrictEqual({
      link: '<https://expenses.example.com/a.css>; rel=preload; as=style, </b.js>; rel=preload, <http://feedback.corp.local/>; rel=help',
    });
    expect(
      run(translateLink, { link: ['<http://benefits.corp.local/>; rel=up', '<x>; rel=next'] }),
    ).toStrictEqual({
      link: ['<https://benefits.example.com/>; rel=up', '<x>; rel=next'],
    });
  });

  it('Access-Control-Allow-Origin: the echoed origin goes back as the browser’s own', () => {
    const echo = { 'access-control-allow-origin': 'http://expenses.corp.local:8080' };
    translateAllowOrigin(echo, { ...expenses, requestOrigin: 'https://expenses.example.com' });
    expect(echo).toStrictEqual({ 'access-control-allow-origin': 'https://expenses.example.com' });
    // A page of the HR site calling the portal: the portal echoes its internal origin.
    const portal = { 'access-control-allow-origin': 'http://sharepoint.corp.local' };
    translateAllowOrigin(portal, { map, app: 'Portal', requestOrigin: 'https://hr.example.com' });
    expect(portal).toStrictEqual({ 'access-control-allow-origin': 'https://hr.example.com' });
    expect(
      run(translateAllowOrigin, { 'access-control-allow-origin': 'http://travel.corp.local' }),
    ).toStrictEqual({
      'access-control-allow-origin': 'https://apps.example.com',
    });
    for (const v of ['*', 'null', 'https://partner.example.org'])
      expect(run(translateAllowOrigin, { 'access-control-allow-origin': v })).toStrictEqual({
        'access-control-allow-origin': v,
      });
  });

  it('Set-Cookie: Domain/Path per cookie, separate values kept, policy when given', () => {
    const headers: HeaderObject = {
      'set-cookie': [
        'sid=1; Domain=travel.corp.local; Path=/travel/; HttpOnly',
        'lang=de; Path=/travel',
        'x=1; Priority=High',
      ],
    };
    translateSetCookie(headers, { map, app: 'Travel' });
    expect(headers['set-cookie']).toStrictEqual([
      'sid=1; Domain=apps.example.com; Path=/trips/; HttpOnly',
      'lang=de; Path=/trips',
      'x=1; Priority=High',
    ]);
    const single: HeaderObject = { 'Set-Cookie': 'a=1; Path=/' };
    translateSetCookie(single, {
      map,
      app: 'Travel',
      cookiePolicy: { secure: true, sameSite: 'Lax' },
    });
    expect(single).toStrictEqual({ 'Set-Cookie': 'a=1; Path=/trips; Secure; SameSite=Lax' });
  });
});

describe('request passes, each alone', () => {
  it('Host: the internal host (also HTTP/2 :authority)', () => {
    expect(run(translateHost, { host: 'expenses.example.com' })).toStrictEqual({
      host: 'expenses.corp.local:8080',
    });
    expect(run(translateHost, { ':authority': 'expenses.example.com' })).toStrictEqual({
      ':authority': 'expenses.corp.local:8080',
    });
    expect(run(translateHost, {}, { map, app: 'Benefits' })).toStrictEqual({
      host: 'benefits.corp.local',
    });
    expect(() => run(translateHost, {}, { map, app: 'Nope' })).toThrow(
      expect.objectContaining({ code: 'APPPROXY_TRANSLATE_INVALID_OPTION' }),
    );
  });

  it('Origin, Referer, Destination back to internal', () => {
    expect(run(translateOrigin, { origin: 'https://expenses.example.com' })).toStrictEqual({
      origin: 'http://expenses.corp.local:8080',
    });
    expect(run(translateOrigin, { origin: 'null' })).toStrictEqual({ origin: 'null' });
    expect(run(translateReferer, { referer: 'https://hr.example.com/Lists/x?a=1' })).toStrictEqual({
      referer: 'http://sharepoint.corp.local/sites/hr/Lists/x?a=1',
    });
    expect(run(translateReferer, { referer: 'https://www.google.com/' })).toStrictEqual({
      referer: 'https://www.google.com/',
    });
    expect(
      run(translateDestination, {
        destination: 'https://hr.example.com/Shared%20Documents/b.docx',
      }),
    ).toStrictEqual({
      destination: 'http://sharepoint.corp.local/sites/hr/Shared%20Documents/b.docx',
    });
  });
});

describe('translateResponseHeaders / translateRequestHeaders', () => {
  it('run all passes on a copy of IncomingHttpHeaders', () => {
    const incoming: IncomingHttpHeaders = {
      'content-type': 'text/html',
      location: 'http://expenses.corp.local:8080/next',
      'set-cookie': ['a=1; Domain=expenses.corp.local', 'b=2'],
      link: '<http://expenses.corp.local:8080/s.css>; rel=preload',
    };
    const out = translateResponseHeaders(incoming, expenses);
    expect(out).toStrictEqual({
      'content-type': 'text/html',
      location: 'https://expenses.example.com/next',
      'set-cookie': ['a=1; Domain=expenses.example.com', 'b=2'],
      link: '<https://expenses.example.com/s.css>; rel=preload',
    });
    expect(incoming.location).toBe('http://expenses.corp.local:8080/next');
    expect(incoming['set-cookie']).toStrictEqual(['a=1; Domain=expenses.corp.local', 'b=2']);
  });

  it('take OutgoingHttpHeaders with numbers and mixed case, and a subset of passes', () => {
    const outgoing: OutgoingHttpHeaders = {
      'Content-Length': 12,
      Location: 'http://expenses.corp.local:8080/',
    };
    expect(translateResponseHeaders(outgoing, expenses)).toStrictEqual({
      'Content-Length': 12,
      Location: 'https://expenses.example.com/',
    });
    expect(translateResponseHeaders(outgoing, expenses, [translateLink])).toStrictEqual(outgoing);
    expect(responseHeaderPasses.map((p) => p.name)).toStrictEqual([
      'translateLocation',
      'translateContentLocation',
      'translateRefresh',
      'translateLink',
      'translateAllowOrigin',
      'translateSetCookie',
    ]);
  });

  it('translate a browser request; without the Host pass the external host is kept', () => {
    const req: IncomingHttpHeaders = {
      host: 'hr.example.com',
      origin: 'https://hr.example.com',
      referer: 'https://hr.example.com/Lists/',
      cookie: 'a=1',
    };
    expect(translateRequestHeaders(req, { map, app: 'HR site' })).toStrictEqual({
      host: 'sharepoint.corp.local',
      origin: 'http://sharepoint.corp.local',
      referer: 'http://sharepoint.corp.local/sites/hr/Lists/',
      cookie: 'a=1',
    });
    const keepHost = requestHeaderPasses.filter((p) => p !== translateHost);
    expect(translateRequestHeaders(req, { map, app: 'HR site' }, keepHost).host).toBe(
      'hr.example.com',
    );
  });
});
