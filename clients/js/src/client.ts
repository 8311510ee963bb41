import { errorFromResponse, PortcullisError } from './errors.js';
import { solveCaptcha, type SolveCaptchaOptions } from './captcha.js';
import type {
  AssuranceLevel,
  CaptchaChallenge,
  Claims,
  Consent,
  FederationNonce,
  HealthStatus,
  Identity,
  Jwks,
  MfaChallenge,
  MfaProof,
  OpenIdConfiguration,
  Provider,
  ReauthProof,
  Passkey,
  PasskeyOptionsResponse,
  ResetPasswordRequest,
  SecurityEventPage,
  Session,
  SessionInfo,
  SignInResult,
  SignOutScope,
  SignUpResult,
  TokensResponse,
  UpdateUserRequest,
  User,
  RegisterRequest,
} from './types.js';
import type { EmailSignInProof, UpgradeResult } from './types.js';

import { decodeJwtClaims, isMfaChallenge, query, type Api } from './internal.js';
import { createPkce, readProviderCallback, type LinkOffer } from './federation.js';
import type { ClientOptions } from './options.js';
import { SessionCore } from './session.js';
import { MfaApi } from './mfa.js';
import { AdminApi } from './admin.js';
import { OAuthApi } from './oauth.js';
import { assuranceOf, ClaimsVerifier } from './claims.js';
import type { JSONWebKeySet } from 'jose';

export type { ClientOptions } from './options.js';

/**
 * The Portcullis client. One per app (per tab); several clients given the
 * same storage and lock share one session safely.
 */
export class PortcullisClient extends SessionCore {
  /** TOTP enrolment, recovery codes, assurance level. */
  readonly mfa: MfaApi;
  /** The admin routes (role `admin`). */
  readonly admin: AdminApi;
  /** Portcullis as an OAuth 2 / OpenID Connect server (token, revoke, userinfo, introspect). */
  readonly oauth: OAuthApi;
  private readonly claimsVerifier: ClaimsVerifier;

  constructor(options: ClientOptions) {
    super(options);
    const api: Api = {
      authed: (m, p, b, i) => this.authed(m, p, b, i),
      anon: (m, p, b) => this.anon(m, p, b),
      proofBody: (p) => this.proofBody(p),
      refreshAfterChange: () => this.refreshAfterChange(),
      storeUser: (u) => this.storeUser(u),
      raw: (p, i, t) => (t ? this.fetch(p, i) : this.send(new Request(this.resolve(p), i))),
      parse: (r) => this.parse(r),
    };
    this.mfa = new MfaApi(api, () => this.assuranceLevels());
    this.admin = new AdminApi(api);
    this.oauth = new OAuthApi(api, this.url);
    this.claimsVerifier = new ClaimsVerifier(async () => (await this.getJwks()) as JSONWebKeySet, () => this.now());
  }

  // ------------------------------------------------------------ account API

  /** `POST /v1/users`. Does not sign in. */
  async signUp(params: RegisterRequest): Promise<SignUpResult> {
    const res = await this.request('POST', '/v1/users', params);
    if (res.status === 202) {
      await res.body?.cancel().catch(() => undefined);
      return { status: 'verification_sent' };
    }
    const user = await this.parse<User>(res);
    return { status: 'created', user };
  }

  /** `POST /v1/sessions`: a session, or a two-factor step (`verifyMfa` next). */
  async signIn(params: { email: string; password: string; captcha?: string }): Promise<SignInResult> {
    return this.signedInOrMfa(await this.anon<TokensResponse | MfaChallenge>('POST', '/v1/sessions', params));
  }

  /** A first factor's answer: a session, or the pending two-factor step. */
  private async signedInOrMfa(body: TokensResponse | MfaChallenge): Promise<SignInResult> {
    if (isMfaChallenge(body)) {
      this.pendingMfa = body;
      this.emit('MFA_REQUIRED', null);
      return { status: 'mfa_required', mfa: body };
    }
    this.pendingMfa = null;
    const session = await this.saveSession(this.toSession(body), 'SIGNED_IN');
    return { status: 'signed_in', session, user: session.user };
  }

  /** The two-factor step of the last `signIn`, if one is pending. */
  get mfaChallenge(): MfaChallenge | null {
    return this.pendingMfa;
  }

  /** `POST /v1/sessions/mfa` with a TOTP code, a recovery code, or a passkey. */
  async verifyMfa(proof: MfaProof): Promise<Session> {
    const mfaToken = proof.mfaToken ?? this.pendingMfa?.mfaToken;
    if (!mfaToken) throw new Error('no two-factor step is pending: call signIn first or pass mfaToken');
    let body: Record<string, unknown>;
    if ('code' in proof) body = { mfaToken, code: proof.code };
    else if ('recoveryCode' in proof) body = { mfaToken, recoveryCode: proof.recoveryCode };
    else {
      const opts = await this.anon<PasskeyOptionsResponse>('POST', '/v1/sessions/passkey/options', { mfaToken });
      const credential = await this.passkeys.get(opts.publicKey, proof.signal ? { signal: proof.signal } : {});
      body = { mfaToken, passkey: { challengeId: opts.challengeId, credential } };
    }
    const tokens = await this.anon<TokensResponse>('POST', '/v1/sessions/mfa', body);
    this.pendingMfa = null;
    return this.saveSession(this.toSession(tokens), 'SIGNED_IN');
  }

  /**
   * `DELETE /v1/sessions?scope=`. `local` (default) and `global` always end
   * the session on this device, even when the server cannot be reached
   * (the error is then thrown after the local sign-out). `others` keeps it.
   */
  async signOut(opts: { scope?: SignOutScope } = {}): Promise<void> {
    const scope = opts.scope ?? 'local';
    await this.ready;
    let failure: unknown;
    if (this.session) {
      try {
        const res = await this.fetch(`/v1/sessions?scope=${encodeURIComponent(scope)}`, { method: 'DELETE' });
        if (!res.ok && res.status !== 401) failure = await errorFromResponse(res);
        else await res.body?.cancel().catch(() => undefined);
      } catch (e) {
        failure = e;
      }
    }
    if (scope !== 'others') {
      await this.clearSession();
      // A new session gets a new DPoP key (the old one is useless now).
      await this.dpop?.reset().catch(() => undefined);
    }
    if (failure) throw failure;
  }

  /** `GET /v1/me`; the kept user is updated (USER_UPDATED when it changed). */
  async getUser(): Promise<User> {
    const user = await this.authed<User>('GET', '/v1/me');
    const cur = this.session?.user;
    if (cur && JSON.stringify(cur) !== JSON.stringify(user)) await this.storeUser(user);
    return user;
  }

  /** `PATCH /v1/me`; emits USER_UPDATED. */
  async updateUser(patch: UpdateUserRequest): Promise<User> {
    const user = await this.authed<User>('PATCH', '/v1/me', patch);
    await this.storeUser(user);
    return user;
  }

  /** `POST /v1/me/password` (the server revokes the other sessions). */
  async changePassword(params: { currentPassword: string; newPassword: string }): Promise<void> {
    await this.authed<void>('POST', '/v1/me/password', {
      currentPassword: params.currentPassword,
      newPassword: params.newPassword,
    });
  }

  /** `POST /v1/password/forgot`: always 202 (no enumeration). */
  async forgotPassword(params: { email: string; captcha?: string }): Promise<void> {
    await this.anon<void>('POST', '/v1/password/forgot', params);
  }

  /**
   * `POST /v1/password/reset` with the emailed link's `token` or `email` +
   * `emailCode`, or with neither after the app was opened with a reset link
   * (`PASSWORD_RECOVERY`): that link's token is used. Does not sign in.
   */
  async resetPassword(params: ResetPasswordRequest): Promise<void> {
    const fromUrl = !params.token && !params.email ? this.recoveryToken : null;
    await this.anon<void>('POST', '/v1/password/reset', fromUrl ? { ...params, token: fromUrl } : params);
    if (fromUrl) this.recoveryToken = null;
  }

  /** `GET /v1/sessions`. */
  async listSessions(): Promise<SessionInfo[]> {
    return this.authed<SessionInfo[]>('GET', '/v1/sessions');
  }

  /** `DELETE /v1/sessions/{sid}`; revoking this device's own session signs out here too. */
  async revokeSession(sid: string): Promise<void> {
    await this.authed<void>('DELETE', `/v1/sessions/${encodeURIComponent(sid)}`);
    if (this.session?.sessionId === sid) await this.clearSession();
  }

  /** `GET /v1/captcha`: an ALTCHA v1 challenge. */
  async getCaptcha(): Promise<CaptchaChallenge> {
    return this.anon<CaptchaChallenge>('GET', '/v1/captcha');
  }

  /**
   * The one call for a CAPTCHA: fetches a challenge (`GET /v1/captcha`),
   * solves it (in a Web Worker in browsers; a second or a few at the default difficulty) and returns the
   * value of the `captcha` field. When `signIn`, `signUp` or
   * `forgotPassword` throws `captcha-required`, call this and retry with
   * `{ ..., captcha }`. Each solution works once.
   */
  async solveCaptcha(options: SolveCaptchaOptions = {}): Promise<string> {
    return solveCaptcha(await this.getCaptcha(), options);
  }

  /**
   * `POST /v1/me/reauthenticate`: confirms it is the user (the password, a
   * current TOTP code, or a passkey) on this session. For the server's
   * window (`PORTCULLIS_REAUTH_WINDOW`, 5 minutes by default) the calls that
   * need a recent proof (`registerPasskey`, ...) then work; until then they
   * throw `ReauthenticationRequiredError`, whose `methods` say which proofs
   * the account has.
   */
  async reauthenticate(proof: ReauthProof): Promise<void> {
    await this.authed<void>('POST', '/v1/me/reauthenticate', await this.proofBody(proof));
  }

  /** The body of a proof: `{password}`, `{code}` or `{passkey: {challengeId, credential}}`; `{}` for none. */
  protected async proofBody(proof?: ReauthProof): Promise<Record<string, unknown>> {
    if (!proof) return {};
    if ('password' in proof) return { password: proof.password };
    if ('code' in proof) return { code: proof.code };
    const email = proof.email ?? this.session?.user.email;
    const opts = await this.anon<PasskeyOptionsResponse>('POST', '/v1/sessions/passkey/options', email ? { email } : {});
    const credential = await this.passkeys.get(opts.publicKey, proof.signal ? { signal: proof.signal } : {});
    return { passkey: { challengeId: opts.challengeId, credential } };
  }

  // ------------------------------------------------------------ passkeys

  /**
   * Creates a passkey for the signed-in user (`navigator.credentials.create`).
   * Needs a recent proof on the session: throws
   * `ReauthenticationRequiredError` when there is none (call
   * `reauthenticate`, then this again).
   */
  async registerPasskey(opts: { name?: string; signal?: AbortSignal } = {}): Promise<Passkey> {
    const options = await this.authed<PasskeyOptionsResponse>('POST', '/v1/me/passkeys/options');
    const credential = await this.passkeys.create(options.publicKey, opts.signal ? { signal: opts.signal } : {});
    return this.authed<Passkey>('POST', '/v1/me/passkeys', {
      challengeId: options.challengeId,
      credential,
      ...(opts.name !== undefined ? { name: opts.name } : {}),
    });
  }

  /**
   * Signs in with a passkey (`navigator.credentials.get`). Without `email`
   * the browser offers discoverable credentials; `mediation: 'conditional'`
   * for autofill UI.
   */
  async signInWithPasskey(
    opts: { email?: string; signal?: AbortSignal; mediation?: CredentialMediationRequirement } = {},
  ): Promise<Session> {
    const options = await this.anon<PasskeyOptionsResponse>(
      'POST',
      '/v1/sessions/passkey/options',
      opts.email ? { email: opts.email } : {},
    );
    const credential = await this.passkeys.get(options.publicKey, {
      ...(opts.signal ? { signal: opts.signal } : {}),
      ...(opts.mediation ? { mediation: opts.mediation } : {}),
    });
    const tokens = await this.anon<TokensResponse>('POST', '/v1/sessions/passkey', {
      challengeId: options.challengeId,
      credential,
    });
    return this.saveSession(this.toSession(tokens), 'SIGNED_IN');
  }

  // ------------------------------------------------------------ passwordless (docs/guides/passwordless.md)

  /** `POST /v1/sessions/email`: a sign-in mail (link + 8-digit code); 202 whether or not the address has an account. */
  async signInWithEmail(params: { email: string; captcha?: string }): Promise<void> {
    await this.anon<void>('POST', '/v1/sessions/email', params);
  }

  /** `POST /v1/sessions/email/verify` with the link's `token` or `email` + `code`: a session, or a two-factor step. */
  async verifyEmailSignIn(proof: EmailSignInProof): Promise<SignInResult> {
    const body = 'token' in proof ? { token: proof.token } : { email: proof.email, emailCode: proof.code };
    return this.signedInOrMfa(await this.anon<TokensResponse | MfaChallenge>('POST', '/v1/sessions/email/verify', body));
  }

  /** `POST /v1/sessions/anonymous`: a new guest, signed in (`user.is_anonymous`; needs `PORTCULLIS_ANONYMOUS=true`). */
  async signInAnonymously(params: { captcha?: string } = {}): Promise<Session> {
    const tokens = await this.anon<TokensResponse>('POST', '/v1/sessions/anonymous', params);
    return this.saveSession(this.toSession(tokens), 'SIGNED_IN');
  }

  /** `POST /v1/me/upgrade`: the guest becomes a full account (same id and session), then a refresh drops `is_anonymous`. */
  async upgrade(params: { email: string; password: string }): Promise<UpgradeResult> {
    const res = await this.authed<User | { status: 'verification_sent' }>('POST', '/v1/me/upgrade', params);
    const session = await this.refreshSession({ force: true });
    if (!('id' in res)) return { status: 'verification_sent' };
    if (session && JSON.stringify(session.user) !== JSON.stringify(res)) await this.storeUser(res);
    return { status: 'upgraded', user: res };
  }

  // ------------------------------------------------------------ federated sign-in

  private pkceKey(): string {
    return `${this.storageKey}.pkce`;
  }

  /** `GET /v1/providers`: the identity providers configured on the server. */
  async listProviders(): Promise<Provider[]> {
    return this.anon<Provider[]>('GET', '/v1/providers');
  }

  /**
   * Starts a redirect sign-in (or `intent: 'link'`) with `provider`: makes
   * this client's own PKCE pair, keeps the verifier in storage, and goes to
   * `/v1/federation/{provider}/authorize` (in a browser; `navigate: false`
   * only returns the URL, e.g. for an in-app browser session). `redirectTo`
   * must be one of the server's `PORTCULLIS_REDIRECT_URLS`. Finish on that
   * page with `completeSignInWithProvider()`.
   */
  async signInWithProvider(
    provider: string,
    opts: { redirectTo: string; intent?: 'signin' | 'link'; navigate?: boolean },
  ): Promise<{ url: string }> {
    const { verifier, challenge } = await createPkce();
    await this.storage.setItem(this.pkceKey(), verifier);
    const u = new URL(`/v1/federation/${encodeURIComponent(provider)}/authorize`, this.url);
    u.searchParams.set('redirect_to', opts.redirectTo);
    u.searchParams.set('code_challenge', challenge);
    u.searchParams.set('code_challenge_method', 'S256');
    u.searchParams.set('intent', opts.intent ?? 'signin');
    const url = u.toString();
    const loc = (globalThis as { location?: { assign(url: string): void } }).location;
    if (opts.navigate !== false && loc) loc.assign(url);
    return { url };
  }

  /**
   * Finishes a redirect sign-in on the `redirectTo` page: reads `code` (or
   * `error`) from `url` (default the current location) and exchanges it
   * with the stored verifier (`POST /v1/sessions/federation`). A refusal
   * throws a `PortcullisError` whose slug is the callback's `error`
   * (`link-required` carries `link_token` as `problem.link_token`).
   */
  async completeSignInWithProvider(url?: string | URL): Promise<SignInResult> {
    const here = url ?? (globalThis as { location?: { href: string } }).location?.href;
    if (!here) throw new Error('no callback URL: pass the URL the provider flow returned to');
    const answer = readProviderCallback(here);
    if (!answer) throw new Error('the URL carries neither code nor error');
    const verifier = await this.storage.getItem(this.pkceKey());
    await this.storage.removeItem(this.pkceKey());
    if ('error' in answer) {
      throw new PortcullisError({
        type: `${this.url}/problems/${answer.error}`,
        title: answer.error,
        status: answer.error === 'link-required' ? 409 : 400,
        detail: answer.errorDescription ?? answer.error,
        ...(answer.linkToken ? { link_token: answer.linkToken } : {}),
      });
    }
    if (!verifier) throw new Error('no PKCE verifier stored: start with signInWithProvider on this device');
    const body = await this.anon<TokensResponse | MfaChallenge>('POST', '/v1/sessions/federation', {
      code: answer.code,
      codeVerifier: verifier,
    });
    return this.signedInOrMfa(body);
  }

  /** `POST /v1/federation/nonce`: a single-use nonce for a native SDK. */
  async getFederationNonce(): Promise<FederationNonce> {
    return this.anon('POST', '/v1/federation/nonce', {});
  }

  /**
   * `POST /v1/sessions/id-token`: signs in with the ID token a native SDK
   * (Sign in with Apple, Google Sign-In, Credential Manager) returned for a
   * nonce from `getFederationNonce()`. `name` is Apple's first-time name.
   */
  async signInWithIdToken(params: {
    provider: string;
    idToken: string;
    nonce: string;
    name?: { givenName?: string; familyName?: string };
  }): Promise<SignInResult> {
    const body = await this.anon<TokensResponse | MfaChallenge>('POST', '/v1/sessions/id-token', {
      provider: params.provider,
      idToken: params.idToken,
      nonce: params.nonce,
      ...(params.name ? { name: params.name } : {}),
    });
    return this.signedInOrMfa(body);
  }

  /**
   * `POST /v1/me/identities`: links an identity to the signed-in account
   * (a `link_token` from `link-required`, a native ID token, or the code of
   * a redirect begun with `intent: 'link'`, whose verifier this client kept
   * when `codeVerifier` is omitted). Needs a recent proof: pass `password`
   * or `totpCode`, or call `reauthenticate` first.
   */
  async linkIdentity(offer: LinkOffer | { code: string; codeVerifier?: string }): Promise<Identity> {
    const o = offer as Record<string, string | undefined>;
    const body: Record<string, string> = {};
    if (o.linkToken) body.linkToken = o.linkToken;
    if (o.provider) body.provider = o.provider;
    if (o.idToken) body.idToken = o.idToken;
    if (o.nonce) body.nonce = o.nonce;
    if (o.code) {
      body.code = o.code;
      const verifier = o.codeVerifier ?? (await this.storage.getItem(this.pkceKey()));
      if (verifier) body.codeVerifier = verifier;
      await this.storage.removeItem(this.pkceKey());
    }
    if (o.password) body.password = o.password;
    if (o.totpCode && !body.code) body.code = o.totpCode;
    return this.authed<Identity>('POST', '/v1/me/identities', body);
  }

  /** `DELETE /v1/me/identities/{id}` (needs a recent proof; 409 `last-credential`). */
  async unlinkIdentity(id: string): Promise<void> {
    await this.authed<void>('DELETE', `/v1/me/identities/${encodeURIComponent(id)}`);
  }

  /** `GET /v1/me/identities`. */
  async listIdentities(): Promise<Identity[]> {
    return this.authed<Identity[]>('GET', '/v1/me/identities');
  }

  // ------------------------------------------------------------ session from elsewhere, claims

  /**
   * Adopts a session obtained elsewhere (another device, a server-side
   * sign-in, a deep link): with a valid `accessToken` the user is read
   * with it (`GET /v1/me`); with an expired one the pair is refreshed.
   * Emits SIGNED_IN and shares the session with the other tabs.
   */
  async setSession(tokens: { accessToken: string; refreshToken: string }): Promise<Session> {
    const claims = decodeJwtClaims(tokens.accessToken);
    const exp = typeof claims?.['exp'] === 'number' ? (claims['exp'] as number) : 0;
    const expiresIn = Math.floor(exp - this.now() / 1000);
    let body: TokensResponse;
    if (expiresIn > 5) {
      const res = await this.send(
        new Request(this.resolve('/v1/me'), {
          headers: { authorization: `Bearer ${tokens.accessToken}`, accept: 'application/json' },
        }),
      );
      const user = await this.parse<User>(res);
      body = { accessToken: tokens.accessToken, refreshToken: tokens.refreshToken, tokenType: 'Bearer', expiresIn, user };
    } else {
      body = await this.anon<TokensResponse>('POST', '/v1/sessions/refresh', { refreshToken: tokens.refreshToken });
    }
    return this.saveSession(this.toSession(body), 'SIGNED_IN');
  }

  /**
   * The access token's claims, verified (signature with the server's JWKS,
   * expiry) with `jose`; `null` when signed out. The key set and the
   * claims of the current token are kept.
   */
  async getClaims(): Promise<Claims | null> {
    const token = await this.getAccessToken();
    return token ? this.claimsVerifier.verify(token) : null;
  }

  /** Whether the session's verified `roles` claim has `role` (e.g. `admin`). */
  async hasRole(role: string): Promise<boolean> {
    const roles = (await this.getClaims())?.roles;
    return Array.isArray(roles) && roles.includes(role);
  }

  /** The `amr` of the session's sign-in (`pwd`, `otp`, `hwk`, `email`, `fed`, ...), unverified; `[]` when signed out. */
  get amr(): string[] {
    const amr = this.session ? decodeJwtClaims(this.session.accessToken)?.['amr'] : undefined;
    return Array.isArray(amr) ? amr.filter((m): m is string => typeof m === 'string') : [];
  }

  /** `aal2` when this session's sign-in used a second factor or a passkey, else `aal1`; null signed out. */
  get assuranceLevel(): AssuranceLevel | null {
    return this.session ? assuranceOf(this.amr) : null;
  }

  protected assuranceLevels(): { current: AssuranceLevel | null; next: AssuranceLevel | null } {
    const s = this.session;
    if (!s) return { current: null, next: null };
    const current = assuranceOf(this.amr);
    return { current, next: s.user.mfaEnabled || (s.user.passkeys ?? 0) > 0 ? 'aal2' : current };
  }

  /** After a change the tokens' claims depend on: new tokens (and user), failures ignored. */
  protected async refreshAfterChange(): Promise<void> {
    await this.refreshSession({ force: true }).catch(() => undefined);
    await this.getUser().catch(() => undefined);
  }

  // ------------------------------------------------------------ account

  /** `DELETE /v1/me`: erases the account (needs a proof: given here, recent, or via `onReauthenticationRequired`); signs out. */
  async deleteUser(proof?: ReauthProof): Promise<void> {
    await this.authed<void>('DELETE', '/v1/me', await this.proofBody(proof));
    await this.clearSession();
  }

  /**
   * `POST /v1/me/email`: a link to `newEmail` (the change happens when it
   * is opened: `verifyEmail`); needs a proof like `deleteUser`.
   */
  async changeEmail(params: { newEmail: string } & Partial<{ password: string; code: string }>, proof?: ReauthProof): Promise<void> {
    await this.authed<void>('POST', '/v1/me/email', { ...params, ...(await this.proofBody(proof)) });
  }

  /** `POST /v1/email/verify` with the link's `token` or `email` + `emailCode`; USER_UPDATED when signed in. */
  async verifyEmail(params: { token: string } | { email: string; emailCode: string }): Promise<void> {
    await this.anon<void>('POST', '/v1/email/verify', params);
    if (this.session) await this.refreshAfterChange();
  }

  /** `POST /v1/email/verify/resend`: another verification mail (202; 429 when asked too often). */
  async resendVerification(): Promise<void> {
    await this.authed<void>('POST', '/v1/email/verify/resend');
  }

  /** `PUT /v1/me/avatar`: a PNG, JPEG or WebP image; emits USER_UPDATED (`avatarUrl`). */
  async uploadAvatar(image: Blob, contentType?: string): Promise<User> {
    const type = contentType ?? (image.type || 'application/octet-stream');
    const user = await this.authed<User>('PUT', '/v1/me/avatar', undefined, { body: image, headers: { 'content-type': type } });
    await this.storeUser(user);
    return user;
  }

  /** `DELETE /v1/me/avatar`; emits USER_UPDATED. */
  async deleteAvatar(): Promise<void> {
    await this.authed<void>('DELETE', '/v1/me/avatar');
    await this.getUser().catch(() => undefined);
  }

  /** The URL of a user's avatar (`GET /v1/users/{id}/avatar`), e.g. for `<img src>`. */
  avatarUrl(userId: string): string {
    return `${this.url}/v1/users/${encodeURIComponent(userId)}/avatar`;
  }

  /** `GET /v1/users/{id}/avatar`: the image; null when the user has none (404). */
  async getAvatar(userId: string): Promise<Blob | null> {
    const res = await this.send(new Request(this.avatarUrl(userId)));
    if (res.status === 404) {
      await res.body?.cancel().catch(() => undefined);
      return null;
    }
    if (!res.ok) throw await errorFromResponse(res);
    return res.blob();
  }

  /** `GET /v1/me/activity`: the user's own security events, newest first (`nextCursor` pages). */
  listActivity(params: { cursor?: string; limit?: number } = {}): Promise<SecurityEventPage> {
    return this.authed<SecurityEventPage>('GET', `/v1/me/activity${query(params)}`);
  }

  /** `POST /v1/security/not-me` with the token of a new-sign-in notice: ends every session, sends a reset mail. */
  async reportNotMe(token: string): Promise<void> {
    await this.anon<void>('POST', '/v1/security/not-me', { token });
  }

  /** `GET /v1/me/passkeys`. */
  listPasskeys(): Promise<Passkey[]> {
    return this.authed<Passkey[]>('GET', '/v1/me/passkeys');
  }

  /** `DELETE /v1/me/passkeys/{id}`. */
  async deletePasskey(id: string): Promise<void> {
    await this.authed<void>('DELETE', `/v1/me/passkeys/${encodeURIComponent(id)}`);
    await this.getUser().catch(() => undefined);
  }

  /** `GET /v1/me/consents`: the apps the user granted access. */
  listConsents(): Promise<Consent[]> {
    return this.authed<Consent[]>('GET', '/v1/me/consents');
  }

  /** `DELETE /v1/me/consents/{clientId}`: withdraws a grant and ends that app's sessions. */
  async revokeConsent(clientId: string): Promise<void> {
    await this.authed<void>('DELETE', `/v1/me/consents/${encodeURIComponent(clientId)}`);
  }

  // ------------------------------------------------------------ discovery and health (standard documents verbatim)

  /** `GET /.well-known/jwks.json` (verbatim: a JWK set as RFC 7517 names it). */
  getJwks(): Promise<Jwks> {
    return this.raw<Jwks>('/.well-known/jwks.json');
  }

  /** `GET /.well-known/openid-configuration` (verbatim). */
  getOpenIdConfiguration(): Promise<OpenIdConfiguration> {
    return this.raw<OpenIdConfiguration>('/.well-known/openid-configuration');
  }

  /** `GET /.well-known/apple-app-site-association` (verbatim; 404 unless configured). */
  getAppleAppSiteAssociation(): Promise<Record<string, unknown>> {
    return this.raw('/.well-known/apple-app-site-association');
  }

  /** `GET /.well-known/assetlinks.json` (verbatim; 404 unless configured). */
  getAssetLinks(): Promise<Array<Record<string, unknown>>> {
    return this.raw('/.well-known/assetlinks.json');
  }

  /** `GET /healthz`: the process is up. */
  checkHealth(): Promise<HealthStatus> {
    return this.anon<HealthStatus>('GET', '/healthz');
  }

  /** `GET /readyz`: the store answers (503 `PortcullisError` when not). */
  checkReady(): Promise<HealthStatus> {
    return this.anon<HealthStatus>('GET', '/readyz');
  }

  private async raw<T>(path: string): Promise<T> {
    const res = await this.send(new Request(this.resolve(path), { headers: { accept: 'application/json' } }));
    if (!res.ok) throw await errorFromResponse(res);
    return (await res.json()) as T;
  }
}

export { PortcullisError };

/** Creates a client. */
export function createClient(options: ClientOptions): PortcullisClient {
  return new PortcullisClient(options);
}
