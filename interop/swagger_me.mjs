#!/usr/bin/env node
// Drive the Swagger UI at /docs in headless Chromium as a person would:
// Authorize with a bearer access token, then GET /v1/me through
// "Try it out" → "Execute", and check the page shows 200 and the email.
//
//   node swagger_me.mjs --base URL --token JWT --email EMAIL --screenshot PATH [--chromium /usr/bin/chromium]
//
// Exit 0 when the page shows the expected response, 1 otherwise (a
// screenshot is saved either way when the page got that far).
import { parseArgs } from 'node:util';
import { mkdtempSync, rmSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { chromium } from 'playwright-core';

const { values: a } = parseArgs({
  options: {
    base: { type: 'string' },
    token: { type: 'string' },
    email: { type: 'string' },
    screenshot: { type: 'string' },
    chromium: { type: 'string', default: '/usr/bin/chromium' },
  },
});
if (!a.base || !a.token || !a.email || !a.screenshot) {
  console.error('usage: swagger_me.mjs --base URL --token JWT --email EMAIL --screenshot PATH');
  process.exit(2);
}

const userDataDir = mkdtempSync(join(tmpdir(), 'portcullis-chromium-'));
mkdirSync(dirname(a.screenshot), { recursive: true });
const step = (msg) => console.log(`swagger: ${msg}`);

let context;
let page;
let ok = false;
try {
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: a.chromium,
    headless: true,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic',
    ],
    viewport: { width: 1280, height: 1100 },
    timeout: 30_000,
  });
  context.setDefaultTimeout(15_000);
  page = context.pages()[0] ?? (await context.newPage());
  // Only the service under test: any other host is a bug in the page.
  await page.route(/^(?!http:\/\/127\.0\.0\.1[:/])/, (route) => {
    console.error(`swagger: blocked off-host request ${route.request().url()}`);
    route.abort();
  });

  await page.goto(`${a.base}/docs`, { waitUntil: 'load' });
  await page.locator('.swagger-ui .btn.authorize').first().waitFor();
  step('Swagger UI loaded');

  await page.locator('.swagger-ui .scheme-container .btn.authorize').first().click();
  const modal = page.locator('.dialog-ux .modal-ux');
  await modal.waitFor();
  const bearerBlock = modal.locator('.auth-container').filter({ hasText: 'bearerAuth' });
  await bearerBlock.locator('input').first().fill(a.token);
  await bearerBlock.locator('button.authorize', { hasText: 'Authorize' }).click();
  // Once authorized, Swagger UI marks the scheme "Authorized" and offers "Logout".
  await bearerBlock.locator('h6', { hasText: /^Authorized$/ }).waitFor();
  await bearerBlock.locator('button', { hasText: /^Logout$/ }).waitFor();
  step('authorized with the access token');
  // One Close per security scheme (bearerAuth, introspectionAuth): any closes the dialog.
  await modal.locator('button.btn-done', { hasText: 'Close' }).first().click();
  await modal.waitFor({ state: 'detached' });

  const op = page.locator('.opblock.opblock-get').filter({
    has: page.locator('.opblock-summary-path[data-path="/v1/me"]'),
  });
  await op.locator('.opblock-summary').first().click();
  await op.locator('button.try-out__btn').click();
  await op.locator('button.execute').click();
  step('executed GET /v1/me');

  const live = op.locator('.live-responses-table .response').first();
  await live.waitFor();
  const status = (await live.locator('.response-col_status').innerText()).trim();
  const body = await live.locator('.response-col_description .microlight, .response-col_description pre').first().innerText();
  const curl = await op.locator('.curl-command').innerText().catch(() => '');
  await live.scrollIntoViewIfNeeded();
  await page.screenshot({ path: a.screenshot, fullPage: false });
  step(`screenshot saved to ${a.screenshot}`);

  const bodyHasEmail = body.includes(`"email": "${a.email}"`) || body.includes(`"email":"${a.email}"`);
  const curlHasBearer = curl.includes('Authorization: Bearer');
  step(`response code shown: ${status}; body shows email: ${bodyHasEmail}; curl sends bearer: ${curlHasBearer}`);
  ok = status === '200' && bodyHasEmail && curlHasBearer;
  if (!ok) console.log(`swagger: response body in page:\n${body}`);
} catch (e) {
  console.log(`swagger: error: ${e.message}`);
  if (page) await page.screenshot({ path: a.screenshot, fullPage: true }).catch(() => {});
} finally {
  if (context) await context.close().catch(() => {});
  rmSync(userDataDir, { recursive: true, force: true });
}
console.log(`swagger: ${ok ? 'ok' : 'FAILED'}`);
process.exit(ok ? 0 : 1);
