// Every method of the client, called once against a live Portcullis. Runs in
// Node (test/e2e/all-methods.mjs) and, unchanged, in a Chromium page (the
// same runner with --browser): it imports nothing and gets the package
// (`lib`) and the harness (`ctx`) from its caller.
//
// ctx: { base, check(ok, what), mail(to, has) -> Promise<{token, code} | null>,
//        totp(secret, steps = 0) -> Promise<string> (the code `steps` 30-s steps ahead), admin: {email, password},
//        png: Uint8Array, log(msg) }
// Passkeys: navigator.credentials (a virtual authenticator in Chromium, a
// software one in Node). Calls that need what a test server cannot have (a configured identity
// provider, a new-sign-in notice) are made with values the server must
// refuse, and the check is that it answers with the contract's problem.

export async function run(lib, ctx) {
  const { check } = ctx;
  const called = new Set();
  const mark = (name) => called.add(name);
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const slug = (e) => (e && typeof e === 'object' && 'type' in e ? e.type : String(e));
  async function refused(name, p, slugs) {
    mark(name);
    try {
      await p;
      check(false, `${name}: expected one of ${slugs.join(', ')}, it succeeded`);
    } catch (e) {
      check(e instanceof lib.PortcullisError && slugs.includes(e.type), `${name}: refused with ${slug(e)} (${e?.status})`);
    }
  }

  const stamp = Math.random().toString(36).slice(2, 8);
  const email = `ada-${stamp}@example.com`;
  let password = 'correct horse battery staple';
  const events = [];
  let stepUps = 0;
  const c = lib.createClient({
    url: ctx.base,
    storage: lib.memoryStorage(),
    storageKey: `all-methods.${stamp}`,
    autoRefresh: true,
    onReauthenticationRequired: async (methods) => {
      stepUps++;
      return methods.includes('password') ? { password } : null;
    },
  });
  c.onAuthStateChange((e) => events.push(e));

  // ---- discovery and health
  mark('checkHealth');
  check((await c.checkHealth()).status !== undefined, 'checkHealth: GET /healthz');
  mark('checkReady');
  check((await c.checkReady()).status !== undefined, 'checkReady: GET /readyz');
  mark('getOpenIdConfiguration');
  const oidc = await c.getOpenIdConfiguration();
  check(typeof oidc.jwks_uri === 'string', 'getOpenIdConfiguration: verbatim (jwks_uri)');
  mark('getJwks');
  check(Array.isArray((await c.getJwks()).keys), 'getJwks: keys');
  mark('getAppleAppSiteAssociation');
  check(typeof (await c.getAppleAppSiteAssociation()) === 'object', 'getAppleAppSiteAssociation');
  mark('getAssetLinks');
  check(Array.isArray(await c.getAssetLinks()), 'getAssetLinks');
  mark('getCaptcha');
  const challenge = await c.getCaptcha();
  check(typeof challenge.maxnumber === 'number' && typeof challenge.salt === 'string', 'getCaptcha: an ALTCHA challenge');
  mark('listProviders');
  check(Array.isArray(await c.listProviders()), 'listProviders');

  // ---- sign-up, sign-in, user
  mark('signUp');
  const up = await c.signUp({ email, password, displayName: 'Ada' });
  check(up.status === 'created' && up.user.displayName === 'Ada' && up.user.emailVerified === false, 'signUp: camelCase user');
  check(!!(await ctx.mail(email, '/verify-email?token=')), 'signUp: a verification mail (superseded by the resend below)');
  mark('signIn');
  const si = await c.signIn({ email, password });
  check(si.status === 'signed_in' && si.session.user.email === email, 'signIn: signed in');
  await sleep(0);
  check(events.includes('INITIAL_SESSION') && events.includes('SIGNED_IN'), `events: INITIAL_SESSION, SIGNED_IN (${events})`);
  mark('getSession');
  const s0 = await c.getSession();
  check(typeof s0.accessToken === 'string' && typeof s0.expiresAt === 'number' && s0.sessionId, 'getSession: camelCase session');
  mark('getUser');
  check((await c.getUser()).id === si.session.user.id, 'getUser');
  mark('updateUser');
  const meta = { favourite_colour: 'green', nested_map: { some_key: 1 } };
  const u1 = await c.updateUser({ displayName: 'Ada L', metadata: meta, timezone: 'Europe/London' });
  check(
    u1.displayName === 'Ada L' && JSON.stringify(u1.metadata) === JSON.stringify(meta),
    'updateUser: fields camelCase, metadata keys untouched both ways',
  );
  mark('getClaims');
  const claims = await c.getClaims();
  check(claims.sub === u1.id && Array.isArray(claims.amr), 'getClaims: verified against the JWKS');
  mark('hasRole');
  check((await c.hasRole('user')) && !(await c.hasRole('admin')), 'hasRole: user yes, admin no');
  mark('amr');
  check(c.amr.includes('pwd') && c.assuranceLevel === 'aal1', `amr ${c.amr}, assuranceLevel ${c.assuranceLevel}`);
  mark('getAccessToken');
  check((await c.getAccessToken()) !== null, 'getAccessToken');
  mark('refreshSession');
  const before = (await c.getSession()).refreshToken;
  const r1 = await c.refreshSession({ force: true });
  check(r1 && r1.refreshToken !== before, 'refreshSession: rotated');
  mark('fetch');
  check((await c.fetch('/v1/me')).status === 200, 'fetch: bearer added');
  mark('listSessions');
  const sessions = await c.listSessions();
  check(sessions.length >= 1 && sessions.some((x) => x.current && typeof x.createdAt === 'string'), 'listSessions: camelCase');
  mark('listActivity');
  const act = await c.listActivity({ limit: 5 });
  check(Array.isArray(act.events) && act.events.length > 0 && typeof act.events[0].type === 'string', 'listActivity: own events');

  // ---- email verification
  mark('resendVerification');
  await c.resendVerification();
  const vmail = await ctx.mail(email, '/verify-email?token=');
  check(!!vmail?.token, 'resendVerification: a mail with a link');
  mark('verifyEmail');
  await c.verifyEmail({ token: vmail.token });
  check((await c.getSession()).user.emailVerified === true, 'verifyEmail: emailVerified, session user updated');

  // ---- password, step-up
  mark('changePassword');
  await c.changePassword({ currentPassword: password, newPassword: 'an even better passphrase' });
  password = 'an even better passphrase';
  check(true, 'changePassword');
  mark('reauthenticate');
  await c.reauthenticate({ password });
  check(true, 'reauthenticate: password');

  // ---- TOTP, recovery codes, MFA sign-in
  await sleep(1100); // past PORTCULLIS_REAUTH_WINDOW (1s): the next change must ask
  mark('mfa.enrollTotp');
  const before2 = stepUps;
  const enrolment = await c.mfa.enrollTotp();
  check(typeof enrolment.otpauthUri === 'string' && typeof enrolment.qrSvg === 'string', 'mfa.enrollTotp: camelCase enrolment');
  mark('mfa.activateTotp');
  const codes = await c.mfa.activateTotp({ code: await ctx.totp(enrolment.secret) });
  check(codes.recoveryCodes.length === 10 && (await c.getSession()).user.mfaEnabled, 'mfa.activateTotp: 10 codes, mfaEnabled');
  check(stepUps > before2 && events.includes('REAUTHENTICATION_REQUIRED'), `step-up: asked ${stepUps - before2}x, proved, retried`);
  mark('mfa.regenerateRecoveryCodes');
  const codes2 = await c.mfa.regenerateRecoveryCodes({ password });
  check(codes2.recoveryCodes.length === 10 && codes2.recoveryCodes[0] !== codes.recoveryCodes[0], 'mfa.regenerateRecoveryCodes: a new set');
  mark('mfa.getAuthenticatorAssuranceLevel');
  check(c.mfa.getAuthenticatorAssuranceLevel().next === 'aal2', 'mfa.getAuthenticatorAssuranceLevel: next aal2');
  mark('signOut');
  await c.signOut();
  check((await c.getSession()) === null, 'signOut: local');
  const n0 = events.length;
  const si2 = await c.signIn({ email, password });
  await sleep(0);
  check(si2.status === 'mfa_required' && si2.mfa.mfaToken && events.slice(n0).includes('MFA_REQUIRED'), 'signIn: mfa_required, MFA_REQUIRED');
  mark('mfaChallenge');
  check(c.mfaChallenge?.mfaToken === si2.mfa?.mfaToken, 'mfaChallenge');
  mark('verifyMfa');
  const s2 = await c.verifyMfa({ recoveryCode: codes2.recoveryCodes[0] });
  check(s2.user.email === email && c.assuranceLevel === 'aal2', `verifyMfa: recovery code, aal2 (amr ${c.amr})`);
  mark('mfa.disableTotp');
  await c.mfa.disableTotp({ password });
  check((await c.getSession()).user.mfaEnabled === false, 'mfa.disableTotp');

  // ---- avatar
  mark('uploadAvatar');
  const withAvatar = await c.uploadAvatar(new Blob([ctx.png], { type: 'image/png' }));
  check(typeof withAvatar.avatarUrl === 'string', 'uploadAvatar: avatarUrl');
  mark('getAvatar');
  const img = await c.getAvatar(withAvatar.id);
  check(img && img.size > 0, 'getAvatar: an image');
  mark('avatarUrl');
  check(c.avatarUrl(withAvatar.id).endsWith(`/v1/users/${withAvatar.id}/avatar`), 'avatarUrl');
  mark('deleteAvatar');
  await c.deleteAvatar();
  check(!(await c.getSession()).user.avatarUrl && (await c.getAvatar(withAvatar.id)) === null, 'deleteAvatar');

  // ---- passkeys
  mark('listPasskeys');
  check((await c.listPasskeys()).length === 0, 'listPasskeys: none');
  mark('registerPasskey');
  const pk = await c.registerPasskey({ name: 'laptop' });
  check(pk.name === 'laptop' && typeof pk.backupEligible === 'boolean', 'registerPasskey: backupEligible');
  check((await c.listPasskeys()).length === 1, 'listPasskeys: one');
  await c.reauthenticate({ passkey: true });
  check(true, 'reauthenticate: passkey');
  const other = lib.createClient({ url: ctx.base, storage: lib.memoryStorage(), autoRefresh: false });
  mark('signInWithPasskey');
  const ps = await other.signInWithPasskey({ email });
  check(ps.user.email === email && other.amr.includes('hwk'), `signInWithPasskey (amr ${other.amr})`);
  await other.signOut();
  const usernameless = await other.signInWithPasskey();
  check(usernameless.user.email === email, 'signInWithPasskey without an email (discoverable credential)');
  other.close();
  // Two-step sign-in with the passkey as the second factor.
  const enrol2 = await c.mfa.enrollTotp();
  // The next time step's code (the server allows one step of skew): this
  // step's may be the one already used above, and a used step is refused.
  await c.mfa.activateTotp({ code: await ctx.totp(enrol2.secret, 1) });
  await c.signOut();
  const si3 = await c.signIn({ email, password });
  check(si3.status === 'mfa_required' && si3.mfa.methods.includes('passkey'), `signIn: mfa_required offers the passkey (${si3.mfa?.methods})`);
  await c.verifyMfa({ passkey: true });
  check(c.amr.includes('hwk') && c.assuranceLevel === 'aal2', `verifyMfa: passkey as the second factor (amr ${c.amr})`);
  await c.mfa.disableTotp({ password });
  mark('deletePasskey');
  await c.deletePasskey(pk.id);
  check((await c.listPasskeys()).length === 0, 'deletePasskey');

  // ---- consents, identities, federation (no provider configured: the contract's refusals)
  mark('listConsents');
  check(Array.isArray(await c.listConsents()), 'listConsents');
  await refused('revokeConsent', c.revokeConsent('no-such-client'), ['not-found']);
  mark('listIdentities');
  check((await c.listIdentities()).length === 0, 'listIdentities');
  await refused('unlinkIdentity', c.unlinkIdentity('00000000-0000-0000-0000-000000000000'), ['not-found']);
  await refused('linkIdentity', c.linkIdentity({ linkToken: 'not-a-link-token' }), ['token-invalid-or-expired', 'validation', 'token-invalid', 'bad-request']);
  mark('getFederationNonce');
  const nonce = await c.getFederationNonce();
  check(typeof nonce.nonce === 'string' && typeof nonce.expiresIn === 'number', 'getFederationNonce: camelCase');
  const anon = lib.createClient({ url: ctx.base, storage: lib.memoryStorage(), autoRefresh: false });
  await refused('signInWithIdToken', anon.signInWithIdToken({ provider: 'google', idToken: 'x.y.z', nonce: nonce.nonce }), [
    'id-token-invalid',
    'unknown-provider',
    'not-found',
    'provider-not-configured',
    'validation',
  ]);
  mark('signInWithProvider');
  const { url } = await anon.signInWithProvider('google', { redirectTo: `${ctx.base}/cb`, navigate: false });
  check(new URL(url).pathname === '/v1/federation/google/authorize', 'signInWithProvider: the authorize URL');
  const reached = await fetch(url, { redirect: 'manual' }).catch(() => null);
  check(reached && reached.status >= 300 && reached.status < 500, `signInWithProvider: the server answers the URL (${reached?.status})`);
  await refused('completeSignInWithProvider', anon.completeSignInWithProvider(`${ctx.base}/cb?code=not-a-code`), [
    'code-invalid',
    'token-invalid-or-expired',
    'invalid-grant',
    'validation',
    'token-invalid',
  ]);

  // ---- passwordless, anonymous, setSession
  mark('signInWithEmail');
  await anon.signInWithEmail({ email });
  const smail = await ctx.mail(email, '/sign-in?token=');
  check(!!smail?.token, 'signInWithEmail: a sign-in mail');
  mark('verifyEmailSignIn');
  const es = await anon.verifyEmailSignIn({ token: smail.token });
  check(es.status === 'signed_in' && anon.amr.includes('email'), 'verifyEmailSignIn: signed in (amr email)');
  await anon.signOut();
  mark('signInAnonymously');
  const guest = await anon.signInAnonymously();
  check(guest.user.isAnonymous === true, 'signInAnonymously: isAnonymous');
  mark('upgrade');
  const upg = await anon.upgrade({ email: `grace-${stamp}@example.com`, password: 'a guest no more 123' });
  check(upg.status === 'upgraded' && (await anon.getSession()).user.isAnonymous === false, 'upgrade');
  mark('setSession');
  const mine = await c.getSession();
  // A session signed in elsewhere (another device), handed over as a token pair.
  const elsewhere = lib.createClient({ url: ctx.base, storage: lib.memoryStorage(), autoRefresh: false });
  const handedOver = (await elsewhere.signIn({ email, password })).session;
  elsewhere.close();
  const third = lib.createClient({ url: ctx.base, storage: lib.memoryStorage(), autoRefresh: false });
  const adopted = await third.setSession({ accessToken: handedOver.accessToken, refreshToken: handedOver.refreshToken });
  check(adopted.user.id === mine.user.id && adopted.sessionId === handedOver.sessionId && (await third.getUser()).email === email, 'setSession: adopted');
  mark('revokeSession');
  await third.revokeSession(adopted.sessionId);
  check((await third.getSession()) === null, 'revokeSession: own session ends here');
  third.close();

  // ---- OAuth endpoints
  mark('oauth.userinfo');
  const ui = await c.oauth.userinfo();
  check(ui.sub === mine.user.id, 'oauth.userinfo: GET');
  check((await c.oauth.userinfo({ method: 'POST' })).sub === mine.user.id, 'oauth.userinfo: POST');
  mark('oauth.token');
  const side = await anon.getSession();
  const t = await c.oauth.token({ grantType: 'refresh_token', refreshToken: side.refreshToken, clientId: 'portcullis' });
  check(typeof t.accessToken === 'string' && typeof t.expiresIn === 'number', 'oauth.token: refresh_token grant, camelCase');
  mark('oauth.introspect');
  const intro = await c.oauth.introspect({ token: t.accessToken, introspectionToken: ctx.introspectionToken });
  check(intro.active === true, 'oauth.introspect: active');
  mark('oauth.revoke');
  await c.oauth.revoke({ token: t.refreshToken ?? t.accessToken });
  check(true, 'oauth.revoke');
  mark('oauth.authorizeUrl');
  check(new URL(c.oauth.authorizeUrl({ clientId: 'x', responseType: 'code' })).searchParams.get('client_id') === 'x', 'oauth.authorizeUrl');
  anon.close();

  // ---- not me, reset via link (PASSWORD_RECOVERY)
  await refused('reportNotMe', c.reportNotMe('not-a-notice-token'), ['token-invalid-or-expired', 'token-invalid', 'validation']);
  mark('forgotPassword');
  await c.forgotPassword({ email });
  const rmail = await ctx.mail(email, '/reset-password?token=');
  check(!!rmail?.link, 'forgotPassword: a reset mail');
  mark('handleRecoveryUrl');
  const n1 = events.length;
  check(c.handleRecoveryUrl(rmail.link) && c.passwordRecoveryToken === rmail.token, 'handleRecoveryUrl: token kept');
  await sleep(10);
  check(events.slice(n1).includes('PASSWORD_RECOVERY'), 'PASSWORD_RECOVERY emitted');
  mark('resetPassword');
  await c.resetPassword({ newPassword: 'reset to this passphrase' });
  password = 'reset to this passphrase';
  check(c.passwordRecoveryToken === null, 'resetPassword: with the link token');
  await sleep(50);
  const afterReset = await c.getUser().catch((e) => e);
  check(afterReset instanceof Error, 'resetPassword: every session ended');
  await sleep(20);
  if (!(await c.getSession())) await c.signIn({ email, password });
  check((await c.getSession()) !== null, 'signIn with the new password');

  // ---- email change (step-up through the handler)
  mark('changeEmail');
  const newEmail = `ada-new-${stamp}@example.com`;
  await c.changeEmail({ newEmail }, { password });
  const cmail = await ctx.mail(newEmail, '/verify-email?token=');
  check(!!cmail?.token, 'changeEmail: a link to the new address');
  await c.verifyEmail({ token: cmail.token });
  check((await c.getSession()).user.email === newEmail && events.includes('USER_UPDATED'), 'changeEmail + verifyEmail: USER_UPDATED');

  // ---- admin
  const admin = lib.createClient({ url: ctx.base, storage: lib.memoryStorage(), autoRefresh: false });
  await admin.signIn(ctx.admin);
  check(await admin.hasRole('admin'), 'admin: hasRole(admin)');
  mark('admin.listUsers');
  const page = await admin.admin.listUsers({ emailPrefix: 'ada-new', limit: 10 });
  const target = page.users.find((x) => x.email === newEmail);
  check(!!target && 'nextCursor' in page === ('nextCursor' in page) && target.emailVerified === true, 'admin.listUsers: camelCase page');
  mark('admin.getUser');
  check((await admin.admin.getUser(target.id)).id === target.id, 'admin.getUser');
  mark('admin.updateUser');
  check((await admin.admin.updateUser(target.id, { roles: ['user', 'editor'] })).roles.includes('editor'), 'admin.updateUser: roles');
  mark('admin.listAuditEvents');
  const audit = await admin.admin.listAuditEvents({ userId: target.id, limit: 50 });
  check(audit.events.length > 0 && audit.events.every((e) => e.userId === target.id), 'admin.listAuditEvents: userId filter');
  mark('admin.createClient');
  const oc = await admin.admin.createClient({
    name: 'Demo app',
    redirectUris: ['https://app.example.com/cb'],
    postLogoutRedirectUris: null,
    firstParty: false,
    type: 'confidential',
  });
  check(typeof oc.clientSecret === 'string' && oc.redirectUris.length === 1, 'admin.createClient: secret once');
  mark('admin.listClients');
  check((await admin.admin.listClients()).some((x) => x.id === oc.id), 'admin.listClients');
  mark('admin.getClient');
  check((await admin.admin.getClient(oc.id)).clientSecret === undefined, 'admin.getClient: no secret');
  mark('admin.updateClient');
  check((await admin.admin.updateClient(oc.id, { name: 'Demo app 2' })).name === 'Demo app 2', 'admin.updateClient');
  mark('admin.deleteClient');
  await admin.admin.deleteClient(oc.id);
  await refused('admin.getClient (deleted)', admin.admin.getClient(oc.id), ['not-found']);
  mark('admin.signOutUser');
  await admin.admin.signOutUser(target.id);
  const gone = await c.getUser().catch((e) => e);
  check(gone instanceof Error && (await c.getSession()) === null, 'admin.signOutUser: the user is signed out (SIGNED_OUT)');

  // ---- sign-out scopes, account deletion
  await c.signIn({ email: newEmail, password });
  await refused('admin.listUsers as a plain user', c.admin.listUsers(), ['forbidden']);
  const second = lib.createClient({ url: ctx.base, storage: lib.memoryStorage(), autoRefresh: false });
  await second.signIn({ email: newEmail, password });
  await c.signOut({ scope: 'others' });
  check((await second.getUser().catch((e) => e)) instanceof Error, "signOut({scope: 'others'}): the other session ended");
  second.close();
  mark('deleteUser');
  await c.deleteUser({ password });
  check((await c.getSession()) === null && events.at(-1) === 'SIGNED_OUT', 'deleteUser: erased, SIGNED_OUT');
  mark('admin.deleteUser');
  const victim = await admin.signUp({ email: `victim-${stamp}@example.com`, password: 'victim passphrase 1' });
  await admin.admin.deleteUser(victim.user.id);
  await refused('admin.getUser (deleted)', admin.admin.getUser(victim.user.id), ['not-found']);
  mark('startAutoRefresh');
  mark('stopAutoRefresh');
  mark('setVisible');
  c.stopAutoRefresh();
  check(!c.autoRefreshing, 'stopAutoRefresh');
  c.startAutoRefresh();
  c.setVisible(false);
  c.setVisible(true);
  check(c.autoRefreshing, 'startAutoRefresh / setVisible');
  admin.close();
  c.close();
  return [...called];
}
