/**
 * Federated sign-in helpers: the client's own PKCE pair for the redirect
 * flow (RFC 7636, S256), and reading the callback's answer from a URL.
 *
 * The verifier never leaves this device until the code exchange; it is kept
 * in the client's storage under one key per flow, so a page reload between
 * leaving for the provider and coming back does not lose it.
 */

export type { Identity, Provider } from './types.js';

/** What `linkIdentity` accepts: one offer, optionally with a recent proof. */
export type LinkOffer = (
  | { linkToken: string }
  | { provider: string; idToken: string; nonce: string }
  | { code: string; codeVerifier: string }
) & { password?: string; totpCode?: string };

/** The callback's answer, read from the URL the provider flow returned to. */
export type ProviderCallback =
  | { code: string }
  | { error: string; errorDescription: string | null; linkToken: string | null };

function base64url(bytes: Uint8Array): string {
  let s = '';
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/** A fresh PKCE pair: 64 random bytes as the verifier, its S256 challenge. */
export async function createPkce(): Promise<{ verifier: string; challenge: string }> {
  const random = new Uint8Array(48);
  globalThis.crypto.getRandomValues(random);
  const verifier = base64url(random);
  const digest = await globalThis.crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier));
  return { verifier, challenge: base64url(new Uint8Array(digest)) };
}

/** The callback's `code`, or its `error` (with `link_token` for `link-required`). */
export function readProviderCallback(url: string | URL): ProviderCallback | null {
  const u = new URL(url.toString());
  const q = u.searchParams;
  const code = q.get('code');
  if (code) return { code };
  const error = q.get('error');
  if (error) {
    return { error, errorDescription: q.get('error_description'), linkToken: q.get('link_token') };
  }
  return null;
}
