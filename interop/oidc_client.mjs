#!/usr/bin/env node
// Portcullis as an OpenID provider, driven by a certified relying-party
// library: panva's openid-client (discovery only), with
//   1. a confidential client (client_secret_basic), the browser emulated
//      with fetch (cookies kept by hand): code + PKCE + nonce, ID token
//      validation, userinfo, refresh, a replayed code, RP-initiated logout;
//   2. a public client (PKCE only) in headless Chromium with a loopback
//      redirect on a random port: the hosted sign-in and consent pages
//      (screenshots), then prompt=none silent sign-in with the session cookie.
//
//   node oidc_client.mjs --issuer URL --confidential-id ID --confidential-secret S
//        --public-id ID --email E --password P [--chromium PATH] [--artifacts DIR]
import { parseArgs } from 'node:util';
import { mkdtempSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer } from 'node:http';
import * as oidc from 'openid-client';
import { chromium } from 'playwright-core';

const { values: a } = parseArgs({
  options: {
    issuer: { type: 'string' },
    'confidential-id': { type: 'string' },
    'confidential-secret': { type: 'string' },
    'public-id': { type: 'string' },
    email: { type: 'string' },
    password: { type: 'string' },
    chromium: { type: 'string', default: '/usr/bin/chromium' },
    artifacts: { type: 'string', default: 'artifacts' },
  },
});
const step = (m) => console.log(`oidc: ${m}`);
const check = (cond, what) => { if (!cond) { throw new Error(`check failed: ${what}`); } };
const REDIRECT = 'https://app.example/cb';
const insecure = { execute: [oidc.allowInsecureRequests] };

// ---- 1. confidential client, browser emulated with fetch ----
const conf = await oidc.discovery(new URL(a.issuer), a['confidential-id'], a['confidential-secret'], undefined, insecure);
const meta = conf.serverMetadata();
step(`discovery: authorization ${meta.authorization_endpoint}, end_session ${meta.end_session_endpoint}, PKCE ${meta.code_challenge_methods_supported}`);

const jar = new Map();
const cookieHeader = () => [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
async function browse(url, init = {}) {
  const r = await fetch(url, { ...init, redirect: 'manual', headers: { ...(init.headers || {}), cookie: cookieHeader() } });
  for (const c of r.headers.getSetCookie()) {
    const [pair] = c.split(';');
    const i = pair.indexOf('=');
    if (/Max-Age=0/.test(c)) jar.delete(pair.slice(0, i)); else jar.set(pair.slice(0, i), pair.slice(i + 1));
  }
  return r;
}
const field = (html, name) => {
  const m = html.match(new RegExp(`name="${name}" value="([^"]*)"`));
  if (!m) throw new Error(`no field ${name}`);
  return m[1].replace(/&#x2f;/g, '/').replace(/&amp;/g, '&');
};
async function emulatedSignIn(authUrl) {
  let r = await browse(authUrl);
  let loc = new URL(r.headers.get('location'), a.issuer);
  for (let i = 0; i < 5; i++) {
    if (!loc.href.startsWith(a.issuer)) return loc;
    const page = await browse(loc.href);
    const html = await page.text();
    const form = new URLSearchParams({ ar: field(html, 'ar'), csrf: field(html, 'csrf') });
    if (loc.pathname === '/login') {
      form.set('email', a.email); form.set('password', a.password);
    } else {
      form.set('decision', 'allow');
    }
    r = await browse(new URL(loc.pathname, a.issuer).href, { method: 'POST', body: form });
    check(r.status === 303, `${loc.pathname} answers 303 (got ${r.status})`);
    loc = new URL(r.headers.get('location'), a.issuer);
  }
  throw new Error('too many hops');
}

let verifier = oidc.randomPKCECodeVerifier();
let nonce = oidc.randomNonce();
let state = oidc.randomState();
let authUrl = oidc.buildAuthorizationUrl(conf, {
  redirect_uri: REDIRECT, scope: 'openid email profile offline_access',
  code_challenge: await oidc.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256', nonce, state,
});
let callback = await emulatedSignIn(authUrl.href);
const code = callback.searchParams.get('code');
const tokens = await oidc.authorizationCodeGrant(conf, callback, { pkceCodeVerifier: verifier, expectedNonce: nonce, expectedState: state, idTokenExpected: true });
const claims = tokens.claims();
check(claims.email === a.email && claims.aud === a['confidential-id'] && claims.nonce === nonce, 'ID token claims');
step(`confidential: code grant (client_secret_basic) → ID token for ${claims.email}, amr ${claims.amr}, sid ${claims.sid.slice(0, 8)}…, scope "${tokens.scope}"`);
const info = await oidc.fetchUserInfo(conf, tokens.access_token, claims.sub);
check(info.email === a.email && 'updated_at' in info, 'userinfo with email and profile');
step(`confidential: userinfo ${JSON.stringify(info)}`);
const refreshed = await oidc.refreshTokenGrant(conf, tokens.refresh_token);
check(refreshed.access_token && refreshed.access_token !== tokens.access_token, 'refresh');
step('confidential: refresh_token grant rotated the pair');
// A replayed code: refused, and what the first use issued is revoked.
let replay = null;
try { await oidc.authorizationCodeGrant(conf, callback, { pkceCodeVerifier: verifier, expectedNonce: nonce, expectedState: state }); } catch (e) { replay = e; }
check(replay && (replay.error === 'invalid_grant' || /invalid_grant/.test(String(replay.cause?.error ?? replay))), `replayed code refused (${replay?.error})`);
let revoked = null;
try { await oidc.fetchUserInfo(conf, refreshed.access_token, claims.sub); } catch (e) { revoked = e; }
check(revoked, 'the first use\'s session is revoked after a replay');
step(`confidential: code replayed → ${replay.error}; tokens of the first use revoked (userinfo ${revoked.status ?? 'refused'})`);
void code;
// RP-initiated logout with the ID token hint.
const endUrl = oidc.buildEndSessionUrl(conf, { id_token_hint: tokens.id_token, post_logout_redirect_uri: 'https://app.example/bye', state: 'bye' });
const out = await browse(endUrl.href);
check(out.status === 303 && out.headers.get('location') === 'https://app.example/bye?state=bye', 'logout redirect');
check(!jar.has('__Host-portcullis'), 'session cookie cleared');
step('confidential: RP-initiated logout → post_logout_redirect_uri with state, cookie cleared');

// ---- 2. public client in Chromium, loopback redirect on a random port ----
const pub = await oidc.discovery(new URL(a.issuer), a['public-id'], undefined, oidc.None(), insecure);
// The native-style app's loopback listener, on a port the OS picks.
let captured = null;
const listener = createServer((req, res) => { if (req.url.startsWith('/callback')) captured = `http://127.0.0.1:${port}${req.url}`; res.end('signed in'); });
await new Promise((r) => listener.listen(0, '127.0.0.1', r));
const port = listener.address().port;
const loopback = `http://127.0.0.1:${port}/callback`;
mkdirSync(a.artifacts, { recursive: true });
const context = await chromium.launchPersistentContext(mkdtempSync(join(tmpdir(), 'portcullis-oidc-')), {
  executablePath: a.chromium, headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-quic'],
  viewport: { width: 720, height: 640 },
});
try {
  const page = context.pages()[0] ?? (await context.newPage());
  const violations = [];
  page.on('console', (m) => { if (/Content Security Policy/i.test(m.text())) violations.push(m.text()); });
  verifier = oidc.randomPKCECodeVerifier(); nonce = oidc.randomNonce(); state = oidc.randomState();
  const params = { redirect_uri: loopback, scope: 'openid email', code_challenge: await oidc.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256', nonce, state, login_hint: a.email };
  await page.goto(oidc.buildAuthorizationUrl(pub, params).href);
  await page.getByLabel('Password').waitFor();
  await page.screenshot({ path: join(a.artifacts, 'oidc-login.png') });
  await page.getByLabel('Password').fill('not the password');
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await page.getByRole('alert').waitFor();
  await page.screenshot({ path: join(a.artifacts, 'oidc-login-error.png') });
  await page.getByLabel('Password').fill(a.password);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await page.getByRole('button', { name: 'Allow' }).waitFor();
  await page.screenshot({ path: join(a.artifacts, 'oidc-consent.png') });
  await page.getByRole('button', { name: 'Allow' }).click();
  await page.waitForURL(`http://127.0.0.1:${port}/**`);
  check(captured, 'browser reached the loopback redirect');
  const t = await oidc.authorizationCodeGrant(pub, new URL(captured), { pkceCodeVerifier: verifier, expectedNonce: nonce, expectedState: state, idTokenExpected: true });
  check(t.claims().email === a.email && !t.refresh_token, 'public client tokens (no offline_access: no refresh token)');
  step(`public: Chromium sign-in + consent on the hosted pages → loopback :${port} → code grant (none + PKCE) for ${t.claims().email}`);
  // Silent: prompt=none with the browser session cookie.
  captured = null;
  verifier = oidc.randomPKCECodeVerifier(); nonce = oidc.randomNonce(); state = oidc.randomState();
  const silent = { ...params, prompt: 'none', nonce, state, code_challenge: await oidc.calculatePKCECodeChallenge(verifier) };
  await page.goto(oidc.buildAuthorizationUrl(pub, silent).href);
  await page.waitForURL(`http://127.0.0.1:${port}/**`);
  const s = await oidc.authorizationCodeGrant(pub, new URL(captured), { pkceCodeVerifier: verifier, expectedNonce: nonce, expectedState: state });
  check(s.claims().sub === t.claims().sub, 'silent sign-in');
  step('public: prompt=none in the same browser → a code without any page (session cookie)');
  const cookies = await context.cookies(a.issuer);
  const session = cookies.find((c) => c.name === '__Host-portcullis');
  check(session && session.httpOnly && session.sameSite === 'Lax', 'session cookie attributes');
  step(`public: cookie ${session.name}: HttpOnly ${session.httpOnly}, SameSite ${session.sameSite}, Secure ${session.secure}`);
  check(violations.length === 0, `no CSP violations: ${violations.join(' | ')}`);
} finally {
  await context.close();
  listener.close();
}
step('all checks passed');
