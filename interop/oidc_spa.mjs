#!/usr/bin/env node
// oidc-client-ts (the SPA library) in headless Chromium against Portcullis
// as an OpenID provider: an SPA on its own origin signs in by redirect
// (hosted login + consent), renews silently with prompt=none in a hidden
// iframe (the browser session cookie), and signs out (RP-initiated logout).
//
//   node oidc_spa.mjs --issuer URL --client-id ID --spa-port PORT --email E --password P
//        [--chromium PATH] [--artifacts DIR]
import { parseArgs } from 'node:util';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { createServer } from 'node:http';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const { values: a } = parseArgs({
  options: {
    issuer: { type: 'string' }, 'client-id': { type: 'string' }, 'spa-port': { type: 'string' },
    email: { type: 'string' }, password: { type: 'string' },
    chromium: { type: 'string', default: '/usr/bin/chromium' }, artifacts: { type: 'string', default: 'artifacts' },
  },
});
const step = (m) => console.log(`oidc-spa: ${m}`);
const check = (cond, what) => { if (!cond) { throw new Error(`check failed: ${what}`); } };
const here = dirname(fileURLToPath(import.meta.url));
const lib = readFileSync(join(here, 'node_modules/oidc-client-ts/dist/browser/oidc-client-ts.min.js'));
const origin = `http://127.0.0.1:${a['spa-port']}`;
const settings = JSON.stringify({
  authority: a.issuer, client_id: a['client-id'], redirect_uri: `${origin}/callback`,
  silent_redirect_uri: `${origin}/silent`, post_logout_redirect_uri: `${origin}/`,
  scope: 'openid email', response_type: 'code', automaticSilentRenew: false,
});
const page = (body) => `<!doctype html><html><head><meta charset="utf-8"><title>spa</title><script src="/oidc-client-ts.js"></script></head><body><script>
const mgr = new oidc.UserManager(${settings}); window.mgr = mgr; ${body}
</script></body></html>`;
const server = createServer((req, res) => {
  const path = req.url.split('?')[0];
  if (path === '/oidc-client-ts.js') { res.setHeader('content-type', 'text/javascript'); res.end(lib); return; }
  res.setHeader('content-type', 'text/html');
  if (path === '/callback') {
    res.end(page(`mgr.signinRedirectCallback().then((u) => { window.user = u; document.title = 'signed-in'; }, (e) => { document.title = 'error: ' + e.message; });`));
  } else if (path === '/silent') {
    res.end(page(`mgr.signinSilentCallback().catch((e) => { document.title = 'silent error: ' + e.message; });`));
  } else {
    res.end(page(`document.title = 'home';`));
  }
});
await new Promise((r) => server.listen(Number(a['spa-port']), '127.0.0.1', r));

const context = await chromium.launchPersistentContext(mkdtempSync(join(tmpdir(), 'portcullis-spa-')), {
  executablePath: a.chromium, headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-quic'],
  viewport: { width: 720, height: 640 },
});
try {
  const p = context.pages()[0] ?? (await context.newPage());
  p.setDefaultTimeout(20_000);
  await p.goto(`${origin}/`);
  await p.evaluate(() => { window.mgr.signinRedirect(); });
  await p.getByLabel('Email address').waitFor();
  await p.getByLabel('Email address').fill(a.email);
  await p.getByLabel('Password').fill(a.password);
  await p.getByRole('button', { name: 'Sign in', exact: true }).click();
  await p.getByRole('button', { name: 'Allow' }).click();
  await p.waitForFunction(() => document.title !== 'spa' && location.pathname === '/callback');
  const title = await p.title();
  check(title === 'signed-in', `redirect callback: ${title}`);
  const first = await p.evaluate(() => ({ sub: window.user.profile.sub, email: window.user.profile.email, sid: window.user.profile.sid, id: window.user.id_token }));
  check(first.email === a.email, 'profile email');
  step(`signinRedirect → hosted login + consent → callback: ${first.email} (sid ${first.sid.slice(0, 8)}…)`);
  const renewed = await p.evaluate(async () => { const u = await window.mgr.signinSilent(); return { sub: u.profile.sub, id: u.id_token }; });
  check(renewed.sub === first.sub && renewed.id !== first.id, 'silent renew gives a new ID token for the same user');
  step('signinSilent → prompt=none in a hidden iframe → new tokens, no page (session cookie)');
  // Still on /callback (title 'signed-in'): the home page's title shows we came back.
  await p.evaluate(() => { window.mgr.signoutRedirect(); });
  await p.waitForFunction(() => document.title === 'home', null, { timeout: 20_000 });
  step(`signoutRedirect → RP-initiated logout → back at ${new URL(p.url()).pathname}`);
  const after = await p.evaluate(async () => { try { await window.mgr.signinSilent(); return 'renewed'; } catch (e) { return e.error || e.message; } });
  check(after === 'login_required', `after logout, silent renew fails with login_required (got ${after})`);
  step('after logout: signinSilent → login_required');
} finally {
  await context.close();
  server.close();
}
step('all checks passed');
