#!/usr/bin/env node
// The example SPA's newer steps in headless Chromium (Debian's, via
// playwright-core) against a real Portcullis in developer mode with
// PORTCULLIS_CAPTCHA=always, the page served on http://localhost:<port>:
//   1. sign-up then sign-in through the form: each answered
//      `captcha-required`, solved by client.solveCaptcha() in a Web Worker;
//   2. "Add a passkey" with a CDP virtual authenticator (works because the
//      page is on localhost, the relying party);
//   3. "Turn on two-step sign-in": the QR code and key shown, a TOTP code
//      computed here from the key, ten recovery codes, the profile says on.
//   node test/e2e/example-features.mjs [--chromium /usr/bin/chromium] [--artifacts DIR]
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { chromium } from 'playwright-core';
import { checks, pkgRoot, startExampleServer, startPortcullis, totp } from './harness.mjs';

const { values: a } = parseArgs({
  options: {
    chromium: { type: 'string', default: '/usr/bin/chromium' },
    artifacts: { type: 'string', default: join(pkgRoot, 'artifacts') },
  },
});
mkdirSync(a.artifacts, { recursive: true });
const t = checks('example-features');


const example = await startExampleServer();
const pageOrigin = example.base.replace('127.0.0.1', 'localhost');
const srv = await startPortcullis((port) => ({
  PORTCULLIS_DEV: 'true',
  PORTCULLIS_PUBLIC_URL: `http://localhost:${port}`,
  PORTCULLIS_CAPTCHA: 'always',
  PORTCULLIS_WEBAUTHN_ORIGINS: pageOrigin,
}));
const api = srv.base.replace('127.0.0.1', 'localhost');
let browser;
let rc = 1;
try {
  browser = await chromium.launch({ executablePath: a.chromium, args: ['--no-sandbox'] });
  const context = await browser.newContext();
  const page = await context.newPage();
  page.on('pageerror', (e) => console.log(`example-features: page error: ${e.message}`));
  const cdp = await context.newCDPSession(page);
  await cdp.send('WebAuthn.enable');
  const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: {
      protocol: 'ctap2', ctap2Version: 'ctap2_1', transport: 'internal',
      hasResidentKey: true, hasUserVerification: true, isUserVerified: true,
      automaticPresenceSimulation: true,
    },
  });
  await page.goto(`${pageOrigin}/index.html?api=${encodeURIComponent(api)}`, { waitUntil: 'load' });
  await page.waitForSelector('#status[data-state="signed-out"]');

  // 1. Sign-up and sign-in, each through the CAPTCHA step.
  await page.fill('#signup-form input[name=email]', 'example@example.com');
  await page.fill('#signup-form input[name=password]', 'correct horse battery staple 42');
  const t0 = Date.now();
  await page.click('#signup-form button[type=submit]');
  const sawCaptcha = await page
    .waitForSelector('#captcha-status:not([hidden])', { timeout: 10_000 })
    .then(() => true, () => false);
  t.check(sawCaptcha, 'the page shows the CAPTCHA step');
  await page.waitForSelector('#status[data-state="signed-in"]', { timeout: 90_000 });
  t.check(true, `signed up and signed in through two CAPTCHAs in ${Date.now() - t0} ms`);
  t.check(!(await page.locator('#error').isVisible()), 'no error shown');

  // 2. Add a passkey.
  await page.click('#add-passkey');
  await page.waitForFunction(() => /Passkey ".*" added/.test(document.querySelector('#error')?.textContent ?? ''), null, { timeout: 20_000 });
  const { credentials } = await cdp.send('WebAuthn.getCredentials', { authenticatorId });
  t.check(credentials.length === 1 && credentials[0].isResidentCredential, 'a resident passkey was created for localhost');

  // 3. Turn on two-step sign-in.
  await page.click('#totp-begin');
  await page.waitForSelector('#totp-setup:not([hidden])');
  const secret = (await page.textContent('#totp-secret')).trim();
  const qr = await page.getAttribute('#totp-qr', 'src');
  t.check(secret.length >= 16 && qr.startsWith('data:image/svg+xml;base64,'), 'QR code and key shown');
  await page.fill('#totp-form input[name=code]', totp(secret));
  await page.click('#totp-form button[type=submit]');
  await page.waitForSelector('#totp-done:not([hidden])', { timeout: 10_000 });
  const codes = await page.locator('#recovery-codes li').count();
  t.check(codes === 10, `ten recovery codes shown (${codes})`);
  await page.waitForFunction(() => document.querySelector('#p-mfa')?.textContent === 'on', null, { timeout: 5_000 });
  t.check(true, 'the profile says two-step sign-in is on');
  await page.screenshot({ path: join(a.artifacts, 'example-features.png'), fullPage: true });
  rc = t.done();
} catch (e) {
  console.error(e);
  const shown = await browser?.contexts()[0]?.pages()[0]?.textContent('#error').catch(() => null);
  if (shown) console.error(`example-features: the page shows: ${shown}`);
  rc = 1;
} finally {
  await browser?.close();
  await srv.stop();
  await example.stop();
}
process.exit(rc);
