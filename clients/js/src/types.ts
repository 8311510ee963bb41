/**
 * The types the client hands out: every wire type is generated from
 * openapi/openapi.json (`src/generated/openapi.ts`) and mapped to camelCase
 * at the type level (`Camelize`, see `case.ts`); the only hand-written
 * types are the client's own (its session, events, results and proofs).
 */
import type { Camelize } from './case.js';
import type { components } from './generated/openapi.js';

type Schemas = components['schemas'];
type Wire<K extends keyof Schemas> = Camelize<Schemas[K]>;
/** The application's JSON object of a user (passed through untouched: keys are not converted). */
export type UserMetadata = Record<string, unknown>;
type WithMetadata<T> = Omit<T, 'metadata'> & { metadata?: UserMetadata | null };

/** The user as Portcullis returns it (`GET /v1/me`). */
export type User = WithMetadata<Wire<'User'>>;
/** A user as an admin sees it (`GET /v1/admin/users/{id}`). */
export type AdminUser = WithMetadata<Wire<'AdminUser'>>;
/** `GET /v1/admin/users`: a page of accounts. */
export type UserPage = Omit<Wire<'UserPage'>, 'users'> & { users: AdminUser[] };
/** The tokens body of sign-in, MFA, passkey sign-in and refresh. */
export type TokensResponse = Omit<Wire<'Tokens'>, 'user'> & { user: User };
/** One of the user's live sessions (`GET /v1/sessions`). */
export type SessionInfo = Wire<'Session'>;
export type SignOutScope = Schemas['Scope'];
export type RegisterRequest = Wire<'RegisterRequest'>;
export type UpdateUserRequest = WithMetadata<Wire<'UpdateProfileRequest'>>;
export type CaptchaChallenge = Wire<'CaptchaChallenge'>;
/** The second-factor step of a sign-in (`mfa_required`). */
export type MfaChallenge = Wire<'MfaChallenge'>;
/** `{challengeId, publicKey}` of the passkey option routes (`publicKey` is WebAuthn JSON, untouched). */
export type PasskeyOptionsResponse = Omit<Wire<'PasskeyOptions'>, 'publicKey'> & { publicKey: Record<string, unknown> };
/** A registered passkey (`GET /v1/me/passkeys`). */
export type Passkey = Wire<'Passkey'>;
export type ResetPasswordRequest = Wire<'ResetPasswordRequest'>;
export type TotpEnrolment = Wire<'TotpEnrolment'>;
export type RecoveryCodes = Wire<'RecoveryCodes'>;
export type SecurityEvent = Wire<'SecurityEvent'>;
export type SecurityEventPage = Wire<'SecurityEventPage'>;
export type AdminUpdateUserRequest = Wire<'AdminPatchRequest'>;
export type OAuthClient = Wire<'OAuthClient'>;
export type CreateClientRequest = Wire<'CreateClientRequest'>;
export type UpdateClientRequest = Wire<'UpdateClientRequest'>;
export type Consent = Wire<'Consent'>;
export type Identity = Wire<'Identity'>;
export type Provider = Wire<'Provider'>;
export type FederationNonce = Wire<'FederationNonce'>;
export type HealthStatus = Wire<'HealthStatus'>;
export type OAuthTokens = Wire<'OAuthTokens'>;
export type TokenRequest = Wire<'TokenForm'>;
export type RevokeRequest = Wire<'RevokeForm'>;
export type IntrospectRequest = Wire<'IntrospectForm'>;
export type Introspection = Wire<'IntrospectionView'>;
export type UserInfo = Wire<'UserInfo'>;
/** Standard documents, returned verbatim (their names are fixed by their RFCs). */
export type Jwks = Schemas['Jwks'];
export type OpenIdConfiguration = Schemas['OpenIdConfiguration'];

// ---- the client's own types

/** A signed-in session as the client keeps it. */
export interface Session {
  accessToken: string;
  refreshToken: string;
  tokenType: string;
  /** Lifetime of the access token in seconds, as sent by the server. */
  expiresIn: number;
  /** When the access token expires, in ms since the epoch (this device's clock). */
  expiresAt: number;
  /** The session (refresh family) id: the `sid` claim. */
  sessionId: string | null;
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
  | 'PASSWORD_RECOVERY'
  | 'MFA_REQUIRED'
  | 'REAUTHENTICATION_REQUIRED';

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
 * A proof of identity (`reauthenticate`, and the confirmation of
 * `deleteUser`, `changeEmail`, `mfa.disableTotp`, ...): the password, a
 * current TOTP code, or a passkey (options for `email`, default the
 * signed-in user's, or discoverable credentials).
 */
export type ReauthProof =
  | { password: string }
  | { code: string }
  | { passkey: true; email?: string; signal?: AbortSignal };

/** Authenticator assurance of a session, from its `amr` claim. */
export type AssuranceLevel = 'aal1' | 'aal2';

/** The verified claims of the access token (`getClaims`). */
export interface Claims {
  sub: string;
  sid?: string;
  amr?: string[];
  roles?: string[];
  exp?: number;
  iat?: number;
  iss?: string;
  aud?: string | string[];
  [claim: string]: unknown;
}
