// autoRefreshWithAppState: AppState 'change' events drive the client's
// foreground/background switch. React Native's AppState is replaced by an
// emitter with its interface (addEventListener returning {remove}).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient, memoryStorage, processLock } from '../../src/index.js';
import { autoRefreshWithAppState, type AppStateLike, type AutoRefreshClient } from '../../src/native/index.js';
// @ts-ignore: a plain ES module of the end-to-end harness
import { startPortcullis } from '../e2e/harness.mjs';

export class FakeAppState implements AppStateLike {
  currentState: string | null;
  readonly listeners = new Set<(s: string) => void>();
  constructor(initial: string | null = 'active') {
    this.currentState = initial;
  }
  addEventListener(_type: 'change', l: (s: string) => void) {
    this.listeners.add(l);
    return { remove: () => void this.listeners.delete(l) };
  }
  set(state: string): void {
    this.currentState = state;
    for (const l of [...this.listeners]) l(state);
  }
}

function recorder(withVisible: boolean): AutoRefreshClient & { calls: string[] } {
  const calls: string[] = [];
  const c: AutoRefreshClient & { calls: string[] } = {
    calls,
    startAutoRefresh: () => void calls.push('start'),
    stopAutoRefresh: () => void calls.push('stop'),
  };
  if (withVisible) c.setVisible = (v) => void calls.push(v ? 'visible' : 'hidden');
  return c;
}

describe('autoRefreshWithAppState', () => {
  it('with setVisible: starts, follows background/foreground, stops and unsubscribes on dispose', () => {
    const app = new FakeAppState('active');
    const c = recorder(true);
    const off = autoRefreshWithAppState(c, app);
    expect(c.calls).toEqual(['visible', 'start']);
    app.set('inactive');
    app.set('background');
    app.set('active');
    expect(c.calls).toEqual(['visible', 'start', 'hidden', 'hidden', 'visible']);
    off();
    off();
    expect(app.listeners.size).toBe(0);
    app.set('background');
    expect(c.calls.slice(5)).toEqual(['stop']);
  });

  it('launched in the background: hidden until the app comes to the front', () => {
    const app = new FakeAppState('background');
    const c = recorder(true);
    autoRefreshWithAppState(c, app);
    expect(c.calls).toEqual(['hidden', 'start']);
    app.set('active');
    expect(c.calls.at(-1)).toBe('visible');
  });

  it('without setVisible: start and stop', () => {
    const app = new FakeAppState(null);
    const c = recorder(false);
    const off = autoRefreshWithAppState(c, app);
    app.set('background');
    app.set('active');
    off();
    expect(c.calls).toEqual(['start', 'stop', 'start', 'stop']);
  });

  it('older React Native: removeEventListener when addEventListener returns nothing', () => {
    const ls = new Set<(s: string) => void>();
    const app: AppStateLike = {
      currentState: 'active',
      addEventListener: (_t, l) => void ls.add(l),
      removeEventListener: (_t, l) => void ls.delete(l),
    };
    const off = autoRefreshWithAppState(recorder(true), app);
    expect(ls.size).toBe(1);
    off();
    expect(ls.size).toBe(0);
  });
});

describe('autoRefreshWithAppState with the real client (real Portcullis, 2 s access tokens)', () => {
  type Server = { base: string; stop: () => Promise<void> };
  let server: Server;
  beforeAll(async () => {
    server = await startPortcullis({ PORTCULLIS_ACCESS_TTL: '2s' });
  }, 30_000);
  afterAll(async () => {
    await server?.stop();
  });
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  const within = async (ms: number, cond: () => boolean) => {
    const end = Date.now() + ms;
    while (!cond() && Date.now() < end) await sleep(20);
    return cond();
  };

  it('refreshes in the foreground, not in the background, at once on return, never after dispose', async () => {
    const refreshes: number[] = []; // when each refresh request started
    const landed: number[] = []; // when each answer came back
    const c = createClient({
      url: server.base,
      storage: memoryStorage(),
      lock: processLock(),
      broadcast: false,
      autoRefresh: false,
      fetch: (async (input: RequestInfo | URL, init?: RequestInit) => {
        const req = input instanceof Request ? input : new Request(input, init);
        const isRefresh = new URL(req.url).pathname === '/v1/sessions/refresh';
        if (isRefresh) refreshes.push(Date.now());
        const res = await fetch(req, init);
        if (isRefresh) landed.push(Date.now());
        return res;
      }) as typeof fetch,
    });
    const email = `appstate-${Math.random().toString(36).slice(2)}@example.com`;
    const password = 'correct horse battery staple 42';
    await c.signUp({ email, password });
    await c.signIn({ email, password });
    await sleep(2500);
    expect(refreshes).toHaveLength(0); // Node: no auto refresh until wired

    const app = new FakeAppState('active');
    const off = autoRefreshWithAppState(c, app);
    expect(await within(1500, () => refreshes.length >= 1)).toBe(true); // it was due: at once
    await sleep(2000);
    expect(refreshes.length).toBeGreaterThanOrEqual(2); // every ~1.3 s of a 2 s token

    app.set('background');
    // A refresh already on the wire may still land; none starts after it.
    expect(await within(5000, () => landed.length === refreshes.length)).toBe(true);
    const inForeground = refreshes.length;
    await sleep(2600); // longer than the token's 2 s
    expect(refreshes.length).toBe(inForeground);
    const before = (await c.getSession())!;
    expect(before.expiresAt).toBeLessThan(Date.now()); // expired while in the background

    const back = Date.now();
    app.set('active');
    expect(await within(3000, () => refreshes.length >= inForeground + 1)).toBe(true);
    expect(refreshes[inForeground]! - back).toBeLessThan(2500);
    expect(await within(5000, () => landed.length > inForeground)).toBe(true);
    expect((await c.getSession())!.expiresAt).toBeGreaterThan(landed[inForeground]!);

    off();
    const atOff = refreshes.length;
    await sleep(2500);
    expect(refreshes.length).toBe(atOff);
    expect(app.listeners.size).toBe(0);
    c.close();
  }, 20_000);
});
