#!/usr/bin/env node
// Passkeys in a real browser: Debian's Chromium with a CDP virtual
// authenticator (CTAP2, internal transport, resident keys, user
// verification). A small SPA page, served by this script on its own origin
// (another port: the "SPA on another origin" case, so Portcullis must list
// it in PORTCULLIS_WEBAUTHN_ORIGINS and PORTCULLIS_CORS_ORIGINS), calls
// navigator.credentials.create and .get with the options from Portcullis and
// posts the results back. It registers an account and a passkey, signs out,
// then signs in without typing an email (discoverable credential).
//
// Then the passkey as a SECOND factor: a second account with a password, a
// passkey and TOTP two-factor on (the activation code computed with the
// `otpauth` library) signs in with its password, gets `mfa_required` with
// `passkey` among the methods, asks for options with its `mfa_token`,
// answers them with navigator.credentials.get and gets tokens whose `amr`
// (checked in the JWT, signature verified with `jose` against the JWKS)
// has `hwk`. A replayed request, and the same assertion against a fresh
// `mfa_token` and challenge, are refused with 401. Last, both accounts
// delete themselves with a passkey assertion (DELETE /v1/me {passkey}):
// one with options for its email, one with usernameless options.
//
//   node passkeys.mjs --base http://localhost:PORT --page-port N --screenshot PATH [--chromium /usr/bin/chromium]
//
// Two screenshots: PATH after the first-factor steps, PATH with `-mfa`
// before its extension after the second-factor steps. Exit 0 when every
// step passed, 1 otherwise (a screenshot is saved either way when the page
// got that far).
import { parseArgs } from 'node:util';
import { createServer } from 'node:http';
import { mkdtempSync, rmSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { chromium } from 'playwright-core';
import * as OTPAuth from 'otpauth';
import { createRemoteJWKSet, jwtVerify } from 'jose';

const { values: a } = parseArgs({
  options: {
    base: { type: 'string' },
    'page-port': { type: 'string' },
    screenshot: { type: 'string' },
    chromium: { type: 'string', default: '/usr/bin/chromium' },
  },
});
if (!a.base || !a['page-port'] || !a.screenshot) {
  console.error('usage: passkeys.mjs --base http://localhost:PORT --page-port N --screenshot PATH');
  process.exit(2);
}
const pageOrigin = `http://localhost:${a['page-port']}`;
const mfaScreenshot = a.screenshot.replace(/(\.png)?$/, '-mfa.png');
const step = (msg) => console.log(`passkeys: ${msg}`);

// The test page: a few functions over fetch and navigator.credentials, and
// a log the screenshot shows. It keeps the tokens in memory only.
const PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Portcullis passkeys test page</title>
<style>body{font:15px system-ui,sans-serif;margin:2em;max-width:60em}h1{font-size:1.3em}
li{margin:.3em 0;font-family:ui-monospace,monospace;font-size:13px}.ok{color:#05660f}.bad{color:#a00}</style>
</head><body>
<h1>Portcullis passkeys: test page on ${pageOrigin}</h1>
<p>API: <code id="api"></code></p>
<ol id="log"></ol>
<script>
const API = ${JSON.stringify(a.base)};
document.getElementById('api').textContent = API;
function log(text, cls) {
  const li = document.createElement('li');
  li.textContent = text; if (cls) li.className = cls;
  document.getElementById('log').appendChild(li);
}
async function call(method, path, body, token) {
  const headers = {};
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (token) headers['authorization'] = 'Bearer ' + token;
  const r = await fetch(API + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await r.text();
  let json = null; try { json = JSON.parse(text); } catch {}
  log(method + ' ' + path + ' → ' + r.status, r.ok ? 'ok' : 'bad');
  return { status: r.status, json };
}
function claims(jwt) {
  const p = jwt.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
  return JSON.parse(atob(p + '='.repeat((4 - p.length % 4) % 4)));
}
window.portcullis = {
  async signUp(email, password) {
    const reg = await call('POST', '/v1/users', { email, password });
    const login = await call('POST', '/v1/sessions', { email, password });
    return { registered: reg.status, status: login.status, token: login.json && login.json.access_token };
  },
  async addPasskey(token) {
    const opts = await call('POST', '/v1/me/passkeys/options', undefined, token);
    const publicKey = PublicKeyCredential.parseCreationOptionsFromJSON(opts.json.public_key);
    const cred = await navigator.credentials.create({ publicKey });
    log('navigator.credentials.create → ' + cred.type + ' (' + cred.authenticatorAttachment + ')', 'ok');
    const done = await call('POST', '/v1/me/passkeys',
      { challenge_id: opts.json.challenge_id, credential: cred.toJSON(), name: 'Virtual authenticator' }, token);
    return { status: done.status, passkey: done.json, residentKeyAsked: opts.json.public_key.authenticatorSelection.residentKey };
  },
  async me(token) { return (await call('GET', '/v1/me', undefined, token)); },
  async signOut(token) { return (await call('DELETE', '/v1/sessions', undefined, token)).status; },
  // No email typed: the options list no credential; the authenticator
  // offers its discoverable one.
  async signInWithoutEmail() {
    const opts = await call('POST', '/v1/sessions/passkey/options', {});
    const publicKey = PublicKeyCredential.parseRequestOptionsFromJSON(opts.json.public_key);
    const cred = await navigator.credentials.get({ publicKey });
    log('navigator.credentials.get → user handle ' + (cred.response.userHandle ? 'present' : 'missing'), 'ok');
    const done = await call('POST', '/v1/sessions/passkey', { challenge_id: opts.json.challenge_id, credential: cred.toJSON() });
    const t = done.json && done.json.access_token;
    if (t) log('signed in as ' + done.json.user.email + ', amr ' + JSON.stringify(claims(t).amr), 'ok');
    return { status: done.status, allowCredentials: (opts.json.public_key.allowCredentials || []).length,
             email: done.json && done.json.user && done.json.user.email, amr: t ? claims(t).amr : null, token: t };
  },
  section(title) { const h = document.createElement('h2'); h.textContent = title; document.body.appendChild(h);
                   const ol = document.createElement('ol'); ol.id = 'log'; document.getElementById('log').removeAttribute('id');
                   document.body.appendChild(ol); },
  async totpBegin(token) { const r = await call('POST', '/v1/me/mfa/totp', undefined, token); return { status: r.status, uri: r.json && r.json.otpauth_uri }; },
  async totpActivate(token, code) { const r = await call('POST', '/v1/me/mfa/totp/activate', { code }, token);
                                    return { status: r.status, codes: r.json && r.json.recovery_codes ? r.json.recovery_codes.length : 0 }; },
  async passwordSignIn(email, password) { const r = await call('POST', '/v1/sessions', { email, password }); return { status: r.status, json: r.json }; },
  // The second factor: options for this mfa_token, then the assertion. The
  // request body is returned too, so that the test can replay it.
  async passkeyAsSecondFactor(mfaToken) {
    const opts = await call('POST', '/v1/sessions/passkey/options', { mfa_token: mfaToken });
    if (opts.status !== 200) return { optionsStatus: opts.status };
    const publicKey = PublicKeyCredential.parseRequestOptionsFromJSON(opts.json.public_key);
    const cred = await navigator.credentials.get({ publicKey });
    log('navigator.credentials.get → ' + cred.type + ' for the second factor', 'ok');
    const body = { mfa_token: mfaToken, passkey: { challenge_id: opts.json.challenge_id, credential: cred.toJSON() } };
    const done = await call('POST', '/v1/sessions/mfa', body);
    const t = done.json && done.json.access_token;
    if (t) log('second factor done for ' + done.json.user.email + ', amr ' + JSON.stringify(claims(t).amr), 'ok');
    return { optionsStatus: opts.status, allowCredentials: (opts.json.public_key.allowCredentials || []).length,
             status: done.status, token: t, amr: t ? claims(t).amr : null, body };
  },
  async fresh(mfaToken) { const r = await call('POST', '/v1/sessions/passkey/options', { mfa_token: mfaToken }); return { status: r.status, challengeId: r.json && r.json.challenge_id }; },
  // DELETE /v1/me with a passkey proof: options for the email (or none:
  // discoverable), the assertion, then the deletion.
  async deleteWithPasskey(token, email) {
    const opts = await call('POST', '/v1/sessions/passkey/options', email ? { email } : {});
    const publicKey = PublicKeyCredential.parseRequestOptionsFromJSON(opts.json.public_key);
    const cred = await navigator.credentials.get({ publicKey });
    log('navigator.credentials.get → ' + cred.type + ' to prove the deletion', 'ok');
    const done = await call('DELETE', '/v1/me', { passkey: { challenge_id: opts.json.challenge_id, credential: cred.toJSON() } }, token);
    return { status: done.status, type: done.json && done.json.type };
  },
  async post(path, body) { const r = await call('POST', path, body); return { status: r.status, type: r.json && r.json.type }; },
};
log('page ready', 'ok');
</script></body></html>`;

const server = createServer((req, res) => {
  if (req.url === '/' || req.url === '/index.html') {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
    res.end(PAGE);
  } else {
    res.writeHead(404); res.end();
  }
});
await new Promise((ok) => server.listen(Number(a['page-port']), '127.0.0.1', ok));

const userDataDir = mkdtempSync(join(tmpdir(), 'portcullis-chromium-'));
mkdirSync(dirname(a.screenshot), { recursive: true });
let context;
let page;
let ok = false;
let failShot = a.screenshot; // where a screenshot goes if a step throws
const failures = [];
const check = (cond, what) => { if (cond) step(`ok: ${what}`); else { failures.push(what); step(`FAILED: ${what}`); } };
try {
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: a.chromium,
    headless: true,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic',
      // localhost resolves to the loopback address the servers listen on.
      '--host-resolver-rules=MAP localhost 127.0.0.1',
    ],
    viewport: { width: 1100, height: 800 },
    timeout: 30_000,
  });
  context.setDefaultTimeout(15_000);
  page = context.pages()[0] ?? (await context.newPage());
  page.on('console', (m) => { if (m.type() === 'error') console.log(`passkeys: page console: ${m.text()}`); });
  // Only the page and the service under test.
  await page.route(/^(?!http:\/\/localhost[:/])/, (route) => {
    console.error(`passkeys: blocked off-host request ${route.request().url()}`);
    route.abort();
  });

  // The virtual authenticator: a platform passkey provider.
  const cdp = await context.newCDPSession(page);
  await cdp.send('WebAuthn.enable');
  const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: {
      protocol: 'ctap2', ctap2Version: 'ctap2_1', transport: 'internal',
      hasResidentKey: true, hasUserVerification: true, isUserVerified: true,
      automaticPresenceSimulation: true,
    },
  });
  step(`virtual authenticator ${authenticatorId} added`);

  await page.goto(`${pageOrigin}/`, { waitUntil: 'load' });
  const run = (fn, ...args) => page.evaluate(([f, xs]) => window.portcullis[f](...xs), [fn, args]);

  const email = `passkey-${Date.now()}@example.com`;
  const signup = await run('signUp', email, 'correct horse battery staple 42');
  check(signup.registered === 201 && signup.status === 200 && signup.token, `sign up and password sign-in (${signup.registered}, ${signup.status})`);

  const added = await run('addPasskey', signup.token);
  check(added.status === 201, `passkey registered from ${pageOrigin} (status ${added.status})`);
  const { credentials } = await cdp.send('WebAuthn.getCredentials', { authenticatorId });
  check(credentials.length === 1 && credentials[0].isResidentCredential,
    `the authenticator holds one discoverable credential (residentKey "${added.residentKeyAsked}")`);
  check(credentials[0] && credentials[0].rpId === 'localhost', `its RP id is localhost (${credentials[0] && credentials[0].rpId})`);
  const me = await run('me', signup.token);
  check(me.status === 200 && me.json.passkeys === 1, `GET /v1/me counts 1 passkey (${me.json && me.json.passkeys})`);

  const out = await run('signOut', signup.token);
  const after = await run('me', signup.token);
  check(out === 204 && after.status === 401, `signed out (${out}); the old token is refused (${after.status})`);

  const signin = await run('signInWithoutEmail');
  check(signin.allowCredentials === 0, 'the sign-in options name no credential (no email typed)');
  check(signin.status === 200 && signin.email === email, `signed in without typing an email as ${signin.email} (${signin.status})`);
  check(JSON.stringify(signin.amr) === '["hwk","user"]', `amr ${JSON.stringify(signin.amr)}`);
  const again = await run('me', signin.token);
  check(again.status === 200, 'the new token works');
  const { credentials: used } = await cdp.send('WebAuthn.getCredentials', { authenticatorId });
  check(used[0] && used[0].signCount >= 1, `the authenticator's signature counter moved (${used[0] && used[0].signCount})`);

  await page.screenshot({ path: a.screenshot, fullPage: true });
  step(`screenshot saved to ${a.screenshot}`);
  failShot = mfaScreenshot;

  // ---- A passkey as the second factor after a password.
  await run('section', 'Passkey as a second factor (password, then passkey; TOTP on)');
  const email2 = `passkey-mfa-${Date.now()}@example.com`;
  const password2 = 'correct horse battery staple 43';
  const u2 = await run('signUp', email2, password2);
  check(u2.registered === 201 && u2.status === 200 && u2.token, `second account signed up (${u2.registered}, ${u2.status})`);
  const pk2 = await run('addPasskey', u2.token);
  check(pk2.status === 201, `its passkey registered (${pk2.status})`);
  const begun = await run('totpBegin', u2.token);
  check(begun.status === 200 && begun.uri, `TOTP enrolment begun (${begun.status})`);
  // The code an authenticator app would show, from the otpauth:// URI.
  const totp = OTPAuth.URI.parse(begun.uri);
  const activated = await run('totpActivate', u2.token, totp.generate());
  check(activated.status === 200 && activated.codes > 0, `TOTP two-factor on with a code from otpauth (${activated.status}, ${activated.codes} recovery codes)`);

  const first = await run('passwordSignIn', email2, password2);
  const challenge = first.json || {};
  check(first.status === 200 && challenge.mfa_required === true && typeof challenge.mfa_token === 'string' && !challenge.access_token,
    `password sign-in asks for a second factor (${first.status}, mfa_required ${challenge.mfa_required})`);
  check(Array.isArray(challenge.methods) && challenge.methods.includes('passkey') && challenge.methods.includes('totp'),
    `methods ${JSON.stringify(challenge.methods)} include passkey`);

  const second = await run('passkeyAsSecondFactor', challenge.mfa_token);
  check(second.optionsStatus === 200 && second.allowCredentials === 1, `options for the mfa_token list the account's passkey (${second.optionsStatus}, ${second.allowCredentials})`);
  check(second.status === 200 && second.token, `POST /v1/sessions/mfa with the passkey → ${second.status}`);
  check(Array.isArray(second.amr) && second.amr.includes('hwk') && second.amr.includes('pwd'), `amr ${JSON.stringify(second.amr)} has pwd and hwk`);
  const me2 = await run('me', second.token);
  check(me2.status === 200 && me2.json.email === email2 && me2.json.mfa_enabled === true, `the token works for ${me2.json && me2.json.email}`);
  const me2Id = () => me2.json && me2.json.id;
  try {
    const jwks = createRemoteJWKSet(new URL(`${a.base}/.well-known/jwks.json`));
    const { payload, protectedHeader } = await jwtVerify(second.token, jwks, { issuer: a.base, audience: 'portcullis' });
    check(Array.isArray(payload.amr) && payload.amr.includes('hwk') && payload.sub === me2Id(second.token),
      `jose verified the access token (${protectedHeader.alg}, ${protectedHeader.typ}); amr ${JSON.stringify(payload.amr)}`);
  } catch (e) {
    check(false, `jose verification of the access token: ${e.message}`);
  }

  // Replays: the same request (mfa_token spent, challenge used) ...
  const replay = await run('post', '/v1/sessions/mfa', second.body);
  check(replay.status === 401, `the same mfa_token and assertion again → ${replay.status} (${replay.type})`);
  // ... and the same assertion with a fresh mfa_token: on its own (used)
  // challenge, and on a fresh challenge it did not sign.
  const again2 = await run('passwordSignIn', email2, password2);
  const token2 = again2.json && again2.json.mfa_token;
  check(again2.status === 200 && token2, `a new password sign-in gives a new mfa_token (${again2.status})`);
  const sameChallenge = await run('post', '/v1/sessions/mfa', { ...second.body, mfa_token: token2 });
  check(sameChallenge.status === 401, `the old assertion with a new mfa_token → ${sameChallenge.status} (${sameChallenge.type})`);
  const fresh = await run('fresh', token2);
  const otherChallenge = await run('post', '/v1/sessions/mfa',
    { mfa_token: token2, passkey: { challenge_id: fresh.challengeId, credential: second.body.passkey.credential } });
  check(fresh.status === 200 && otherChallenge.status === 401,
    `the old assertion against a fresh challenge → ${otherChallenge.status} (${otherChallenge.type})`);
  // A refused assertion does not spend the mfa_token: a real one still works.
  const honest = await run('passkeyAsSecondFactor', token2);
  check(honest.status === 200 && honest.amr && honest.amr.includes('hwk'), `then a fresh assertion with that mfa_token → ${honest.status}`);

  // ---- Deleting an account with a passkey (DELETE /v1/me {passkey}).
  await run('section', 'Deleting accounts with a passkey assertion');
  const gone2 = await run('deleteWithPasskey', honest.token, email2);
  check(gone2.status === 204, `the second account deletes itself with options for its email (${gone2.status})`);
  const after2 = await run('passwordSignIn', email2, password2);
  check(after2.status === 401, `its password sign-in now fails (${after2.status})`);
  // Leave only the first account's credential on the authenticator, so
  // that the usernameless options below are answered with it.
  const { credentials: held } = await cdp.send('WebAuthn.getCredentials', { authenticatorId });
  for (const c of held) {
    if (c.credentialId !== credentials[0].credentialId) {
      await cdp.send('WebAuthn.removeCredential', { authenticatorId, credentialId: c.credentialId });
    }
  }
  const gone1 = await run('deleteWithPasskey', signin.token, null);
  check(gone1.status === 204, `the first account deletes itself with a usernameless assertion (${gone1.status})`);
  const dead = await run('me', signin.token);
  check(dead.status === 401, `its token is dead (${dead.status})`);
  const noLogin = await run('passwordSignIn', email, 'correct horse battery staple 42');
  check(noLogin.status === 401, `its password sign-in fails (${noLogin.status})`);

  await page.screenshot({ path: mfaScreenshot, fullPage: true });
  step(`screenshot saved to ${mfaScreenshot}`);
  ok = failures.length === 0;
} catch (e) {
  console.log(`passkeys: error: ${e.stack || e.message}`);
  if (page) await page.screenshot({ path: failShot, fullPage: true }).catch(() => {});
} finally {
  if (context) await context.close().catch(() => {});
  server.close();
  rmSync(userDataDir, { recursive: true, force: true });
}
console.log(`passkeys: ${ok ? 'ok' : 'FAILED'}`);
process.exit(ok ? 0 : 1);
