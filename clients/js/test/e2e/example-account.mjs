#!/usr/bin/env node
// The example SPA's account pages in headless Chromium (Debian's, via
// playwright-core) against a real Portcullis in developer mode, the page on
// http://localhost:<port>, one OpenID provider configured (a small fake IdP,
// test/e2e/fake-idp.mjs), and a 2-second step-up window so that the
// "confirm it's you" prompt is met on the way:
//   1. signed out: the provider's button is shown; sign-up through the form;
//   2. passkeys: two added (CDP virtual authenticator), listed, one removed;
//   3. two-step sign-in: QR code and key, a TOTP code computed here, ten
//      recovery codes, a new set of ten, the profile says on;
//   4. picture: a PNG uploaded, shown; 5. email change: the link from the
//      outbox opened, the new address shown;
//   6. activity: the events of all that listed;
//   7. signed out, "Continue with Acme ID": the provider's round trip ends
//      signed in as the provider's user.
// Screenshots: artifacts/example-account-{signed-out,confirm,totp,signed-in,federated}.png.
//   node test/e2e/example-account.mjs [--chromium /usr/bin/chromium] [--artifacts DIR] [--mongodb-uri URI]
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { crc32, deflateSync } from 'node:zlib';
import { chromium } from 'playwright-core';
import { startFakeIdp } from './fake-idp.mjs';
import { checks, pkgRoot, sleep, startExampleServer, startPortcullis, totp } from './harness.mjs';

const { values: a } = parseArgs({
  options: {
    chromium: { type: 'string', default: '/usr/bin/chromium' },
    artifacts: { type: 'string', default: join(pkgRoot, 'artifacts') },
    'mongodb-uri': { type: 'string' },
  },
});
mkdirSync(a.artifacts, { recursive: true });
const t = checks('example-account');

/** A w×h RGB PNG: a diagonal gradient with a light disc (something to look at). */
function png(w, h) {
  const raw = Buffer.alloc((w * 3 + 1) * h);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const i = y * (w * 3 + 1) + 1 + x * 3;
      const disc = (x - w / 2) ** 2 + (y - h * 0.42) ** 2 < (w / 5) ** 2;
      raw[i] = disc ? 250 : 40 + Math.round((150 * x) / w);
      raw[i + 1] = disc ? 230 : 90 + Math.round((100 * y) / h);
      raw[i + 2] = disc ? 200 : 200;
    }
  }
  const chunk = (type, data) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const td = Buffer.concat([Buffer.from(type), data]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(td));
    return Buffer.concat([len, td, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr.set([8, 2, 0, 0, 0], 8);
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', deflateSync(raw)),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

const PASSWORD = 'correct horse battery staple 42';
const EMAIL = 'ada@example.com';
const NEW_EMAIL = 'ada.lovelace@example.com';
const idp = await startFakeIdp({
  clientId: 'example-spa',
  clientSecret: 'fake-idp-secret-0123456789',
  user: { sub: 'acme-1001', email: 'grace@acme.example', name: 'Grace Hopper' },
});
const example = await startExampleServer();
const pageOrigin = example.base.replace('127.0.0.1', 'localhost');
const srv = await startPortcullis((port) => ({
  PORTCULLIS_DEV: 'true',
  PORTCULLIS_PUBLIC_URL: `http://localhost:${port}`,
  PORTCULLIS_WEBAUTHN_ORIGINS: pageOrigin,
  PORTCULLIS_ACCESS_TTL: '60s',
  PORTCULLIS_REAUTH_WINDOW: '2s',
  PORTCULLIS_PROVIDERS: 'acme',
  PORTCULLIS_PROVIDER_ACME_KIND: 'oidc',
  PORTCULLIS_PROVIDER_ACME_ISSUER: idp.issuer,
  PORTCULLIS_PROVIDER_ACME_CLIENT_ID: 'example-spa',
  PORTCULLIS_PROVIDER_ACME_CLIENT_SECRET: 'fake-idp-secret-0123456789',
  PORTCULLIS_PROVIDER_ACME_NAME: 'Acme ID',
  PORTCULLIS_REDIRECT_URLS: `${pageOrigin}/index.html*`,
  ...(a['mongodb-uri']
    ? { PORTCULLIS_MONGODB_URI: a['mongodb-uri'], PORTCULLIS_MONGODB_DB: `js_example_account_${process.pid}_${Date.now()}` }
    : {}),
}));
console.log(`example-account: store ${a['mongodb-uri'] ? 'MongoDB' : 'embedded'}`);
const api = srv.base.replace('127.0.0.1', 'localhost');
let browser;
let rc = 1;
try {
  browser = await chromium.launch({ executablePath: a.chromium, args: ['--no-sandbox'] });
  const context = await browser.newContext({ viewport: { width: 1000, height: 900 } });
  const page = await context.newPage();
  page.on('pageerror', (e) => console.log(`example-account: page error: ${e.message}`));
  page.on('dialog', (d) => void d.accept());
  const cdp = await context.newCDPSession(page);
  await cdp.send('WebAuthn.enable');
  // One authenticator per passkey (a device holds one passkey per account:
  // the server's excludeCredentials says so): the second "device" replaces the first.
  const newAuthenticator = async () =>
    (await cdp.send('WebAuthn.addVirtualAuthenticator', {
      options: {
        protocol: 'ctap2', ctap2Version: 'ctap2_1', transport: 'internal',
        hasResidentKey: true, hasUserVerification: true, isUserVerified: true,
        automaticPresenceSimulation: true,
      },
    })).authenticatorId;
  let authenticatorId = await newAuthenticator();
  const noError = async (what) => {
    const shown = (await page.locator('#error').isVisible()) ? await page.textContent('#error') : '';
    t.check(!shown || /^Passkey ".*" added\.$/.test(shown), `${what}: no error shown${shown ? ` (${shown})` : ''}`);
  };
  /**
   * Clicks, then answers "confirm it's you" whenever it comes up, until
   * `done()` holds. Returns how many times the password was asked.
   */
  let shotConfirm = false;
  const withConfirm = async (action, done, what, ms = 15_000) => {
    let asked = 0;
    await action();
    const end = Date.now() + ms;
    while (!(await done())) {
      if (Date.now() > end) throw new Error(`${what}: timed out (page says: ${await page.textContent('#error')})`);
      if (await page.locator('#confirm-form').isVisible()) {
        asked++;
        if (!shotConfirm) {
          shotConfirm = true;
          await page.screenshot({ path: join(a.artifacts, 'example-account-confirm.png') });
        }
        await page.fill('#confirm-form input[name=password]', PASSWORD);
        await page.click('#confirm-form button[type=submit]');
        await page.waitForSelector('#confirm-form', { state: 'hidden' });
      }
      await sleep(100);
    }
    return asked;
  };
  const rows = (sel) => page.locator(`${sel} tbody tr`).count();

  await page.goto(`${pageOrigin}/index.html?api=${encodeURIComponent(api)}`, { waitUntil: 'load' });
  await page.waitForSelector('#status[data-state="signed-out"]');

  // 1. Signed out: the provider button; sign-up.
  await page.waitForSelector('#federated:not([hidden]) button[data-provider="acme"]', { timeout: 10_000 });
  t.check((await page.textContent('#providers button')) === 'Continue with Acme ID', 'signed out: "Continue with Acme ID" from listProviders()');
  await page.screenshot({ path: join(a.artifacts, 'example-account-signed-out.png'), fullPage: true });
  await page.fill('#signup-form input[name=email]', EMAIL);
  await page.fill('#signup-form input[name=display_name]', 'Ada');
  await page.fill('#signup-form input[name=password]', PASSWORD);
  await page.click('#signup-form button[type=submit]');
  await page.waitForSelector('#status[data-state="signed-in"]', { timeout: 20_000 });
  t.check(await page.locator('#passkeys-empty').isVisible(), 'signed in: no passkeys yet');
  await noError('sign-up');

  // 2. Passkeys: two added, one removed (after the step-up window: asked for the password).
  const created = [];
  for (let n = 1; n <= 2; n++) {
    if (n === 2) {
      await cdp.send('WebAuthn.removeVirtualAuthenticator', { authenticatorId });
      authenticatorId = await newAuthenticator();
    }
    await withConfirm(() => page.click('#add-passkey'), async () => (await rows('#passkeys')) === n, `passkey ${n}`);
    created.push(...(await cdp.send('WebAuthn.getCredentials', { authenticatorId })).credentials);
  }
  t.check(created.length === 2 && (await rows('#passkeys')) === 2, 'two passkeys (two devices) created and listed');
  await sleep(2100);
  const asked = await withConfirm(
    () => page.click('#passkeys tbody tr:first-child button'),
    async () => (await rows('#passkeys')) === 1,
    'remove a passkey',
  );
  t.check(asked === 1, `removing a passkey after the step-up window asked for the password once (${asked})`);
  await noError('passkeys');

  // 3. Two-step sign-in.
  await sleep(2100);
  await withConfirm(() => page.click('#totp-begin'), () => page.locator('#totp-setup').isVisible(), 'enrol TOTP');
  const secret = (await page.textContent('#totp-secret')).trim();
  const qr = await page.getAttribute('#totp-qr', 'src');
  t.check(secret.length >= 16 && qr.startsWith('data:image/svg+xml;base64,'), 'QR code and key shown');
  await page.waitForFunction(() => document.querySelector('#totp-qr')?.naturalWidth > 0);
  await page.locator('#two-step').screenshot({ path: join(a.artifacts, 'example-account-totp.png') });
  await sleep(2100); // scanning the code took longer than the step-up window
  await page.fill('#totp-form input[name=code]', totp(secret));
  const askedToActivate = await withConfirm(
    () => page.click('#totp-form button[type=submit]'),
    () => page.locator('#totp-done').isVisible(),
    'activate TOTP',
  );
  t.check(askedToActivate === 1, `activation after the window: asked once, then retried by the client (${askedToActivate})`);
  const first = await page.locator('#recovery-codes li').allTextContents();
  t.check(first.length === 10, `ten recovery codes shown (${first.length})`);
  await page.waitForFunction(() => document.querySelector('#p-mfa')?.textContent === 'on', null, { timeout: 5_000 });
  t.check(await page.locator('#totp-manage').isVisible(), 'the profile says on; "New recovery codes" offered');
  await sleep(2100);
  await withConfirm(
    () => page.click('#recovery-new'),
    async () => {
      const now = await page.locator('#recovery-codes li').allTextContents();
      return now.length === 10 && now[0] !== first[0];
    },
    'new recovery codes',
  );
  t.check(true, 'a new set of ten recovery codes replaced the old');
  await noError('two-step sign-in');

  // 4. Picture.
  await page.setInputFiles('#avatar-file', { name: 'ada.png', mimeType: 'image/png', buffer: png(160, 160) });
  await page.click('#avatar-form button[type=submit]');
  await page.waitForFunction(() => {
    const img = document.querySelector('#avatar-img');
    return img && !img.hidden && img.complete && img.naturalWidth > 0;
  }, null, { timeout: 10_000 });
  t.check(await page.locator('#avatar-remove').isVisible(), 'the uploaded picture is shown (and can be removed)');
  await noError('picture');

  // 5. Email change through the mailed link.
  await sleep(2100);
  await page.fill('#email-form input[name=email]', NEW_EMAIL);
  await withConfirm(() => page.click('#email-form button[type=submit]'), () => page.locator('#email-pending').isVisible(), 'change email');
  let mail = null;
  for (let i = 0; i < 50 && !mail; i++, await sleep(100)) mail = srv.mail(NEW_EMAIL, 'token=');
  const link = mail && /(https?:\/\/[^\s"<>]*token=[A-Za-z0-9_-]+)/.exec(mail)?.[1];
  t.check(!!link, 'a confirmation link was mailed to the new address');
  const tab = await context.newPage();
  await tab.goto(link.replace(/^http:\/\/localhost:\d+/, api));
  await tab.click('form button[type=submit], form input[type=submit]');
  await tab.waitForLoadState('load');
  await tab.close();
  await page.click('#email-reload');
  await page.waitForFunction((e) => document.querySelector('#email-current')?.textContent === e, NEW_EMAIL, { timeout: 10_000 });
  t.check((await page.textContent('#status')).includes(NEW_EMAIL), 'the new address is shown after opening the link');
  await noError('email');

  // 6. Activity.
  await page.click('#activity-reload');
  await page.waitForFunction(() => document.querySelectorAll('#activity tbody tr').length >= 8, null, { timeout: 10_000 });
  const types = await page.locator('#activity tbody tr').evaluateAll((trs) => trs.map((tr) => tr.dataset.type));
  let all = new Set(types);
  for (let i = 0; i < 5 && (await page.locator('#activity-more').isVisible()); i++) {
    const before = await rows('#activity');
    await page.click('#activity-more');
    await page.waitForFunction((n) => document.querySelectorAll('#activity tbody tr').length > n, before);
    all = new Set(await page.locator('#activity tbody tr').evaluateAll((trs) => trs.map((tr) => tr.dataset.type)));
  }
  const want = ['user.registered', 'passkey.added', 'passkey.removed', 'mfa.enabled', 'mfa.recovery_codes_regenerated', 'email.changed'];
  const missing = want.filter((w) => !all.has(w));
  t.check(missing.length === 0, `activity lists ${want.join(', ')}${missing.length ? ` (missing ${missing})` : ''}`);
  await page.click('#activity-reload');
  await page.waitForFunction(() => document.querySelectorAll('#activity tbody tr').length === 8);
  await page.screenshot({ path: join(a.artifacts, 'example-account-signed-in.png'), fullPage: true });

  // 7. Federated sign-in.
  await page.click('#signout');
  await page.waitForSelector('#status[data-state="signed-out"]');
  await page.click('#providers button[data-provider="acme"]');
  await page.waitForSelector('#status[data-state="signed-in"]', { timeout: 20_000 });
  t.check((await page.textContent('#status')) === 'Signed in as grace@acme.example', 'Continue with Acme ID: signed in as the provider\'s user');
  t.check(idp.seen.authorize === 1 && idp.seen.token === 1, 'one authorization and one token request at the provider');
  t.check(!/[?&]code=/.test(page.url()) && page.url().includes('api='), 'the one-time code left the address bar; the page kept its query');
  await noError('federated sign-in');
  await page.screenshot({ path: join(a.artifacts, 'example-account-federated.png'), fullPage: true });
  rc = t.done();
} catch (e) {
  console.error(e);
  const shown = await browser?.contexts()[0]?.pages()[0]?.textContent('#error').catch(() => null);
  if (shown) console.error(`example-account: the page shows: ${shown}`);
  await browser?.contexts()[0]?.pages()[0]?.screenshot({ path: join(a.artifacts, 'example-account-failure.png'), fullPage: true }).catch(() => {});
  console.error(srv.log().split('\n').filter((l) => /"(WARN|ERROR)"/.test(l)).slice(-10).join('\n'));
  rc = 1;
} finally {
  await browser?.close();
  await srv.stop();
  await example.stop();
  await idp.stop();
}
process.exit(rc);
