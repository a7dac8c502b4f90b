import { createHash } from 'node:crypto';

/**
 * The admin console's two static files, kept as strings so that every build (tsup's
 * dist/bin.js, the release bundle, the single-file executables) carries them without a copy
 * step. Served from `/console/assets/<name>.<hash>.<ext>` with a year's cache: a change of
 * content is a change of URL.
 */

const CSS = `:root{--fg:#1d2330;--muted:#5b6475;--line:#d9dee7;--bg:#f6f8fb;--accent:#0b5cad;--ok:#1a7f37;--bad:#c62828;--warn:#9a6700}
*{box-sizing:border-box}
body{font:15px/1.5 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:var(--fg);background:#fff}
header.top{display:flex;align-items:center;gap:1.5rem;flex-wrap:wrap;padding:.6rem 1.5rem;background:#14213d;color:#fff}
header.top .brand{font-weight:700;letter-spacing:.02em}
header.top nav{display:flex;gap:1rem;flex:1}
header.top nav a{color:#cfd8e8;text-decoration:none;padding:.2rem 0;border-bottom:2px solid transparent}
header.top nav a[aria-current=page]{color:#fff;border-bottom-color:#7fb3ff}
header.top a.sign-out{color:#fff;border:1px solid #7f8ca3;border-radius:4px;padding:.2rem .7rem;text-decoration:none}
header.top .who{color:#cfd8e8}
main{max-width:90rem;margin:1.5rem auto;padding:0 1.5rem}
h1{font-size:1.4rem;margin:0 0 1rem}
h2{font-size:1.1rem;margin:1.5rem 0 .5rem;display:flex;gap:.75rem;align-items:baseline}
h3{font-size:1rem;margin:.75rem 0 .4rem}
p.note{color:var(--muted);margin:.25rem 0 1rem}
table{border-collapse:collapse;width:100%;margin:.25rem 0 1rem;font-size:.92rem}
th,td{text-align:left;padding:.4rem .6rem;border-bottom:1px solid var(--line);vertical-align:top}
td.url a,td.url code,td.mono{overflow-wrap:anywhere}
td.url{min-width:10rem}
td.mono{min-width:12rem}
table#audit{font-size:.85rem}
td.who{white-space:nowrap}
time{white-space:nowrap}
td.num{text-align:right;white-space:nowrap}
th{background:var(--bg);font-weight:600}
td.empty{color:var(--muted);font-style:italic}
code,.mono{font-family:ui-monospace,"SFMono-Regular",Menlo,Consolas,monospace;font-size:.88em;overflow-wrap:anywhere}
.badge{display:inline-block;padding:0 .5rem;border-radius:999px;font-size:.82rem;font-weight:600;border:1px solid currentColor}
.state-active,.pass{color:var(--ok)}
.state-inactive,.skip,.never{color:var(--muted)}
.state-revoked,.fail{color:var(--bad)}
.warn{color:var(--warn)}
.counts{color:var(--muted);font-weight:400;font-size:.9rem}
button,input,select{font:inherit}
button{white-space:nowrap;padding:.3rem .8rem;border:1px solid var(--accent);background:var(--accent);color:#fff;border-radius:4px;cursor:pointer}
button.secondary{background:#fff;color:var(--accent)}
button.danger{background:#fff;color:var(--bad);border-color:var(--bad)}
button:disabled{opacity:.6;cursor:progress}
input,select{padding:.3rem .5rem;border:1px solid var(--line);border-radius:4px;background:#fff}
form.filters,form.inline{display:flex;gap:.75rem;align-items:flex-end;flex-wrap:wrap;margin:0 0 1rem;padding:.75rem;background:var(--bg);border-radius:6px}
form.filters label,form.inline label{display:flex;flex-direction:column;font-size:.85rem;color:var(--muted);gap:.15rem}
.callout{padding:.75rem 1rem;border-radius:6px;margin:0 0 1rem;border:1px solid var(--line);background:var(--bg)}
.callout.error{border-color:var(--bad);background:#fdecea}
.callout.secret{border-color:var(--warn);background:#fff8e1}
.callout.secret code{display:block;margin:.5rem 0;padding:.5rem;background:#fff;border:1px solid var(--line);border-radius:4px}
tr.test-result>td{background:#fbfcfe}
.test-connector{margin:.25rem 0 .75rem}
.live{color:var(--muted);font-size:.85rem}
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:.25rem 1rem;background:var(--bg);padding:1rem;border-radius:6px}
dl.facts dt{font-weight:600}dl.facts dd{margin:0;font-family:ui-monospace,monospace}
.message{max-width:40rem;margin:4rem auto;padding:0 1rem}
`;

/**
 * The console's behaviour, progressive on the server-rendered pages: live connector rows,
 * the Test button, token creation (the token is shown once, in this page only) and revoke.
 * Everything it writes into the page goes through textContent, never innerHTML.
 */
const JS = `'use strict';
(function () {
  var meta = document.querySelector('meta[name="appproxy-csrf"]');
  var csrf = meta ? meta.getAttribute('content') : '';
  var page = document.body.getAttribute('data-page');

  function api(method, path, body) {
    var headers = { accept: 'application/json', 'x-csrf-token': csrf };
    var init = { method: method, headers: headers, credentials: 'same-origin', cache: 'no-store' };
    if (body !== undefined) {
      headers['content-type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    return fetch(path, init).then(function (res) {
      return res.text().then(function (text) {
        var data = null;
        try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
        if (res.status === 401) location.assign('/console/signin?return=' + encodeURIComponent(location.pathname + location.search));
        if (!res.ok) {
          var err = data && data.error ? data.error : { code: 'HTTP_' + res.status, message: res.statusText };
          throw err;
        }
        return data;
      });
    });
  }
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function when(iso) {
    return iso ? String(iso).replace('T', ' ').replace(/\\.\\d+Z$|Z$/, '') + ' UTC' : '-';
  }
  function list(data, key) {
    if (Array.isArray(data)) return data;
    if (data && Array.isArray(data[key])) return data[key];
    if (data && Array.isArray(data.items)) return data.items;
    return [];
  }
  function failure(err) {
    return (err && err.code ? err.code + ': ' : '') + (err && err.message ? err.message : String(err));
  }

  // Overview: the connector rows again every 5 s, from the API with this session.
  function connectorRow(c) {
    var tr = el('tr');
    tr.setAttribute('data-connector', c.id);
    var id = el('td'); id.appendChild(el('code', '', c.id)); tr.appendChild(id);
    tr.appendChild(el('td', '', c.hostname || '-'));
    var st = el('td'); st.appendChild(el('span', 'badge state-' + c.state, c.state)); tr.appendChild(st);
    tr.appendChild(el('td', '', c.version || '-'));
    var inst = (c.instances || []).filter(function (i) { return i.tunnels > 0; })
      .map(function (i) { return i.name + ' (' + i.tunnels + ')'; }).join(', ');
    tr.appendChild(el('td', '', inst || '-'));
    tr.appendChild(el('td', 'num', c.tunnels));
    tr.appendChild(el('td', 'num', c.inFlight));
    tr.appendChild(el('td', '', when(c.lastSeen)));
    return tr;
  }
  function refreshConnectors() {
    var status = document.getElementById('live-status');
    api('GET', '/api/v1/connectors').then(function (data) {
      var rows = list(data, 'connectors').filter(function (c) { return c.state !== 'revoked'; });
      document.querySelectorAll('table[data-group]').forEach(function (table) {
        var group = table.getAttribute('data-group');
        var mine = rows.filter(function (c) { return c.group === group; });
        var body = table.tBodies[0];
        body.replaceChildren();
        if (mine.length === 0) {
          var tr = el('tr'); var td = el('td', 'empty', 'No connector registered in this group.');
          td.colSpan = 8; tr.appendChild(td); body.appendChild(tr);
        }
        mine.forEach(function (c) { body.appendChild(connectorRow(c)); });
        var counts = document.querySelector('[data-counts="' + CSS.escape(group) + '"]');
        if (counts) counts.textContent = mine.filter(function (c) { return c.state === 'active'; }).length + ' active, ' +
          mine.filter(function (c) { return c.state !== 'active'; }).length + ' inactive';
      });
      if (status) status.textContent = 'Updated ' + when(new Date().toISOString());
    }).catch(function (err) {
      if (status) status.textContent = 'Live update failed: ' + failure(err);
    });
  }
  if (page === 'overview') setInterval(refreshConnectors, 5000);

  // Applications: Test through every connector of the app's group.
  function renderResult(box, result) {
    box.replaceChildren();
    var head = el('p');
    head.appendChild(el('span', 'badge ' + (result.ok ? 'pass' : 'fail'), result.ok ? 'pass' : 'fail'));
    head.appendChild(document.createTextNode(' ' + when(result.at) + (result.user ? ' as ' + result.user : '')));
    box.appendChild(head);
    if (result.error) {
      box.appendChild(el('p', 'callout error', failure(result.error)));
      if (result.error.fix) box.appendChild(el('p', 'note', 'Fix: ' + result.error.fix));
    }
    (result.connectors || []).forEach(function (c) {
      var part = el('div', 'test-connector');
      part.setAttribute('data-connector', c.id);
      var h = el('h3');
      h.appendChild(document.createTextNode('Connector '));
      h.appendChild(el('code', '', c.id));
      if (c.hostname) h.appendChild(document.createTextNode(' (' + c.hostname + ')'));
      h.appendChild(document.createTextNode(' '));
      h.appendChild(el('span', 'badge ' + (c.ok ? 'pass' : 'fail'), c.ok ? 'pass' : 'fail'));
      part.appendChild(h);
      if (c.error) {
        part.appendChild(el('p', 'callout error', failure(c.error)));
        if (c.error.fix) part.appendChild(el('p', 'note', 'Fix: ' + c.error.fix));
      }
      if (c.checks && c.checks.length > 0) {
        var t = el('table', 'checks');
        var hr = el('tr');
        ['Check', 'Result', 'Time', 'Detail', 'Fix'].forEach(function (n) { hr.appendChild(el('th', '', n)); });
        t.appendChild(el('thead')).appendChild(hr);
        var tb = t.appendChild(el('tbody'));
        c.checks.forEach(function (k) {
          var tr = el('tr');
          tr.setAttribute('data-check', k.name);
          var verdict = k.skipped ? 'skip' : !k.ok ? 'fail' : k.warn ? 'warn' : 'pass';
          tr.appendChild(el('td', '', k.name));
          var r = el('td'); r.appendChild(el('span', 'badge ' + verdict, verdict)); tr.appendChild(r);
          tr.appendChild(el('td', 'num', typeof k.ms === 'number' ? k.ms + ' ms' : '-'));
          tr.appendChild(el('td', '', k.detail || ''));
          tr.appendChild(el('td', '', k.fix || ''));
          tb.appendChild(tr);
        });
        part.appendChild(t);
      }
      box.appendChild(part);
    });
  }
  document.querySelectorAll('button[data-test-app]').forEach(function (button) {
    button.addEventListener('click', function () {
      var app = button.getAttribute('data-test-app');
      var row = button.closest('tr');
      var resultRow = row.nextElementSibling;
      var box = resultRow.querySelector('.result');
      var userInput = document.getElementById('test-user');
      var user = userInput && userInput.value.trim();
      button.disabled = true;
      button.textContent = 'Testing…';
      resultRow.hidden = false;
      box.replaceChildren(el('p', 'live', 'Testing ' + app + ' through its connectors…'));
      api('POST', '/api/v1/apps/' + encodeURIComponent(app) + '/tests', user ? { user: user } : {})
        .then(function (result) {
          renderResult(box, result);
          var last = row.querySelector('.last-test');
          if (last) {
            last.replaceChildren(el('span', 'badge ' + (result.ok ? 'pass' : 'fail'), result.ok ? 'pass' : 'fail'));
            last.appendChild(document.createTextNode(' '));
            var t = el('time', '', when(result.at));
            t.setAttribute('datetime', result.at);
            last.appendChild(t);
          }
        })
        .catch(function (err) { box.replaceChildren(el('p', 'callout error', failure(err))); })
        .then(function () { button.disabled = false; button.textContent = 'Test'; });
    });
  });

  // Registration tokens: create (shown once, here only), copy, revoke.
  function bindRevoke(button) {
    button.addEventListener('click', function () {
      var id = button.getAttribute('data-revoke-token');
      button.disabled = true;
      api('DELETE', '/api/v1/registration-tokens/' + encodeURIComponent(id)).then(function () {
        var tr = button.closest('tr');
        tr.parentNode.removeChild(tr);
      }).catch(function (err) {
        button.disabled = false;
        showError(failure(err));
      });
    });
  }
  function showError(text) {
    var box = document.getElementById('action-error');
    if (!box) return;
    box.textContent = text;
    box.hidden = false;
  }
  document.querySelectorAll('button[data-revoke-token]').forEach(bindRevoke);
  var form = document.getElementById('create-token');
  if (form) form.addEventListener('submit', function (ev) {
    ev.preventDefault();
    var submit = form.querySelector('button[type="submit"]');
    submit.disabled = true;
    var body = { group: form.elements.group.value, ttl: form.elements.ttl.value };
    api('POST', '/api/v1/registration-tokens', body).then(function (created) {
      document.getElementById('token-value').textContent = created.token;
      document.getElementById('token-meta').textContent =
        'Group ' + created.group + ', id ' + created.id + ', expires ' + when(created.expiresAt) + '.';
      document.getElementById('created-token').hidden = false;
      var body = document.querySelector('#tokens tbody');
      var empty = body.querySelector('td.empty');
      if (empty) body.removeChild(empty.parentNode);
      var tr = el('tr');
      tr.setAttribute('data-token', created.id);
      var id = el('td'); id.appendChild(el('code', '', created.id)); tr.appendChild(id);
      tr.appendChild(el('td', '', created.group));
      tr.appendChild(el('td', '', when(new Date().toISOString())));
      tr.appendChild(el('td', '', when(created.expiresAt)));
      var act = el('td'); var b = el('button', 'danger', 'Revoke');
      b.type = 'button'; b.setAttribute('data-revoke-token', created.id); bindRevoke(b);
      act.appendChild(b); tr.appendChild(act);
      body.insertBefore(tr, body.firstChild);
    }).catch(function (err) { showError(failure(err)); })
      .then(function () { submit.disabled = false; });
  });
  var copy = document.getElementById('copy-token');
  if (copy) copy.addEventListener('click', function () {
    var text = document.getElementById('token-value').textContent;
    var done = function () { copy.textContent = 'Copied'; };
    if (navigator.clipboard && navigator.clipboard.writeText) navigator.clipboard.writeText(text).then(done, function () {});
    else {
      var range = document.createRange();
      range.selectNodeContents(document.getElementById('token-value'));
      var sel = getSelection(); sel.removeAllRanges(); sel.addRange(range);
      if (document.execCommand('copy')) done();
    }
  });
})();
`;

export interface ConsoleAsset {
  /** The URL path: `/console/assets/console.<hash>.css`. */
  path: string;
  contentType: string;
  body: Buffer;
  etag: string;
}

function asset(name: string, ext: string, contentType: string, text: string): ConsoleAsset {
  const body = Buffer.from(text, 'utf8');
  const hash = createHash('sha256').update(body).digest('hex');
  return {
    path: `/console/assets/${name}.${hash.slice(0, 12)}.${ext}`,
    contentType,
    body,
    etag: `"${hash.slice(0, 32)}"`,
  };
}

export const CONSOLE_CSS = asset('console', 'css', 'text/css; charset=utf-8', CSS);
export const CONSOLE_JS = asset('console', 'js', 'text/javascript; charset=utf-8', JS);

/** The asset at `path`, or undefined. */
export function consoleAsset(path: string): ConsoleAsset | undefined {
  return [CONSOLE_CSS, CONSOLE_JS].find((a) => a.path === path);
}
