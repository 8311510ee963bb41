// @vitest-environment node
//
// Server rendering of @portcullis/client/react in plain Node (no window, no
// document): the provider neither subscribes nor touches the client during
// render; `initialSession` is what the server shows; the hooks outside a
// provider say so.
import { createElement as h, type ReactNode } from 'react';
import { renderToString } from 'react-dom/server';
import { describe, expect, it } from 'vitest';
import type { Session } from '../../src/types.js';
import { PortcullisProvider, useAuthState, useSession, useUser } from '../../src/react/index.js';

/** A client that fails the test if anything subscribes to it. */
const untouchable = {
  onAuthStateChange(): () => void {
    throw new Error('subscribed during a server render');
  },
};

function Who(): ReactNode {
  const { isLoading, user } = useAuthState();
  const session = useSession();
  const u = useUser();
  return h('p', null, isLoading ? 'loading' : user ? `${u?.email}:${session?.sessionId}` : 'out');
}

describe('server rendering', () => {
  it('runs without window or document', () => {
    expect(typeof (globalThis as { window?: unknown }).window).toBe('undefined');
    expect(typeof (globalThis as { document?: unknown }).document).toBe('undefined');
  });

  it('renders "loading" without an initial session and never subscribes', () => {
    const html = renderToString(h(PortcullisProvider, { client: untouchable }, h(Who)));
    expect(html).toBe('<p>loading</p>');
  });

  it('renders the initial session a server knew, or signed out for null', () => {
    const session = { sessionId: 'sid-1', user: { id: 'u1', email: 'ssr@example.com' } } as unknown as Session;
    expect(renderToString(h(PortcullisProvider, { client: untouchable, initialSession: session }, h(Who)))).toBe(
      '<p>ssr@example.com:sid-1</p>',
    );
    expect(renderToString(h(PortcullisProvider, { client: untouchable, initialSession: null }, h(Who)))).toBe('<p>out</p>');
  });

  it('a hook outside a provider throws a message that names the provider', () => {
    expect(() => renderToString(h(Who))).toThrow(/inside <PortcullisProvider/);
  });
});
