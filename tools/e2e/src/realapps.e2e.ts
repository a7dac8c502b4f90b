import { startDevIdp } from '@appproxy/dev-idp';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, BrowserContext, Page, Response } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CHROMIUM, launchChromium, logInAtDevIdp, newContext } from './browser.js';
import { Stack, devIdpFor, systemTool, type StackApp } from './harness.js';
import {
  DOKUWIKI_ADMIN,
  type RealApp,
  startDokuWiki,
  startJupyter,
  startNodeRed,
} from './real-apps.js';

/**
 * Real third-party apps behind the real relay and connector CLIs, used in Chromium (issue
 * 16): Node-RED, Jupyter Notebook and DokuWiki, each published in the hard shape — internal
 * path ≠ external path, its own external host, oidc pre-authentication with the dev IdP.
 */
type DevIdp = Awaited<ReturnType<typeof startDevIdp>>;

const JUPYTER = systemTool('jupyter-notebook');
const LIGHTTPD = systemTool('lighttpd');
const PHP_CGI = systemTool('php-cgi');
const DOKUWIKI_INSTALLED = (() => {
  try {
    return readdirSync('/usr/share/dokuwiki').includes('doku.php');
  } catch {
    const message =
      'DokuWiki is not installed (apt-get install -y dokuwiki): tests that need it are SKIPPED';
    if (process.env.APPPROXY_REQUIRE_ALL === '1') throw new Error(message);
    console.warn(`\n!!! ${message} !!!\n`);
    return false;
  }
})();

let browser: Browser;
beforeAll(async () => {
  if (CHROMIUM) browser = await launchChromium();
});
afterAll(async () => {
  await browser?.close();
});

/** One app published through its own relay + connector, with the dev IdP in front. */
class Published {
  stack!: Stack;
  idp!: DevIdp;
  readonly contexts: BrowserContext[] = [];
  /** When the app began to start (its share of the suite's time is logged at stop). */
  started = Date.now();

  constructor(
    readonly host: string,
    readonly label: string,
  ) {}

  get origin(): string {
    return `https://${this.host}:${this.stack.ports.public}`;
  }

  async start(app: Omit<StackApp, 'externalUrl'> & { externalPath: string }): Promise<this> {
    this.stack = new Stack({
      apps: [
        {
          ...app,
          externalUrl: `https://${this.host}:{port}${app.externalPath}`,
          preAuthentication: 'oidc',
        },
      ],
    });
    this.idp = await devIdpFor(this.stack, [this.host], { scopes: '[openid, profile, email]' });
    await this.stack.start();
    return this;
  }

  async stop(): Promise<void> {
    await Promise.all(this.contexts.splice(0).map((c) => c.close()));
    await this.stack?.stop();
    await this.idp?.close();
    // The suite has a time budget (issue 16: under 4 minutes); each app's share is logged.
    console.log(`realapps: ${this.label}: ${((Date.now() - this.started) / 1000).toFixed(1)} s`);
  }

  /** A fresh browser profile that has signed in at the dev IdP and landed on `url`. */
  async signedIn(url: string, watch?: (page: Page) => void): Promise<Page> {
    const ctx = await newContext(browser);
    this.contexts.push(ctx);
    const page = await ctx.newPage();
    watch?.(page);
    await page.goto(url);
    await logInAtDevIdp(page, this.idp.issuer, 'alice', 20_000);
    await page.waitForURL(url, { timeout: 30_000 });
    return page;
  }
}

/**
 * Records every main-frame navigation, every request of the page and every redirect target,
 * so a test can assert that the browser was never sent to the app's internal address.
 */
function watchAddresses(page: Page): { navigations: string[]; requests: string[] } {
  const seen = { navigations: [] as string[], requests: [] as string[] };
  // A popup may have committed its first navigation before this runs.
  if (page.url() !== 'about:blank') seen.navigations.push(page.url());
  page.on('framenavigated', (f) => {
    if (f === page.mainFrame()) seen.navigations.push(f.url());
  });
  page.on('request', (r) => seen.requests.push(r.url()));
  // Redirects the browser followed or not: their targets count as requests.
  page.on('response', (r) => {
    const location = r.headers().location;
    if (location) seen.requests.push(new URL(location, r.url()).href);
  });
  return seen;
}

function expectNeverInternal(
  seen: { navigations: string[]; requests: string[] },
  app: RealApp,
  allowed: string[],
): void {
  const internalHost = `127.0.0.1:${app.port}`;
  expect(seen.requests.filter((u) => u.includes(internalHost))).toEqual([]);
  expect(seen.navigations.length).toBeGreaterThan(0);
  expect(seen.navigations.filter((u) => !allowed.some((prefix) => u.startsWith(prefix)))).toEqual(
    [],
  );
}

/** DokuWiki's user menu entries (Igor: `<li class="action logout"><a …>`). */
const LOGOUT = 'li.action.logout a, a.action.logout';
const LOGIN = 'li.action.login a, a.action.login';

const NODE_RED_PROBE = 'hello-through-appproxy';

describe.skipIf(!CHROMIUM)('Node-RED behind AppProxy (editor at /nr/, internally /red/)', () => {
  const pub = new Published('flows.apps.localhost', 'Node-RED');
  let red: RealApp;
  beforeAll(async () => {
    pub.started = Date.now();
    red = await startNodeRed((internal) => [
      { id: 'tab1', type: 'tab', label: 'Probe' },
      // An internal URL in a node's settings: a deploy must write it back unchanged.
      {
        id: 'req1',
        type: 'http request',
        z: 'tab1',
        name: 'internal call',
        method: 'GET',
        ret: 'txt',
        url: `${internal}settings`,
        x: 200,
        y: 200,
        wires: [[]],
      },
    ]);
    await pub.start({
      name: 'Node-RED',
      internalUrl: red.internalUrl,
      externalPath: '/nr/',
      // Scripts translated like any app with absolute links in its JavaScript; JSON API data
      // (GET /flows) must come back untouched, or a Deploy saves external URLs (bug 4).
      extra: '    translateBody: true\n    translateScripts: true\n',
    });
  });
  afterAll(async () => {
    await pub.stop();
    await red?.stop();
  });

  it('answers the path without its trailing slash with a redirect to the slash form (bug 1)', async () => {
    const noSlash = `${pub.origin}/nr`;
    const redirects: Array<{ from: string; status: number; location?: string }> = [];
    const ctx = await newContext(browser);
    pub.contexts.push(ctx);
    const page = await ctx.newPage();
    page.on('response', (r: Response) => {
      if (r.status() >= 300 && r.status() < 400)
        redirects.push({ from: r.url(), status: r.status(), location: r.headers().location });
    });
    await page.goto(noSlash);
    await logInAtDevIdp(page, pub.idp.issuer, 'alice', 20_000);
    await page.waitForURL(`${pub.origin}/nr/`, { timeout: 30_000 });
    // /nr itself was answered with a redirect to /nr/ (before or after the sign-in).
    expect(
      redirects.filter(
        (r) =>
          r.from === noSlash &&
          [301, 302, 307, 308].includes(r.status) &&
          new URL(r.location ?? '', r.from).href === `${noSlash}/`,
      ),
    ).toHaveLength(1);
    // Node-RED's editor, whose relative URLs now resolve under /nr/.
    await page.waitForSelector('#red-ui-header-button-deploy', { timeout: 60_000 });
  });

  it('deploys inject → debug in the editor, sees the message over comms, keeps flows.json', async () => {
    const frames: string[] = [];
    const sockets: string[] = [];
    let seen!: ReturnType<typeof watchAddresses>;
    const page = await pub.signedIn(`${pub.origin}/nr/`, (p) => {
      seen = watchAddresses(p);
      p.on('websocket', (ws) => {
        sockets.push(ws.url());
        ws.on('framereceived', (f) => frames.push(String(f.payload)));
      });
    });

    // The editor is Node-RED's, with the seeded flow (not some other app's page).
    await page.waitForSelector('#red-ui-header-button-deploy', { timeout: 60_000 });
    await page.waitForFunction(
      () =>
        (
          globalThis as unknown as { RED?: { nodes: { node(id: string): unknown } } }
        ).RED?.nodes.node('req1'),
      undefined,
      { timeout: 30_000 },
    );
    expect(
      sockets.some((u) => u === `wss://flows.apps.localhost:${pub.stack.ports.public}/nr/comms`),
    ).toBe(true);

    // Import inject → debug through the editor's import dialog, place it, deploy.
    const flow = [
      {
        id: 'inj1',
        type: 'inject',
        z: 'tab1',
        name: 'probe',
        props: [{ p: 'payload' }],
        payload: NODE_RED_PROBE,
        payloadType: 'str',
        repeat: '',
        once: false,
        x: 200,
        y: 80,
        wires: [['dbg1']],
      },
      {
        id: 'dbg1',
        type: 'debug',
        z: 'tab1',
        name: 'out',
        active: true,
        tosidebar: true,
        console: false,
        complete: 'payload',
        targetType: 'msg',
        x: 420,
        y: 80,
        wires: [],
      },
    ].map(({ z: _z, ...n }) => n);
    await page.click('#red-ui-workspace-chart');
    await page.keyboard.press('Control+i');
    const importText = page.locator('#red-ui-clipboard-dialog-import-text');
    await importText.fill(JSON.stringify(flow));
    // The dialog validates on keyup (a paste, when typed), which fill() does not send.
    await importText.press('End');
    await page.click('#red-ui-clipboard-dialog-ok');
    // Imported nodes follow the mouse until a click places them.
    const chart = (await page.locator('#red-ui-workspace-chart').boundingBox())!;
    await page.mouse.move(chart.x + 150, chart.y + 100);
    await page.mouse.click(chart.x + 150, chart.y + 100);

    const deployed = page.waitForResponse(
      (r) => r.url() === `${pub.origin}/nr/flows` && r.request().method() === 'POST',
    );
    await page.click('#red-ui-header-button-deploy');
    const deploy = await deployed;
    expect(deploy.status()).toBe(200);

    // Click the inject node's button; the debug sidebar shows what came over the WebSocket.
    await page.click('#red-ui-tab-debug-link-button');
    const injected = page.waitForResponse(
      (r) => r.url().startsWith(`${pub.origin}/nr/inject/`) && r.request().method() === 'POST',
    );
    // The inject node's button (the debug node has one too: it would switch output off).
    await page
      .locator('.red-ui-flow-node-group', { hasText: 'probe' })
      .locator('.red-ui-flow-node-button')
      .click();
    expect((await injected).status()).toBe(200);
    await expect
      .poll(() => page.locator('.red-ui-debug-msg').allTextContents(), { timeout: 20_000 })
      .toEqual(expect.arrayContaining([expect.stringContaining(NODE_RED_PROBE)]));
    expect(frames.some((f) => f.includes('"topic":"debug"') && f.includes(NODE_RED_PROBE))).toBe(
      true,
    );

    // On disk: the deployed inject → debug, and the internal URL exactly as it was.
    const onDisk = JSON.parse(readFileSync(join(red.dir, 'flows.json'), 'utf8')) as Array<
      Record<string, unknown>
    >;
    expect(onDisk.find((n) => n.id === 'req1')?.url).toBe(`${red.internalUrl}settings`);
    expect(onDisk.filter((n) => n.type === 'inject').map((n) => n.payload)).toEqual([
      NODE_RED_PROBE,
    ]);
    expect(onDisk.filter((n) => n.type === 'debug')).toHaveLength(1);
    expect(JSON.stringify(onDisk)).not.toContain('flows.apps.localhost');

    expectNeverInternal(seen, red, [`${pub.origin}/nr`, pub.idp.issuer]);
  });
});

describe.skipIf(!CHROMIUM || !JUPYTER)(
  'Jupyter Notebook behind AppProxy (at /nb/, internally /jupyter/)',
  () => {
    const pub = new Published('notebooks.apps.localhost', 'Jupyter');
    let nb: RealApp;
    beforeAll(async () => {
      pub.started = Date.now();
      nb = await startJupyter(JUPYTER!);
      await pub.start({
        name: 'Jupyter',
        internalUrl: nb.internalUrl,
        externalPath: '/nb/',
        // Jupyter builds its URLs from data-base-url="/jupyter/" and require.js's baseUrl.
        extra:
          '    translateBody: true\n    translateScripts: true\n    translateRootRelative: true\n',
      });
    });
    afterAll(async () => {
      await pub.stop();
      await nb?.stop();
    });

    it('signs in, runs 1+1 in a kernel, saves the notebook, uploads a file', async () => {
      let seen!: ReturnType<typeof watchAddresses>;
      const tree = await pub.signedIn(`${pub.origin}/nb/tree`, (p) => (seen = watchAddresses(p)));
      // Rewritten by translateRootRelative; the page's scripts build every URL from it.
      expect(await tree.getAttribute('body', 'data-base-url')).toBe('/nb/');
      await tree.waitForSelector('#new-dropdown-button', { timeout: 30_000 });

      // New → Python 3 opens the notebook in a new tab.
      await tree.click('#new-dropdown-button');
      const opened = tree.context().waitForEvent('page');
      await tree.click('#kernel-python3 a');
      const notebook = await opened;
      const nbSeen = watchAddresses(notebook);
      const kernelSockets: string[] = [];
      notebook.on('websocket', (ws) => kernelSockets.push(ws.url()));
      await notebook.waitForURL(/\/nb\/notebooks\/Untitled\.ipynb/, { timeout: 60_000 });
      await notebook.waitForSelector('#kernel_indicator_icon.kernel_idle_icon', {
        timeout: 60_000,
      });
      expect(
        kernelSockets.some((u) =>
          /^wss:\/\/notebooks\.apps\.localhost:\d+\/nb\/api\/kernels\//.test(u),
        ),
      ).toBe(true);

      await notebook.click('.cell .CodeMirror');
      await notebook.keyboard.type('1+1');
      await notebook.keyboard.press('Shift+Enter');
      await expect
        .poll(() => notebook.locator('.output_result pre').first().textContent(), {
          timeout: 30_000,
        })
        .toBe('2');

      const saved = notebook.waitForResponse(
        (r) =>
          r.url().startsWith(`${pub.origin}/nb/api/contents/Untitled.ipynb`) &&
          r.request().method() === 'PUT',
      );
      await notebook.keyboard.press('Escape');
      await notebook.keyboard.press('Control+s');
      expect((await saved).status()).toBe(200);
      const onDisk = JSON.parse(readFileSync(join(nb.dir, 'Untitled.ipynb'), 'utf8')) as {
        cells: Array<{
          source: string | string[];
          outputs?: Array<{ data?: Record<string, string | string[]> }>;
        }>;
      };
      const first = onDisk.cells[0]!;
      expect([first.source].flat().join('')).toBe('1+1');
      expect([first.outputs?.[0]?.data?.['text/plain']].flat().join('')).toBe('2');

      // Upload from the file list: pick the file, then confirm its row's Upload button.
      const content = `uploaded through AppProxy ${Date.now()}\n`;
      await tree.bringToFront();
      await tree.setInputFiles('#alternate_upload input[type=file]', {
        name: 'upload-probe.txt',
        mimeType: 'text/plain',
        buffer: Buffer.from(content),
      });
      const uploaded = tree.waitForResponse(
        (r) =>
          r.url().startsWith(`${pub.origin}/nb/api/contents/upload-probe.txt`) &&
          r.request().method() === 'PUT',
      );
      await tree.click('.upload_button');
      expect((await uploaded).status()).toBe(201);
      expect(readFileSync(join(nb.dir, 'upload-probe.txt'), 'utf8')).toBe(content);

      const allowed = [`${pub.origin}/nb/`, pub.idp.issuer];
      expectNeverInternal(seen, nb, allowed);
      expectNeverInternal(nbSeen, nb, allowed);
    });
  },
);

describe.skipIf(!CHROMIUM || !LIGHTTPD || !PHP_CGI || !DOKUWIKI_INSTALLED)(
  'DokuWiki on lighttpd + php-cgi behind AppProxy (at /, internally /dokuwiki/)',
  () => {
    const pub = new Published('wiki.apps.localhost', 'DokuWiki');
    let wiki: RealApp;
    beforeAll(async () => {
      pub.started = Date.now();
      wiki = await startDokuWiki(LIGHTTPD!, PHP_CGI!);
      await pub.start({
        name: 'DokuWiki',
        internalUrl: wiki.internalUrl,
        externalPath: '/',
        // var DOKU_BASE='/dokuwiki/' drives its AJAX calls and toolbar images.
        extra:
          '    translateBody: true\n    translateScripts: true\n    translateRootRelative: true\n',
      });
    });
    afterAll(async () => {
      await pub.stop();
      await wiki?.stop();
    });

    it('logs in, edits and saves a page, searches, logs out — never on an internal URL', async () => {
      const start = `${pub.origin}/doku.php?id=start`;
      const failures: string[] = [];
      let seen!: ReturnType<typeof watchAddresses>;
      const page = await pub.signedIn(start, (p) => {
        seen = watchAddresses(p);
        p.on('response', (r) => {
          if (r.status() >= 500) failures.push(`${r.status()} ${r.url()}`);
        });
      });
      // DokuWiki's scripts build every AJAX URL from it.
      expect(
        await page.evaluate(() => (globalThis as unknown as { DOKU_BASE: string }).DOKU_BASE),
      ).toBe('/');

      // Log in to the wiki itself.
      await page.goto(`${pub.origin}/doku.php?id=start&do=login`);
      await page.fill('input[name=u]', DOKUWIKI_ADMIN.user);
      await page.fill('input[name=p]', DOKUWIKI_ADMIN.password);
      await Promise.all([page.waitForNavigation(), page.click('#dw__login button[type=submit]')]);
      await page.waitForSelector(LOGOUT);

      // Edit and save a page.
      const text = `Published through AppProxy, saved at ${Date.now()}.`;
      await page.goto(`${pub.origin}/doku.php?id=appproxy_probe&do=edit`);
      await page.fill('#wiki__text', `====== Probe ======\n${text}\n`);
      await Promise.all([page.waitForNavigation(), page.click('#edbtn__save')]);
      expect(new URL(page.url()).origin).toBe(pub.origin);
      await expect.poll(() => page.textContent('.page')).toContain(text);
      expect(readFileSync(join(wiki.dir, 'pages/appproxy_probe.txt'), 'utf8')).toContain(text);

      // Quick search (AJAX to lib/exe/ajax.php) finds the page once the indexer (run by the
      // page's taskrunner image) has it: each try types the query again.
      const quickSearch = async (): Promise<string[]> => {
        await page.fill('#qsearch__in', '');
        const answered = page.waitForResponse(
          (r) => r.url() === `${pub.origin}/lib/exe/ajax.php` && r.request().method() === 'POST',
          { timeout: 10_000 },
        );
        await page.locator('#qsearch__in').pressSequentially('appproxy_pro');
        expect((await answered).status()).toBe(200);
        return page.locator('#qsearch__out a').allTextContents();
      };
      await expect.poll(quickSearch, { timeout: 20_000 }).toContain('appproxy_probe');

      // Log out of the wiki.
      await Promise.all([page.waitForNavigation(), page.click(LOGOUT)]);
      await page.waitForSelector(LOGIN);

      expect(failures).toEqual([]);
      expectNeverInternal(seen, wiki, [`${pub.origin}/`, pub.idp.issuer]);
    });

    it('page views after 6-second pauses (lighttpd closes idle keep-alive after 5 s) never 502', async () => {
      const page = await pub.signedIn(`${pub.origin}/doku.php?id=wiki:syntax`);
      const statuses: string[] = [];
      page.on('response', (r) => statuses.push(`${r.status()} ${r.url()}`));
      for (const id of ['wiki:dokuwiki', 'wiki:syntax', 'start']) {
        // The point of the check: every pooled connection to lighttpd has gone idle too long.
        await new Promise((r) => setTimeout(r, 6_000));
        const res = await page.goto(`${pub.origin}/doku.php?id=${id}`, { waitUntil: 'load' });
        expect([id, res?.status()]).toEqual([id, 200]);
      }
      expect(statuses.length).toBeGreaterThan(3);
      expect(statuses.filter((s) => /^5\d\d /.test(s))).toEqual([]);
    });
  },
);
