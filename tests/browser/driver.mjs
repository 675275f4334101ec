// What every browser scenario shares: starting Debian's Chromium, finding fields by their
// visible labels and buttons by their names, failing with a clear message and a
// screenshot, and the accessibility check (axe-core) of the pages a scenario visits.
// The scripts beside it (checkout.mjs, dashboard.mjs) are the scenarios; README.md
// describes them and the environment variables read here.

import { mkdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(here, '..', '..');
const chromiumPath = process.env.KASSA_CHROMIUM || '/usr/bin/chromium';
export const timeout = positiveInt(process.env.KASSA_BROWSER_TIMEOUT_MS, 10_000);
const deadline = positiveInt(process.env.KASSA_BROWSER_DEADLINE_MS, 120_000);
const screenshotDir = process.env.KASSA_SCREENSHOT_DIR || path.join(repoRoot, 'target', 'browser-screenshots');
const javaScript = process.env.KASSA_BROWSER_JS !== '0';

// The launch flags this machine needs: without the background-networking ones Chromium
// keeps trying to reach Google's hosts and the closed network refuses it.
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

// axe-core, evaluated in each page it checks. Through the DevTools protocol, so the
// pages' Content-Security-Policy (which the tests do not relax) does not block it.
const axePath = createRequire(import.meta.url).resolve('axe-core/axe.min.js');
const AXE_SOURCE = readFileSync(axePath, 'utf8');
const AXE_VERSION = JSON.parse(readFileSync(path.join(path.dirname(axePath), 'package.json'), 'utf8')).version;
// What fails a run; moderate and minor findings are printed, not fatal.
const FATAL_IMPACTS = ['serious', 'critical'];

export class StepError extends Error {}

function positiveInt(value, fallback) {
  const n = Number.parseInt(value ?? '', 10);
  return Number.isFinite(n) && n > 0 ? n : fallback;
}

function escapeRe(text) {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

// A label as the page shows it: the whole accessible name, whitespace-trimmed, case
// ignored, with an optional trailing required-field marker ("Email *").
export function labelled(text) {
  return new RegExp(`^\\s*${escapeRe(text)}\\s*\\*?\\s*$`, 'i');
}

// The http(s) URL a command-line argument holds, or null.
export function httpUrl(text) {
  try {
    const url = new URL(text);
    return /^https?:$/.test(url.protocol) ? url : null;
  } catch {
    return null;
  }
}

export function squash(text) {
  return (text ?? '').replace(/\s+/g, ' ').trim();
}

// Runs one scenario: starts Chromium, calls `steps(run)`, checks that the pages it
// audited have no serious or critical accessibility violation, and prints one JSON line
// (`{scenario, ...what steps returned, audited, accessibility_notes}`). Returns the exit
// code: 0 when every expectation held, 1 otherwise (after a report on stderr).
export async function drive(script, scenario, steps) {
  const run = new Run(script, scenario);
  const watchdog = setTimeout(() => {
    process.stderr.write(`${script} ${scenario}: gave up after ${deadline} ms (KASSA_BROWSER_DEADLINE_MS) at step "${run.step}"\n`);
    process.exit(1);
  }, deadline);
  watchdog.unref();
  try {
    run.step = 'launch';
    run.browser = await chromium
      .launch({ executablePath: chromiumPath, headless: true, args: CHROMIUM_ARGS, timeout: 30_000 })
      .catch((e) => {
        throw new StepError(`could not start Chromium at ${chromiumPath} (KASSA_CHROMIUM): ${e.message}`);
      });
    await run.newPage();
    const result = await steps(run);
    run.step = 'accessibility';
    run.expectAccessible();
    const notes = run.notes.map((n) => `${n.page}: ${n.rule} (${n.impact}, ${n.count})`);
    process.stdout.write(JSON.stringify({ scenario, ...result, audited: run.audited, accessibility_notes: notes }) + '\n');
    await run.browser.close();
    return 0;
  } catch (error) {
    await run.report(error);
    if (run.browser) await run.browser.close().catch(() => {});
    return 1;
  } finally {
    clearTimeout(watchdog);
  }
}

// One run of a scenario: its pages (one per browser context), the current one, the
// current step, and what went wrong on the way.
export class Run {
  constructor(script, scenario) {
    this.script = script;
    this.scenario = scenario;
    this.step = 'start';
    this.browser = null;
    this.page = null;
    this.pageErrors = [];
    this.documents = new WeakMap(); // page → { method, url, status } of its last main-frame document
    this.submitting = null; // the control whose click is waiting for the next page
    this.audited = []; // names of the pages axe checked
    this.violations = []; // serious and critical findings, per page
    this.notes = []; // lesser findings, per page and rule
  }

  // A page in a new browser context (its own cookies: another person), now the current page.
  async newPage() {
    const context = await this.browser.newContext({ locale: 'en-US', javaScriptEnabled: javaScript });
    const page = await context.newPage();
    page.setDefaultTimeout(timeout);
    page.setDefaultNavigationTimeout(timeout);
    page.on('pageerror', (e) => this.pageErrors.push(e.message));
    page.on('response', (response) => {
      const request = response.request();
      if (request.isNavigationRequest() && request.frame() === page.mainFrame()) {
        this.documents.set(page, { method: request.method(), url: response.url(), status: response.status() });
      }
    });
    this.page = page;
    return page;
  }

  get lastDocument() {
    return (this.page && this.documents.get(this.page)) || null;
  }

  // Opens a page and insists it answered 2xx.
  async open(url) {
    let response;
    try {
      response = await this.page.goto(url, { waitUntil: 'load' });
    } catch (e) {
      throw new StepError(`could not open ${url}: ${e.message.split('\n')[0]}`);
    }
    const status = response ? response.status() : 0;
    if (status < 200 || status >= 300) {
      throw new StepError(`GET ${url} answered HTTP ${status}, expected 2xx`);
    }
  }

  // The one visible element a locator stands for, or a clear error naming it.
  async one(locator, what) {
    try {
      await locator.waitFor({ state: 'visible', timeout });
    } catch {
      const n = await locator.count().catch(() => 0);
      if (n > 1) throw new StepError(`${n} elements match ${what} on ${this.page.url()}, expected exactly one`);
      if (n === 1) throw new StepError(`${what} is on ${this.page.url()} but not visible within ${timeout} ms`);
      throw new StepError(`no ${what} on ${this.page.url()} (waited ${timeout} ms)`);
    }
    return locator;
  }

  field(label) {
    return this.one(this.page.getByLabel(labelled(label)), `field labelled "${label}"`);
  }

  async fill(label, value) {
    const field = await this.field(label);
    await field.fill(value);
  }

  async choose(label) {
    const radio = await this.one(this.page.getByRole('radio', { name: labelled(label) }), `radio button labelled "${label}"`);
    await radio.check();
  }

  async tick(label) {
    const box = await this.one(this.page.getByRole('checkbox', { name: labelled(label) }), `checkbox labelled "${label}"`);
    await box.check();
  }

  // Chooses the option of the list labelled `label` whose text starts with `text`.
  async select(label, text) {
    const list = await this.field(label);
    const options = await list.locator('option').allInnerTexts();
    const index = options.findIndex((o) => squash(o).toLowerCase().startsWith(text.toLowerCase()));
    if (index < 0) {
      throw new StepError(`the list labelled "${label}" has no option starting with "${text}" (it has ${JSON.stringify(options.map(squash))})`);
    }
    await list.selectOption({ index });
  }

  // Puts a file (name and text) into the file field labelled `label`.
  async upload(label, name, text) {
    const field = await this.field(label);
    await field.setInputFiles({ name, mimeType: 'text/plain', buffer: Buffer.from(text) });
  }

  // Clicks a button that submits a form and waits for the next page to load.
  async submit(name) {
    const button = await this.one(this.page.getByRole('button', { name, exact: true }), `button "${name}"`);
    await this.clickToLoad(button, `clicking "${name}"`);
  }

  // Follows the link named `name` and waits for its page.
  async follow(name, within = this.page) {
    const link = await this.one(within.getByRole('link', { name, exact: true }), `link "${name}"`);
    await this.clickToLoad(link, `following the link "${name}"`);
  }

  async clickToLoad(control, what) {
    const page = this.page;
    const navigated = page
      .waitForEvent('framenavigated', { predicate: (frame) => frame === page.mainFrame(), timeout })
      .then(
        () => true,
        () => false,
      );
    this.submitting = what;
    await control.click();
    if (!(await navigated)) {
      throw new StepError(`${what} loaded no new page within ${timeout} ms`);
    }
    this.submitting = null;
    await page.waitForLoadState('load');
    const doc = this.lastDocument;
    if (doc && doc.status >= 500) {
      throw new StepError(`after ${what} the server answered HTTP ${doc.status} (${doc.method} ${doc.url})`);
    }
  }

  // Waits until the address matches; on failure says where the browser is instead.
  async expectPath(test, expected) {
    const matches = (u) => test(new URL(u.toString()).pathname);
    if (matches(this.page.url())) return;
    try {
      await this.page.waitForURL(matches, { timeout, waitUntil: 'load' });
    } catch {
      const doc = this.lastDocument;
      const status = doc ? ` (last page: HTTP ${doc.status} for ${doc.method} ${doc.url})` : '';
      throw new StepError(`expected ${expected}, but the browser is on ${this.page.url()}${status}`);
    }
  }

  // The first visible element whose text matches, or a clear error.
  async text(re, what) {
    const locator = this.page.getByText(re).filter({ visible: true }).first();
    try {
      await locator.waitFor({ state: 'visible', timeout });
    } catch {
      throw new StepError(`no text ${what} on ${this.page.url()} (waited ${timeout} ms)`);
    }
    return squash(await locator.innerText());
  }

  // The rows of the table that has a column headed `column`, each an object from the
  // column headers to the cells' visible text.
  async table(column) {
    const table = await this.one(
      this.page.getByRole('table').filter({ has: this.page.getByRole('columnheader', { name: column, exact: true }) }),
      `table with a column "${column}"`,
    );
    const headers = (await table.getByRole('columnheader').allInnerTexts()).map(squash);
    const rows = [];
    for (const row of await table.locator('tbody').getByRole('row').all()) {
      const cells = await row.getByRole('cell').allInnerTexts();
      rows.push(Object.fromEntries(headers.map((h, i) => [h, (cells[i] ?? '').trim()])));
    }
    return { locator: table, rows };
  }

  // Reloads the page until `ready()` gives a value (not undefined), for what the server
  // does in the background (the pages have no live updates yet); fails after the timeout
  // saying what it waited for and what `seen()` last saw.
  async reloadUntil(ready, what, seen = async () => '') {
    const until = Date.now() + timeout;
    for (let pause = 50; ; pause = Math.min(pause * 2, 500)) {
      const value = await ready();
      if (value !== undefined) return value;
      if (Date.now() > until) {
        throw new StepError(`waited ${timeout} ms on ${this.page.url()} for ${what}; last seen: ${await seen()}`);
      }
      await this.page.waitForTimeout(pause);
      await this.page.reload({ waitUntil: 'load' });
    }
  }

  // The status element of the order page: data-testid="order-status".
  async statusText() {
    const el = await this.one(this.page.getByTestId('order-status'), 'element with data-testid="order-status"');
    return squash(await el.innerText());
  }

  // Waits for the order page to say the order is paid ("Paid", not "Not paid" / "Unpaid").
  async expectPaid() {
    const paid = /(?<!not\s*)\bpaid\b/i;
    const status = this.page.getByTestId('order-status');
    if ((await status.count()) > 0) {
      try {
        await status.filter({ hasText: paid }).first().waitFor({ state: 'visible', timeout });
      } catch {
        const seen = squash(await status.first().innerText().catch(() => ''));
        throw new StepError(`expected the order status to say "Paid", it says "${seen}" on ${this.page.url()}`);
      }
      return squash(await status.first().innerText());
    }
    return this.text(paid, 'saying "Paid"');
  }

  // Visible alerts and status messages (role="alert" / role="status"), in page order.
  async messages() {
    const out = [];
    const loc = this.page.locator('[role="alert"], [role="status"]');
    const n = await loc.count().catch(() => 0);
    for (let i = 0; i < n; i++) {
      const el = loc.nth(i);
      if (!(await el.isVisible().catch(() => false))) continue;
      const text = squash(await el.innerText().catch(() => ''));
      if (text && !out.includes(text)) out.push(text);
    }
    return out;
  }

  // Checks the current page with axe-core and keeps what it finds under `name`. Serious
  // and critical violations fail the run at its end (so one run lists them all), each
  // page's with a screenshot. With JavaScript off there is nothing to run axe in.
  async audit(name) {
    if (!javaScript) return;
    const page = this.page;
    let result;
    try {
      if (!(await page.evaluate(() => typeof window.axe === 'object'))) await page.evaluate(AXE_SOURCE);
      result = await page.evaluate(() => window.axe.run(document, { resultTypes: ['violations'] }));
    } catch (e) {
      throw new StepError(`axe-core could not check ${page.url()}: ${e.message.split('\n')[0]}`);
    }
    this.audited.push(name);
    const fatal = [];
    for (const v of result.violations) {
      if (FATAL_IMPACTS.includes(v.impact)) fatal.push(v);
      else this.notes.push({ page: name, rule: v.id, impact: v.impact, count: v.nodes.length });
    }
    if (!fatal.length) return;
    const screenshot = await this.screenshot(`a11y-${name}`);
    this.violations.push({ page: name, url: page.url(), screenshot, violations: fatal });
  }

  expectAccessible() {
    if (!this.violations.length) return;
    const count = this.violations.reduce((n, p) => n + p.violations.length, 0);
    const lines = [`${count} serious or critical accessibility violation(s) (axe-core ${AXE_VERSION}) on ${this.violations.map((p) => p.page).join(', ')}:`];
    for (const p of this.violations) {
      lines.push(`  page "${p.page}" (${p.url})${p.screenshot ? `, screenshot ${p.screenshot}` : ''}:`);
      for (const v of p.violations) {
        lines.push(`    [${v.impact}] ${v.id}: ${v.help} (${v.helpUrl})`);
        for (const node of v.nodes.slice(0, 5)) {
          const html = node.html.length > 160 ? node.html.slice(0, 160) + '…' : node.html;
          lines.push(`      at ${node.target.join(' ')}: ${html}`);
          lines.push(`         ${squash(node.failureSummary)}`);
        }
        if (v.nodes.length > 5) lines.push(`      and ${v.nodes.length - 5} more`);
      }
    }
    throw new StepError(lines.join('\n'));
  }

  // A full-page screenshot of the current page; its path, or null.
  async screenshot(name) {
    try {
      mkdirSync(screenshotDir, { recursive: true });
      const file = path.join(screenshotDir, `${this.scenario}-${name}.png`);
      await this.page.screenshot({ path: file, fullPage: true, timeout: 5000 });
      return file;
    } catch {
      return null;
    }
  }

  async report(error) {
    const lines = [`${this.script} ${this.scenario}: step "${this.step}" failed: ${error instanceof StepError ? error.message : error.stack || error}`];
    const page = this.page;
    if (this.step !== 'accessibility' && page && !page.isClosed()) {
      lines.push(`  page: ${page.url()}`);
      if (this.lastDocument) {
        const d = this.lastDocument;
        lines.push(`  last document: HTTP ${d.status} for ${d.method} ${d.url}`);
      }
      const alerts = await this.messages().catch(() => []);
      if (alerts.length) lines.push(`  alerts: ${JSON.stringify(alerts)}`);
      const invalid = await page
        .locator('[aria-invalid="true"]')
        .evaluateAll((els) =>
          els.map((el) => {
            const label = el.labels && el.labels[0] ? el.labels[0].innerText : el.getAttribute('aria-label') || el.name;
            const ids = (el.getAttribute('aria-describedby') || '').split(/\s+/).filter(Boolean);
            const why = ids.map((id) => document.getElementById(id)?.innerText || '').join(' ');
            return `${label}: ${why}`.replace(/\s+/g, ' ').trim();
          }),
        )
        .catch(() => []);
      if (invalid.length) lines.push(`  invalid fields: ${JSON.stringify(invalid)}`);
      const blocked = !this.submitting ? [] : await page
        .locator('input:invalid, select:invalid, textarea:invalid')
        .evaluateAll((els) =>
          els.map((el) => {
            const label = el.labels && el.labels[0] ? el.labels[0].innerText : el.getAttribute('aria-label') || el.name;
            return `${label}: ${el.validationMessage}`.replace(/\s+/g, ' ').trim();
          }),
        )
        .catch(() => []);
      if (blocked.length) lines.push(`  fields the browser refuses to submit: ${JSON.stringify(blocked)}`);
      const body = squash(await page.locator('body').innerText({ timeout: 2000 }).catch(() => ''));
      if (body) lines.push(`  page text: ${body.length > 600 ? body.slice(0, 600) + '…' : body}`);
      if (this.pageErrors.length) lines.push(`  page script errors: ${JSON.stringify(this.pageErrors)}`);
      const file = await this.screenshot(this.step);
      lines.push(file ? `  screenshot: ${file}` : '  screenshot failed');
    }
    if (this.step !== 'accessibility' && this.violations.length) {
      lines.push(`  accessibility violations so far on: ${this.violations.map((p) => p.page).join(', ')}`);
    }
    process.stderr.write(lines.join('\n') + '\n');
  }
}
