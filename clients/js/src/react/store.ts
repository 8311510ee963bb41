/**
 * The state behind `PortcullisProvider`: one small store per provider that
 * follows the client's `onAuthStateChange` and hands React stable
 * snapshots (`useSyncExternalStore`). No React and no `window` here.
 */
import type { AuthEvent, Session, User } from '../types.js';

/**
 * What the provider needs of a client: `onAuthStateChange`, returning its
 * unsubscribe function. `PortcullisClient` is one; so is anything shaped
 * like it (a test double, a wrapper).
 */
export interface AuthStateSource<S = Session> {
  onAuthStateChange(listener: (event: AuthEvent, session: S | null) => void | Promise<void>): () => void;
}

/** What the hooks read: one immutable object per change. */
export interface AuthSnapshot<S = Session, U = User> {
  /** The session as the client keeps it; null when signed out (or not yet known). */
  readonly session: S | null;
  /** `session.user`, the same object as long as the profile is unchanged (a token refresh keeps it). */
  readonly user: U | null;
  /** The last event heard; null before the first. */
  readonly event: AuthEvent | null;
  /** True until the client has read its storage (`INITIAL_SESSION`). */
  readonly isLoading: boolean;
}

export type AuthEventHandler<S = Session> = (event: AuthEvent, session: S | null) => void;

/**
 * Events that say something happened without changing the session (a
 * two-factor step, a step-up, a reset link opened, possibly before storage
 * is read): they keep the session and the loading state there are.
 */
const KEEPS_SESSION: ReadonlySet<AuthEvent> = new Set<AuthEvent>(['MFA_REQUIRED', 'REAUTHENTICATION_REQUIRED', 'PASSWORD_RECOVERY']);

function userOf<U>(session: unknown): U | null {
  const u = (session as { user?: U } | null)?.user;
  return u ?? null;
}

function sameJson(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  try {
    return JSON.stringify(a) === JSON.stringify(b);
  } catch {
    return false;
  }
}

/**
 * Follows one client. `connect` subscribes to it (the provider does that in
 * an effect, so a server render never does); the hooks subscribe to the
 * store. A repeated `INITIAL_SESSION` with the same session (React's
 * StrictMode connects twice) changes nothing, so consumers render once.
 */
export class AuthStore<S = Session, U = User> {
  private snap: AuthSnapshot<S, U>;
  private readonly initial: AuthSnapshot<S, U>;
  private readonly subscribers = new Set<() => void>();
  private readonly handlers = new Set<AuthEventHandler<S>>();

  /** `initialSession`: what a server render knew (undefined: unknown, loading). */
  constructor(initialSession?: S | null) {
    this.initial = Object.freeze({
      session: initialSession ?? null,
      user: userOf<U>(initialSession ?? null),
      event: null,
      isLoading: initialSession === undefined,
    });
    this.snap = this.initial;
  }

  /** Subscribes to `client`; returns the unsubscribe function. */
  connect(client: AuthStateSource<S>): () => void {
    return client.onAuthStateChange((event, session) => this.receive(event, session));
  }

  /** Applies one event of the client. */
  receive(event: AuthEvent, session: S | null): void {
    const prev = this.snap;
    const keeps = KEEPS_SESSION.has(event);
    const nextSession = keeps ? prev.session : session;
    const nextUserRaw = userOf<U>(nextSession);
    // Keep the user object while the profile is the same (a refresh), so
    // `useUser` consumers do not render for a new token.
    const user = sameJson(prev.user, nextUserRaw) ? prev.user : nextUserRaw;
    const isLoading = keeps ? prev.isLoading : false;
    const sameState = nextSession === prev.session && user === prev.user && isLoading === prev.isLoading;
    if (!(sameState && event === 'INITIAL_SESSION')) {
      if (!sameState || prev.event !== event) {
        this.snap = Object.freeze({ session: nextSession, user, event, isLoading });
        for (const s of [...this.subscribers]) s();
      }
    }
    for (const h of [...this.handlers]) {
      try {
        h(event, session);
      } catch (e) {
        console.error('portcullis: auth event handler failed', e);
      }
    }
  }

  /** For `useSyncExternalStore`. */
  readonly subscribe = (onChange: () => void): (() => void) => {
    this.subscribers.add(onChange);
    return () => {
      this.subscribers.delete(onChange);
    };
  };

  readonly getSnapshot = (): AuthSnapshot<S, U> => this.snap;

  /** What a server render (and hydration) sees: the initial session only. */
  readonly getServerSnapshot = (): AuthSnapshot<S, U> => this.initial;

  /** Calls `handler` for every event the provider hears; returns the unsubscribe function. */
  onEvent(handler: AuthEventHandler<S>): () => void {
    this.handlers.add(handler);
    return () => {
      this.handlers.delete(handler);
    };
  }
}
