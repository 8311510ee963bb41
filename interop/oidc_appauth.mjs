#!/usr/bin/env node
// AppAuth-JS (@openid/appauth), the library native apps are built on,
// against Portcullis as an OpenID provider, as a native-style public
// client: AppAuth's own NodeBasedHandler listens on a random loopback port
// (RFC 8252 §7.3) and "opens the system browser", here headless Chromium
// (AppAuth's `opener` is pointed at it); PKCE S256; the code is exchanged
// and the refresh token used with AppAuth's token handler.
//
//   node oidc_appauth.mjs --issuer URL --client-id ID --email E --password P [--chromium PATH]
import { parseArgs } from 'node:util';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { chromium } from 'playwright-core';

const { values: a } = parseArgs({
  options: {
    issuer: { type: 'string' }, 'client-id': { type: 'string' }, email: { type: 'string' },
    password: { type: 'string' }, chromium: { type: 'string', default: '/usr/bin/chromium' },
  },
});
const step = (m) => console.log(`appauth: ${m}`);
const check = (cond, what) => { if (!cond) { throw new Error(`check failed: ${what}`); } };

// "The system browser": AppAuth calls `opener(url)`; this one drives Chromium.
const require = createRequire(import.meta.url);
const appauthDir = require.resolve('@openid/appauth');
const openerPath = createRequire(appauthDir).resolve('opener');
let opened;
const openedUrl = new Promise((r) => { opened = r; });
require.cache[openerPath] = { id: openerPath, filename: openerPath, loaded: true, exports: (url) => opened(url) };
const appauth = require('@openid/appauth');
const node = require('@openid/appauth/built/node_support');

const port = await new Promise((r) => { const s = createServer(); s.listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => r(p)); }); });
const redirect = `http://127.0.0.1:${port}/callback`;
const requestor = new node.NodeRequestor();
const config = await appauth.AuthorizationServiceConfiguration.fetchFromIssuer(a.issuer, requestor);
step(`discovery: ${config.authorizationEndpoint}`);
const notifier = new appauth.AuthorizationNotifier();
const handler = new node.NodeBasedHandler(port);
handler.setAuthorizationNotifier(notifier);
const done = new Promise((resolve) => notifier.setAuthorizationListener((request, response, error) => resolve({ request, response, error })));
const request = new appauth.AuthorizationRequest({
  client_id: a['client-id'], redirect_uri: redirect, scope: 'openid email offline_access',
  response_type: appauth.AuthorizationRequest.RESPONSE_TYPE_CODE, extras: { login_hint: a.email },
}, new node.NodeCrypto(), true);
handler.performAuthorizationRequest(config, request);
const url = await openedUrl;
check(/code_challenge_method=S256/.test(url), 'AppAuth sends a S256 challenge');

const context = await chromium.launchPersistentContext(mkdtempSync(join(tmpdir(), 'portcullis-appauth-')), {
  executablePath: a.chromium, headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-quic'],
});
try {
  const p = context.pages()[0] ?? (await context.newPage());
  p.setDefaultTimeout(20_000);
  await p.goto(url);
  await p.getByLabel('Password').fill(a.password);
  await p.getByRole('button', { name: 'Sign in', exact: true }).click();
  await p.getByRole('button', { name: 'Allow' }).click();
  await handler.completeAuthorizationRequestIfPossible();
  const { response, error } = await done;
  check(!error && response && response.code, `authorization response: ${error ? error.error : 'code'}`);
  step(`browser → hosted login + consent → AppAuth's loopback listener on :${port} got a code`);
  const tokenHandler = new appauth.BaseTokenRequestHandler(requestor);
  const tokens = await tokenHandler.performTokenRequest(config, new appauth.TokenRequest({
    client_id: a['client-id'], redirect_uri: redirect, grant_type: appauth.GRANT_TYPE_AUTHORIZATION_CODE,
    code: response.code, extras: { code_verifier: request.internal.code_verifier },
  }));
  check(tokens.idToken && tokens.refreshToken && tokens.accessToken, 'code exchange: ID, access and refresh tokens');
  step('code exchange (public client, PKCE) → access, ID and refresh tokens');
  const refreshed = await tokenHandler.performTokenRequest(config, new appauth.TokenRequest({
    client_id: a['client-id'], redirect_uri: redirect, grant_type: appauth.GRANT_TYPE_REFRESH_TOKEN,
    refresh_token: tokens.refreshToken,
  }));
  check(refreshed.accessToken && refreshed.accessToken !== tokens.accessToken, 'refresh');
  step('refresh_token grant through AppAuth → a new pair');
} finally {
  await context.close();
}
step('all checks passed');
