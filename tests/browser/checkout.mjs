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
// `happy` also checks each page it visits with axe-core and fails on any serious or
// critical violation. See README.md beside this file for the scenarios, the labels they
// rely on and the environment variables (driver.mjs reads them).
//
// dashboard.mjs imports the customer's steps from here (checkoutToPayment, payByCard,
// expectOrderPagePaid); run as a script, this file runs one scenario.

import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { StepError, drive, httpUrl } from './driver.mjs';

const SCENARIOS = ['happy', 'declined', 'bank_transfer', 'reload'];

// What the scenarios type. The Rust tests may assert on these.
export const BUYER_EMAIL = 'buyer@example.com';
export const BUYER_NAME = 'Ada Buyer';
export const GOOD_CARD = '4242 4242 4242 4242';
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

function usage(message) {
  process.stderr.write(
    `checkout.mjs: ${message}\n` +
      `usage: node tests/browser/checkout.mjs <${SCENARIOS.join('|')}> <url>\n` +
      `  happy, declined, bank_transfer: <url> is a buy link (/{tenant}/buy/{product}?quantity=2&locale=en)\n` +
      `  reload: <url> is an order page (/{tenant}/orders/{token})\n`,
  );
  process.exit(2);
}

async function main() {
  const [scenario, url, ...extra] = process.argv.slice(2);
  if (!scenario || !url || extra.length) usage('expected exactly two arguments');
  if (!SCENARIOS.includes(scenario)) usage(`unknown scenario "${scenario}"`);
  if (!httpUrl(url)) usage(`not an http(s) URL: "${url}"`);
  return drive('checkout.mjs', scenario, (run) => SCENARIO_STEPS[scenario](run, url));
}

// Buy link → checkout page → Continue → payment page (/pay). Returns nothing; the page is
// on /pay. With `audit` (a prefix for the pages' names, '' for none), axe checks the
// checkout page and the payment page. With `consentErrors`, Continue is first pressed
// without the consents: the page must stay, say why next to them and keep what was typed.
export async function checkoutToPayment(run, buyUrl, { audit = null, consentErrors = false } = {}) {
  const check = (name) => (audit === null ? null : run.audit(audit + name));
  run.step = 'open';
  await run.open(buyUrl);
  await check('checkout');

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

  if (consentErrors) {
    run.step = 'consent-errors';
    await run.submit(L.continue);
    await run.one(run.page.getByRole('checkbox', { name: L.terms, exact: true }).and(run.page.locator('[aria-invalid="true"]')), `checkbox "${L.terms}" marked invalid after "Continue" without it`);
    const kept = await (await run.field(L.email)).inputValue();
    if (kept !== BUYER_EMAIL) throw new StepError(`after the refused "Continue" the field "${L.email}" holds "${kept}", expected what was typed ("${BUYER_EMAIL}")`);
    await check('checkout-errors');
  }

  run.step = 'consents';
  await run.tick(L.terms);
  await run.tick(L.personalData);

  run.step = 'continue';
  await run.submit(L.continue);
  await run.expectPath((p) => p.endsWith('/pay'), 'the payment page (an address ending in /pay) after "Continue"');
  await check('pay');
}

export async function payByCard(run, cardNumber) {
  await run.fill(L.cardNumber, cardNumber);
  await run.fill(L.expiry, EXPIRY);
  await run.fill(L.cvc, CVC);
  await run.submit(L.pay);
}

export async function expectOrderPagePaid(run, { audit = null } = {}) {
  await run.expectPath((p) => !p.endsWith('/pay'), 'the order page (an address without /pay) after paying');
  run.step = 'paid';
  const statusText = await run.expectPaid();
  if (audit !== null) await run.audit(audit + 'order');
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
    await checkoutToPayment(run, buyUrl, { audit: '' });
    run.step = 'pay';
    await payByCard(run, GOOD_CARD);
    return expectOrderPagePaid(run, { audit: '' });
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

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  process.exitCode = await main();
}
