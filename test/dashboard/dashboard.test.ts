// The dashboard in real headless Chromium (Debian's, driven by playwright-core) against three agent
// processes: agents shown live from the events stream, pause and resume through the dialog without a
// reload, a stale page refused with 409, shutdown's typed confirmation; nothing loaded from
// elsewhere and no console error. UPDATE_SCREENSHOT=1 also writes docs/dashboard.png.

import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it, type TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';

import type { BrowserContext, BrowserType, Page } from 'playwright-core';

import { type AgentProcess, Fleet } from '../helpers/processes.js';
import { sqliteTarget, type TargetDatabase } from '../helpers/targets.js';
import { waitFor } from '../helpers/wait.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
/** Without the background-networking switches Chromium tries to reach the outside on its own. */
const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

async function loadChromium(): Promise<BrowserType | undefined> {
  try {
    return (await import('playwright-core')).chromium;
  } catch {
    return undefined;
  }
}

/** Skips outside CI, fails under CI, when the browser or its driver is missing. */
function browserUnavailable(why: string): string {
  const reason = `dashboard tests skipped: ${why} (apt-get install chromium, or set CHROMIUM_PATH; npm install)`;
  if (process.env.CI === 'true') throw new Error(`CI=true but ${reason}`);
  return reason;
}

const chromium = await loadChromium();
const skip = !existsSync(CHROMIUM)
  ? browserUnavailable(`no Chromium at ${CHROMIUM}`)
  : chromium
    ? undefined
    : browserUnavailable('playwright-core is not installed');

/** Chromium processes still running on this profile directory (Linux: read from /proc). */
function browserProcesses(profile: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(profile)) pids.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

/** The page's document, as far as the checks below use it (the test's own lib has no DOM types). */
type PageGlobals = {
  document: { querySelectorAll(selector: string): ArrayLike<{ textContent: string | null }> };
};

/**
 * Waits until the texts of the elements matching `selector` are exactly `expected`, checked every
 * frame. A function, not a string: the page's Content-Security-Policy forbids eval, rightly.
 */
async function waitForTexts(page: Page, selector: string, expected: string[], timeout = 15_000) {
  try {
    await page.waitForFunction(
      ({ selector, want }) => {
        const { document } = globalThis as unknown as PageGlobals;
        return JSON.stringify(Array.from(document.querySelectorAll(selector), (e) => e.textContent)) === want;
      },
      { selector, want: JSON.stringify(expected) },
      { timeout, polling: 'raf' },
    );
  } catch (error) {
    const shown = await page.locator(selector).allTextContents();
    assert.fail(
      `${selector}: expected ${JSON.stringify(expected)}, the page shows ${JSON.stringify(shown)} (${String(error)})`,
    );
  }
}

const text = async (page: Page, selector: string) => (await page.locator(selector).textContent()) ?? '';

describe(
  'dashboard in headless Chromium against three agent processes',
  { skip: skip ?? false, timeout: 180_000 },
  () => {
    let db: TargetDatabase;
    let fleet: Fleet;
    let agents: AgentProcess[];
    let profile: string;
    let context: BrowserContext | undefined;
    let page: Page;
    let base: string;
    const external: string[] = [];
    const consoleErrors: string[] = [];
    const pageErrors: string[] = [];
    let loads = 0;

    /** Console errors so far, less those expected (a refused request logs one). */
    function unexpectedErrors(expected: RegExp[] = []): string[] {
      const errors = consoleErrors.splice(0).filter((e) => !expected.some((pattern) => pattern.test(e)));
      return [...errors, ...pageErrors.splice(0)];
    }

    before(async () => {
      db = await sqliteTarget.create();
      fleet = new Fleet(db.env);
      agents = await fleet.startMany(3);
      base = agents[0]!.url;
      profile = mkdtempSync(join(tmpdir(), 'pa-chromium-'));
      context = await chromium!.launchPersistentContext(profile, {
        executablePath: CHROMIUM,
        headless: true,
        args: CHROMIUM_ARGS,
        viewport: { width: 1280, height: 800 },
        colorScheme: 'light',
      });
      page = context.pages()[0] ?? (await context.newPage());
      page.setDefaultTimeout(15_000);
      page.on('request', (request) => {
        if (!request.url().startsWith(`${base}/`)) external.push(request.url());
      });
      page.on('console', (message) => {
        if (message.type() === 'error') consoleErrors.push(message.text());
      });
      page.on('pageerror', (error) => pageErrors.push(error.message));
      page.on('load', () => loads++);
    });

    after(async () => {
      try {
        await context?.close();
        if (profile) {
          const left = await waitFor(() => browserProcesses(profile).length === 0 || undefined, {
            what: 'Chromium to exit',
            timeoutMs: 10_000,
          }).catch(() => browserProcesses(profile));
          if (Array.isArray(left)) {
            for (const pid of left) process.kill(pid, 'SIGKILL');
            assert.fail(`Chromium processes left running: ${left.join(', ')}`);
          }
        }
      } finally {
        await fleet?.stopAll();
        await db?.cleanup();
        if (profile) rmSync(profile, { recursive: true, force: true });
      }
    });

    it('shows the cluster and the three agents running, live from the events stream', async () => {
      const response = await page.goto(`${base}/`);
      assert.equal(response?.status(), 200);
      assert.match(response?.headers()['content-security-policy'] ?? '', /default-src 'self'/);
      await waitForTexts(page, '#agents td.state', ['running', 'running', 'running']);
      assert.deepEqual(await page.locator('#agents td.id').allTextContents(), [
        'agent-1',
        'agent-2',
        'agent-3',
      ]);
      assert.equal(await text(page, '#command'), 'running');
      assert.equal(await text(page, '#version'), '0');
      assert.equal(await text(page, '#connection'), 'live');
      assert.equal(await text(page, '#sum-live'), '3');
      assert.equal(await text(page, '#sum-applied'), '3/3');
      await waitForTexts(page, '#watch-mode', ['file_events']);
      assert.match(await text(page, '#agents tr:first-child td.age'), /s ago|just now/);
      assert.deepEqual(external, []);
      assert.deepEqual(unexpectedErrors(), []);
    });

    it('pauses all three from the dialog and shows it without a reload, then resumes', async (t: TestContext) => {
      await page.click('button[data-command="pause"]');
      assert.equal(await page.locator('#command-dialog').isVisible(), true);
      assert.equal(await page.locator('#confirm-field').isVisible(), false);
      await page.fill('#reason-input', 'Deploy 2.4: database migration');
      await page.fill('#by-input', 'alice');
      const clicked = Date.now();
      await page.click('#dialog-submit');
      await waitForTexts(page, '#agents td.state', ['paused', 'paused', 'paused']);
      const shown = Date.now() - clicked;
      t.diagnostic(`click on Pause to all three agents shown paused: ${shown} ms`);
      assert.deepEqual(await Promise.all(agents.map((a) => a.state())), ['paused', 'paused', 'paused']);
      assert.equal(await page.locator('#command-dialog').isVisible(), false);
      await waitForTexts(page, '#command', ['pause']);
      assert.equal(await text(page, '#version'), '1');
      assert.equal(await text(page, '#reason'), 'Deploy 2.4: database migration');
      assert.equal(await text(page, '#updated-by'), 'alice');
      await waitForTexts(page, '#history tbody tr:first-child td', [
        '1',
        'pause',
        'Deploy 2.4: database migration',
        'alice',
        await text(page, '#when'),
      ]);
      await waitForTexts(page, '#sum-applied', ['3/3']);
      await page.mouse.move(0, 0);
      const screenshot = process.env.UPDATE_SCREENSHOT
        ? join(ROOT, 'docs/dashboard.png')
        : join(tmpdir(), 'pulling-agent-dashboard.png');
      await page.screenshot({ path: screenshot });
      t.diagnostic(`screenshot: ${screenshot} (${Math.round(statSync(screenshot).size / 1024)} KB)`);

      // Reasons are user input: markup in one is shown as text, never run or loaded.
      await page.click('button[data-command="resume"]');
      assert.equal(await page.locator('#by-input').inputValue(), 'alice', 'the name is remembered');
      const markup = '<img src=x onerror="document.title=1"> done';
      await page.fill('#reason-input', markup);
      await page.click('#dialog-submit');
      await waitForTexts(page, '#agents td.state', ['running', 'running', 'running']);
      await waitForTexts(page, '#command', ['running']);
      await waitForTexts(page, '#history tbody tr:first-child td:nth-child(3)', [markup]);
      assert.equal(await text(page, '#reason'), markup);
      assert.equal(await page.locator('main img').count(), 0);
      assert.equal(
        await text(page, '#history tbody tr:nth-child(2) td:nth-child(3)'),
        'Deploy 2.4: database migration',
      );
      assert.equal(loads, 1, 'the page was never reloaded');
      assert.deepEqual(external, []);
      assert.deepEqual(unexpectedErrors(), []);
    });

    it('refuses a command from a page that missed a change: 409, "the cluster changed meanwhile"', async () => {
      const before = Number(await text(page, '#version'));
      await page.click('button[data-command="pause"]');
      // Someone else writes a command while the dialog is open.
      const other = await agents[1]!.post('/api/cluster/pause?reason=other+operator&updated_by=bob');
      assert.equal(other.status, 200);
      await waitForTexts(page, '#version', [String(before + 1)]);
      await page.fill('#reason-input', 'stale');
      await page.click('#dialog-submit');
      await waitForTexts(page, '#dialog-error', [
        `The cluster changed meanwhile (now version ${before + 1}); nothing was written. ` +
          'Check the state behind this dialog; Pause again writes over it.',
      ]);
      assert.equal(await page.locator('#command-dialog').isVisible(), true);
      const control = await agents[2]!.get<{ version: number; updated_by: string }>(
        '/api/cluster/control-state',
      );
      assert.equal(control.body.version, before + 1);
      assert.equal(control.body.updated_by, 'bob');
      assert.equal(await text(page, '#updated-by'), 'bob');

      // Having seen it, the operator may confirm again: now against the new version.
      await page.click('#dialog-submit');
      await waitForTexts(page, '#version', [String(before + 2)]);
      assert.equal(await page.locator('#command-dialog').isVisible(), false);
      assert.deepEqual(external, []);
      assert.deepEqual(unexpectedErrors([/status of 409/]), []);
    });

    it('shuts down only with the typed confirmation; reconnects to an agent that comes back', async (t: TestContext) => {
      const version = await text(page, '#version');
      await page.click('button[data-command="shutdown"]');
      assert.equal(await page.locator('#confirm-field').isVisible(), true);
      await page.fill('#reason-input', 'Emergency');
      await page.click('#dialog-submit');
      await waitForTexts(page, '#dialog-error', ['Type shutdown in the last field to confirm.']);
      await page.fill('#confirm-input', 'shutdow');
      await page.press('#confirm-input', 'Enter');
      await new Promise((resolve) => setTimeout(resolve, 300));
      assert.equal(await page.locator('#command-dialog').isVisible(), true);
      const control = await agents[0]!.get<{ version: number }>('/api/cluster/control-state');
      assert.equal(String(control.body.version), version, 'nothing was written');
      assert.deepEqual(
        agents.map((a) => a.child.exitCode),
        [null, null, null],
      );

      await page.fill('#confirm-input', 'shutdown');
      await page.click('#dialog-submit');
      await waitForTexts(page, '#command', ['shutdown']);
      assert.deepEqual(await Promise.all([agents[1]!.exited, agents[2]!.exited]), [0, 0]);
      // The agent serving the page keeps its events stream open through app.close() and so does not
      // exit while the page is open (the todo in test/cli/agentctl.test.ts): a crash stands in for it.
      const served = agents[0]!;
      const exited = await Promise.race([served.exited, new Promise((r) => setTimeout(r, 3000, 'running'))]);
      if (exited === 'running') {
        t.diagnostic(`${served.id} did not exit while the page was connected (known issue); killed it`);
        served.child.kill('SIGKILL');
        await served.exited;
      } else assert.equal(exited, 0);
      await waitFor(async () => /reconnecting/.test(await text(page, '#connection')), {
        what: 'the reconnecting indicator',
      });

      // An agent on the same address: the page follows it again, without a reload.
      const port = new URL(base).port;
      const back = await fleet.start({ PORT: port }, 'agent-4');
      assert.equal(back.url, base);
      await waitForTexts(page, '#connection', ['live'], 30_000);
      await waitForTexts(page, '#agents td.id', ['agent-4']);
      await waitForTexts(page, '#agents td.state', ['stopped']);
      assert.equal(await text(page, '#command'), 'shutdown');
      assert.equal(loads, 1, 'the page was never reloaded');
      assert.deepEqual(external, []);
      // While no agent listened, Chromium logged the refused connections; no script error is allowed.
      assert.deepEqual(unexpectedErrors([/net::ERR_/]), []);
    });
  },
);
