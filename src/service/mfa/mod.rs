//! Two-factor sign-in: TOTP enrolment, activation and removal, recovery
//! codes, the second step of a sign-in, and the check other flows (password
//! reset) call when an account has two-factor sign-in on.
//!
//! Rules kept here:
//! - A TOTP code is accepted once: its time step is claimed in the store
//!   ([`OnceKey::TotpStep`](crate::store::OnceKey::TotpStep)), so a replay fails on every replica.
//! - Wrong codes (and wrong passwords given to confirm a change) are counted
//!   per account under [`mfa_throttle_key`](crate::store::mfa_throttle_key), in the same store and window as
//!   sign-in failures; past `PORTCULLIS_LOGIN_MAX_FAILURES` the answer is 429
//!   with `Retry-After` until the window slides. Each check reserves its
//!   place before it runs (`service::throttle`): simultaneous
//!   guesses cannot all pass a count read before any of them is recorded
//!   (finding H4: 1,500 of 2,000 simultaneous wrong codes were checked).
//! - The `mfa+jwt` token of a sign-in works once ([`OnceKey::MfaToken`](crate::store::OnceKey::MfaToken)),
//!   only for its user, and only while the account is as it was when the
//!   password was checked (a password change since voids it); a wrong code
//!   does not spend it.
//! - Secrets are sealed before they reach the store, recovery codes are
//!   hashed, and neither ever reaches a log line or an error.
//!
//! The `impl Core` is spread over sub-modules by step: `sign_in` (the
//! challenge and the second step of a sign-in), `enrol` (TOTP set-up and
//! removal, new recovery codes) and `checks` (checking, throttling and
//! using up a code, shared by the others and by password reset).

use secrecy::SecretString;

use super::{Error, FieldError, IssuedTokens, Result};
use crate::domain::TotpCode;

mod checks;
mod enrol;
mod sign_in;

/// Lifetime of an `mfa+jwt` token: time to open the app and type a code.
pub const MFA_TOKEN_TTL_SECS: u64 = 300;

/// The outcome of `POST /v1/sessions`.
#[derive(Debug)]
pub enum SignIn {
    /// Signed in: a new session and its tokens.
    Tokens(Box<IssuedTokens>),
    /// The password was right and the account has two-factor sign-in on:
    /// no tokens yet, a second step is needed.
    MfaRequired(MfaChallenge),
}

/// What the client needs for the second step of a sign-in.
#[derive(Debug)]
pub struct MfaChallenge {
    /// The `mfa+jwt` token to send with the code.
    pub mfa_token: String,
    /// Seconds until it expires.
    pub expires_in: u64,
    /// The second factors this account has: `totp`, `recovery_code`.
    pub methods: Vec<&'static str>,
}

/// A second factor as a client sends it.
#[derive(Debug)]
pub enum SecondFactor {
    /// A code from the authenticator app, as typed.
    Code(String),
    /// One of the recovery codes, as typed.
    RecoveryCode(SecretString),
}

/// A secret handed out for enrolment (not active until confirmed).
#[derive(Debug)]
pub struct TotpEnrolment {
    /// The secret in base32, for typing into an app.
    pub secret: SecretString,
    /// The `otpauth://totp/...` URI.
    pub otpauth_uri: SecretString,
    /// The URI as a QR code (an SVG document).
    pub qr_svg: String,
}

/// Which factor a successful check used (its RFC 8176 `amr` value).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Proven {
    Otp,
    RecoveryCode,
}

impl Proven {
    fn amr(self) -> &'static str {
        match self {
            Self::Otp => "otp",
            Self::RecoveryCode => "rc",
        }
    }
}

const ALREADY_ON: &str = "Two-factor sign-in is already on; turn it off first.";
const NOT_ON: &str = "Two-factor sign-in is off for this account.";
const NOT_PENDING: &str = "No two-factor setup is pending: start with POST /v1/me/mfa/totp.";

/// `input` as a TOTP code, or a 422 naming `field`.
pub(super) fn code_field(field: &str, input: &str) -> Result<TotpCode> {
    TotpCode::parse(input)
        .map_err(|why| Error::Validation(vec![FieldError::invalid(field, "Code", why)]))
}

/// A right second factor not yet used up.
#[derive(Debug)]
enum Candidate {
    /// The TOTP step the code belongs to.
    Step(u64),
    /// The hash of a recovery code of the account.
    RecoveryCode(String),
}

#[cfg(test)]
mod tests {
    //! `check_second_factor`, the seam password reset calls, on a real core
    //! (embedded store, manual clock).

    use secrecy::ExposeSecret;

    use super::*;
    use crate::service::{ClientInfo, Core, Principal};

    const START: i64 = 1_900_000_025;
    const PASSWORD: &str = "correct horse battery staple 42";

    async fn core(dir: &std::path::Path) -> Core {
        crate::service::test_core(dir, START).await
    }

    /// Registers and signs in; returns the caller.
    async fn signed_in(core: &Core, email: &str) -> Principal {
        let t = crate::service::test_signed_up(core, email, PASSWORD).await;
        core.authenticate(&t.access_token).await.unwrap()
    }

    fn code(secret: &SecretString, at: i64) -> String {
        let bytes = totp_rs::Secret::try_from_base32(secret.expose_secret()).unwrap();
        totp_rs::Builder::new()
            .with_secret(bytes.as_bytes().to_vec())
            .build()
            .unwrap()
            .generate(at as u64)
            .to_string()
    }

    #[tokio::test]
    async fn check_second_factor_for_password_reset() {
        let dir = tempfile::tempdir().unwrap();
        let core = core(dir.path()).await;
        let who = signed_in(&core, "reset-mfa@example.com").await;
        // Off: nothing to prove.
        core.check_second_factor(&who.user_id, None, &ClientInfo::default())
            .await
            .unwrap();

        let client = ClientInfo::default();
        let e = core.totp_begin(&who, &client).await.unwrap();
        let rcs = core
            .totp_activate(&who, &code(&e.secret, START), None, &client)
            .await
            .unwrap();
        core.clock.advance(30);
        let now = core.clock.now();
        let mfa_required = |r: Result<()>| matches!(r, Err(Error::MfaRequired(_)));

        assert!(mfa_required(
            core.check_second_factor(&who.user_id, None, &ClientInfo::default())
                .await
        ));
        let right = code(&e.secret, now);
        let wrong = if right == "000000" {
            "111111"
        } else {
            "000000"
        };
        for bad in [wrong, "12", "not a code"] {
            let f = Some(SecondFactor::Code(bad.into()));
            assert!(mfa_required(
                core.check_second_factor(&who.user_id, f, &ClientInfo::default())
                    .await
            ));
        }
        let f = Some(SecondFactor::Code(right.clone()));
        core.check_second_factor(&who.user_id, f, &ClientInfo::default())
            .await
            .unwrap();
        // The code is used up, and so is a recovery code.
        let f = Some(SecondFactor::Code(right));
        assert!(mfa_required(
            core.check_second_factor(&who.user_id, f, &ClientInfo::default())
                .await
        ));
        let rc = || Some(SecondFactor::RecoveryCode(rcs[0].clone()));
        core.check_second_factor(&who.user_id, rc(), &ClientInfo::default())
            .await
            .unwrap();
        assert!(mfa_required(
            core.check_second_factor(&who.user_id, rc(), &ClientInfo::default())
                .await
        ));
        // Wrong ones count (a success clears the count): one so far, four
        // more make the limit, and then even a right one waits.
        for _ in 0..4 {
            let f = Some(SecondFactor::Code(wrong.into()));
            assert!(mfa_required(
                core.check_second_factor(&who.user_id, f, &ClientInfo::default())
                    .await
            ));
        }
        let f = Some(SecondFactor::RecoveryCode(rcs[1].clone()));
        assert!(matches!(
            core.check_second_factor(&who.user_id, f, &ClientInfo::default())
                .await,
            Err(Error::RateLimited { .. })
        ));
    }
}
