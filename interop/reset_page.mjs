#!/usr/bin/env node
// Drive the built-in password-reset page in headless Chromium as a person
// would: open the link from the reset mail, type a new password, submit,
// and check the page says the password was changed. The page must work with
// no script at all: JavaScript is disabled in this browser.
//
//   node reset_page.mjs --link URL --password NEW --screenshot PATH [--chromium /usr/bin/chromium]
//
// Exit 0 when the page confirms the change, 1 otherwise.
import { parseArgs } from 'node:util';
import { mkdtempSync, rmSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { chromium } from 'playwright-core';

const { values: a } = parseArgs({
  options: {
    link: { type: 'string' },
    password: { type: 'string' },
    screenshot: { type: 'string' },
    chromium: { type: 'string', default: '/usr/bin/chromium' },
  },
});
if (!a.link || !a.password || !a.screenshot) {
  console.error('usage: reset_page.mjs --link URL --password NEW --screenshot PATH');
  process.exit(2);
}

const userDataDir = mkdtempSync(join(tmpdir(), 'portcullis-chromium-'));
mkdirSync(dirname(a.screenshot), { recursive: true });
const step = (msg) => console.log(`reset-page: ${msg}`);

let context;
let page;
let ok = false;
try {
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: a.chromium,
    headless: true,
    javaScriptEnabled: false,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic',
    ],
    viewport: { width: 800, height: 700 },
    timeout: 30_000,
  });
  context.setDefaultTimeout(15_000);
  page = context.pages()[0] ?? (await context.newPage());
  const violations = [];
  page.on('console', (m) => { if (/Content Security Policy/i.test(m.text())) violations.push(m.text()); });
  await page.route(/^(?!http:\/\/(127\.0\.0\.1|localhost)[:/])/, (route) => {
    console.error(`reset-page: blocked off-host request ${route.request().url()}`);
    route.abort();
  });

  const first = await page.goto(a.link, { waitUntil: 'load' });
  const headers = first.headers();
  step(`opened the link: ${first.status()}, CSP "${headers['content-security-policy']}", referrer-policy ${headers['referrer-policy']}`);
  await page.getByLabel('New password').fill(a.password);
  step('typed the new password');
  await Promise.all([
    page.waitForNavigation({ waitUntil: 'load' }),
    page.getByRole('button', { name: 'Set new password' }).click(),
  ]);
  const heading = (await page.locator('h1').innerText()).trim();
  await page.screenshot({ path: a.screenshot, fullPage: true });
  step(`after submitting, the page says "${heading}"; screenshot ${a.screenshot}`);
  if (violations.length) step(`CSP violations: ${violations.join(' | ')}`);
  ok = first.status() === 200
    && headers['referrer-policy'] === 'no-referrer'
    && (headers['content-security-policy'] || '').includes("form-action 'self'")
    && heading === 'Password changed'
    && violations.length === 0;
} catch (e) {
  console.log(`reset-page: error: ${e.message}`);
  if (page) await page.screenshot({ path: a.screenshot, fullPage: true }).catch(() => {});
} finally {
  if (context) await context.close().catch(() => {});
  rmSync(userDataDir, { recursive: true, force: true });
}
console.log(`reset-page: ${ok ? 'ok' : 'FAILED'}`);
process.exit(ok ? 0 : 1);
