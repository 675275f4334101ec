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
import { StepError, drive, httpUrl, labelled, squash } from './driver.mjs';

const SCENARIOS = ['happy', 'declined', 'bank_transfer', 'reload', 'stripe', 'stripe_declined'];

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
  stripe: 'Card (Stripe)',
  payByCard: 'Pay by card',
  stripeCard: 'Card',
  paymentConfirming: /being confirmed/i,
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
      `  reload: <url> is an order page (/{tenant}/orders/{token})\n` +
      `  stripe, stripe_declined <url> <localstripe-url> <secret-key>: <url> is a buy link of a\n` +
      `    store whose Stripe is localstripe; the pay page loads localstripe's Stripe.js\n` +
      `    (Kassa's stripe_js_url)\n`,
  );
  process.exit(2);
}

async function main() {
  const [scenario, url, ...extra] = process.argv.slice(2);
  if (!SCENARIOS.includes(scenario)) usage(`unknown scenario "${scenario}"`);
  const wanted = scenario.startsWith('stripe') ? 2 : 0;
  if (!url || extra.length !== wanted) usage(`expected exactly ${wanted + 2} arguments`);
  if (!httpUrl(url)) usage(`not an http(s) URL: "${url}"`);
  return drive('checkout.mjs', scenario, (run) => SCENARIO_STEPS[scenario](run, url, ...extra));
}

// Buy link → checkout page → Continue → payment page (/pay). Returns nothing; the page is
// on /pay. With `audit` (a prefix for the pages' names, '' for none), axe checks the
// checkout page and the payment page. With `consentErrors`, Continue is first pressed
// without the consents: the page must stay, say why next to them and keep what was typed.
export async function checkoutToPayment(run, buyUrl, { audit = null, consentErrors = false, method = L.card } = {}) {
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

  // Enter in a field recalculates the page and loses nothing (it once pressed the
  // first line's Remove and emptied the cart).
  run.step = 'enter';
  const name = await run.field(L.name);
  await run.clickToLoad({ click: () => name.press('Enter') }, `pressing Enter in "${L.name}"`);
  const after = (await (await run.field(L.quantity)).inputValue()).trim();
  if (after !== expectedQuantity) {
    throw new StepError(`after Enter in "${L.name}" the field "${L.quantity}" holds "${after}", expected "${expectedQuantity}"`);
  }
  for (const [label, typed] of [[L.email, BUYER_EMAIL], [L.name, BUYER_NAME]]) {
    const kept = await (await run.field(label)).inputValue();
    if (kept !== typed) throw new StepError(`after Enter in "${L.name}" the field "${label}" holds "${kept}", expected "${typed}"`);
  }

  run.step = 'method';
  await run.choose(method);

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

  // Pays on the pay page's card form, which Stripe.js (here localstripe's) mounts,
  // then waits on the order page for Stripe's webhook (sent by localstripe) to pay it.
  async stripe(run, buyUrl, localstripe, secretKey) {
    await standInForCardConfirmation(run, localstripe, secretKey);
    await checkoutToPayment(run, buyUrl, { method: L.stripe });
    return payThroughStripe(run, STRIPE_GOOD_CARD);
  },

  // A declined card: the reason next to the card form, in the page's language. Once
  // Stripe's payment_failed ended the attempt, "Pay by card" starts another payment,
  // which a good card pays.
  async stripe_declined(run, buyUrl, localstripe, secretKey) {
    await standInForCardConfirmation(run, localstripe, secretKey);
    await checkoutToPayment(run, buyUrl, { method: L.stripe });
    await typeStripeCard(run, STRIPE_DECLINED_CARD);
    run.step = 'pay-declined';
    const pay = await run.one(run.page.getByRole('button', { name: L.pay, exact: true }), `button "${L.pay}"`);
    await pay.click();
    run.step = 'declined-message';
    const error = await run.one(run.page.locator('#card-error[role="alert"]'), 'the card form\'s message (role="alert")');
    const declined = squash(await error.innerText());
    run.step = 'pay-again';
    await run.reloadUntil(
      async () => ((await run.page.getByRole('button', { name: L.payByCard, exact: true }).count()) > 0 ? true : undefined),
      `the button "${L.payByCard}" once Stripe's payment_failed ended the attempt`,
    );
    await run.submit(L.payByCard);
    await run.expectPath((p) => p.endsWith('/pay'), 'the payment page (/pay) with a new card form');
    const result = await payThroughStripe(run, STRIPE_GOOD_CARD);
    return { declined_message: declined, ...result };
  },

  async reload(run, orderUrl) {
    run.step = 'open';
    await run.open(orderUrl);
    run.step = 'status';
    return { order_url: run.page.url(), status_text: await run.statusText(), messages: await run.messages() };
  },
};

const STRIPE_GOOD_CARD = '4242424242424242';
const STRIPE_DECLINED_CARD = '4000000000000341';

// Types `number` (and a future expiry, a CVC, a postal code) into the card Element.
async function typeStripeCard(run, number) {
  run.step = 'card-form';
  await run.one(run.page.getByRole('group', { name: labelled(L.stripeCard) }), `card form labelled "${L.stripeCard}"`);
  const card = run.page.locator('#card-element');
  const input = (name) => run.one(card.locator(`input[placeholder="${name}"]`), `Stripe.js's "${name}" field in the card form`);
  await (await input('number')).fill(number);
  await (await input('exp_month')).fill('12');
  await (await input('exp_year')).fill('34');
  await (await input('cvc')).fill('123');
  await (await input('postal_code')).fill('10115');
}

// Pays with `number` on the card form, lands on the order page (which says the payment
// is being confirmed) and waits there until it says the order is paid.
async function payThroughStripe(run, number) {
  await typeStripeCard(run, number);
  run.step = 'pay';
  await run.submit(L.pay);
  await run.expectPath((p) => !p.endsWith('/pay'), 'the order page (an address without /pay) after paying');
  run.step = 'confirming';
  const confirming = await run.messages();
  run.step = 'paid';
  const statusText = await run.reloadUntil(
    async () => {
      const seen = await run.statusText();
      return /(?<!not\s*)\bpaid\b/i.test(seen) ? seen : undefined;
    },
    "the order to be paid by Stripe's webhook",
    () => run.statusText(),
  );
  return { order_url: run.page.url(), confirming, status_text: statusText, page_errors: run.pageErrors };
}

// localstripe's Stripe.js mounts a card form but its `confirmCardPayment` ignores the
// card it is given (it only completes 3-D Secure on a PaymentIntent the server already
// confirmed), and its API lets only a secret key attach a card to a PaymentIntent. So
// this test stands in for that one function: given the card form's fields, it does with
// localstripe's API what Stripe.js does with Stripe's (the card becomes a
// PaymentMethod that confirms the PaymentIntent), from Node (the secret key never
// reaches the page), and answers as Stripe.js does: `{paymentIntent}` or `{error}`.
async function standInForCardConfirmation(run, localstripe, secretKey) {
  const context = run.page.context();
  const call = async (path, form) => {
    const response = await fetch(`${localstripe}${path}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${secretKey}`, 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams(form).toString(),
    });
    return response.json();
  };
  await context.exposeBinding('kassaTestConfirmCard', async (_source, clientSecret, card) => {
    const pi = clientSecret.match(/^(pi_\w+)_secret_/)[1];
    const pm = await call('/v1/payment_methods', {
      type: 'card', 'card[number]': card.number, 'card[exp_month]': card.exp_month,
      'card[exp_year]': card.exp_year, 'card[cvc]': card.cvc,
    });
    if (pm.error) return { error: pm.error };
    await call(`/v1/payment_intents/${pi}`, { payment_method: pm.id });
    const confirmed = await call(`/v1/payment_intents/${pi}/confirm`, {});
    return confirmed.error ? { error: confirmed.error } : { paymentIntent: confirmed };
  });
  await context.addInitScript(() => {
    let stripe;
    Object.defineProperty(window, 'Stripe', {
      configurable: true,
      get: () => stripe,
      set: (real) => {
        stripe = (key) => {
          const s = real(key);
          s.confirmCardPayment = (clientSecret, data) =>
            window.kassaTestConfirmCard(clientSecret, data.payment_method.card.value.card);
          return s;
        };
      },
    });
  });
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  process.exitCode = await main();
}
