#!/usr/bin/env node
// Drives Kassa's merchant dashboard in headless Chromium, by visible labels and names, as
// a new merchant would: sign up, confirm the email from the link a real SMTP server got,
// create a store, choose payment methods, a license pool with keys, a product; then a
// customer, in a second browser context (other cookies), buys it through its buy link;
// and the merchant sees the order paid and delivered and its key. axe-core checks every
// page on the way (the checkout in the store's own, light, accent colour; a form with
// errors on each side) and fails the run on any serious or critical violation.
// Called by the Rust browser tests:
//
//   node tests/browser/dashboard.mjs merchant <kassa-url> <mails.jsonl>
//
// <mails.jsonl> is the file the SMTP sink (tests/email/smtp_sink.py) appends each mail
// to; the script waits there for the verification email. Output, exit codes, screenshots
// and environment variables as for checkout.mjs (README.md beside this file).

import { readFileSync } from 'node:fs';
import { BUYER_EMAIL, GOOD_CARD, checkoutToPayment, expectOrderPagePaid, payByCard } from './checkout.mjs';
import { StepError, drive, httpUrl, squash, timeout } from './driver.mjs';

// What the merchant types. The Rust tests assert on these.
const MERCHANT_EMAIL = 'ada@shop.test';
const PASSWORD = 'correct horse battery';
const STORE_NAME = 'Ada Software';
const STORE_SLUG = 'ada-software';
// A light brand colour: the checkout must stay readable with it (white on it is not).
const ACCENT = '#f5c518';
const POOL_NAME = 'Pro keys';
const KEYS = ['ADA-PRO-1', 'ADA-PRO-2', 'ADA-PRO-2', 'ADA-PRO-3'];
const PRODUCT_NAME = 'Ada Pro';
const PRICE = '19.99';
const CURRENCY = 'USD';
const QUANTITY = '2';

function usage(message) {
  process.stderr.write(
    `dashboard.mjs: ${message}\n` +
      'usage: node tests/browser/dashboard.mjs merchant <kassa-url> <mails.jsonl>\n' +
      '  <kassa-url>: where Kassa answers (http://127.0.0.1:PORT)\n' +
      "  <mails.jsonl>: the SMTP sink's output file (tests/email/smtp_sink.py --out)\n",
  );
  process.exit(2);
}

// The mails the sink has received so far (a line may be half-written: skipped).
function mails(file) {
  let text = '';
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return [];
  }
  return text
    .split('\n')
    .map((line) => {
      try {
        return JSON.parse(line);
      } catch {
        return null;
      }
    })
    .filter(Boolean);
}

// Waits for a verification email to `to` among the mails after the first `skip` (a file
// kept from an earlier run holds older, used links) and returns its link.
async function verificationLink(file, to, skip) {
  const until = Date.now() + timeout;
  for (;;) {
    const all = mails(file).slice(skip);
    const mail = all.find((m) => (m.rcpt_tos || []).includes(to) && /confirm your email/i.test(m.subject || ''));
    if (mail) {
      const link = (mail.text || '').match(/https?:\/\/\S+\/dashboard\/verify\?token=\S+/);
      if (!link) throw new StepError(`the verification email to ${to} holds no /dashboard/verify?token= link:\n${mail.text}`);
      return link[0];
    }
    if (Date.now() > until) {
      const seen = all.map((m) => `${m.rcpt_tos} "${m.subject}"`);
      throw new StepError(`no verification email to ${to} in ${file} within ${timeout} ms (new there: ${JSON.stringify(seen)})`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function merchant(run, base, mailsFile) {
  run.step = 'sign-up';
  await run.open(`${base}/dashboard/signup`);
  await run.audit('signup');
  await run.fill('Email', MERCHANT_EMAIL);
  await run.fill('Password', PASSWORD);
  await run.fill('Repeat the password', PASSWORD + '!');
  await run.submit('Sign up');
  await run.text(/does not match/i, 'saying the repeated password "does not match"');
  await run.audit('signup-errors');
  await run.fill('Password', PASSWORD);
  await run.fill('Repeat the password', PASSWORD);
  const earlier = mails(mailsFile).length;
  await run.submit('Sign up');
  await run.text(/check your email/i, 'saying "Check your email"');
  await run.audit('check-email');

  run.step = 'verify';
  const link = await verificationLink(mailsFile, MERCHANT_EMAIL, earlier);
  await run.open(link);
  await run.audit('verify');
  await run.submit('Confirm my email');

  run.step = 'store';
  await run.expectPath((p) => p === '/dashboard/stores/new', 'the store form (/dashboard/stores/new) after confirming the email');
  await run.audit('store-new');
  await run.fill('Store name', STORE_NAME);
  await run.fill('Store URL name', STORE_SLUG);
  await run.submit('Create store');

  run.step = 'settings';
  await run.expectPath((p) => p === '/dashboard/settings', 'the settings (/dashboard/settings) after creating the store');
  await run.fill('Accent colour', ACCENT);
  await run.fill('Terms of sale URL', 'https://ada.example/terms');
  await run.fill('Privacy policy URL', 'https://ada.example/privacy');
  await run.tick('Test card (sandbox)');
  await run.tick('Bank transfer');
  await run.fill('Account holder', 'Ada Software Ltd');
  await run.fill('IBAN', 'DE89370400440532013000');
  await run.submit('Save settings');
  await run.text(/settings saved/i, 'saying "Settings saved"');
  await run.audit('settings');

  run.step = 'pool';
  await run.follow('License pools');
  await run.audit('pools');
  await run.fill('Pool name', POOL_NAME);
  await run.submit('Create pool');
  await run.expectPath((p) => /^\/dashboard\/pools\/[^/]+$/.test(p), "the pool's page after creating it");

  run.step = 'keys';
  await run.upload('Keys file', 'keys.txt', KEYS.join('\n') + '\n');
  await run.submit('Upload keys');
  const uploaded = await run.text(/added \d+ keys?/i, 'saying how many keys were added');
  await run.audit('pool');

  run.step = 'product';
  await run.follow('Products');
  await run.audit('products-empty');
  await run.follow('New product');
  await run.audit('product-new');
  await run.fill('Product name', PRODUCT_NAME);
  await run.fill('Price 1', PRICE);
  await run.fill('Currency 1', CURRENCY);
  await run.choose('Keys from a license pool');
  await run.select('License pool', POOL_NAME);
  await run.submit('Create product');
  await run.expectPath((p) => /^\/dashboard\/products\/[^/]+$/.test(p), "the product's page after creating it");
  await run.audit('product');
  const buyLink = (await (await run.field('Buy link')).inputValue()).trim();
  if (!/\/buy\/prd_/.test(buyLink)) throw new StepError(`the field "Buy link" holds "${buyLink}", expected a /{store}/buy/prd_… address`);

  run.step = 'checkout-link';
  await run.follow('Coupons');
  await run.audit('coupons');
  await run.follow('Checkout links');
  await run.audit('checkout-links');
  await run.fill('Quantity', '2');
  await run.submit('Create checkout link');
  await run.text(/checkout link created/i, 'saying "Checkout link created"');
  await run.audit('checkout-links-made');
  const merchantPage = run.page;

  run.step = 'customer';
  await run.newPage();
  const buyUrl = new URL(buyLink);
  buyUrl.searchParams.set('quantity', QUANTITY);
  buyUrl.searchParams.set('locale', 'en');
  await checkoutToPayment(run, buyUrl.toString(), { audit: 'branded-', consentErrors: true });
  run.step = 'customer-pay';
  await payByCard(run, GOOD_CARD);
  const bought = await expectOrderPagePaid(run, { audit: 'branded-' });
  await run.page.context().close();

  run.step = 'orders';
  run.page = merchantPage;
  await run.follow('Orders');
  const row = await run.reloadUntil(
    async () => {
      const { rows } = await run.table('Delivery');
      return rows.find((r) => r.Customer === BUYER_EMAIL && r.Status === 'paid' && r.Delivery === 'delivered');
    },
    `a row for ${BUYER_EMAIL} with Status "paid" and Delivery "delivered" under Orders`,
    async () => JSON.stringify((await run.table('Delivery')).rows),
  );
  await run.audit('orders');

  run.step = 'order';
  const { locator: orders } = await run.table('Delivery');
  await run.follow(row.Order.split(/\s/)[0], orders.getByRole('row').filter({ hasText: BUYER_EMAIL }));
  await run.expectPath((p) => /^\/dashboard\/orders\/ord_/.test(p), "the order's page");
  const lines = (await run.table('Licenses')).rows;
  const licenses = lines.flatMap((l) => l.Licenses.split(/\s+/).filter(Boolean));
  if (!licenses.length) throw new StepError(`the order's lines show no license: ${JSON.stringify(lines)}`);
  await run.audit('order');
  const orderUrl = run.page.url();

  run.step = 'team';
  await run.follow('Team');
  await run.text(/\(you\)/, 'marking the merchant "(you)"');
  await run.audit('team');

  run.step = 'home';
  await run.follow('Home');
  const today = await run.text(/\d+ paid orders?/i, 'saying how many paid orders today');

  run.step = 'log-out';
  await run.submit('Log out');
  await run.expectPath((p) => p === '/dashboard/login', 'the login page after "Log out"');
  await run.audit('login');

  run.step = 'log-in';
  await run.fill('Email', MERCHANT_EMAIL);
  await run.fill('Password', PASSWORD);
  await run.submit('Log in');
  await run.expectPath((p) => p === '/dashboard', 'the home page (/dashboard) after "Log in"');
  await run.text(/\d+ paid orders?/i, 'saying how many paid orders today');
  await run.audit('home');

  return {
    merchant_email: MERCHANT_EMAIL,
    store_slug: STORE_SLUG,
    keys_uploaded: uploaded,
    buy_link: buyLink,
    customer_order_url: bought.order_url,
    order_url: orderUrl,
    order_row: row,
    licenses,
    today: squash(today),
    messages: await run.messages(),
  };
}

async function main() {
  const [scenario, base, mailsFile, ...extra] = process.argv.slice(2);
  if (!scenario || !base || !mailsFile || extra.length) usage('expected exactly three arguments');
  if (scenario !== 'merchant') usage(`unknown scenario "${scenario}"`);
  if (!httpUrl(base)) usage(`not an http(s) URL: "${base}"`);
  return drive('dashboard.mjs', scenario, (run) => merchant(run, base.replace(/\/+$/, ''), mailsFile));
}

process.exitCode = await main();
