/**
 * `getClaims()`: the access token's claims, verified against the server's
 * JWKS (`GET /.well-known/jwks.json`) with the `jose` library. The key set
 * is fetched once and kept; a token signed with a key it lacks (a key
 * rotation) refetches it, at most once a minute. Verified claims are kept
 * per token, so repeated calls cost nothing.
 *
 * `jose` is imported on the first `getClaims()` only: a page or app that
 * never asks for verified claims never loads it (bundlers split it into its
 * own chunk; a page loading `dist/` with an import map needs no entry for
 * it until then).
 */
import type { createLocalJWKSet, JSONWebKeySet, JWTPayload } from 'jose';
import type { AssuranceLevel, Claims } from './types.js';

const REFETCH_MS = 60_000;

export class ClaimsVerifier {
  private keys: ReturnType<typeof createLocalJWKSet> | null = null;
  private jose: Promise<typeof import('./jwt.js')> | null = null;
  private fetchedAt = 0;
  private cache: { token: string; claims: Claims } | null = null;

  constructor(
    private readonly loadJwks: () => Promise<JSONWebKeySet>,
    private readonly now: () => number,
  ) {}

  private lib(): Promise<typeof import('./jwt.js')> {
    this.jose ??= import('./jwt.js');
    return this.jose;
  }

  private async keySet(force: boolean): Promise<ReturnType<typeof createLocalJWKSet>> {
    if (!this.keys || (force && this.now() - this.fetchedAt > REFETCH_MS)) {
      const { createLocalJWKSet } = await this.lib();
      this.keys = createLocalJWKSet(await this.loadJwks());
      this.fetchedAt = this.now();
    }
    return this.keys;
  }

  async verify(token: string): Promise<Claims> {
    if (this.cache?.token === token) return this.cache.claims;
    const { errors, jwtVerify } = await this.lib();
    const opts = { currentDate: new Date(this.now()) };
    let payload: JWTPayload;
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
