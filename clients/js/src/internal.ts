/**
 * Small helpers of the client (not exported from the package): JWT claims
 * decoding without verification, random ids, and the MFA-challenge check.
 */
import type { MfaChallenge } from './types.js';

export function decodeJwtClaims(token: string): Record<string, unknown> | null {
  const part = token.split('.')[1];
  if (!part) return null;
  try {
    const b64 = part.replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((4 - (part.length % 4)) % 4);
    const bin = atob(b64);
    let text: string;
    if (typeof TextDecoder !== 'undefined') {
      text = new TextDecoder().decode(Uint8Array.from(bin, (c) => c.charCodeAt(0)));
    } else {
      // Runtimes without TextDecoder (older React Native): UTF-8 via URI decoding.
      text = decodeURIComponent(bin.replace(/[\s\S]/g, (c) => '%' + c.charCodeAt(0).toString(16).padStart(2, '0')));
    }
    return JSON.parse(text) as Record<string, unknown>;
  } catch {
    return null;
  }
}

export function randomId(): string {
  const c = (globalThis as { crypto?: Crypto }).crypto;
  if (c?.randomUUID) return c.randomUUID();
  return Math.random().toString(36).slice(2) + Date.now().toString(36);
}

export function isMfaChallenge(body: unknown): body is MfaChallenge {
  return !!body && typeof body === 'object' && (body as MfaChallenge).mfa_required === true;
}
