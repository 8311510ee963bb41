/**
 * Small helpers of the client (not exported from the package): JWT claims
 * decoding without verification, random ids, and the MFA-challenge check.
 */
import type { MfaChallenge, ReauthProof, User } from './types.js';

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
  return !!body && typeof body === 'object' && (body as MfaChallenge).mfaRequired === true;
}

/** What the namespaces (`client.mfa`, `client.admin`, `client.oauth`) call on the client. */
export interface Api {
  /** JSON with the bearer (camelCase in and out), with the step-up retry. */
  authed<T>(method: string, path: string, body?: unknown, init?: RequestInit): Promise<T>;
  /** JSON without the bearer (camelCase in and out). */
  anon<T>(method: string, path: string, body?: unknown): Promise<T>;
  /** The body of a proof given with a call (`{password}`, `{code}`, `{passkey}`); `{}` for none. */
  proofBody(proof?: ReauthProof): Promise<Record<string, unknown>>;
  /** Forces a refresh (new claims after a change), ignoring failures. */
  refreshAfterChange(): Promise<void>;
  /** Keeps a changed user (emits USER_UPDATED). */
  storeUser(user: User): Promise<void>;
  /** A raw response (no JSON parsing), with or without the bearer. */
  raw(path: string, init: RequestInit, withToken: boolean): Promise<Response>;
  /** Turns a response into the camelCased JSON or a PortcullisError. */
  parse<T>(res: Response): Promise<T>;
}

/** `?a=1&b=2` of the defined values (keys snake_cased by the caller). */
export function query(params: Record<string, string | number | boolean | null | undefined>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null) q.set(k, String(v));
  const s = q.toString();
  return s ? `?${s}` : '';
}
