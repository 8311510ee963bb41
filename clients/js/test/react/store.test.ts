// @vitest-environment node
//
// The provider's store on its own: which events change the session and the
// loading state, which only the last event, and when subscribers hear.
import { describe, expect, it, vi } from 'vitest';
import { AuthStore } from '../../src/react/store.js';
import type { Session } from '../../src/types.js';

const session = (token: string, name = 'Ada') =>
  ({ accessToken: token, sessionId: 's1', user: { id: 'u1', email: 'ada@example.com', displayName: name } }) as unknown as Session;

function store() {
  const s = new AuthStore<Session>();
  const heard = vi.fn();
  s.subscribe(heard);
  return { s, heard };
}

describe('AuthStore', () => {
  it('a reset link heard before storage is read keeps "loading"; INITIAL_SESSION ends it', () => {
    const { s, heard } = store();
    s.receive('PASSWORD_RECOVERY', null);
    expect(s.getSnapshot()).toMatchObject({ isLoading: true, session: null, event: 'PASSWORD_RECOVERY' });
    const a = session('a');
    s.receive('INITIAL_SESSION', a);
    expect(s.getSnapshot()).toMatchObject({ isLoading: false, session: a, event: 'INITIAL_SESSION' });
    expect(heard).toHaveBeenCalledTimes(2);
  });

  it('MFA_REQUIRED (null) and REAUTHENTICATION_REQUIRED keep the session', () => {
    const { s } = store();
    const a = session('a');
    s.receive('SIGNED_IN', a);
    s.receive('MFA_REQUIRED', null);
    expect(s.getSnapshot().session).toBe(a);
    s.receive('REAUTHENTICATION_REQUIRED', a);
    expect(s.getSnapshot()).toMatchObject({ session: a, event: 'REAUTHENTICATION_REQUIRED' });
    s.receive('SIGNED_OUT', null);
    expect(s.getSnapshot()).toMatchObject({ session: null, user: null, event: 'SIGNED_OUT' });
  });

  it('a second INITIAL_SESSION with the same session changes nothing and notifies nobody', () => {
    const { s, heard } = store();
    const a = session('a');
    s.receive('INITIAL_SESSION', a);
    const snap = s.getSnapshot();
    s.receive('INITIAL_SESSION', a);
    expect(s.getSnapshot()).toBe(snap);
    expect(heard).toHaveBeenCalledTimes(1);
  });

  it('a refresh keeps the user object; a profile change replaces it', () => {
    const { s } = store();
    s.receive('SIGNED_IN', session('a'));
    const user = s.getSnapshot().user;
    s.receive('TOKEN_REFRESHED', session('b'));
    expect(s.getSnapshot().session?.accessToken).toBe('b');
    expect(s.getSnapshot().user).toBe(user);
    s.receive('USER_UPDATED', session('b', 'Ada L.'));
    expect(s.getSnapshot().user).not.toBe(user);
    expect(s.getSnapshot().user?.displayName).toBe('Ada L.');
  });

  it('event handlers get every event; one that throws does not stop the others', () => {
    const s = new AuthStore<Session>();
    const seen: string[] = [];
    const err = vi.spyOn(console, 'error').mockImplementation(() => undefined);
    s.onEvent(() => {
      throw new Error('boom');
    });
    const off = s.onEvent((e) => void seen.push(e));
    s.receive('INITIAL_SESSION', null);
    s.receive('INITIAL_SESSION', null);
    off();
    s.receive('SIGNED_IN', session('a'));
    expect(seen).toEqual(['INITIAL_SESSION', 'INITIAL_SESSION']);
    expect(err).toHaveBeenCalled();
    err.mockRestore();
  });

  it('the server snapshot is the initial session, whatever happens later', () => {
    const a = session('a');
    const s = new AuthStore<Session>(a);
    expect(s.getServerSnapshot()).toMatchObject({ isLoading: false, session: a });
    s.receive('SIGNED_OUT', null);
    expect(s.getServerSnapshot().session).toBe(a);
    expect(new AuthStore<Session>(null).getServerSnapshot()).toMatchObject({ isLoading: false, session: null });
    expect(new AuthStore<Session>().getServerSnapshot().isLoading).toBe(true);
  });
});
