/**
 * `getClaims()`: the access token's claims, verified against the server's
 * JWKS (`GET /.well-known/jwks.json`) with the `jose` library. The key set
 * is fetched once and kept; a token signed with a key it lacks (a key
 * rotation) refetches it, at most once a minute. Verified claims are kept
 * per token, so repeated calls cost nothing.
 */
import { createLocalJWKSet, errors, jwtVerify, type JSONWebKeySet } from 'jose';
import type { AssuranceLevel, Claims } from './types.js';

const REFETCH_MS = 60_000;

export class ClaimsVerifier {
  private keys: ReturnType<typeof createLocalJWKSet> | null = null;
  private fetchedAt = 0;
  private cache: { token: string; claims: Claims } | null = null;

  constructor(
    private readonly loadJwks: () => Promise<JSONWebKeySet>,
    private readonly now: () => number,
  ) {}

  private async keySet(force: boolean): Promise<ReturnType<typeof createLocalJWKSet>> {
    if (!this.keys || (force && this.now() - this.fetchedAt > REFETCH_MS)) {
      this.keys = createLocalJWKSet(await this.loadJwks());
      this.fetchedAt = this.now();
    }
    return this.keys;
  }

  async verify(token: string): Promise<Claims> {
    if (this.cache?.token === token) return this.cache.claims;
    const opts = { currentDate: new Date(this.now()) };
    let payload;
    try {
      ({ payload } = await jwtVerify(token, await this.keySet(false), opts));
    } catch (e) {
      if (!(e instanceof errors.JWKSNoMatchingKey)) throw e;
      ({ payload } = await jwtVerify(token, await this.keySet(true), opts));
    }
    const claims = payload as Claims;
    this.cache = { token, claims };
    return claims;
  }
}

/** `aal2` when the sign-in used a second factor or a passkey (`otp`, `rc`, `hwk`, `mfa`), else `aal1`. */
export function assuranceOf(amr: readonly string[] | undefined): AssuranceLevel {
  return (amr ?? []).some((m) => m === 'otp' || m === 'rc' || m === 'hwk' || m === 'mfa') ? 'aal2' : 'aal1';
}
