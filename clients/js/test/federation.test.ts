import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { createClient, createPkce, readProviderCallback } from '../src/index.js';

describe('federated sign-in helpers', () => {
  it('makes an S256 PKCE pair (RFC 7636)', async () => {
    const { verifier, challenge } = await createPkce();
    expect(verifier).toMatch(/^[A-Za-z0-9_-]{43,128}$/);
    const expected = createHash('sha256').update(verifier).digest('base64url');
    expect(challenge).toBe(expected);
    expect((await createPkce()).verifier).not.toBe(verifier);
  });

  it('reads the callback answer', () => {
    expect(readProviderCallback('https://spa.example/cb?code=abc')).toEqual({ code: 'abc' });
    expect(
      readProviderCallback('https://spa.example/cb?error=link-required&error_description=x&link_token=t'),
    ).toEqual({ error: 'link-required', errorDescription: 'x', linkToken: 't' });
    expect(readProviderCallback('https://spa.example/cb')).toBeNull();
  });

  it('starts a redirect with its own challenge and keeps the verifier', async () => {
    const items = new Map<string, string>();
    const storage = {
      getItem: (k: string) => items.get(k) ?? null,
      setItem: (k: string, v: string) => void items.set(k, v),
      removeItem: (k: string) => void items.delete(k),
    };
    const client = createClient({ url: 'http://portcullis.test', storage, fetch: (() => {
      throw new Error('no request expected');
    }) as unknown as typeof fetch });
    const { url } = await client.signInWithProvider('google', {
      redirectTo: 'https://spa.example/cb',
      navigate: false,
    });
    const u = new URL(url);
    expect(u.pathname).toBe('/v1/federation/google/authorize');
    expect(u.searchParams.get('code_challenge_method')).toBe('S256');
    expect(u.searchParams.get('redirect_to')).toBe('https://spa.example/cb');
    const verifier = [...items.entries()].find(([k]) => k.endsWith('.pkce'))?.[1] ?? '';
    const challenge = createHash('sha256').update(verifier).digest('base64url');
    expect(u.searchParams.get('code_challenge')).toBe(challenge);
    client.close();
  });
});
