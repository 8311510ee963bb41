#!/usr/bin/env node
// DPoP in a real browser: Debian's Chromium (playwright-core) runs a page on
// its own origin that uses the TS client (clients/js, built to dist/) with
// `dpop: true` against Portcullis (CORS, nonce mode on: the page must read
// DPoP-Nonce through CORS and retry). It checks that:
//  1. sign-in binds the session (token_type DPoP, cnf.jkt = the key's
//     thumbprint) and GET /v1/me works with proofs;
//  2. the private key in IndexedDB is non-extractable (export throws);
//  3. the key survives a reload (same thumbprint, the session still works);
//  4. a second tab of the origin uses the same key and the same session;
//  5. the access token copied out of the page is refused (401) with no proof,
//     as a bearer token, and with a proof by another key; a proof the page
//     sent, replayed with the token, is refused (401); the refresh token
//     copied out is refused without a proof (401) and the page's session
//     goes on.
//
//   node dpop_browser.mjs --base http://127.0.0.1:PORT --page-port N --client clients/js \
//        --screenshot PATH [--chromium /usr/bin/chromium]
//
// Portcullis must list http://localhost:N in PORTCULLIS_CORS_ORIGINS.
// Exit 0 when every check passed, 1 otherwise.
import { parseArgs } from 'node:util';
import { createServer } from 'node:http';
import { existsSync, readFileSync, mkdirSync } from 'node:fs';
import { join, dirname, normalize } from 'node:path';
import { spawnSync } from 'node:child_process';
import { chromium } from 'playwright-core';

const { values: a } = parseArgs({
  options: {
    base: { type: 'string' },
    'page-port': { type: 'string' },
    client: { type: 'string' },
    screenshot: { type: 'string' },
    chromium: { type: 'string', default: '/usr/bin/chromium' },
  },
});
if (!a.base || !a['page-port'] || !a.client || !a.screenshot) {
  console.error('usage: dpop_browser.mjs --base URL --page-port N --client clients/js --screenshot PATH');
  process.exit(2);
}
const pageOrigin = `http://localhost:${a['page-port']}`;
let failed = 0;
const check = (name, cond, detail) => {
  if (cond) console.log(`ok - ${name}`);
  else {
    failed += 1;
    console.log(`FAIL - ${name}${detail !== undefined ? `: ${detail}` : ''}`);
  }
};

// The client, compiled to ES modules the page imports.
const dist = join(a.client, 'dist');
const tsc = join(a.client, 'node_modules', 'typescript', 'bin', 'tsc');
if (!existsSync(tsc)) {
  console.error(`no TypeScript in ${a.client}/node_modules: run npm ci there`);
  process.exit(2);
}
const built = spawnSync(process.execPath, [tsc, '-p', join(a.client, 'tsconfig.json')], { encoding: 'utf8' });
if (built.status !== 0) {
  console.error(`building the client failed:\n${built.stdout}${built.stderr}`);
  process.exit(2);
}

const PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Portcullis DPoP test page</title>
<style>body{font:15px system-ui,sans-serif;margin:2em}li{font-family:ui-monospace,monospace;font-size:13px}</style>
</head><body><h1>Portcullis DPoP: test page on ${pageOrigin}</h1><ol id="log"></ol>
<script type="module">
import { createClient } from '/client/index.js';
const log = (t) => { const li = document.createElement('li'); li.textContent = t; document.getElementById('log').appendChild(li); };
window.pc = createClient({ url: ${JSON.stringify(a.base)}, dpop: true });
window.log = log;
// The stored key pair, as IndexedDB gives it back.
window.storedKey = () => new Promise((resolve, reject) => {
  const open = indexedDB.open('portcullis-dpop', 1);
  open.onerror = () => reject(open.error);
  open.onsuccess = () => {
    const get = open.result.transaction('keys', 'readonly').objectStore('keys').get('portcullis.session');
    get.onsuccess = () => { open.result.close(); resolve(get.result); };
    get.onerror = () => reject(get.error);
  };
});
window.ready = true;
log('client loaded');
</script></body></html>`;

const types = { '.js': 'text/javascript', '.map': 'application/json', '.html': 'text/html' };
const server = createServer((req, res) => {
  const path = new URL(req.url, pageOrigin).pathname;
  if (path === '/' || path === '/index.html') {
    res.writeHead(200, { 'content-type': 'text/html' }).end(PAGE);
    return;
  }
  if (path.startsWith('/client/')) {
    const file = normalize(join(dist, path.slice('/client/'.length)));
    if (file.startsWith(normalize(dist)) && existsSync(file)) {
      res.writeHead(200, { 'content-type': types[file.slice(file.lastIndexOf('.'))] ?? 'application/octet-stream' });
      res.end(readFileSync(file));
      return;
    }
  }
  res.writeHead(404).end();
});
await new Promise((r) => server.listen(Number(a['page-port']), '127.0.0.1', r));

const claims = (t) => JSON.parse(Buffer.from(t.split('.')[1], 'base64url'));
const b64url = (b) => Buffer.from(b).toString('base64url');
// The public URL Portcullis names in proofs is its base URL.
const htu = (path) => `${a.base}${path}`;

/** A proof by a key of our own (the attacker's), with ath of `token`. */
async function foreignProof(method, path, token) {
  const { subtle } = globalThis.crypto;
  const pair = await subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify']);
  const jwk = await subtle.exportKey('jwk', pair.publicKey);
  const header = { typ: 'dpop+jwt', alg: 'ES256', jwk: { kty: 'EC', crv: 'P-256', x: jwk.x, y: jwk.y } };
  const ath = b64url(new Uint8Array(await subtle.digest('SHA-256', new TextEncoder().encode(token))));
  const payload = { jti: crypto.randomUUID(), htm: method, htu: htu(path), iat: Math.floor(Date.now() / 1000), ath };
  const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(payload))}`;
  const sig = await subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, pair.privateKey, new TextEncoder().encode(input));
  return `${input}.${b64url(new Uint8Array(sig))}`;
}

const browser = await chromium.launch({ executablePath: a.chromium, headless: true });
try {
  const context = await browser.newContext();
  const page = await context.newPage();
  // Proofs the page sends to GET /v1/me, as a network observer sees them.
  const sentProofs = [];
  page.on('request', (r) => {
    if (r.url() === htu('/v1/me') && r.method() === 'GET') {
      const h = r.headers();
      if (h.dpop) sentProofs.push({ dpop: h.dpop, auth: h.authorization });
    }
  });
  await page.goto(`${pageOrigin}/`);
  await page.waitForFunction(() => window.ready === true);

  const email = `dpop-browser-${Date.now()}@example.com`;
  const signed = await page.evaluate(async (email) => {
    await window.pc.signUp({ email, password: 'correct horse battery staple 42' });
    const r = await window.pc.signIn({ email, password: 'correct horse battery staple 42' });
    const me = await window.pc.getUser();
    window.log('signed in as ' + me.email);
    return { session: r.session, jkt: await window.pc.dpopThumbprint(), me: me.email };
  }, email);
  check('sign-in binds the session: token_type DPoP', signed.session.tokenType === 'DPoP', signed.session.tokenType);
  check('the access token is bound to the page key (cnf.jkt)', claims(signed.session.accessToken).cnf?.jkt === signed.jkt);
  check('GET /v1/me with proofs (nonce read through CORS, retried)', signed.me === email, signed.me);

  const key = await page.evaluate(async () => {
    const pair = await window.storedKey();
    let exportError = null;
    for (const format of ['jwk', 'pkcs8']) {
      try {
        await crypto.subtle.exportKey(format, pair.privateKey);
      } catch (e) {
        exportError = (exportError ? exportError + '; ' : '') + format + ': ' + e.name;
        continue;
      }
      return { extractable: pair.privateKey.extractable, exportError: null, exported: format };
    }
    return { extractable: pair.privateKey.extractable, exportError };
  });
  check('the private key in IndexedDB is non-extractable and export throws',
    key.extractable === false && key.exportError?.includes('InvalidAccessError'), JSON.stringify(key));

  await page.reload();
  await page.waitForFunction(() => window.ready === true);
  const after = await page.evaluate(async () => {
    const me = await window.pc.getUser();
    return { jkt: await window.pc.dpopThumbprint(), me: me.email };
  });
  check('after a reload: the same key, the session still works', after.jkt === signed.jkt && after.me === email,
    JSON.stringify(after));

  const tab2 = await context.newPage();
  await tab2.goto(`${pageOrigin}/`);
  await tab2.waitForFunction(() => window.ready === true);
  const second = await tab2.evaluate(async () => {
    const me = await window.pc.getUser();
    return { jkt: await window.pc.dpopThumbprint(), me: me.email };
  });
  check('a second tab uses the same key and session', second.jkt === signed.jkt && second.me === email,
    JSON.stringify(second));

  // Copied out of the page.
  const session = await page.evaluate(() => window.pc.getSession());
  const token = session.accessToken;
  const noProof = await fetch(htu('/v1/me'), { headers: { authorization: `DPoP ${token}` } });
  check('the copied access token without a proof: 401', noProof.status === 401, noProof.status);
  const asBearer = await fetch(htu('/v1/me'), { headers: { authorization: `Bearer ${token}` } });
  check('the copied access token as a bearer token: 401', asBearer.status === 401, asBearer.status);
  const other = await fetch(htu('/v1/me'), {
    headers: { authorization: `DPoP ${token}`, dpop: await foreignProof('GET', '/v1/me', token) },
  });
  check('the copied access token with another key\'s proof: 401', other.status === 401, other.status);
  const seen = sentProofs.at(-1);
  check('the page\'s requests carried proofs', !!seen);
  if (seen) {
    const replay = await fetch(htu('/v1/me'), { headers: { authorization: seen.auth, dpop: seen.dpop } });
    check('a proof the page sent, replayed: 401', replay.status === 401, replay.status);
  }
  const stolenRefresh = await fetch(htu('/v1/sessions/refresh'), {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ refresh_token: session.refreshToken }),
  });
  check('the copied refresh token without a proof: 401', stolenRefresh.status === 401, stolenRefresh.status);
  const still = await page.evaluate(async () => {
    const s = await window.pc.refreshSession({ force: true });
    const me = await window.pc.getUser();
    window.log('refreshed; still ' + me.email);
    return { type: s?.tokenType, me: me.email };
  });
  check('...and the page still refreshes and works', still.type === 'DPoP' && still.me === email, JSON.stringify(still));

  mkdirSync(dirname(a.screenshot), { recursive: true });
  await page.screenshot({ path: a.screenshot, fullPage: true });
} catch (e) {
  failed += 1;
  console.log(`FAIL - unexpected error: ${e?.stack ?? e}`);
} finally {
  await browser.close();
  server.close();
}
process.exit(failed ? 1 : 0);
