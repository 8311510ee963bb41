// The federated redirect flow in Chromium, across three sites: an SPA
// (http://127.0.0.2), Portcullis (http://127.0.0.3) and an Apple-like
// oidc-provider (http://127.0.0.4, response_mode=form_post, the minted
// client secret checked). Distinct loopback addresses are distinct sites
// to the browser (no shared registrable domain), and, unlike names mapped
// with --host-resolver-rules, Portcullis reaches the provider by the same
// address the browser does (the provider's issuer must be one URL for
// both). The SPA uses the TypeScript client (clients/js/dist):
// signInWithProvider, then completeSignInWithProvider on its callback
// page; the provider's form_post is a cross-site POST to Portcullis.
// Ends signed in; screenshot in interop/artifacts/federation.png.
//
// Usage: node interop/federation_browser.mjs PORTCULLIS_BIN CLIENT_DIST_DIR

import { spawn } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { SECRET, freePort, startIssuerWithClient } from './federation.mjs';

const [BIN, DIST] = process.argv.slice(2);
if (!BIN || !DIST) {
  console.error('usage: node federation_browser.mjs PORTCULLIS_BIN CLIENT_DIST_DIR');
  process.exit(2);
}
const HERE = dirname(fileURLToPath(import.meta.url));
const ARTIFACTS = join(HERE, 'artifacts');

const page = (api) => `<!doctype html>
<html><head><meta charset="utf-8"><title>SPA</title></head>
<body>
<h1>Example SPA</h1>
<button id="apple">Continue with Apple</button>
<p id="status">signed out</p>
<script type="module">
import { createClient } from '/client/index.js';
const auth = createClient({ url: ${JSON.stringify(api)} });
const status = document.getElementById('status');
document.getElementById('apple').onclick = () =>
  auth.signInWithProvider('apple', { redirectTo: location.origin + '/callback' });
if (location.pathname === '/callback') {
  try {
    const r = await auth.completeSignInWithProvider();
    const me = await auth.getUser();
    status.textContent = r.status === 'signed_in' ? 'signed in as ' + me.email : r.status;
  } catch (e) {
    status.textContent = 'error: ' + (e.type ?? '') + ' ' + e.message;
  }
}
</script>
</body></html>`;

async function main() {
  const work = mkdtempSync(join(tmpdir(), 'portcullis-fedb-'));
  const [spaPort, apiPort] = [await freePort(), await freePort()];
  const spa = `http://127.0.0.2:${spaPort}`;
  const api = `http://127.0.0.3:${apiPort}`;
  const appleKey = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const p8 = join(work, 'AuthKey.p8');
  writeFileSync(p8, appleKey.privateKey.export({ type: 'pkcs8', format: 'pem' }));
  const apple = await startIssuerWithClient(
    { name: 'apple', authMethod: 'client_secret_post', appleKey, innerPort: await freePort(), host: '127.0.0.4' },
    (id) => `${api}/v1/federation/${id}/callback`,
  );
  const relay = `${randomBytes(6).toString('hex')}@privaterelay.appleid.com`;
  apple.state.account = { sub: `apple-${randomBytes(6).toString('hex')}`, email: relay, email_verified: 'true', name: 'Ada Lovelace' };

  const spaServer = http.createServer((req, res) => {
    const path = new URL(req.url, spa).pathname;
    if (path.startsWith('/client/')) {
      const file = normalize(join(DIST, path.slice('/client/'.length)));
      if (!file.startsWith(normalize(DIST))) return res.writeHead(404).end();
      try {
        res.writeHead(200, { 'content-type': 'text/javascript' });
        return res.end(readFileSync(file));
      } catch {
        return res.writeHead(404).end();
      }
    }
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(page(api));
  });
  await new Promise((r) => spaServer.listen(spaPort, '127.0.0.2', r));

  const env = {
    PATH: process.env.PATH,
    PORTCULLIS_LISTEN: `127.0.0.3:${apiPort}`,
    PORTCULLIS_PUBLIC_URL: api,
    PORTCULLIS_DATA_DIR: join(work, 'data'),
    PORTCULLIS_KEYS_DIR: join(work, 'keys'),
    PORTCULLIS_BCRYPT_COST: '4',
    PORTCULLIS_RATE_LIMIT: 'off',
    PORTCULLIS_LOG_FORMAT: 'json',
    PORTCULLIS_CORS_ORIGINS: spa,
    PORTCULLIS_PROVIDERS: 'apple',
    PORTCULLIS_REDIRECT_URLS: `${spa}/callback`,
    PORTCULLIS_PROVIDER_APPLE_ISSUER: apple.issuer,
    PORTCULLIS_PROVIDER_APPLE_CLIENT_ID: 'web-client',
    PORTCULLIS_PROVIDER_APPLE_TEAM_ID: 'TEAM123456',
    PORTCULLIS_PROVIDER_APPLE_KEY_ID: 'KEY1234567',
    PORTCULLIS_PROVIDER_APPLE_PRIVATE_KEY_FILE: p8,
  };
  void SECRET;
  const child = spawn(BIN, ['serve'], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  let browser;
  let failed = false;
  try {
    for (let i = 0; i < 100; i += 1) {
      try {
        if ((await fetch(`${api}/readyz`)).ok) break;
      } catch {}
      await new Promise((r) => setTimeout(r, 100));
    }
    browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox'] });
    const tab = await browser.newPage();
    const posts = [];
    tab.on('request', (r) => {
      if (r.method() === 'POST' && r.url().includes('/v1/federation/apple/callback')) posts.push(r.headers().origin ?? r.url());
    });
    await tab.goto(`${spa}/`);
    await tab.click('#apple');
    await tab.waitForURL(`${spa}/callback**`, { timeout: 20000 });
    await tab.waitForFunction(() => document.getElementById('status').textContent !== 'signed out', null, { timeout: 20000 });
    const status = await tab.textContent('#status');
    mkdirSync(ARTIFACTS, { recursive: true });
    await tab.screenshot({ path: join(ARTIFACTS, 'federation.png') });
    if (!status.startsWith(`signed in as ${relay}`) || posts.length !== 1) {
      throw new Error(`status ${JSON.stringify(status)}, form posts to the callback: ${JSON.stringify(posts)}`);
    }
    console.log(`ok   - federation (chromium): SPA ${spa}, Portcullis ${api}, provider ${apple.issuer}: form_post from ${posts[0]}; ${status}`);
  } catch (e) {
    failed = true;
    console.log(`FAIL - federation (chromium): ${e?.stack ?? e}`);
    console.log(stderr.split('\n').slice(-15).join('\n'));
  } finally {
    await browser?.close();
    child.kill('SIGTERM');
    spaServer.close();
    apple.close();
    rmSync(work, { recursive: true, force: true });
  }
  process.exit(failed ? 1 : 0);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
