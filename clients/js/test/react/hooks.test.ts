// @vitest-environment jsdom
//
// @portcullis/client/react run for real: react-dom in jsdom, the hooks fed
// by real clients signed in against a real Portcullis (the debug binary, or
// PORTCULLIS_BIN). No JSX (the package compiles without it): createElement.
import { act, createElement as h, StrictMode, useEffect, type ReactNode } from 'react';
import { createRoot, hydrateRoot, type Root } from 'react-dom/client';
import { renderToString } from 'react-dom/server';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createClient, memoryStorage, processLock, type PortcullisClient } from '../../src/index.js';
import type { AuthEvent, Session, User } from '../../src/types.js';
import {
  PortcullisProvider,
  useAuthEvent,
  useAuthState,
  usePortcullis,
  useSession,
  useUser,
  type AuthSnapshot,
  type AuthStateSource,
} from '../../src/react/index.js';
// @ts-ignore: a plain ES module of the end-to-end harness
import { startPortcullis } from '../e2e/harness.mjs';

(globalThis as { IS_REACT_ACT_ENVIRONMENT?: boolean }).IS_REACT_ACT_ENVIRONMENT = true;

type Server = { base: string; stop: () => Promise<void> };
const PASSWORD = 'correct horse battery staple 42';
let server: Server;

// jsdom brings its own AbortSignal, which Node's fetch refuses: the test's
// fetch leaves the client's time-limit signal out (nothing else changes).
// The client passes a complete Request and `{signal}` as the init.
const nodeFetch = ((input: RequestInfo | URL) => fetch(input)) as typeof fetch;

function newClient(storage = memoryStorage(), storageKey = `react.${Math.random().toString(36).slice(2)}`): PortcullisClient {
  return createClient({
    url: server.base,
    storage,
    storageKey,
    fetch: nodeFetch,
    lock: processLock(),
    broadcast: false,
  });
}

async function newUser(c: PortcullisClient): Promise<string> {
  const email = `react-${Math.random().toString(36).slice(2)}@example.com`;
  await c.signUp({ email, password: PASSWORD });
  return email;
}

/** Counts live subscriptions of the real client it wraps. */
function counting(c: PortcullisClient) {
  const source = {
    active: 0,
    onAuthStateChange(l: (e: AuthEvent, s: Session | null) => void) {
      source.active++;
      const off = c.onAuthStateChange(l);
      let done = false;
      return () => {
        if (!done) source.active--;
        done = true;
        off();
      };
    },
  };
  return source;
}

async function until(what: string, cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for: ${what}`);
    await act(async () => {
      await new Promise((r) => setTimeout(r, 10));
    });
  }
}

let roots: Root[] = [];
function mount(node: ReactNode): HTMLElement {
  const el = document.createElement('div');
  document.body.append(el);
  const root = createRoot(el);
  roots.push(root);
  act(() => root.render(node));
  return el;
}

beforeAll(async () => {
  server = await startPortcullis({ PORTCULLIS_ACCESS_TTL: '60s' });
}, 30_000);
afterAll(async () => {
  await server?.stop();
});
afterEach(() => {
  for (const r of roots) act(() => r.unmount());
  roots = [];
  document.body.replaceChildren();
});

/** Shows who is signed in and records each committed snapshot. */
function Who(props: { log?: AuthSnapshot[]; id?: string }): ReactNode {
  const state = useAuthState();
  useEffect(() => {
    props.log?.push(state);
  }, [state]);
  const text = state.isLoading ? 'loading' : state.user ? `in:${state.user.email}` : 'out';
  return h('span', { 'data-who': props.id ?? 'who' }, text);
}

const text = (el: HTMLElement, id = 'who') => el.querySelector(`[data-who="${id}"]`)?.textContent;

describe('PortcullisProvider and the hooks', () => {
  it('INITIAL_SESSION renders once: loading, then the stored session, nothing more', async () => {
    const storage = memoryStorage();
    const first = newClient(storage, 'react.shared');
    const email = await newUser(first);
    await first.signIn({ email, password: PASSWORD });
    // A second client over the same storage starts from the stored session.
    const c = newClient(storage, 'react.shared');
    let renders = 0;
    const log: AuthSnapshot[] = [];
    function Counted(): ReactNode {
      const { isLoading, user } = useAuthState();
      renders++;
      return h('span', { 'data-who': 'counted' }, isLoading ? 'loading' : user?.email);
    }
    const el = mount(h(PortcullisProvider, { client: c }, h(Who, { log }), h(Counted)));
    await until('signed in', () => text(el) === `in:${email}`);
    await act(async () => new Promise((r) => setTimeout(r, 100)));
    expect(log.map((s) => [s.isLoading, s.event])).toEqual([
      [true, null],
      [false, 'INITIAL_SESSION'],
    ]);
    expect(renders).toBe(2);
  });

  it('under StrictMode (effects twice) INITIAL_SESSION still commits once and one subscription stays', async () => {
    const src = counting(newClient());
    const log: AuthSnapshot[] = [];
    const el = mount(h(StrictMode, null, h(PortcullisProvider, { client: src }, h(Who, { log }))));
    await until('signed out known', () => text(el) === 'out');
    await act(async () => new Promise((r) => setTimeout(r, 100)));
    expect(log.filter((s) => !s.isLoading)).toHaveLength(1);
    expect(src.active).toBe(1);
  });

  it('sign-in, profile update and sign-out reach the consumers; a token refresh re-renders useSession, not useUser', async () => {
    const c = newClient();
    const email = await newUser(c);
    let userRenders = 0;
    let sessionRenders = 0;
    const seen: Array<User | null> = [];
    function UserView(): ReactNode {
      const user = useUser();
      userRenders++;
      seen.push(user);
      return h('i', { 'data-who': 'user' }, user ? `${user.email}/${user.locale ?? '-'}` : 'none');
    }
    function SessionView(): ReactNode {
      const s = useSession();
      sessionRenders++;
      return h('b', { 'data-who': 'token' }, s ? s.accessToken.slice(-12) : 'none');
    }
    const el = mount(h(PortcullisProvider, { client: c }, h(Who), h(UserView), h(SessionView)));
    await until('signed out known', () => text(el) === 'out');

    await act(async () => {
      await c.signIn({ email, password: PASSWORD });
    });
    await until('signed in', () => text(el) === `in:${email}`);
    expect(text(el, 'user')).toBe(`${email}/-`);

    await act(async () => {
      await c.updateUser({ locale: 'fr' });
    });
    await until('USER_UPDATED', () => text(el, 'user') === `${email}/fr`);

    const u0 = userRenders;
    const s0 = sessionRenders;
    const tokenBefore = text(el, 'token');
    await act(async () => {
      await c.refreshSession({ force: true });
    });
    await until('TOKEN_REFRESHED', () => text(el, 'token') !== tokenBefore);
    expect(sessionRenders).toBeGreaterThan(s0);
    expect(userRenders).toBe(u0);

    await act(async () => {
      await c.signOut();
    });
    await until('signed out', () => text(el) === 'out');
    expect(text(el, 'user')).toBe('none');
    expect(text(el, 'token')).toBe('none');
    expect(seen.at(-1)).toBeNull();
  });

  it('unmounting the provider unsubscribes from the client; later events reach nobody', async () => {
    const c = newClient();
    const email = await newUser(c);
    const src = counting(c);
    const heard: AuthEvent[] = [];
    function Listener(): ReactNode {
      useAuthEvent((e) => heard.push(e));
      return h(Who);
    }
    const el = document.createElement('div');
    const root = createRoot(el);
    act(() => root.render(h(PortcullisProvider, { client: src }, h(Listener))));
    await until('ready', () => el.textContent === 'out');
    expect(src.active).toBe(1);
    act(() => root.unmount());
    expect(src.active).toBe(0);
    await c.signIn({ email, password: PASSWORD });
    await new Promise((r) => setTimeout(r, 50));
    expect(heard).toEqual(['INITIAL_SESSION']);
  });

  it('two providers do not cross: side by side and nested, each hook reads its own client', async () => {
    const a = newClient();
    const b = newClient();
    const emailA = await newUser(a);
    const emailB = await newUser(b);
    function Client(props: { id: string }): ReactNode {
      const c = usePortcullis<PortcullisClient>();
      return h('u', { 'data-who': `${props.id}-client` }, c === a ? 'a' : c === b ? 'b' : '?');
    }
    const el = mount(
      h(
        'div',
        null,
        h(PortcullisProvider, { client: a }, h(Who, { id: 'a' }), h(Client, { id: 'a' }),
          h(PortcullisProvider, { client: b }, h(Who, { id: 'nested-b' }), h(Client, { id: 'nested-b' }))),
        h(PortcullisProvider, { client: b }, h(Who, { id: 'b' })),
      ),
    );
    await until('ready', () => text(el, 'a') === 'out' && text(el, 'b') === 'out' && text(el, 'nested-b') === 'out');
    expect([text(el, 'a-client'), text(el, 'nested-b-client')]).toEqual(['a', 'b']);

    await act(async () => {
      await a.signIn({ email: emailA, password: PASSWORD });
    });
    await until('a signed in', () => text(el, 'a') === `in:${emailA}`);
    await act(async () => new Promise((r) => setTimeout(r, 50)));
    expect([text(el, 'b'), text(el, 'nested-b')]).toEqual(['out', 'out']);

    await act(async () => {
      await b.signIn({ email: emailB, password: PASSWORD });
    });
    await until('b signed in', () => text(el, 'b') === `in:${emailB}` && text(el, 'nested-b') === `in:${emailB}`);
    expect(text(el, 'a')).toBe(`in:${emailA}`);

    await act(async () => {
      await a.signOut();
    });
    await until('a signed out', () => text(el, 'a') === 'out');
    expect([text(el, 'b'), text(el, 'nested-b')]).toEqual([`in:${emailB}`, `in:${emailB}`]);
  });

  it('useAuthEvent: only the listed events, with the latest handler', async () => {
    const c = newClient();
    const email = await newUser(c);
    const heard: string[] = [];
    function Listener(props: { tag: string }): ReactNode {
      useAuthEvent((e, s) => heard.push(`${props.tag}:${e}:${s ? 'session' : 'null'}`), ['SIGNED_IN', 'SIGNED_OUT']);
      return null;
    }
    const el = document.createElement('div');
    const root = createRoot(el);
    roots.push(root);
    act(() => root.render(h(PortcullisProvider, { client: c }, h(Listener, { tag: 'v1' }))));
    await act(async () => {
      await c.signIn({ email, password: PASSWORD });
    });
    await until('SIGNED_IN heard', () => heard.length === 1);
    act(() => root.render(h(PortcullisProvider, { client: c }, h(Listener, { tag: 'v2' }))));
    await act(async () => {
      await c.refreshSession({ force: true });
      await c.signOut();
    });
    await until('SIGNED_OUT heard', () => heard.length === 2);
    expect(heard).toEqual(['v1:SIGNED_IN:session', 'v2:SIGNED_OUT:null']);
  });

  it('hydrates the server HTML without a mismatch, then shows the stored session', async () => {
    const storage = memoryStorage();
    const first = newClient(storage, 'react.hydrate');
    const email = await newUser(first);
    await first.signIn({ email, password: PASSWORD });
    const c = newClient(storage, 'react.hydrate');
    const serverClient = { onAuthStateChange: () => () => undefined };
    const el = document.createElement('div');
    el.innerHTML = renderToString(h(PortcullisProvider, { client: serverClient, initialSession: null }, h(Who)));
    expect(el.textContent).toBe('out');
    document.body.append(el);
    const problems: unknown[] = [];
    let root!: Root;
    act(() => {
      root = hydrateRoot(el, h(PortcullisProvider, { client: c, initialSession: null }, h(Who)), {
        onRecoverableError: (e) => void problems.push(e),
      });
    });
    roots.push(root);
    await until('the stored session after hydration', () => text(el) === `in:${email}`);
    expect(problems).toEqual([]);
  });

  it('a new client prop replaces the subscription', async () => {
    const a = counting(newClient());
    const b = counting(newClient());
    const el = document.createElement('div');
    const root = createRoot(el);
    roots.push(root);
    act(() => root.render(h(PortcullisProvider, { client: a as AuthStateSource }, h(Who))));
    await until('ready', () => el.textContent === 'out');
    act(() => root.render(h(PortcullisProvider, { client: b as AuthStateSource }, h(Who))));
    await until('ready again', () => el.textContent === 'out');
    expect([a.active, b.active]).toEqual([0, 1]);
  });
});
