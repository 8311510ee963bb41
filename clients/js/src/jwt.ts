/**
 * The parts of `jose` the client uses, in a module of their own: `claims.ts`
 * imports it on the first `getClaims()`, so that only what is used is
 * bundled (in a chunk of its own) and a page that never verifies claims
 * never loads jose.
 */
export { createLocalJWKSet, errors, jwtVerify } from 'jose';
