'use client';
/**
 * `@portcullis/client/react`: the session of a Portcullis client in React.
 *
 * ```tsx
 * const auth = createClient({ url });
 * root.render(<PortcullisProvider client={auth}><App /></PortcullisProvider>);
 * function Avatar() { const user = useUser(); return user ? <img src={user.avatar_url} /> : null; }
 * ```
 *
 * React is a peer dependency (optional: the main entry never imports it).
 * Safe for server rendering: nothing touches `window` or the client during
 * render; the provider subscribes in an effect.
 */
import {
  createContext,
  createElement,
  useContext,
  useEffect,
  useRef,
  useState,
  useSyncExternalStore,
  type ReactNode,
} from 'react';
import type { AuthEvent, Session, User } from '../types.js';
import { AuthStore, type AuthEventHandler, type AuthSnapshot, type AuthStateSource } from './store.js';

export { AuthStore, type AuthEventHandler, type AuthSnapshot, type AuthStateSource } from './store.js';

interface ContextValue {
  client: AuthStateSource<unknown>;
  store: AuthStore<unknown, unknown>;
}

const PortcullisContext = createContext<ContextValue | null>(null);
PortcullisContext.displayName = 'PortcullisContext';

export interface PortcullisProviderProps<C extends AuthStateSource<S>, S = Session> {
  /** The client (`createClient(...)`): create it once, outside render or in a `useState` initialiser. */
  client: C;
  /**
   * The session a server render knew (e.g. from a cookie). Undefined (the
   * default): unknown, so the hooks report `isLoading` until the client
   * has read its storage. `null`: known signed out.
   */
  initialSession?: S | null;
  children?: ReactNode;
}

/**
 * Makes `client`'s session available to the hooks below it. Subscribes to
 * `onAuthStateChange` while mounted and unsubscribes on unmount. Several
 * providers (several clients) may be nested or side by side; each hook
 * reads the nearest.
 */
export function PortcullisProvider<C extends AuthStateSource<S>, S = Session>(
  props: PortcullisProviderProps<C, S>,
): ReactNode {
  const { client, initialSession, children } = props;
  const [value, setValue] = useState<ContextValue>(() => ({
    client: client as AuthStateSource<unknown>,
    store: new AuthStore<unknown, unknown>(initialSession),
  }));
  let current = value;
  if (value.client !== client) {
    // A new client: a new store (React re-renders at once with it).
    current = { client: client as AuthStateSource<unknown>, store: new AuthStore<unknown, unknown>(undefined) };
    setValue(current);
  }
  useEffect(() => current.store.connect(current.client), [current]);
  return createElement(PortcullisContext.Provider, { value: current }, children);
}

function useCtx(hook: string): ContextValue {
  const ctx = useContext(PortcullisContext);
  if (!ctx) throw new Error(`${hook}() must be used inside <PortcullisProvider client={...}>`);
  return ctx;
}

function useSelected<T>(hook: string, select: (s: AuthSnapshot<unknown, unknown>) => T): T {
  const { store } = useCtx(hook);
  return useSyncExternalStore(
    store.subscribe,
    () => select(store.getSnapshot()),
    () => select(store.getServerSnapshot()),
  );
}

/** The client of the nearest provider. */
export function usePortcullis<C = AuthStateSource<Session>>(): C {
  return useCtx('usePortcullis').client as C;
}

/**
 * The session (null when signed out or not yet known). Renders again on
 * sign-in, sign-out, a token refresh and a profile update.
 */
export function useSession<S = Session>(): S | null {
  return useSelected('useSession', (s) => s.session) as S | null;
}

/**
 * The signed-in user (null when signed out or not yet known). Renders again
 * when the user changes, not for a token refresh.
 */
export function useUser<U = User>(): U | null {
  return useSelected('useUser', (s) => s.user) as U | null;
}

/** Everything at once: `{session, user, event, isLoading}`. */
export function useAuthState<S = Session, U = User>(): AuthSnapshot<S, U> {
  return useSelected('useAuthState', (s) => s) as AuthSnapshot<S, U>;
}

/**
 * Calls `handler` for each event the provider hears (`PASSWORD_RECOVERY`:
 * show the new-password form; `REAUTHENTICATION_REQUIRED`: ask for the
 * password; ...), optionally only for the events listed. The handler may
 * change between renders without resubscribing.
 */
export function useAuthEvent<S = Session>(handler: AuthEventHandler<S>, events?: readonly AuthEvent[]): void {
  const { store } = useCtx('useAuthEvent');
  const ref = useRef(handler);
  const filter = events ? events.join(' ') : '';
  useEffect(() => {
    ref.current = handler;
  });
  useEffect(() => {
    const wanted = filter ? new Set(filter.split(' ')) : null;
    return store.onEvent((event, session) => {
      if (!wanted || wanted.has(event)) ref.current(event, session as S | null);
    });
  }, [store, filter]);
}
