// autoRefreshWithAppState: AppState 'change' events drive the client's
// foreground/background switch. React Native's AppState is replaced by an
// emitter with its interface (addEventListener returning {remove}).
import { describe, expect, it } from 'vitest';
import { autoRefreshWithAppState, type AppStateLike, type AutoRefreshClient } from '../../src/native/index.js';

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
