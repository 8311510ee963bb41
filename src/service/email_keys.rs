//! Finding an account by email under today's normalization (IDNA, case), with
//! accounts stored by earlier releases still found (normalize on read).

use super::{Core, Result};
use crate::domain::Email;
use crate::store::UserRecord;

impl Core {
    /// The account of `email`: under its normalized key, else under the key
    /// an earlier release stored (Unicode domains; see
    /// [`Email::legacy_key`]).
    pub(super) async fn user_by_email(&self, email: &Email) -> Result<Option<UserRecord>> {
        if let Some(u) = self.store.user_by_email(email.as_str()).await? {
            return Ok(Some(u));
        }
        match email.legacy_key() {
            Some(legacy) => Ok(self.store.user_by_email(&legacy).await?),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use secrecy::SecretString;

    use crate::clock::Clock;
    use crate::config::Settings;
    use crate::domain::Password;
    use crate::service::{ClientInfo, Error, Registration};
    use crate::store::{CredentialRecord, UserRecord};

    /// An account stored by an earlier release under its Unicode-domain key still
    /// signs in however the address is typed, and cannot be registered twice.
    #[tokio::test]
    async fn accounts_stored_under_the_earlier_key_keep_working() {
        let dir = tempfile::tempdir().unwrap();
        let map = BTreeMap::from([
            (
                "PORTCULLIS_DATA_DIR".to_string(),
                dir.path().join("data").display().to_string(),
            ),
            (
                "PORTCULLIS_KEYS_DIR".to_string(),
                dir.path().join("keys").display().to_string(),
            ),
            ("PORTCULLIS_BCRYPT_COST".to_string(), "4".to_string()),
            ("PORTCULLIS_RATE_LIMIT".to_string(), "off".to_string()),
        ]);
        let settings = Settings::from_map(&map).unwrap();
        let core = crate::startup::build_core(settings, Clock::system())
            .await
            .unwrap();
        let password = "correct horse battery staple 42";
        let hash = core
            .hasher
            .hash(&Password::for_verification(SecretString::from(password)))
            .await
            .unwrap();
        let legacy = UserRecord {
            id: crate::domain::UserId::mint(),
            // The key the earlier release stored: NFC, lower case, Unicode domain.
            email: "bücher@bücher.example".to_string(),
            email_verified: false,
            display_name: None,
            roles: vec!["user".into()],
            disabled: false,
            created_at: 1_700_000_000,
            updated_at: 1_700_000_000,
            ..UserRecord::default()
        };
        core.store
            .create_user(
                &legacy,
                &CredentialRecord {
                    password_hash: hash,
                    ..CredentialRecord::default()
                },
            )
            .await
            .unwrap();
        for typed in ["bücher@bücher.example", "BÜCHER@xn--bcher-kva.example"] {
            let tokens = core
                .login(
                    typed,
                    SecretString::from(password),
                    None,
                    ClientInfo::default(),
                )
                .await
                .unwrap();
            let crate::service::SignIn::Tokens(tokens) = tokens else {
                panic!("no two-factor here: {typed}");
            };
            assert_eq!(tokens.account.id, legacy.id, "{typed}");
        }
        let again = Registration {
            email: "bücher@xn--bcher-kva.example".into(),
            password: SecretString::from(password),
            display_name: None,
            locale: None,
            captcha: None,
        };
        assert!(matches!(
            core.register(again, &ClientInfo::default()).await,
            Err(Error::Conflict(_))
        ));
    }
}
