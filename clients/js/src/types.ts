import type { components } from './generated/openapi.js';

type Schemas = components['schemas'];

/**
 * The user as Portcullis returns it. Generated from openapi.json; fields
 * the service's contract names that the spec of older server releases lacks
 * are optional here.
 */
export type User = Schemas['User'] & {
  locale?: string | null;
  timezone?: string | null;
  metadata?: Record<string, unknown> | null;
  passkeys?: number;
};

/** The tokens body of sign-in, MFA, passkey sign-in and refresh. */
export type TokensResponse = Schemas['Tokens'];
/** One of the user's live sessions (`GET /v1/sessions`). */
export type SessionInfo = Schemas['Session'];
export type SignOutScope = Schemas['Scope'];
export type RegisterRequest = Schemas['RegisterRequest'] & {
  locale?: string;
  captcha?: string;
};
export type UpdateUserRequest = Schemas['UpdateProfileRequest'] & {
  locale?: string | null;
  timezone?: string | null;
  metadata?: Record<string, unknown> | null;
};
export type CaptchaChallenge = Schemas['CaptchaChallenge'];

// ---- hand-written: routes of the service's contract not yet in openapi.json

/** `POST /v1/sessions` when the account has two-factor on. */
export interface MfaChallenge {
  mfa_required: true;
  mfa_token: string;
  expires_in: number;
  methods: Array<'totp' | 'passkey' | 'recovery_code' | (string & {})>;
}

/** `POST /v1/users` with `PORTCULLIS_REQUIRE_VERIFIED_EMAIL=true`. */
export interface VerificationSent {
  status: 'verification_sent';
}

/** `{challenge_id, public_key}` of the passkey option routes. */
export interface PasskeyOptionsResponse {
  challenge_id: string;
  /** WebAuthn options in their JSON form (base64url buffers), possibly wrapped in `{publicKey}`. */
  public_key: Record<string, unknown>;
}

/** `POST /v1/me/passkeys` answer. */
export interface Passkey {
  id: string;
  name: string | null;
  created_at: string;
  last_used_at: string | null;
}

export type ResetPasswordRequest =
  | { token: string; new_password: string; mfa_code?: string; recovery_code?: string }
  | { email: string; email_code: string; new_password: string; mfa_code?: string; recovery_code?: string };

// ---- the client's own types

/** A signed-in session as the client keeps it. */
export interface Session {
  access_token: string;
  refresh_token: string;
  token_type: string;
  /** Lifetime of the access token in seconds, as sent by the server. */
  expires_in: number;
  /** When the access token expires, in ms since the epoch (this device's clock). */
  expires_at: number;
  /** The session (refresh family) id: the `sid` claim. */
  session_id: string | null;
  /** How many refreshes this session has had (counted by the client; orders pairs of one family). */
  generation?: number;
  user: User;
}

export type AuthEvent =
  | 'INITIAL_SESSION'
  | 'SIGNED_IN'
  | 'SIGNED_OUT'
  | 'TOKEN_REFRESHED'
  | 'USER_UPDATED'
  | 'MFA_REQUIRED';

export type AuthStateListener = (event: AuthEvent, session: Session | null) => void | Promise<void>;

export type SignInResult =
  | { status: 'signed_in'; session: Session; user: User }
  | { status: 'mfa_required'; mfa: MfaChallenge };

export type SignUpResult =
  | { status: 'created'; user: User }
  | { status: 'verification_sent' };

/** Proof of a sign-in mail: its link's `token`, or the address and its 8-digit `code`. */
export type EmailSignInProof = { token: string } | { email: string; code: string };

/** What `upgrade` did: upgraded in place, or (verification-required mode) a mail is on its way. */
export type UpgradeResult =
  | { status: 'upgraded'; user: User }
  | { status: 'verification_sent' };

export type MfaProof =
  | { code: string; mfaToken?: string }
  | { recoveryCode: string; mfaToken?: string }
  | { passkey: true; mfaToken?: string; signal?: AbortSignal };

/**
 * A proof of identity for `client.reauthenticate`: the password, a current
 * TOTP code, or a passkey (options for `email`, default the signed-in
 * user's, or discoverable credentials).
 */
export type ReauthProof =
  | { password: string }
  | { code: string }
  | { passkey: true; email?: string; signal?: AbortSignal };
