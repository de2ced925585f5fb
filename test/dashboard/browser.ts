// Debian's headless Chromium driven by playwright-core, for the dashboard's tests: one page that
// records every request, console error and load, and a close() that fails when a browser process
// outlives it. Missing Chromium or playwright-core skips the tests, except under CI=true.

import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import type { BrowserContext, BrowserType, Page } from 'playwright-core';

import { waitFor } from '../helpers/wait.js';

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

/** Why the browser tests are skipped, or undefined when they run. */
export const BROWSER_SKIP: string | undefined = !existsSync(CHROMIUM)
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

export interface SeenRequest {
  url: string;
  authorization: string | undefined;
}

export class Browser {
  /** Every request the page made, in order. */
  readonly requests: SeenRequest[] = [];
  loads = 0;
  readonly #consoleErrors: string[] = [];
  readonly #pageErrors: string[] = [];

  private constructor(
    readonly context: BrowserContext,
    readonly page: Page,
    private readonly profile: string,
  ) {
    page.setDefaultTimeout(15_000);
    page.on('request', (request) =>
      this.requests.push({ url: request.url(), authorization: request.headers().authorization }),
    );
    page.on('console', (message) => {
      if (message.type() === 'error') this.#consoleErrors.push(message.text());
    });
    page.on('pageerror', (error) => this.#pageErrors.push(error.message));
    page.on('load', () => this.loads++);
  }

  /** A fresh profile in a temp folder, light colours, 1280×800. */
  static async launch(): Promise<Browser> {
    const profile = mkdtempSync(join(tmpdir(), 'pa-chromium-'));
    const context = await chromium!.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_ARGS,
      viewport: { width: 1280, height: 800 },
      colorScheme: 'light',
    });
    const page = context.pages()[0] ?? (await context.newPage());
    return new Browser(context, page, profile);
  }

  /** Requests to anything but `base`: the page must load nothing from elsewhere. */
  externalRequests(base: string): string[] {
    return this.requests.map((r) => r.url).filter((url) => !url.startsWith(`${base}/`));
  }

  /** Console and script errors since the last call, less the expected ones (a refused request logs one). */
  unexpectedErrors(expected: RegExp[] = []): string[] {
    const logged = this.#consoleErrors.splice(0).filter((e) => !expected.some((pattern) => pattern.test(e)));
    return [...logged, ...this.#pageErrors.splice(0)];
  }

  /** Closes the browser; fails if any of its processes is still running 10 s later. */
  async close(): Promise<void> {
    try {
      await this.context.close();
      const left = await waitFor(() => browserProcesses(this.profile).length === 0 || undefined, {
        what: 'Chromium to exit',
        timeoutMs: 10_000,
      }).then(
        () => [],
        () => browserProcesses(this.profile),
      );
      for (const pid of left) process.kill(pid, 'SIGKILL');
      assert.deepEqual(left, [], 'Chromium processes left running');
    } finally {
      rmSync(this.profile, { recursive: true, force: true });
    }
  }
}

/** The page's document, as far as the checks use it (the tests' own lib has no DOM types). */
type PageGlobals = {
  document: { querySelectorAll(selector: string): ArrayLike<{ textContent: string | null }> };
};

/**
 * Waits until the texts of the elements matching `selector` are exactly `expected`, checked every
 * frame. A function, not a string: the page's Content-Security-Policy forbids eval, rightly.
 */
export async function waitForTexts(page: Page, selector: string, expected: string[], timeout = 15_000) {
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

export const textOf = async (page: Page, selector: string) =>
  (await page.locator(selector).textContent()) ?? '';
