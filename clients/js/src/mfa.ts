/**
 * `client.mfa`: TOTP enrolment and recovery codes (the second factor of
 * password sign-in). Changes need a recent proof on the session: pass one
 * (`{password}`, `{code}`, `{passkey: true}`), or leave it out and let
 * `onReauthenticationRequired` (or an earlier `reauthenticate`) provide it.
 */
import type { Api } from './internal.js';
import type { AssuranceLevel, RecoveryCodes, ReauthProof, TotpEnrolment } from './types.js';

export class MfaApi {
  /** @internal */
  constructor(
    private readonly api: Api,
    private readonly aal: () => { current: AssuranceLevel | null; next: AssuranceLevel | null },
  ) {}

  /**
   * `POST /v1/me/mfa/totp`: a new (pending) TOTP secret with its
   * `otpauthUri` and a QR code (`qrSvg`). Nothing changes until
   * `activateTotp` proves a code of it.
   */
  enrollTotp(): Promise<TotpEnrolment> {
    return this.api.authed<TotpEnrolment>('POST', '/v1/me/mfa/totp');
  }

  /**
   * `POST /v1/me/mfa/totp/activate`: turns two-step sign-in on with a
   * current code of the pending secret; returns the ten recovery codes
   * (shown once). Emits USER_UPDATED (`mfaEnabled`).
   */
  async activateTotp(params: { code: string; password?: string }): Promise<RecoveryCodes> {
    const codes = await this.api.authed<RecoveryCodes>('POST', '/v1/me/mfa/totp/activate', params);
    await this.api.refreshAfterChange();
    return codes;
  }

  /** `DELETE /v1/me/mfa/totp`: turns two-step sign-in off. Emits USER_UPDATED. */
  async disableTotp(proof?: ReauthProof): Promise<void> {
    await this.api.authed<void>('DELETE', '/v1/me/mfa/totp', await this.api.proofBody(proof));
    await this.api.refreshAfterChange();
  }

  /** `POST /v1/me/mfa/recovery-codes`: a new set of recovery codes (the old set dies). */
  async regenerateRecoveryCodes(proof?: ReauthProof): Promise<RecoveryCodes> {
    return this.api.authed<RecoveryCodes>('POST', '/v1/me/mfa/recovery-codes', await this.api.proofBody(proof));
  }

  /**
   * The session's assurance level (`aal2` when its sign-in used a second
   * factor or a passkey, from the `amr` claim) and the level the account
   * can reach (`aal2` when two-step sign-in is on): as supabase-js.
   */
  getAuthenticatorAssuranceLevel(): { current: AssuranceLevel | null; next: AssuranceLevel | null } {
    return this.aal();
  }
}
