#!/usr/bin/env node
// Every method of the client called once against a live Portcullis
// (test/e2e/scenario.mjs), on the embedded store or MongoDB, in Node or in
// headless Chromium:
//   node test/e2e/all-methods.mjs                      # Node, embedded store
//   node test/e2e/all-methods.mjs --mongodb-uri URI    # Node, MongoDB (FerretDB)
//   node test/e2e/all-methods.mjs --chromium /usr/bin/chromium [--mongodb-uri URI]
//   ... --record test/recorded/answers.json           # keep each operation's answer for the unit tests
// Fails when a method of test/operations.mjs was not called. Passkeys: a
// CDP virtual authenticator in Chromium, a software one in Node
// (soft-authenticator.mjs, as navigator.credentials).
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { checks, pkgRoot, repoRoot, startExampleServer, startPortcullis, totp } from './harness.mjs';
import { OPERATIONS } from '../operations.mjs';
import { matchOperation } from '../spec-ops.mjs';
import { softAuthenticator } from './soft-authenticator.mjs';

const { values: a } = parseArgs({
  options: {
    chromium: { type: 'string' },
    'mongodb-uri': { type: 'string' },
    record: { type: 'string' },
  },
});
const where = `${a.chromium ? 'chromium' : 'node'}/${a['mongodb-uri'] ? 'mongodb' : 'embedded'}`;
const t = checks(`all-methods ${where}`);

// A 1x1 PNG.
const PNG = Buffer.from(
  'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==',
  'base64',
);

const admin = { email: 'root@example.com', password: 'admin passphrase 123' };
// The origin the software authenticator signs for in Node (an app's page).
const NODE_ORIGIN = 'http://localhost:5173';
const introspectionToken = 'introspection-token-for-the-test-0123456789';
const example = a.chromium ? await startExampleServer() : null;
const pageOrigin = example?.base.replace('127.0.0.1', 'localhost');
const srv = await startPortcullis(
  (port) => ({
    PORTCULLIS_PUBLIC_URL: `http://localhost:${port}`,
    PORTCULLIS_ANONYMOUS: 'true',
    PORTCULLIS_REAUTH_WINDOW: '1s',
    PORTCULLIS_ACCESS_TTL: '5s',
    PORTCULLIS_INTROSPECTION_TOKEN: introspectionToken,
    PORTCULLIS_APPLE_APP_IDS: 'ABCDE12345.com.example.app',
    PORTCULLIS_ANDROID_APPS: `com.example.app:${Array(32).fill('AB').join(':')}`,
    ...(pageOrigin
      ? { PORTCULLIS_CORS_ORIGINS: pageOrigin, PORTCULLIS_WEBAUTHN_ORIGINS: pageOrigin }
      : { PORTCULLIS_WEBAUTHN_ORIGINS: NODE_ORIGIN }),
    ...(a['mongodb-uri']
      ? { PORTCULLIS_MONGODB_URI: a['mongodb-uri'], PORTCULLIS_MONGODB_DB: `js_all_methods_${process.pid}_${Date.now()}` }
      : {}),
  }),
  { admin },
);
const api = srv.base.replace('127.0.0.1', 'localhost');

const handed = new Set();
async function mail(to, has) {
  for (let i = 0; i < 100; i++) {
    const raw = srv.mail(to, has);
    if (raw && !handed.has(raw)) {
      handed.add(raw);
      const text = raw.replace(/=\r?\n/g, '').replace(/=3D/g, '=');
      const link = /(https?:\/\/[^\s"<>]*token=[A-Za-z0-9_-]+)/.exec(text)?.[1] ?? null;
      const token = link ? new URL(link).searchParams.get('token') : null;
      const code = /Code:\s*(\d+)/.exec(text)?.[1] ?? null;
      return { link, token, code };
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return null;
}

// Each operation's last answer, for the unit tests (test/recorded/answers.json).
const spec = JSON.parse(readFileSync(join(repoRoot, 'openapi', 'openapi.json'), 'utf8'));
const recorded = {};
async function record(method, url, status, type, json) {
  const op = matchOperation(spec, method, url);
  if (!op || recorded[op] || status < 200 || status > 299 || !url.startsWith(api)) return;
  recorded[op] = { status, contentType: type, body: type.includes('json') ? await json().catch(() => null) : null };
}

let rc = 1;
let browser;
try {
  let called;
  if (!a.chromium) {
    const realFetch = globalThis.fetch;
    globalThis.fetch = async (input, init) => {
      const req = new Request(input, init);
      const res = await realFetch(req.clone());
      await record(req.method, req.url, res.status, res.headers.get('content-type') ?? '', () => res.clone().json());
      return res;
    };
    Object.defineProperty(globalThis, 'navigator', { value: softAuthenticator(NODE_ORIGIN), configurable: true });
    const lib = await import(join(pkgRoot, 'dist', 'index.js'));
    const { run } = await import('./scenario.mjs');
    called = await run(lib, {
      base: api,
      check: t.check,
      mail,
      totp: async (s, steps = 0) => totp(s, Date.now() + steps * 30_000),
      admin,
      introspectionToken,
      png: new Uint8Array(PNG),
    });
    globalThis.fetch = realFetch;
  } else {
    const { chromium } = await import('playwright-core');
    browser = await chromium.launch({ executablePath: a.chromium, args: ['--no-sandbox'] });
    const context = await browser.newContext();
    const page = await context.newPage();
    page.on('pageerror', (e) => console.log(`all-methods: page error: ${e.message}`));
    page.on('console', (m) => m.type() === 'error' && !/Failed to load resource/.test(m.text()) && console.log(`all-methods: console: ${m.text()}`));
    page.on('response', (res) => {
      const req = res.request();
      void record(req.method(), res.url(), res.status(), res.headers()['content-type'] ?? '', () => res.json());
    });
    const cdp = await context.newCDPSession(page);
    await cdp.send('WebAuthn.enable');
    await cdp.send('WebAuthn.addVirtualAuthenticator', {
      options: {
        protocol: 'ctap2', ctap2Version: 'ctap2_1', transport: 'internal',
        hasResidentKey: true, hasUserVerification: true, isUserVerified: true, automaticPresenceSimulation: true,
      },
    });
    const scenario = readFileSync(join(pkgRoot, 'test', 'e2e', 'scenario.mjs'), 'utf8');
    await page.route('**/scenario.mjs', (r) => r.fulfill({ contentType: 'text/javascript', body: scenario }));
    await page.exposeFunction('ctxCheck', (ok, what) => t.check(ok, what));
    await page.exposeFunction('ctxMail', (to, has) => mail(to, has));
    await page.exposeFunction('ctxTotp', (s, steps = 0) => totp(s, Date.now() + steps * 30_000));
    // A page served from loopback (Chromium's local network access rules), with the
    // example's import map; the example itself stays signed out (its own storage key).
    await page.goto(`${pageOrigin}/index.html?api=${encodeURIComponent(api)}`);
    called = await page.evaluate(
      async ({ base, admin, introspectionToken, png }) => {
        const lib = await import('@portcullis/client');
        const { run } = await import('/scenario.mjs');
        return run(lib, {
          base,
          check: (ok, what) => void window.ctxCheck(!!ok, what),
          mail: (to, has) => window.ctxMail(to, has),
          totp: (s, steps) => window.ctxTotp(s, steps ?? 0),
          admin,
          introspectionToken,
              png: Uint8Array.from(atob(png), (ch) => ch.charCodeAt(0)),
        });
      },
      { base: api, admin, introspectionToken, png: PNG.toString('base64') },
    );
  }
  const want = new Set(Object.values(OPERATIONS));
  const missing = [...want].filter((m) => !called.includes(m));
  t.check(missing.length === 0, `every method of the operations table called (${want.size}; missing: ${missing.join(', ') || 'none'})`);
  if (a.record) {
    // Merged into what is there (Node records most; Chromium adds the passkey ceremonies).
    mkdirSync(dirname(a.record), { recursive: true });
    let kept = {};
    try {
      kept = JSON.parse(readFileSync(a.record, 'utf8'));
    } catch {}
    const merged = Object.fromEntries(Object.entries({ ...recorded, ...kept }).sort(([x], [y]) => x.localeCompare(y)));
    writeFileSync(a.record, `${JSON.stringify(merged, null, 2)}\n`);
    console.log(`all-methods: recorded ${Object.keys(recorded).length} operations' answers in ${a.record}`);
  }
  rc = t.done();
} catch (e) {
  console.error(e);
  console.error(srv.log().split('\n').filter((l) => /ERROR|WARN/.test(l)).slice(-10).join('\n'));
  rc = 1;
} finally {
  await browser?.close();
  await srv.stop();
  await example?.stop();
}
process.exit(rc);
