import { errorFromResponse, NetworkError, NotSignedInError, PortcullisError, ReauthenticationRequiredError } from './errors.js';
import { AutoRefresher } from './autorefresh.js';
import { defaultLock, type Lease, type RefreshLock } from './lock.js';
import { defaultStorage, type StorageAdapter } from './storage.js';
import type { AuthEvent, AuthStateListener, MfaChallenge, ReauthProof, Session, TokensResponse, User } from './types.js';

import { decodeJwtClaims, randomId } from './internal.js';
import { toCamel, toSnake } from './case.js';
import { boundJkt, defaultDpopSigner, DpopProofs, sendWithProof } from './dpop.js';
import type { ClientOptions } from './options.js';
import { browserPasskeys, type PasskeyAdapter } from './passkeys.js';

const STORED_VERSION = 2;

/** A session stored by 0.1 (snake_case, `v: 1`): read once, written back as v2. */
function fromV1(s: Record<string, unknown>): Session | null {
  const c = toCamel<Session>(s);
  return c && typeof c.refreshToken === 'string' ? c : null;
}

interface Stored {
  v: number;
  session: Session;
}

type ChannelMessage =
  | { t: 'session'; from: string; session: Session; event: AuthEvent }
  | { t: 'signed_out'; from: string; sid: string | null };

interface LockedOutcome {
  session: Session | null;
  events: Array<[AuthEvent, Session | null]>;
}

/**
 * What every call of the client stands on: the stored session shared by
 * tabs (storage, BroadcastChannel, the refresh lock), the refresh itself,
 * and HTTP with the token attached. {@link PortcullisClient} adds the API
 * calls on top.
 */
export abstract class SessionCore {
  readonly url: string;
  protected readonly storage: StorageAdapter;
  protected readonly storageKey: string;
  protected readonly fetchImpl: typeof fetch;
  protected readonly lock: RefreshLock;
  protected readonly lockName: string;
  protected readonly lockTimeoutMs: number;
  protected readonly refreshMarginMs: number;
  protected readonly requestTimeoutMs: number;
  protected readonly lockSettleMs: number;
  protected readonly tokenOrigins: string[] | '*';
  protected readonly now: () => number;
  protected readonly hooks: NonNullable<ClientOptions['hooks']>;
  protected readonly tabId = randomId();
  protected readonly listeners = new Set<AuthStateListener>();
  protected readonly dpop: DpopProofs | null;
  /** The authenticator of passkey calls (`options.passkeys`, else the browser's). */
  protected readonly passkeys: PasskeyAdapter;
  protected channel: BroadcastChannel | null = null;
  protected storageListener: ((e: StorageEvent) => void) | null = null;

  protected session: Session | null = null;
  protected readonly ready: Promise<void>;
  protected refreshing: Promise<Session | null> | null = null;
  protected pendingMfa: MfaChallenge | null = null;
  protected closed = false;
  protected readonly autoRefresher: AutoRefresher;
  protected readonly onReauthRequired: ClientOptions['onReauthenticationRequired'];
  /** The token of a password-reset link this app was opened with (see `detectRecoveryInUrl`). */
  protected recoveryToken: string | null = null;

  constructor(options: ClientOptions) {
    this.url = options.url.replace(/\/+$/, '');
    this.storage = options.storage ?? defaultStorage();
    this.storageKey = options.storageKey ?? 'portcullis.session';
    this.fetchImpl = options.fetch ?? ((...a: Parameters<typeof fetch>) => globalThis.fetch(...a));
    this.lock = options.lock ?? defaultLock();
    this.lockName = `portcullis-refresh:${this.storageKey}`;
    this.lockTimeoutMs = options.lockTimeoutMs ?? 5000;
    this.refreshMarginMs = options.refreshMarginMs ?? 60_000;
    this.requestTimeoutMs = options.requestTimeoutMs ?? 15_000;
    this.lockSettleMs = options.lockSettleMs ?? (this.lock.kind === 'web-locks' ? 30 : 0);
    this.now = options.now ?? (() => Date.now());
    this.hooks = options.hooks ?? {};
    this.passkeys = options.passkeys ?? browserPasskeys;
    const pageOrigin = (globalThis as { location?: Location }).location?.origin;
    this.tokenOrigins = options.tokenOrigins ?? (pageOrigin && pageOrigin !== 'null' ? [pageOrigin] : []);
    const d = options.dpop;
    this.dpop = d ? new DpopProofs(d === true ? defaultDpopSigner(this.storageKey) : d.signer) : null;

    if ((options.broadcast ?? true) && typeof BroadcastChannel !== 'undefined') {
      this.channel = new BroadcastChannel(`portcullis:${this.storageKey}`);
      this.channel.onmessage = (e: MessageEvent) => {
        void this.onChannelMessage(e.data as ChannelMessage);
      };
      // Node: do not keep the process alive for the channel alone.
      (this.channel as unknown as { unref?: () => void }).unref?.();
    }
    const win = globalThis as { addEventListener?: typeof addEventListener };
    if (this.storage.sharedAcrossTabs && typeof win.addEventListener === 'function') {
      this.storageListener = (e: StorageEvent) => {
        if (e.key === this.storageKey || e.key === null) void this.onStorageChanged();
      };
      win.addEventListener('storage', this.storageListener as EventListener);
    }
    this.onReauthRequired = options.onReauthenticationRequired;
    this.autoRefresher = new AutoRefresher({
      current: () => this.session,
      marginFor: (s) => this.marginFor(s),
      now: () => this.now(),
      refresh: () => this.refreshSession(),
    });
    this.ready = this.readStorage().then(
      (s) => {
        this.session = s;
      },
      () => {
        this.session = null;
      },
    );
    const loc = (globalThis as { location?: { href?: string } }).location;
    if ((options.detectRecoveryInUrl ?? true) && typeof loc?.href === 'string') this.readRecoveryUrl(loc.href);
    if (options.autoRefresh ?? typeof (globalThis as { document?: unknown }).document !== 'undefined') {
      this.startAutoRefresh();
    }
  }

  /** Keeps the token of a `…/reset-password?token=` URL; true when it was one. */
  protected readRecoveryUrl(url: string): boolean {
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      return false;
    }
    const token = u.searchParams.get('token');
    // https://app.example.com/…/reset-password?token=, or a deep link myapp://reset-password?token=.
    if (!token || !/(^|\/)reset-password\/?$/.test(u.host + u.pathname)) return false;
    this.recoveryToken = token;
    return true;
  }

  /**
   * A password-reset link opened in the app (React Native deep link, or a
   * URL read by the app itself): keeps its token for
   * `resetPassword({ newPassword })` and emits `PASSWORD_RECOVERY`. Returns
   * false (and does nothing) when `url` is not a reset link.
   */
  handleRecoveryUrl(url: string | URL): boolean {
    // Listeners subscribed from now on get it after INITIAL_SESSION; these now.
    const ls = [...this.listeners];
    if (!this.readRecoveryUrl(String(url))) return false;
    void this.ready.then(() => {
      for (const l of ls) if (this.listeners.has(l)) this.callListener(l, 'PASSWORD_RECOVERY', this.session);
    });
    return true;
  }

  /** The pending password-reset token (from the URL), if any. */
  get passwordRecoveryToken(): string | null {
    return this.recoveryToken;
  }

  // ------------------------------------------------------------ auto refresh

  /** Starts refreshing on a timer before expiry (see `autoRefresh`). Idempotent. */
  startAutoRefresh(): void {
    if (this.closed) return;
    this.autoRefresher.start();
    // Called before storage was read: arm the timer for the stored session too.
    void this.ready.then(() => this.autoRefresher.schedule());
  }

  /** Stops the timer; tokens are still refreshed on demand by calls. */
  stopAutoRefresh(): void {
    this.autoRefresher.stop();
  }

  /** Whether the auto-refresh timer is on. */
  get autoRefreshing(): boolean {
    return this.autoRefresher.isRunning;
  }

  /**
   * Tells the client the app went to the background (`false`) or came back
   * (`true`). Browsers need not call it (the client follows
   * `document.visibilityState`); React Native: `AppState.addEventListener('change',
   * (s) => client.setVisible(s === 'active'))`. While hidden the auto-refresh
   * timer is paused; on return a refresh that fell due happens at once.
   */
  setVisible(visible: boolean): void {
    this.autoRefresher.setVisible(visible);
  }

  /** Stops listening to other tabs. */
  close(): void {
    this.closed = true;
    this.autoRefresher.dispose();
    this.channel?.close();
    this.channel = null;
    if (this.storageListener) {
      (globalThis as { removeEventListener?: typeof removeEventListener }).removeEventListener?.(
        'storage',
        this.storageListener as EventListener,
      );
    }
    this.listeners.clear();
  }

  // ------------------------------------------------------------ events

  /**
   * Subscribes to session changes. The listener first gets
   * `INITIAL_SESSION` (once storage is read), then `SIGNED_IN`,
   * `SIGNED_OUT`, `TOKEN_REFRESHED`, `USER_UPDATED`, `MFA_REQUIRED` — also
   * when they happen in another tab. Listeners run outside every lock: they
   * may call the client. Returns the unsubscribe function.
   */
  onAuthStateChange(listener: AuthStateListener): () => void {
    this.listeners.add(listener);
    // A reset link the app was opened with (or handed over before this
    // subscription): PASSWORD_RECOVERY right after INITIAL_SESSION, however
    // late the listener subscribes, until the password is reset.
    const recovering = this.recoveryToken !== null;
    void this.ready.then(() => {
      if (this.listeners.has(listener)) this.callListener(listener, 'INITIAL_SESSION', this.session);
      if (recovering && this.recoveryToken && this.listeners.has(listener)) {
        this.callListener(listener, 'PASSWORD_RECOVERY', this.session);
      }
    });
    return () => {
      this.listeners.delete(listener);
    };
  }

  protected callListener(l: AuthStateListener, event: AuthEvent, session: Session | null): void {
    try {
      const r = l(event, session);
      if (r && typeof (r as Promise<void>).catch === 'function') {
        (r as Promise<void>).catch((e) => console.error('portcullis: auth state listener failed', e));
      }
    } catch (e) {
      console.error('portcullis: auth state listener failed', e);
    }
  }

  protected emit(event: AuthEvent, session: Session | null): void {
    if (event === 'SIGNED_IN' || event === 'TOKEN_REFRESHED' || event === 'SIGNED_OUT') this.autoRefresher?.schedule();
    // Always asynchronous, so that no caller's lock or stack is held.
    const ls = [...this.listeners];
    queueMicrotask(() => {
      for (const l of ls) this.callListener(l, event, session);
    });
  }

  protected emitAll(events: Array<[AuthEvent, Session | null]>): void {
    for (const [e, s] of events) this.emit(e, s);
  }

  // ------------------------------------------------------------ storage

  protected async readStorage(): Promise<Session | null> {
    const raw = await this.storage.getItem(this.storageKey);
    if (!raw) return null;
    try {
      const parsed = JSON.parse(raw) as Stored;
      if (parsed?.v === 1 && parsed.session) return fromV1(parsed.session as unknown as Record<string, unknown>);
      if (parsed?.v !== STORED_VERSION || !parsed.session?.refreshToken) return null;
      return parsed.session;
    } catch {
      return null;
    }
  }

  protected async writeStorage(session: Session | null): Promise<void> {
    if (session) {
      const stored: Stored = { v: STORED_VERSION, session };
      await this.storage.setItem(this.storageKey, JSON.stringify(stored));
    } else {
      await this.storage.removeItem(this.storageKey);
    }
  }

  protected post(msg: ChannelMessage): void {
    try {
      this.channel?.postMessage(msg);
    } catch {
      // A closed channel: other tabs will learn from storage or a 401.
    }
  }

  protected async onChannelMessage(msg: ChannelMessage): Promise<void> {
    if (this.closed || !msg || msg.from === this.tabId) return;
    await this.ready;
    if (msg.t === 'session') {
      const mine = this.session;
      const sameFamily = mine && mine.sessionId && mine.sessionId === msg.session.sessionId;
      // Another tab's session is ours when storage is shared, or when it is
      // our own family (a duplicated tab with sessionStorage).
      if (!this.storage.sharedAcrossTabs && !sameFamily) return;
      if (mine && mine.refreshToken === msg.session.refreshToken && mine.user.updatedAt === msg.session.user.updatedAt) {
        return;
      }
      // Messages may arrive out of order: never go back to an older pair.
      if (sameFamily && (msg.session.generation ?? 0) < (mine.generation ?? 0)) return;
      this.session = msg.session;
      if (!this.storage.sharedAcrossTabs) {
        await this.withLock(async () => {
          const cur = await this.readStorage();
          if (cur && cur.sessionId === msg.session.sessionId) await this.writeStorage(msg.session);
          return { session: msg.session, events: [] };
        }).catch(() => undefined);
      }
      const event: AuthEvent = !mine ? 'SIGNED_IN' : msg.event;
      this.emit(event, msg.session);
    } else if (msg.t === 'signed_out') {
      const mine = this.session;
      if (!mine) return;
      if (!this.storage.sharedAcrossTabs && msg.sid !== mine.sessionId) return;
      if (this.storage.sharedAcrossTabs) {
        // Believe storage, not the message: a newer sign-in may be there.
        const cur = await this.readStorage();
        if (cur && cur.refreshToken !== mine.refreshToken && cur.sessionId !== msg.sid) {
          this.session = cur;
          this.emit('SIGNED_IN', cur);
          return;
        }
      } else {
        await this.writeStorage(null).catch(() => undefined);
      }
      this.session = null;
      this.emit('SIGNED_OUT', null);
    }
  }

  protected async onStorageChanged(): Promise<void> {
    if (this.closed) return;
    await this.ready;
    const cur = await this.readStorage();
    const mine = this.session;
    if (!cur && mine) {
      this.session = null;
      this.emit('SIGNED_OUT', null);
    } else if (cur && (!mine || mine.refreshToken !== cur.refreshToken || mine.user.updatedAt !== cur.user.updatedAt)) {
      this.session = cur;
      if (!mine) this.emit('SIGNED_IN', cur);
      else if (mine.sessionId !== cur.sessionId) this.emit('SIGNED_IN', cur);
      else if (mine.refreshToken !== cur.refreshToken) this.emit('TOKEN_REFRESHED', cur);
      else this.emit('USER_UPDATED', cur);
    }
  }

  // ------------------------------------------------------------ locking

  /** Runs `fn` under the cross-tab lock; events are emitted after it is released. */
  protected async withLock(fn: (lease: Lease) => Promise<LockedOutcome>): Promise<Session | null> {
    const out = await this.lock.run(this.lockName, this.lockTimeoutMs, fn);
    this.emitAll(out.events);
    return out.session;
  }

  // ------------------------------------------------------------ sessions

  protected toSession(t: TokensResponse, previous?: Session): Session {
    const claims = decodeJwtClaims(t.accessToken);
    const sid = typeof claims?.['sid'] === 'string' ? (claims['sid'] as string) : null;
    return {
      generation: previous && previous.sessionId === sid ? (previous.generation ?? 0) + 1 : 0,
      accessToken: t.accessToken,
      refreshToken: t.refreshToken,
      tokenType: t.tokenType,
      expiresIn: t.expiresIn,
      expiresAt: this.now() + t.expiresIn * 1000,
      sessionId: sid,
      user: t.user as User,
    };
  }

  protected marginFor(s: Session): number {
    return Math.min(this.refreshMarginMs, (s.expiresIn * 1000) / 3);
  }

  protected isFresh(s: Session): boolean {
    return s.expiresAt - this.now() > this.marginFor(s);
  }

  protected isExpired(s: Session): boolean {
    return s.expiresAt <= this.now();
  }

  /** The session as kept (no network). */
  async getSession(): Promise<Session | null> {
    await this.ready;
    return this.session;
  }

  /**
   * An access token good for a request: refreshed first when it expires
   * within the margin. `null` when signed out. A network failure of a
   * refresh-ahead falls back to the current token while it is still valid.
   */
  async getAccessToken(): Promise<string | null> {
    await this.ready;
    const s = this.session;
    if (!s) return null;
    if (this.isFresh(s)) return s.accessToken;
    try {
      const next = await this.refreshSession();
      return next?.accessToken ?? null;
    } catch (e) {
      const cur = this.session;
      if (cur && !this.isExpired(cur)) return cur.accessToken;
      throw e;
    }
  }

  /**
   * Refreshes the session: once per tab at a time (concurrent callers share
   * one promise) and once across tabs (the lock; a tab that finds a pair
   * another tab stored just takes it). Resolves to the new session, or null
   * when the server refused the refresh token (signed out). Throws on a
   * network error or a non-401 failure, keeping the session.
   *
   * `staleAccessToken`: the token a request was refused with; the refresh
   * happens only if the stored session still has it.
   */
  refreshSession(opts: { staleAccessToken?: string; force?: boolean } = {}): Promise<Session | null> {
    if (this.refreshing) return this.refreshing;
    const p = this.doRefresh(opts).finally(() => {
      if (this.refreshing === p) this.refreshing = null;
    });
    this.refreshing = p;
    return p;
  }

  protected async doRefresh(opts: { staleAccessToken?: string; force?: boolean }): Promise<Session | null> {
    await this.ready;
    const before = this.session;
    return this.withLock(async (lease) => {
      await this.hooks.afterRefreshLock?.();
      const events: Array<[AuthEvent, Session | null]> = [];
      const adopt = (s: Session | null): LockedOutcome => {
        const mine = this.session;
        this.session = s;
        if (!s) {
          if (mine) events.push(['SIGNED_OUT', null]);
        } else if (!mine || mine.sessionId !== s.sessionId) {
          events.push(['SIGNED_IN', s]);
        } else if (mine.refreshToken !== s.refreshToken) {
          events.push(['TOKEN_REFRESHED', s]);
        }
        return { session: s, events };
      };

      let stored = await this.readStorage();
      if (!stored) return adopt(null);
      const mem = this.session;
      if (mem && mem.sessionId === stored.sessionId && (mem.generation ?? 0) > (stored.generation ?? 0)) {
        // Another tab's newer pair reached us (BroadcastChannel) before its
        // localStorage write did: the stored one is already retired.
        stored = mem;
      }
      const storedIsStale = opts.staleAccessToken ? stored.accessToken === opts.staleAccessToken : false;
      const changedMeanwhile = !before || stored.refreshToken !== before.refreshToken;
      if (!storedIsStale && this.isFresh(stored) && (changedMeanwhile || !opts.force)) {
        // Another tab (or client) refreshed while we waited: take its pair.
        return adopt(stored);
      }
      if (opts.staleAccessToken && !storedIsStale && !this.isExpired(stored)) {
        return adopt(stored);
      }

      const presented = stored.refreshToken;
      const base = stored;
      // A pair in storage other than the one we presented, and not an older one of the same family.
      const newerThanPresented = (cur: Session | null): cur is Session =>
        !!cur &&
        cur.refreshToken !== presented &&
        (cur.sessionId !== base.sessionId || (cur.generation ?? 0) >= (base.generation ?? 0));
      let res: Response;
      try {
        res = await this.request('POST', '/v1/sessions/refresh', { refreshToken: presented });
      } catch (e) {
        // Offline or timed out: never a sign-out. Keep what we have.
        throw e instanceof NetworkError ? e : new NetworkError('refresh failed', e);
      }
      if (res.ok) {
        const next = this.toSession(toCamel<TokensResponse>(await res.json()), stored);
        const cur = await this.readStorage();
        if (lease.lost && newerThanPresented(cur)) {
          // Our lock was stolen and the thief stored a pair: keep its.
          return adopt(cur);
        }
        if (!cur) {
          // Signed out (in another tab) while we refreshed.
          return adopt(null);
        }
        await this.writeStorage(next);
        this.post({ t: 'session', from: this.tabId, session: next, event: 'TOKEN_REFRESHED' });
        if (this.lockSettleMs > 0) await new Promise((r) => setTimeout(r, this.lockSettleMs));
        return adopt(next);
      }
      if (res.status === 401) {
        await res.body?.cancel().catch(() => undefined);
        const cur = await this.readStorage();
        if (newerThanPresented(cur)) {
          // Someone stored a newer pair meanwhile: ours was just outdated.
          return adopt(cur);
        }
        await this.writeStorage(null);
        this.post({ t: 'signed_out', from: this.tabId, sid: stored.sessionId });
        return adopt(null);
      }
      // 429, 5xx, ...: the refresh token is still good; try again later.
      throw await errorFromResponse(res);
    });
  }

  /** Replaces the session under the lock (sign-in) and tells the other tabs. */
  protected async saveSession(next: Session, event: AuthEvent): Promise<Session> {
    await this.ready;
    await this.withLock(async () => {
      await this.writeStorage(next);
      this.session = next;
      this.post({ t: 'session', from: this.tabId, session: next, event });
      return { session: next, events: [[event, next]] };
    });
    return next;
  }

  /** Clears the session locally (no network) and tells the other tabs. */
  protected async clearSession(): Promise<void> {
    await this.ready;
    await this.withLock(async () => {
      const mine = this.session;
      const stored = await this.readStorage();
      await this.writeStorage(null);
      this.session = null;
      const sid = stored?.sessionId ?? mine?.sessionId ?? null;
      this.post({ t: 'signed_out', from: this.tabId, sid });
      return { session: null, events: mine || stored ? [['SIGNED_OUT', null]] : [] };
    });
  }

  /** Updates the kept user (under the lock: never writes old tokens back). */
  protected async storeUser(user: User): Promise<void> {
    await this.withLock(async () => {
      const stored = await this.readStorage();
      if (!stored || stored.user.id !== user.id) return { session: this.session, events: [] };
      const next: Session = { ...stored, user };
      await this.writeStorage(next);
      this.session = next;
      this.post({ t: 'session', from: this.tabId, session: next, event: 'USER_UPDATED' });
      return { session: next, events: [['USER_UPDATED', next]] };
    });
  }

  // ------------------------------------------------------------ HTTP

  protected resolve(input: string): string {
    if (/^[a-z][a-z0-9+.-]*:/i.test(input)) return input;
    return this.url + (input.startsWith('/') ? input : `/${input}`);
  }

  /**
   * One HTTP exchange. With DPoP on, a request that issues tokens or
   * carries `Authorization: DPoP` gets a fresh proof, and a
   * `use_dpop_nonce` answer is retried once with the server's nonce.
   */
  protected send(req: Request): Promise<Response> {
    const once = (r: Request) => this.sendOnce(r);
    return this.dpop ? sendWithProof(this.dpop, this.url, req, once) : once(req);
  }

  /** One HTTP exchange with a time limit; network failures become NetworkError. */
  protected async sendOnce(req: Request): Promise<Response> {
    const ctrl = typeof AbortController !== 'undefined' ? new AbortController() : undefined;
    const timer = setTimeout(() => ctrl?.abort(), this.requestTimeoutMs);
    const outer = req.signal;
    const onOuterAbort = () => ctrl?.abort();
    outer?.addEventListener?.('abort', onOuterAbort);
    try {
      return await this.fetchImpl(req, ctrl ? { signal: ctrl.signal } : undefined);
    } catch (e) {
      if (outer?.aborted) throw e;
      throw new NetworkError(
        ctrl?.signal.aborted ? `request timed out after ${this.requestTimeoutMs} ms` : `network error: ${String((e as Error)?.message ?? e)}`,
        e,
      );
    } finally {
      clearTimeout(timer);
      outer?.removeEventListener?.('abort', onOuterAbort);
    }
  }

  protected request(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Response> {
    const h: Record<string, string> = { accept: 'application/json, application/problem+json', ...headers };
    if (body !== undefined) h['content-type'] = 'application/json';
    return this.send(
      new Request(this.resolve(path), {
        method,
        headers: h,
        ...(body !== undefined ? { body: JSON.stringify(toSnake(body)) } : {}),
      }),
    );
  }

  protected mayCarryToken(url: string): boolean {
    if (this.tokenOrigins === '*') return true;
    let origin: string;
    try {
      origin = new URL(url).origin;
    } catch {
      return false;
    }
    return origin === new URL(this.url).origin || this.tokenOrigins.includes(origin);
  }

  /**
   * `fetch` with the session's bearer token: refreshed ahead of expiry, and
   * on a 401 refreshed (unless another tab already did) and retried once. A
   * relative URL is resolved against Portcullis's URL. The token is only
   * sent to Portcullis and `tokenOrigins`.
   */
  async fetch(input: string | URL | Request, init?: RequestInit): Promise<Response> {
    const base =
      input instanceof Request ? new Request(input, init) : new Request(this.resolve(String(input)), init);
    if (!this.mayCarryToken(base.url)) return this.send(base);
    const retryCopy = base.clone();
    const token = await this.getAccessToken();
    if (!token) return this.send(base);
    base.headers.set('authorization', `${this.schemeOf(token)} ${token}`);
    const res = await this.send(base);
    if (res.status !== 401) return res;
    // A step-up refusal: the token is fine, a refresh would not help.
    if (/insufficient_user_authentication/.test(res.headers.get('www-authenticate') ?? '')) return res;
    const next = await this.refreshSession({ staleAccessToken: token });
    if (!next || next.accessToken === token) return res;
    await res.body?.cancel().catch(() => undefined);
    retryCopy.headers.set('authorization', `${this.schemeOf(next.accessToken)} ${next.accessToken}`);
    return this.send(retryCopy);
  }

  protected schemeOf(token: string): 'DPoP' | 'Bearer' {
    return this.dpop && boundJkt(token) ? 'DPoP' : 'Bearer';
  }

  /**
   * The RFC 7638 thumbprint of this client's DPoP key (created if needed);
   * `null` without `dpop`. Bound access tokens carry it as `cnf.jkt`.
   */
  async dpopThumbprint(): Promise<string | null> {
    return this.dpop ? this.dpop.thumbprint() : null;
  }

  /** Proves who the user is on this session (`POST /v1/me/reauthenticate`). */
  abstract reauthenticate(proof: ReauthProof): Promise<void>;

  /**
   * JSON call with the bearer; non-2xx -> PortcullisError. A 401
   * `reauthentication-required` emits `REAUTHENTICATION_REQUIRED` and, with
   * `onReauthenticationRequired`, is proven and retried once.
   */
  protected async authed<T>(method: string, path: string, body?: unknown, init: RequestInit = {}): Promise<T> {
    await this.ready;
    if (!this.session) throw new NotSignedInError();
    const call = async () => {
      const res = await this.fetch(path, {
        ...init,
        method,
        headers: {
          accept: 'application/json, application/problem+json',
          ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
          ...(init.headers as Record<string, string> | undefined),
        },
        ...(body !== undefined ? { body: JSON.stringify(toSnake(body)) } : {}),
      });
      return this.parse<T>(res);
    };
    try {
      return await call();
    } catch (e) {
      if (!(e instanceof ReauthenticationRequiredError)) throw e;
      this.emit('REAUTHENTICATION_REQUIRED', this.session);
      const proof = this.onReauthRequired ? await this.onReauthRequired(e.methods) : null;
      if (!proof) throw e;
      await this.reauthenticate(proof);
      return call();
    }
  }

  /** JSON call without the bearer. */
  protected async anon<T>(method: string, path: string, body?: unknown): Promise<T> {
    return this.parse<T>(await this.request(method, path, body));
  }

  protected async parse<T>(res: Response): Promise<T> {
    if (!res.ok) throw await errorFromResponse(res);
    if (res.status === 204 || res.status === 202) {
      const text = await res.text();
      return (text ? toCamel<T>(JSON.parse(text)) : undefined) as T;
    }
    return toCamel<T>(await res.json());
  }
}
