// The dashboard in real headless Chromium (Debian's, driven by playwright-core) against real agent
// processes: three agents shown live from the events stream, pause and resume through the dialog
// without a reload, a stale page refused with 409, shutdown's typed confirmation, reconnection; the
// queues with their counts, a queue's pause and resume through the same dialog, the throttle; and
// with API tokens, the token asked for, kept out of URLs and storage, sent as a Bearer header.
// Nothing may be loaded from elsewhere and no console error appear. UPDATE_SCREENSHOT=1 also writes
// docs/dashboard.png (otherwise the screenshot goes to the temp folder, so runs leave the tree clean).

import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it, type TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';

import type { Page } from 'playwright-core';

import { type AgentProcess, Fleet } from '../helpers/processes.js';
import { sqliteTarget, type TargetDatabase } from '../helpers/targets.js';
import { waitFor } from '../helpers/wait.js';
import { Browser, BROWSER_SKIP, textOf, waitForTexts } from './browser.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/** Stores documents through an agent's API (into `queue`, or default); answers their ids. */
async function post(base: string, documents: unknown[], queue?: string): Promise<string[]> {
  const into = queue === undefined ? '' : `?queue=${encodeURIComponent(queue)}`;
  const response = await fetch(`${base}/api/documents${into}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(documents),
  });
  assert.equal(response.status, 201);
  return ((await response.json()) as { ids: string[] }).ids;
}

describe(
  'dashboard in headless Chromium against three agent processes',
  { skip: BROWSER_SKIP ?? false, timeout: 180_000 },
  () => {
    let db: TargetDatabase;
    let fleet: Fleet;
    let agents: AgentProcess[];
    let browser: Browser;
    let page: Page;
    let base: string;

    before(async () => {
      db = await sqliteTarget.create();
      fleet = new Fleet(db.env);
      // No retries: a document asked to fail is failed at its first attempt.
      agents = await fleet.startMany(3, { MAX_RETRIES: '0' });
      base = agents[0]!.url;
      browser = await Browser.launch();
      page = browser.page;
    });

    after(async () => {
      try {
        await browser?.close();
      } finally {
        await fleet?.stopAll();
        await db?.cleanup();
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
      assert.equal(await textOf(page, '#command'), 'running');
      assert.equal(await textOf(page, '#version'), '0');
      assert.equal(await textOf(page, '#connection'), 'live');
      assert.equal(await textOf(page, '#sum-live'), '3');
      assert.equal(await textOf(page, '#sum-applied'), '3/3');
      await waitForTexts(page, '#watch-mode', ['file_events']);
      assert.match(await textOf(page, '#agents tr:first-child td.age'), /s ago|just now/);
      assert.deepEqual(browser.externalRequests(base), []);
      assert.deepEqual(browser.unexpectedErrors(), []);
    });

    it('shows the documents by status, the last hour per minute, and the failed ones to retry or discard', async () => {
      const posted = await post(base, [1, 2, 3, 4, 5, 6, { fail: true }, { fail: true }]);
      const [retried, discarded] = posted.slice(6) as [string, string];
      await waitForTexts(page, '.backlog .tile strong', ['0', '0', '0', '6', '2']);
      await waitFor(
        async () => {
          const ids = await page.locator('#failed tbody td.id').allTextContents();
          return JSON.stringify(ids.sort()) === JSON.stringify([retried, discarded].sort()) || undefined;
        },
        { what: 'both failed documents listed' },
      );
      assert.match(await textOf(page, `#failed tr[data-id="${retried}"] td.error-text`), /asked to fail/);
      // The chart and the agents' counts come from the heartbeats: they follow within seconds.
      await waitForTexts(page, '#throughput-total', ['6 processed · 2 failed this hour'], 30_000);
      assert.ok((await page.locator('#throughput circle.processed').count()) >= 1);
      assert.ok((await page.locator('#throughput circle.failed').count()) >= 1);
      await waitFor(
        async () => {
          const counts = await page.locator('#agents td.processed').allTextContents();
          return counts.reduce((sum, n) => sum + Number(n), 0) === 6 || undefined;
        },
        { what: 'the agents table to count 6 processed', timeoutMs: 15_000 },
      );
      assert.ok(
        (await page.locator('#agents td.rate').allTextContents()).every((t) => /^[\d.]+\/min$/.test(t)),
      );

      // Retry: pending again, claimed, and (asked to fail) failed again with one more attempt.
      await page.click(`#failed tr[data-id="${retried}"] button[data-action="retry"]`);
      await waitFor(
        async () =>
          (await agents[1]!.get<{ attempts: number; status: string }>(`/api/documents/${retried}`)).body
            .attempts === 2 || undefined,
        { what: 'the retried document to be attempted again' },
      );
      await waitForTexts(page, `#failed tr[data-id="${retried}"] td:nth-child(2)`, ['2']);

      // Discard asks for a typed confirmation, then deletes it from the store.
      await page.click(`#failed tr[data-id="${discarded}"] button[data-action="discard"]`);
      assert.equal(await page.locator('#discard-dialog').isVisible(), true);
      await page.fill('#discard-input', 'yes');
      await page.click('#discard-submit');
      await waitForTexts(page, '#discard-error', ['Type discard to confirm.']);
      await page.fill('#discard-input', 'discard');
      await page.click('#discard-submit');
      await waitForTexts(page, '#failed tbody td.id', [retried]);
      assert.equal((await agents[2]!.get(`/api/documents/${discarded}`)).status, 404);
      await waitForTexts(page, '.backlog .tile strong', ['0', '0', '0', '6', '1']);
      assert.deepEqual(browser.externalRequests(base), []);
      assert.deepEqual(browser.unexpectedErrors(), []);
    });

    it('lists every queue with its counts, and a queue with a rule before it has documents', async () => {
      await post(base, [1, 2, 3], 'emails');
      await post(base, [1, 2], 'reports');
      // A rate for a queue with no document yet: the row is there, empty, with its rate.
      const rated = await agents[1]!.post('/api/cluster/throttle?queue=billing&rate=5&reason=new+queue');
      assert.equal(rated.status, 200);
      await waitForTexts(page, '#queues tbody td.id', ['billing', 'default', 'emails', 'reports']);
      await waitForTexts(page, '#queues tr[data-queue="emails"] td.num', ['0', '0', '0', '3', '0', '–']);
      await waitForTexts(page, '#queues tr[data-queue="default"] td.num', ['0', '0', '0', '6', '1', '–']);
      await waitForTexts(page, '#queues tr[data-queue="reports"] td.processed', ['2']);
      await waitForTexts(page, '#queues tr[data-queue="billing"] td.num', ['0', '0', '0', '0', '0', '5/s']);
      assert.deepEqual(await page.locator('#queues td.state .badge').allTextContents(), [
        'serving',
        'serving',
        'serving',
        'serving',
      ]);
      assert.equal(await textOf(page, '#throttle'), 'none');
      assert.equal(await textOf(page, '#policy-version'), '1');
      const off = await agents[1]!.post('/api/cluster/throttle?queue=billing&rate=off&reason=done');
      assert.equal(off.status, 200);
      // The rule gone and no document: the row goes too, without a reload.
      await waitForTexts(page, '#queues tbody td.id', ['default', 'emails', 'reports'], 30_000);
      assert.deepEqual(browser.externalRequests(base), []);
      assert.deepEqual(browser.unexpectedErrors(), []);
    });

    it('pauses one queue from its row after the dialog, shows the badge while the others flow, and resumes it', async () => {
      const before = await agents[0]!.get<{ version: number }>('/api/cluster/policy');
      await page.click('#queues tr[data-queue="emails"] button[data-action="queue-pause"]');
      assert.equal(await page.locator('#command-dialog').isVisible(), true);
      assert.equal(await textOf(page, '#dialog-title'), 'Pause queue emails');
      assert.match(
        await textOf(page, '#dialog-what'),
        new RegExp(
          `policy version ${before.body.version + 1} only if the fleet policy is still at version ${before.body.version}`,
        ),
      );
      assert.equal(await page.locator('#expiry-field').isVisible(), true);
      assert.equal(await page.locator('#confirm-field').isVisible(), false);
      // The same rule as the cluster's commands: no reason, nothing written.
      await page.click('#dialog-submit');
      await waitForTexts(page, '#dialog-error', ['Give a reason: it goes into the history.']);
      assert.equal(
        (await agents[0]!.get<{ version: number }>('/api/cluster/policy')).body.version,
        before.body.version,
      );
      await page.fill('#reason-input', 'SMTP relay down');
      await page.fill('#by-input', 'carol');
      await page.click('#dialog-submit');
      await waitForTexts(page, '#queues tr[data-queue="emails"] td.state .badge', ['paused']);
      assert.equal(await page.locator('#command-dialog').isVisible(), false);
      assert.match(
        await textOf(page, '#queues tr[data-queue="emails"] td.state .rule'),
        /^SMTP relay down · by carol$/,
      );
      assert.equal(await textOf(page, '#queues tr[data-queue="default"] td.state .badge'), 'serving');
      const policy = await agents[2]!.get<{
        version: number;
        paused_queues: Record<string, { reason: string; updated_by: string }>;
      }>('/api/cluster/policy');
      assert.equal(policy.body.version, before.body.version + 1);
      assert.deepEqual(Object.keys(policy.body.paused_queues), ['emails']);
      assert.equal(policy.body.paused_queues.emails?.reason, 'SMTP relay down');
      assert.equal(policy.body.paused_queues.emails?.updated_by, 'carol');
      assert.equal(await textOf(page, '#policy-version'), String(policy.body.version));
      // The global command is untouched, and every agent stays running.
      assert.equal(await textOf(page, '#command'), 'running');
      await waitFor(
        async () =>
          (
            await Promise.all(
              agents.map(async (a) => (await a.get<{ applied_version: number }>('/api/cluster/policy')).body),
            )
          ).every((p) => p.applied_version === policy.body.version) || undefined,
        { what: 'every agent to apply the queue pause' },
      );
      assert.deepEqual(await Promise.all(agents.map((a) => a.state())), ['running', 'running', 'running']);

      // Held: an email waits while a report goes through.
      await post(base, [{ n: 1 }], 'emails');
      await post(base, [{ n: 1 }], 'reports');
      await waitForTexts(page, '#queues tr[data-queue="reports"] td.processed', ['3']);
      await waitForTexts(page, '#queues tr[data-queue="emails"] td.pending', ['1']);
      assert.equal(await textOf(page, '#queues-note'), '1 paused');

      await page.click('#queues tr[data-queue="emails"] button[data-action="queue-resume"]');
      assert.equal(await textOf(page, '#dialog-title'), 'Resume queue emails');
      assert.equal(await page.locator('#expiry-field').isVisible(), false);
      assert.equal(await page.locator('#by-input').inputValue(), 'carol', 'the name is remembered');
      await page.fill('#reason-input', 'relay back');
      await page.click('#dialog-submit');
      await waitForTexts(page, '#queues tr[data-queue="emails"] td.state .badge', ['serving']);
      assert.equal(await page.locator('#queues tr[data-queue="emails"] .rule').count(), 0);
      await waitForTexts(page, '#queues tr[data-queue="emails"] td.num', ['0', '0', '0', '4', '0', '–']);
      const resumed = await agents[1]!.get<{ paused_queues: Record<string, unknown> }>('/api/cluster/policy');
      assert.deepEqual(resumed.body.paused_queues, {});
      const history = await agents[0]!.get<{
        history: { command: string; queue: string; updated_by: string }[];
      }>('/api/cluster/policy/history?limit=2');
      assert.deepEqual(
        history.body.history.map((h) => [h.command, h.queue, h.updated_by]),
        [
          ['resume', 'emails', 'carol'],
          ['pause', 'emails', 'carol'],
        ],
      );
      assert.deepEqual(browser.externalRequests(base), []);
      assert.deepEqual(browser.unexpectedErrors(), []);
    });

    it("sets the throttle from the Cluster card; a bad rate shows the API's error and writes nothing", async () => {
      const before = (await agents[0]!.get<{ version: number }>('/api/cluster/policy')).body.version;
      await page.click('#throttle-button');
      assert.equal(await textOf(page, '#dialog-title'), 'Throttle the fleet');
      assert.equal(await page.locator('#throttle-fields').isVisible(), true);
      assert.equal(await page.locator('#rate-input').getAttribute('placeholder'), 'now off');
      await page.fill('#reason-input', 'database under load');
      await page.fill('#rate-input', '0');
      await page.click('#dialog-submit');
      const refusal = await page.waitForSelector('#dialog-error:not([hidden])');
      const said = (await refusal.textContent()) ?? '';
      // The page shows the agent's own words for it (asked here again: refused, so nothing written).
      const direct = await agents[1]!.post<{ error: string; message: string }>(
        '/api/cluster/throttle?rate=0&reason=database+under+load',
      );
      assert.equal(direct.status, 400);
      assert.equal(said, `${direct.body.message} (PA_BAD_REQUEST)`);
      assert.match(said, /rate/);
      assert.equal(await page.locator('#command-dialog').isVisible(), true);
      const unchanged = await agents[1]!.get<{ version: number; throttle: unknown }>('/api/cluster/policy');
      assert.equal(unchanged.body.version, before, 'nothing was written');
      assert.equal(unchanged.body.throttle, null);
      assert.equal(await textOf(page, '#throttle'), 'none');

      await page.fill('#rate-input', '30');
      await page.fill('#concurrency-input', '4');
      await page.click('#dialog-submit');
      await waitForTexts(page, '#throttle', [
        '30/s for the fleet (3 live agents share it) · 4 slots per agent at most',
      ]);
      assert.equal(await page.locator('#command-dialog').isVisible(), false);
      assert.equal(await textOf(page, '#throttle-note'), '— database under load · by carol');
      const policy = await agents[2]!.get<{
        version: number;
        throttle: { rate: number; concurrency: number; reason: string };
      }>('/api/cluster/policy');
      assert.equal(policy.body.version, before + 1);
      assert.equal(policy.body.throttle.rate, 30);
      assert.equal(policy.body.throttle.concurrency, 4);
      assert.equal(policy.body.throttle.reason, 'database under load');

      // Someone else pauses a queue meanwhile: the page follows it live, without a reload.
      const other = await agents[1]!.post(
        '/api/cluster/pause?queue=emails&reason=SMTP+relay+down+again&updated_by=bob',
      );
      assert.equal(other.status, 200);
      await waitForTexts(page, '#queues tr[data-queue="emails"] td.state .badge', ['paused'], 30_000);
      assert.equal(
        await textOf(page, '#queues tr[data-queue="emails"] td.state .rule'),
        'SMTP relay down again · by bob',
      );
      const slow = await agents[2]!.post(
        '/api/cluster/throttle?queue=reports&rate=2&reason=partner+API+quota',
      );
      assert.equal(slow.status, 200);
      await waitForTexts(page, '#queues tr[data-queue="reports"] td.rate', ['2/s'], 30_000);
      assert.equal(browser.loads, 1, 'the page was never reloaded');
      assert.deepEqual(browser.externalRequests(base), []);
      assert.deepEqual(browser.unexpectedErrors([/status of 400/]), []);
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
      assert.equal(await textOf(page, '#version'), '1');
      assert.equal(await textOf(page, '#reason'), 'Deploy 2.4: database migration');
      assert.equal(await textOf(page, '#updated-by'), 'alice');
      await waitForTexts(page, '#history tbody tr:first-child td', [
        '1',
        'pause',
        'Deploy 2.4: database migration',
        'alice',
        await textOf(page, '#when'),
      ]);
      await waitForTexts(page, '#sum-applied', ['3/3']);
      // The backlog behind the pause shows, as the store holds it.
      await post(
        base,
        Array.from({ length: 28 }, (_, i) => ({ n: i })),
      );
      await waitForTexts(page, '.backlog [data-status="pending"] strong', ['28']);
      assert.match(await textOf(page, '#backlog-note'), /the cluster is paused: nothing is claimed/);
      // The screenshot's scene: a paused queue, a queue's rate and the fleet throttle (set above).
      assert.equal(await textOf(page, '#queues tr[data-queue="emails"] td.state .badge'), 'paused');
      assert.equal(await textOf(page, '#queues tr[data-queue="reports"] td.rate'), '2/s');
      assert.match(await textOf(page, '#throttle'), /^30\/s for the fleet/);
      await page.mouse.move(0, 0);
      const screenshot = process.env.UPDATE_SCREENSHOT
        ? join(ROOT, 'docs/dashboard.png')
        : join(tmpdir(), 'pulling-agent-dashboard.png');
      await page.screenshot({ path: screenshot, fullPage: true });
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
      assert.equal(await textOf(page, '#reason'), markup);
      assert.equal(await page.locator('main img').count(), 0);
      assert.equal(
        await textOf(page, '#history tbody tr:nth-child(2) td:nth-child(3)'),
        'Deploy 2.4: database migration',
      );
      assert.equal(browser.loads, 1, 'the page was never reloaded');
      assert.deepEqual(browser.externalRequests(base), []);
      assert.deepEqual(browser.unexpectedErrors(), []);
    });

    it('refuses a command from a page that missed a change: 409, "the cluster changed meanwhile"', async () => {
      const before = Number(await textOf(page, '#version'));
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
      assert.equal(await textOf(page, '#updated-by'), 'bob');

      // Having seen it, the operator may confirm again: now against the new version.
      await page.click('#dialog-submit');
      await waitForTexts(page, '#version', [String(before + 2)]);
      assert.equal(await page.locator('#command-dialog').isVisible(), false);
      assert.deepEqual(browser.externalRequests(base), []);
      assert.deepEqual(browser.unexpectedErrors([/status of 409/]), []);
    });

    it('pauses with an expiry: the page shows when it ends, and the agents resume by themselves', async () => {
      await page.click('button[data-command="pause"]');
      assert.equal(await page.locator('#expiry-field').isVisible(), true);
      await page.fill('#reason-input', 'short maintenance');
      await page.fill('#expires-input', '2s');
      await page.click('#dialog-submit');
      // The cluster was already paused: wait for the new version's expiry to show, not for the state.
      await page.waitForSelector('#expires', { state: 'visible', timeout: 20_000 });
      await waitForTexts(page, '#agents td.state', ['paused', 'paused', 'paused']);
      // No click: the pause ends by itself and the page follows live.
      await waitForTexts(page, '#agents td.state', ['running', 'running', 'running']);
      await waitForTexts(page, '#updated-by', ['system']);
      assert.equal(await page.locator('#expires').isVisible(), false);
      assert.deepEqual(browser.externalRequests(base), []);
      assert.deepEqual(browser.unexpectedErrors(), []);
    });

    it('shuts down only with the typed confirmation; reconnects to an agent that comes back', async () => {
      const version = await textOf(page, '#version');
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
      // The page lets go of the stream of the agent serving it when that one leaves the registry, so
      // that it can exit too (an open events stream would hold its server open).
      assert.deepEqual(await Promise.all(agents.map((a) => a.exited)), [0, 0, 0]);
      await waitFor(async () => /reconnecting/.test(await textOf(page, '#connection')), {
        what: 'the reconnecting indicator',
      });

      // An agent on the same address: the page follows it again, without a reload.
      const port = new URL(base).port;
      const back = await fleet.start({ PORT: port }, 'agent-4');
      assert.equal(back.url, base);
      await waitForTexts(page, '#connection', ['live'], 30_000);
      await waitForTexts(page, '#agents td.id', ['agent-4']);
      await waitForTexts(page, '#agents td.state', ['stopped']);
      assert.equal(await textOf(page, '#command'), 'shutdown');
      assert.equal(browser.loads, 1, 'the page was never reloaded');
      assert.deepEqual(browser.externalRequests(base), []);
      // While no agent listened, Chromium logged the refused connections, and while agent-4 was
      // still opening its store it answered 503 (not ready yet), which the page retries; no script
      // error is allowed.
      assert.deepEqual(browser.unexpectedErrors([/net::ERR_/, /status of 503 \(Service Unavailable\)/]), []);
    });
  },
);

describe('dashboard with API tokens', { skip: BROWSER_SKIP ?? false, timeout: 120_000 }, () => {
  const OPERATOR = 'operator-token-0123456789abcdef';
  let db: TargetDatabase;
  let fleet: Fleet;
  let agent: AgentProcess;
  let browser: Browser;
  let page: Page;

  before(async () => {
    db = await sqliteTarget.create();
    fleet = new Fleet({ ...db.env, API_TOKENS: `ops:operator:${OPERATOR}` });
    [agent] = (await fleet.startMany(1)) as [AgentProcess];
    browser = await Browser.launch();
    page = browser.page;
  });

  after(async () => {
    try {
      await browser?.close();
    } finally {
      await fleet?.stopAll();
      await db?.cleanup();
    }
  });

  it('asks for the token, keeps it out of URLs and storage, and sends it as a Bearer header', async () => {
    await page.goto(`${agent.url}/`);
    await waitForTexts(page, '#connection', ['token needed']);
    assert.equal(await page.locator('#token-form').isVisible(), true);

    await page.fill('#token-input', 'not-the-token-at-all');
    await page.press('#token-input', 'Enter');
    await waitForTexts(page, '#token-label', ['The agent refused the token: enter another']);

    await page.fill('#token-input', OPERATOR);
    await page.click('#token-form button');
    await waitForTexts(page, '#connection', ['live']);
    await waitForTexts(page, '#agents td.state', ['running']);
    assert.equal(await page.locator('#token-form').isVisible(), false);

    // An operator may pause; shutdown needs an admin, and the page says so.
    await page.click('button[data-command="pause"]');
    await page.fill('#reason-input', 'with a token');
    await page.click('#dialog-submit');
    await waitForTexts(page, '#agents td.state', ['paused']);
    await page.click('button[data-command="shutdown"]');
    await page.fill('#reason-input', 'not allowed');
    await page.fill('#confirm-input', 'shutdown');
    await page.click('#dialog-submit');
    const refusal = await page.waitForSelector('#dialog-error:not([hidden])');
    assert.match((await refusal.textContent()) ?? '', /PA_FORBIDDEN/);
    await page.click('#dialog-cancel');

    // Policy commands carry the token too, and are written in its name.
    await page.click('#throttle-button');
    await page.fill('#reason-input', 'throttled with a token');
    await page.fill('#rate-input', '10');
    await page.click('#dialog-submit');
    await waitForTexts(page, '#throttle-note', ['— throttled with a token · by ops']);

    const api = browser.requests.filter((r) => r.url.startsWith(`${agent.url}/api/`));
    assert.ok(api.length > 3);
    assert.ok(
      browser.requests.every((r) => !r.url.includes(OPERATOR)),
      'the token never goes into a URL',
    );
    const afterToken = api.slice(api.findIndex((r) => r.authorization === `Bearer ${OPERATOR}`));
    assert.ok(
      afterToken.every((r) => r.authorization === `Bearer ${OPERATOR}`),
      'every API request after the token carries it',
    );
    const stored = await page.evaluate(() => {
      const { localStorage, document } = globalThis as unknown as {
        localStorage: { length: number; key(i: number): string | null; getItem(k: string): string | null };
        document: { cookie: string };
      };
      const values = Array.from({ length: localStorage.length }, (_, i) =>
        localStorage.getItem(localStorage.key(i) ?? ''),
      );
      return { local: values.join('\n'), cookie: document.cookie };
    });
    assert.ok(!stored.local.includes(OPERATOR), 'not in localStorage');
    assert.equal((await browser.context.cookies()).length, 0);
    assert.equal(stored.cookie, '');
    assert.deepEqual(browser.externalRequests(agent.url), []);
    assert.deepEqual(browser.unexpectedErrors([/status of 401/, /status of 403/]), []);
  });
});
