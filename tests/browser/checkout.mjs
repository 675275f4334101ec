#!/usr/bin/env node
// Drives Kassa's server-rendered checkout pages in headless Chromium, the way a person
// (or assistive technology, or a merchant's own browser test) would: every field is found
// by its visible label, every button by its name. Called by the Rust browser tests:
//
//   node tests/browser/checkout.mjs <scenario> <url>
//
// On success it prints exactly one JSON line on stdout (what it saw) and exits 0.
// On failure it writes a clear message to stderr (the step, what was missing, the page's
// URL, its alerts and the start of its text), saves a screenshot to
// target/browser-screenshots/<scenario>-<step>.png and exits 1 (2 for a usage error).
// See README.md beside this file for the scenarios and the labels they rely on.
//
// Environment (all optional):
//   KASSA_CHROMIUM              Chromium binary (default /usr/bin/chromium)
//   KASSA_BROWSER_TIMEOUT_MS    wait for one element / one page (default 10000)
//   KASSA_BROWSER_DEADLINE_MS   whole run (default 120000)
//   KASSA_SCREENSHOT_DIR        where failure screenshots go (default <repo>/target/browser-screenshots)
//   KASSA_BROWSER_JS=0          run with JavaScript off (the pages must work without it)

import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const SCENARIOS = ['happy', 'declined', 'bank_transfer', 'reload'];

// What the scenarios type. The Rust tests may assert on these.
const BUYER_EMAIL = 'buyer@example.com';
const BUYER_NAME = 'Ada Buyer';
const GOOD_CARD = '4242 4242 4242 4242';
const DECLINED_CARD = '4000 0000 0000 0002';
const EXPIRY = '12/34';
const CVC = '123';
const REFERENCE_RE = /KS-[A-Z0-9]{4}-[A-Z0-9]{4}/;

// The labels and names the pages must show (the product brief, "The contract integrations rely on").
const L = {
  quantity: 'Quantity',
  email: 'Email',
  name: 'Name',
  card: 'Card',
  bankTransfer: 'Bank transfer',
  terms: 'I accept the terms of sale',
  personalData: 'I consent to the processing of my personal data',
  continue: 'Continue',
  cardNumber: 'Card number',
  expiry: 'Expiry',
  cvc: 'CVC',
  pay: 'Pay',
  changeMethod: 'Change payment method',
};

const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(here, '..', '..');
const chromiumPath = process.env.KASSA_CHROMIUM || '/usr/bin/chromium';
const timeout = positiveInt(process.env.KASSA_BROWSER_TIMEOUT_MS, 10_000);
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

class StepError extends Error {}

function positiveInt(value, fallback) {
  const n = Number.parseInt(value ?? '', 10);
  return Number.isFinite(n) && n > 0 ? n : fallback;
}

function usage(message) {
  process.stderr.write(
    `checkout.mjs: ${message}\n` +
      `usage: node tests/browser/checkout.mjs <${SCENARIOS.join('|')}> <url>\n` +
      `  happy, declined, bank_transfer: <url> is a buy link (/{tenant}/buy/{product}?quantity=2&locale=en)\n` +
      `  reload: <url> is an order page (/{tenant}/orders/{token})\n`,
  );
  process.exit(2);
}

function escapeRe(text) {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

// A label as the page shows it: the whole accessible name, whitespace-trimmed, case
// ignored, with an optional trailing required-field marker ("Email *").
function labelled(text) {
  return new RegExp(`^\\s*${escapeRe(text)}\\s*\\*?\\s*$`, 'i');
}

function squash(text) {
  return (text ?? '').replace(/\s+/g, ' ').trim();
}

async function main() {
  const [scenario, url, ...extra] = process.argv.slice(2);
  if (!scenario || !url || extra.length) usage('expected exactly two arguments');
  if (!SCENARIOS.includes(scenario)) usage(`unknown scenario "${scenario}"`);
  let parsed;
  try {
    parsed = new URL(url);
  } catch {
    usage(`not a URL: "${url}"`);
  }
  if (!/^https?:$/.test(parsed.protocol)) usage(`not an http(s) URL: "${url}"`);

  const run = new Run(scenario);
  const watchdog = setTimeout(() => {
    process.stderr.write(
      `checkout.mjs ${scenario}: gave up after ${deadline} ms (KASSA_BROWSER_DEADLINE_MS) at step "${run.step}"\n`,
    );
    process.exit(1);
  }, deadline);
  watchdog.unref();

  let browser;
  try {
    run.step = 'launch';
    browser = await chromium
      .launch({ executablePath: chromiumPath, headless: true, args: CHROMIUM_ARGS, timeout: 30_000 })
      .catch((e) => {
        throw new StepError(`could not start Chromium at ${chromiumPath} (KASSA_CHROMIUM): ${e.message}`);
      });
    const context = await browser.newContext({ locale: 'en-US', javaScriptEnabled: javaScript });
    const page = await context.newPage();
    run.attach(page);
    const result = await SCENARIO_STEPS[scenario](run, url);
    process.stdout.write(JSON.stringify({ scenario, ...result }) + '\n');
    await browser.close();
    clearTimeout(watchdog);
    return 0;
  } catch (error) {
    await run.report(error);
    if (browser) await browser.close().catch(() => {});
    clearTimeout(watchdog);
    return 1;
  }
}

// One run of a scenario: the page, the current step, and what went wrong on the way.
class Run {
  constructor(scenario) {
    this.scenario = scenario;
    this.step = 'start';
    this.page = null;
    this.pageErrors = [];
    this.lastDocument = null; // { method, url, status } of the last main-frame document
    this.submitting = null; // the button whose click is waiting for the next page
  }

  attach(page) {
    this.page = page;
    page.setDefaultTimeout(timeout);
    page.setDefaultNavigationTimeout(timeout);
    page.on('pageerror', (e) => this.pageErrors.push(e.message));
    page.on('response', (response) => {
      const request = response.request();
      if (request.isNavigationRequest() && request.frame() === page.mainFrame()) {
        this.lastDocument = { method: request.method(), url: response.url(), status: response.status() };
      }
    });
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

  // Clicks a button that submits a form and waits for the next page to load.
  async submit(name) {
    const button = await this.one(this.page.getByRole('button', { name, exact: true }), `button "${name}"`);
    const page = this.page;
    const navigated = page
      .waitForEvent('framenavigated', { predicate: (frame) => frame === page.mainFrame(), timeout })
      .then(
        () => true,
        () => false,
      );
    this.submitting = name;
    await button.click();
    if (!(await navigated)) {
      throw new StepError(`clicking "${name}" loaded no new page within ${timeout} ms`);
    }
    this.submitting = null;
    await page.waitForLoadState('load');
    const doc = this.lastDocument;
    if (doc && doc.status >= 500) {
      throw new StepError(`after clicking "${name}" the server answered HTTP ${doc.status} (${doc.method} ${doc.url})`);
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

  async report(error) {
    const lines = [`checkout.mjs ${this.scenario}: step "${this.step}" failed: ${error instanceof StepError ? error.message : error.stack || error}`];
    const page = this.page;
    if (page && !page.isClosed()) {
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
      try {
        mkdirSync(screenshotDir, { recursive: true });
        const file = path.join(screenshotDir, `${this.scenario}-${this.step}.png`);
        await page.screenshot({ path: file, fullPage: true, timeout: 5000 });
        lines.push(`  screenshot: ${file}`);
      } catch (e) {
        lines.push(`  screenshot failed: ${e.message.split('\n')[0]}`);
      }
    }
    process.stderr.write(lines.join('\n') + '\n');
  }
}

// Buy link → checkout page → Continue → payment page (/pay). Returns nothing; the page is on /pay.
async function checkoutToPayment(run, buyUrl) {
  run.step = 'open';
  await run.open(buyUrl);

  run.step = 'quantity';
  const expectedQuantity = new URL(buyUrl).searchParams.get('quantity') ?? '1';
  const quantity = await run.field(L.quantity);
  const seen = (await quantity.inputValue()).trim();
  if (seen !== expectedQuantity) {
    throw new StepError(`field "${L.quantity}" holds "${seen}", expected "${expectedQuantity}" (from the buy link)`);
  }

  run.step = 'details';
  await run.fill(L.email, BUYER_EMAIL);
  await run.fill(L.name, BUYER_NAME);

  run.step = 'method';
  await run.choose(L.card);

  run.step = 'consents';
  await run.tick(L.terms);
  await run.tick(L.personalData);

  run.step = 'continue';
  await run.submit(L.continue);
  await run.expectPath((p) => p.endsWith('/pay'), 'the payment page (an address ending in /pay) after "Continue"');
}

async function payByCard(run, cardNumber) {
  await run.fill(L.cardNumber, cardNumber);
  await run.fill(L.expiry, EXPIRY);
  await run.fill(L.cvc, CVC);
  await run.submit(L.pay);
}

async function expectOrderPagePaid(run) {
  await run.expectPath((p) => !p.endsWith('/pay'), 'the order page (an address without /pay) after paying');
  run.step = 'paid';
  const statusText = await run.expectPaid();
  return { order_url: run.page.url(), status_text: statusText, messages: await run.messages() };
}

function orderUrlOf(pageUrl) {
  const u = new URL(pageUrl);
  u.pathname = u.pathname.replace(/\/pay\/?$/, '');
  u.search = '';
  u.hash = '';
  return u.toString();
}

const SCENARIO_STEPS = {
  async happy(run, buyUrl) {
    await checkoutToPayment(run, buyUrl);
    run.step = 'pay';
    await payByCard(run, GOOD_CARD);
    return expectOrderPagePaid(run);
  },

  async declined(run, buyUrl) {
    await checkoutToPayment(run, buyUrl);
    run.step = 'pay-declined';
    await payByCard(run, DECLINED_CARD);
    await run.expectPath((p) => p.endsWith('/pay'), 'to stay on the payment page (/pay) after a declined card');
    run.step = 'declined-message';
    const declined = await run.text(/declined/i, 'containing "declined"');
    run.step = 'pay';
    await payByCard(run, GOOD_CARD);
    const result = await expectOrderPagePaid(run);
    return { order_url: result.order_url, declined_message: declined, status_text: result.status_text, messages: result.messages };
  },

  async bank_transfer(run, buyUrl) {
    await checkoutToPayment(run, buyUrl);
    const payUrl = run.page.url();
    run.step = 'bank-transfer';
    await run.choose(L.bankTransfer);
    await run.submit(L.changeMethod);
    run.step = 'reference';
    const text = await run.text(REFERENCE_RE, `with a payment reference (${REFERENCE_RE.source})`);
    const reference = text.match(REFERENCE_RE)[0];
    return { order_url: orderUrlOf(run.page.url()), pay_url: payUrl, reference, messages: await run.messages() };
  },

  async reload(run, orderUrl) {
    run.step = 'open';
    await run.open(orderUrl);
    run.step = 'status';
    return { order_url: run.page.url(), status_text: await run.statusText(), messages: await run.messages() };
  },
};

process.exitCode = await main();
