//! Passkeys: the WebAuthn relying party, on `webauthn-rs` 0.6 (kanidm's
//! library; it verifies through `crypto-glue`, i.e. RustCrypto, the one
//! accepted second crypto library, see the README). Nothing here is
//! hand-rolled: this module only turns the library's types into what the
//! service stores and sends.
//!
//! - Registration: [`PasskeyRp::start_registration`] gives the creation
//!   options for `navigator.credentials.create` and the ceremony state to
//!   keep server side; [`PasskeyRp::finish_registration`] checks the
//!   browser's answer against that state.
//! - Sign-in: [`PasskeyRp::start_authentication`] (the user is known: their
//!   credentials are listed) or [`PasskeyRp::start_discoverable`] (no user
//!   named: the authenticator picks a discoverable credential, whose user
//!   handle is the user id), then [`PasskeyRp::finish_authentication`].
//!
//! Client data is JSON in the WebAuthn Level 3 form
//! (`PublicKeyCredential.toJSON()`, binary fields base64url); the options
//! sent are the `publicKey` member, ready for
//! `PublicKeyCredential.parseCreationOptionsFromJSON` /
//! `parseRequestOptionsFromJSON`.
//!
//! User verification is required in every ceremony (so a passkey is a
//! whole second factor by itself). Registration asks for a discoverable
//! credential (`residentKey: "preferred"`), so usernameless sign-in works
//! with the authenticators that can store one, and security keys that
//! cannot still register.
//!
//! Ceremony states are serialized (the `danger-allow-state-serialisation`
//! feature) only into the store, never to the client: a state in the
//! client's hands would allow replays.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use serde::de::DeserializeOwned;
use webauthn_rs::prelude::{
    DiscoverableAuthentication, Passkey, PasskeyAuthentication, PasskeyRegistration,
    PublicKeyCredential, RegisterPublicKeyCredential, Url, Uuid, Webauthn, WebauthnBuilder,
    WebauthnError,
};

use crate::config::PasskeySettings;

/// How long a client has to finish a ceremony (the library's timeout, the
/// WebAuthn Level 3 recommendation).
pub const CEREMONY_TTL: std::time::Duration = webauthn_rs::DEFAULT_AUTHENTICATOR_TIMEOUT;

/// Why a ceremony failed, in words safe to show to the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasskeyError {
    /// The client's answer was refused; the reason is safe to show.
    #[error("{0}")]
    Refused(&'static str),
    /// The signature counter did not move forward: the authenticator may
    /// have been cloned. Refused, and worth an audit event.
    #[error(
        "the authenticator's signature counter went backwards (a cloned authenticator?); the passkey was refused"
    )]
    PossibleClone,
    /// A bug or a stored state that no longer decodes; not the client's doing.
    #[error("passkey state: {0}")]
    Internal(String),
}

/// Maps the library's error to a reason a client can act on.
fn refused(e: &WebauthnError) -> PasskeyError {
    use WebauthnError as W;
    let why = match e {
        W::CredentialPossibleCompromise => return PasskeyError::PossibleClone,
        W::MismatchedChallenge | W::ChallengeNotFound => {
            "the credential answers another challenge; request new options"
        }
        W::InvalidRPOrigin | W::CredentialCrossOrigin => {
            "the credential was made on an origin this service does not accept (PORTCULLIS_WEBAUTHN_ORIGINS)"
        }
        W::InvalidRPIDHash => {
            "the credential is scoped to another relying party id than this service's"
        }
        W::UserNotVerified => "user verification (PIN or biometrics) is required",
        W::UserNotPresent => "user presence is required",
        W::InvalidClientDataType => "the client data is of the wrong ceremony type",
        W::CredentialNotFound => "this credential is not registered to the account",
        W::CredentialExcludedFromRequest | W::CredentialAlreadyExists => {
            "this authenticator is already registered to the account"
        }
        W::CredentialInsecureCryptography | W::COSEKeyInvalidAlgorithm => {
            "the credential uses an algorithm this service does not accept"
        }
        W::CredentialBackupEligibilityInconsistent => {
            "the credential's backup eligibility changed since it was registered"
        }
        W::AuthenticationFailure | W::SignatureInvalid => "the signature does not verify",
        W::InvalidUserUniqueId => "the credential carries no valid user handle",
        W::ParseBase64Failure(_)
        | W::ParseCBORFailure(_)
        | W::ParseJSONFailure(_)
        | W::ParseNOMFailure
        | W::ParseInsufficientBytesAvailable => "the credential's data could not be parsed",
        _ => "the credential could not be verified",
    };
    PasskeyError::Refused(why)
}

fn to_json<T: Serialize>(v: &T) -> Result<String, PasskeyError> {
    serde_json::to_string(v).map_err(|e| PasskeyError::Internal(e.to_string()))
}

fn from_json<T: DeserializeOwned>(s: &str) -> Result<T, PasskeyError> {
    serde_json::from_str(s).map_err(|e| PasskeyError::Internal(e.to_string()))
}

/// The signature counter of a stored credential (its JSON as a value).
fn stored_counter(passkey: &serde_json::Value) -> u32 {
    passkey["cred"]["counter"]
        .as_u64()
        .and_then(|c| u32::try_from(c).ok())
        .unwrap_or(0)
}

/// Parses the client's credential JSON.
fn credential<T: DeserializeOwned>(v: &serde_json::Value) -> Result<T, PasskeyError> {
    T::deserialize(v).map_err(|_| {
        PasskeyError::Refused(
            "`credential` is not a PublicKeyCredential in the WebAuthn Level 3 JSON form (toJSON(), base64url)",
        )
    })
}

/// The `publicKey` member of the library's options, as JSON.
fn public_key_of<T: Serialize>(options: &T) -> Result<serde_json::Value, PasskeyError> {
    let mut v = serde_json::to_value(options).map_err(|e| PasskeyError::Internal(e.to_string()))?;
    Ok(v.get_mut("publicKey")
        .map(serde_json::Value::take)
        .unwrap_or(v))
}

/// Options to hand to the browser, and the state to keep.
#[derive(Debug, Clone)]
pub struct Started {
    /// `publicKey` options for `navigator.credentials.create` / `.get`.
    pub public_key: serde_json::Value,
    /// `"conditional"` for a usernameless sign-in (autofill UI).
    pub mediation: Option<String>,
    /// The ceremony state (JSON), for the store only.
    pub state: String,
}

/// A credential that passed registration.
#[derive(Debug, Clone)]
pub struct Registered {
    /// The credential id, base64url.
    pub credential_id: String,
    /// The library's credential (JSON), to store.
    pub passkey: String,
    /// Backup eligibility (BE) at registration.
    pub backup_eligible: bool,
    /// Backup state (BS) at registration.
    pub backup_state: bool,
    /// Signature counter at registration.
    pub counter: u32,
}

/// An assertion that verified.
#[derive(Debug, Clone)]
pub struct Asserted {
    /// Whether the authenticator verified the user (PIN, biometrics).
    pub user_verified: bool,
    /// The signature counter it reported.
    pub counter: u32,
    /// Backup eligibility (BE) now.
    pub backup_eligible: bool,
    /// Backup state (BS) now.
    pub backup_state: bool,
    /// The stored credential with the counter and backup state moved on
    /// (JSON); `None` when nothing changed.
    pub updated_passkey: Option<String>,
}

/// The relying party: RP id, accepted origins, and the library instance.
#[derive(Debug, Clone)]
pub struct PasskeyRp {
    webauthn: Webauthn,
    rp_id: String,
}

impl PasskeyRp {
    /// Like [`PasskeyRp::new`], but `None` (passkeys off) when no RP id is
    /// configured and the public URL's host is an IP address: WebAuthn
    /// needs a domain name, and a server reached by IP should still start.
    pub fn configured(
        public_url: &str,
        settings: &PasskeySettings,
    ) -> anyhow::Result<Option<Self>> {
        let ip_host = Url::parse(public_url)
            .ok()
            .is_some_and(|u| u.host_str().is_some() && u.domain().is_none());
        if ip_host && settings.rp_id.is_none() {
            return Ok(None);
        }
        Self::new(public_url, settings).map(Some)
    }

    /// The relying party of `public_url`: its RP id is
    /// `PORTCULLIS_WEBAUTHN_RP_ID` or the public URL's host; origins are the
    /// public URL's origin plus `PORTCULLIS_WEBAUTHN_ORIGINS`.
    pub fn new(public_url: &str, settings: &PasskeySettings) -> anyhow::Result<Self> {
        use anyhow::Context;
        let public = Url::parse(public_url)
            .with_context(|| format!("PORTCULLIS_PUBLIC_URL {public_url:?} is not a URL"))?;
        let host = public
            .host_str()
            .context("PORTCULLIS_PUBLIC_URL has no host")?
            .to_string();
        let rp_id = settings.rp_id.clone().unwrap_or(host);
        let mut builder = WebauthnBuilder::new(&rp_id, &public).map_err(|_| {
            anyhow::anyhow!(
                "PORTCULLIS_WEBAUTHN_RP_ID {rp_id:?} must be the host of PORTCULLIS_PUBLIC_URL ({public_url}) or a parent domain of it, and that host must be a domain name (not an IP address)"
            )
        })?;
        builder = builder.rp_name("Portcullis");
        for origin in &settings.origins {
            let url = Url::parse(origin).with_context(|| {
                format!("PORTCULLIS_WEBAUTHN_ORIGINS: {origin:?} is not an origin")
            })?;
            builder = builder.append_allowed_origin(&url);
        }
        let webauthn = builder
            .build()
            .map_err(|e| anyhow::anyhow!("WebAuthn configuration refused: {e}"))?;
        Ok(Self { webauthn, rp_id })
    }

    /// The relying party id.
    pub fn rp_id(&self) -> &str {
        &self.rp_id
    }

    /// Begins registering a passkey for `user_id` (a UUID: it becomes the
    /// credential's user handle). `existing` are the user's stored passkeys,
    /// excluded so one authenticator is not registered twice.
    pub fn start_registration(
        &self,
        user_id: Uuid,
        name: &str,
        display_name: &str,
        existing: &[String],
    ) -> Result<Started, PasskeyError> {
        let exclude = existing
            .iter()
            .map(|p| from_json::<Passkey>(p).map(|p| p.cred_id().clone()))
            .collect::<Result<Vec<_>, _>>()?;
        let exclude = (!exclude.is_empty()).then_some(exclude);
        let (options, state) = self
            .webauthn
            .start_passkey_registration(user_id, name, display_name, exclude)
            .map_err(|e| PasskeyError::Internal(e.to_string()))?;
        let mut public_key = public_key_of(&options)?;
        // Ask for a discoverable credential where the authenticator can
        // store one (usernameless sign-in); "preferred" keeps security keys
        // without storage working.
        if let Some(sel) = public_key
            .get_mut("authenticatorSelection")
            .and_then(serde_json::Value::as_object_mut)
        {
            sel.insert("residentKey".into(), "preferred".into());
            sel.insert("requireResidentKey".into(), false.into());
        }
        Ok(Started {
            public_key,
            mediation: None,
            state: to_json::<PasskeyRegistration>(&state)?,
        })
    }

    /// Checks the browser's answer to a registration.
    pub fn finish_registration(
        &self,
        credential_json: &serde_json::Value,
        state: &str,
    ) -> Result<Registered, PasskeyError> {
        let reg: RegisterPublicKeyCredential = credential(credential_json)?;
        let state: PasskeyRegistration = from_json(state)?;
        let passkey = self
            .webauthn
            .finish_passkey_registration(&reg, &state)
            .map_err(|e| refused(&e))?;
        // The library keeps the flags inside the credential; read them from
        // its stored form so they can be checked and shown without it.
        let stored = to_json(&passkey)?;
        let flags: serde_json::Value =
            serde_json::from_str(&stored).map_err(|e| PasskeyError::Internal(e.to_string()))?;
        let flag = |name: &str| flags["cred"][name].as_bool().unwrap_or(false);
        Ok(Registered {
            counter: stored_counter(&flags),
            credential_id: URL_SAFE_NO_PAD.encode(passkey.cred_id()),
            backup_eligible: flag("backup_eligible"),
            backup_state: flag("backup_state"),
            passkey: stored,
        })
    }

    /// Begins a sign-in with the user's passkeys (allow-listed).
    pub fn start_authentication(&self, passkeys: &[String]) -> Result<Started, PasskeyError> {
        let creds = passkeys
            .iter()
            .map(|p| from_json::<Passkey>(p))
            .collect::<Result<Vec<_>, _>>()?;
        let (options, state) = self
            .webauthn
            .start_passkey_authentication(&creds)
            .map_err(|e| PasskeyError::Internal(e.to_string()))?;
        Ok(Started {
            public_key: public_key_of(&options)?,
            mediation: None,
            state: to_json::<PasskeyAuthentication>(&state)?,
        })
    }

    /// Begins a usernameless sign-in: no credentials listed; the
    /// authenticator offers its discoverable ones.
    pub fn start_discoverable(&self) -> Result<Started, PasskeyError> {
        let (options, state) = self
            .webauthn
            .start_discoverable_authentication()
            .map_err(|e| PasskeyError::Internal(e.to_string()))?;
        Ok(Started {
            public_key: public_key_of(&options)?,
            mediation: options.mediation.map(|_| "conditional".to_string()),
            state: to_json::<DiscoverableAuthentication>(&state)?,
        })
    }

    /// Who a usernameless assertion claims to be: the user handle (our user
    /// id) and the credential id (base64url). Only a claim until
    /// [`PasskeyRp::finish_authentication`] checks the signature.
    pub fn identify(
        &self,
        credential_json: &serde_json::Value,
    ) -> Result<(Uuid, String), PasskeyError> {
        let cred: PublicKeyCredential = credential(credential_json)?;
        let (user, cred_id) = self
            .webauthn
            .identify_discoverable_authentication(&cred)
            .map_err(|e| refused(&e))?;
        Ok((user, URL_SAFE_NO_PAD.encode(cred_id)))
    }

    /// The credential id (base64url) an assertion was made with.
    pub fn credential_id(
        &self,
        credential_json: &serde_json::Value,
    ) -> Result<String, PasskeyError> {
        let cred: PublicKeyCredential = credential(credential_json)?;
        Ok(URL_SAFE_NO_PAD.encode(cred.get_credential_id()))
    }

    /// Checks an assertion against the ceremony state (`discoverable` says
    /// which kind began it) and the stored passkey it names.
    pub fn finish_authentication(
        &self,
        credential_json: &serde_json::Value,
        state: &str,
        discoverable: bool,
        stored: &str,
    ) -> Result<Asserted, PasskeyError> {
        let cred: PublicKeyCredential = credential(credential_json)?;
        let mut passkey: Passkey = from_json(stored)?;
        let stored_value: serde_json::Value = from_json(stored)?;
        let result = if discoverable {
            let state: DiscoverableAuthentication = from_json(state)?;
            self.webauthn
                .finish_discoverable_authentication_v2(&cred, state, &passkey)
                .map_err(|e| refused(&e))?
        } else {
            let state: PasskeyAuthentication = from_json(state)?;
            self.webauthn
                .finish_passkey_authentication(&cred, &state)
                .map_err(|e| refused(&e))?
        };
        if result.cred_id() != passkey.cred_id() {
            return Err(PasskeyError::Refused(
                "this credential is not registered to the account",
            ));
        }
        // WebAuthn L3 §7.2 step 21, against the credential as stored now:
        // the ceremony state holds the credentials as they were when the
        // options were made, so two assertions begun together would
        // otherwise both pass the library's own check. A counter that does
        // not move forward (unless both are 0: no counter) is a clone signal.
        let stored_counter = stored_counter(&stored_value);
        if (result.counter() > 0 || stored_counter > 0) && result.counter() <= stored_counter {
            return Err(PasskeyError::PossibleClone);
        }
        let updated_passkey = match passkey.update_credential(&result) {
            Some(true) => Some(to_json(&passkey)?),
            _ => None,
        };
        Ok(Asserted {
            user_verified: result.user_verified(),
            counter: result.counter(),
            backup_eligible: result.backup_eligible(),
            backup_state: result.backup_state(),
            updated_passkey,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(rp_id: Option<&str>, origins: &[&str]) -> PasskeySettings {
        PasskeySettings {
            rp_id: rp_id.map(str::to_string),
            origins: origins.iter().map(|s| s.to_string()).collect(),
            ..PasskeySettings::default()
        }
    }

    #[test]
    fn rp_id_defaults_to_the_public_host() {
        let rp = PasskeyRp::new("https://auth.example.com", &settings(None, &[])).unwrap();
        assert_eq!(rp.rp_id(), "auth.example.com");
        let rp = PasskeyRp::new(
            "https://auth.example.com",
            &settings(Some("example.com"), &["https://app.example.com"]),
        )
        .unwrap();
        assert_eq!(rp.rp_id(), "example.com");
        let origins: Vec<String> = rp
            .webauthn
            .get_allowed_origins()
            .iter()
            .map(|u| u.origin().ascii_serialization())
            .collect();
        assert_eq!(
            origins,
            vec!["https://auth.example.com", "https://app.example.com"]
        );
    }

    #[test]
    fn an_rp_id_that_does_not_cover_the_public_url_is_refused() {
        let err = PasskeyRp::new(
            "https://auth.example.com",
            &settings(Some("other.com"), &[]),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("PORTCULLIS_WEBAUTHN_RP_ID"), "{err}");
        assert!(PasskeyRp::new("http://127.0.0.1:8080", &settings(None, &[])).is_err());
        // Reached by IP with no RP id: passkeys off, the server still starts.
        assert!(
            PasskeyRp::configured("http://127.0.0.1:8080", &settings(None, &[]))
                .unwrap()
                .is_none()
        );
        assert!(
            PasskeyRp::configured("http://127.0.0.1:8080", &settings(Some("example.com"), &[]))
                .is_err()
        );
        assert!(PasskeyRp::new("https://a.example.com", &settings(None, &["not a url"])).is_err());
    }

    #[test]
    fn registration_options_ask_for_a_discoverable_credential_with_verification() {
        let rp = PasskeyRp::new("http://localhost:8080", &settings(None, &[])).unwrap();
        let started = rp
            .start_registration(Uuid::now_v7(), "a@example.com", "A", &[])
            .unwrap();
        let sel = &started.public_key["authenticatorSelection"];
        assert_eq!(sel["residentKey"], "preferred");
        assert_eq!(sel["userVerification"], "required");
        assert_eq!(started.public_key["rp"]["id"], "localhost");
        assert!(started.public_key["challenge"].is_string());
        // The state never goes to the client, but it must round-trip.
        assert!(from_json::<PasskeyRegistration>(&started.state).is_ok());
    }

    #[test]
    fn malformed_credentials_are_refused_with_a_reason() {
        let rp = PasskeyRp::new("http://localhost:8080", &settings(None, &[])).unwrap();
        let started = rp.start_discoverable().unwrap();
        assert_eq!(started.mediation.as_deref(), Some("conditional"));
        let err = rp
            .finish_registration(&serde_json::json!({"id": 1}), &started.state)
            .unwrap_err();
        assert!(matches!(err, PasskeyError::Refused(_)), "{err:?}");
        assert!(rp.identify(&serde_json::json!("nope")).is_err());
    }
}
