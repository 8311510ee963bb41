//! Passwords: 8 to 128 characters of any script, never truncated, and not
//! common or easily guessed (zxcvbn).

use secrecy::{ExposeSecret, SecretString};

/// A password that passed the length rules. Kept in a `SecretString` so it
/// cannot be logged by accident. The strength rule needs context (the
/// user's email and name) and is applied by [`PasswordPolicy::check`].
pub struct Password(SecretString);

/// Why a password was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordProblem {
    /// Fewer than 8 characters.
    TooShort,
    /// More than 128 characters.
    TooLong,
    /// Too easy to guess; the text is the estimator's advice.
    TooCommon(String),
}

impl PasswordProblem {
    /// Machine-readable code (`too_short`, `too_long`, `too_common`).
    pub fn code(&self) -> &'static str {
        match self {
            Self::TooShort => "too_short",
            Self::TooLong => "too_long",
            Self::TooCommon(_) => "too_common",
        }
    }

    /// Human-readable explanation.
    pub fn detail(&self) -> String {
        match self {
            Self::TooShort => format!("must be at least {} characters", Password::MIN_CHARS),
            Self::TooLong => format!("must be at most {} characters", Password::MAX_CHARS),
            Self::TooCommon(hint) => format!("is too common or easy to guess. {hint}")
                .trim()
                .to_string(),
        }
    }
}

impl Password {
    /// Fewest accepted characters.
    pub const MIN_CHARS: usize = 8;
    /// Most accepted characters.
    pub const MAX_CHARS: usize = 128;

    /// Length rules only, counted in Unicode scalar values, never bytes.
    pub fn parse(input: SecretString) -> Result<Self, PasswordProblem> {
        let n = input.expose_secret().chars().count();
        if n < Self::MIN_CHARS {
            return Err(PasswordProblem::TooShort);
        }
        if n > Self::MAX_CHARS {
            return Err(PasswordProblem::TooLong);
        }
        Ok(Self(input))
    }

    /// For checking a sign-in attempt: any length up to a sanity bound is
    /// verified (a stored password is within the rules, so anything else
    /// simply fails to match).
    pub fn for_verification(input: SecretString) -> Self {
        Self(input)
    }

    /// The password text (for hashing only).
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password([REDACTED])")
    }
}

/// The strength rule: a minimum zxcvbn score, with the user's own email and
/// name counted as guessable words.
///
/// No length skips the check (earlier, any 64-character password used to
/// pass, `"a"` × 64 and the user's email × 4 included). Long passphrases
/// still pass when they are genuinely strong: zxcvbn scores a run of one
/// character or a repeated word as weak, and 64 varied emoji as strong.
#[derive(Debug, Clone, Copy)]
pub struct PasswordPolicy {
    /// Lowest accepted zxcvbn score (0..=4).
    pub min_score: u8,
}

impl PasswordPolicy {
    /// Checks strength; `user_inputs` are words of the user's own (email, name) that make a password guessable.
    pub fn check(&self, password: &Password, user_inputs: &[&str]) -> Result<(), PasswordProblem> {
        if built_from_own_words(password.expose(), user_inputs) {
            return Err(PasswordProblem::TooCommon(
                "Avoid building it from your own email address or name.".to_string(),
            ));
        }
        let entropy = zxcvbn::zxcvbn(password.expose(), user_inputs);
        if u8::from(entropy.score()) >= self.min_score {
            return Ok(());
        }
        let hint = entropy
            .feedback()
            .and_then(|f| f.suggestions().first().map(|s| s.to_string()))
            .unwrap_or_default();
        Err(PasswordProblem::TooCommon(hint))
    }
}

/// Whether `password` is (nearly) nothing but the user's own words: with
/// every occurrence of them taken out (compared in NFKC lower case), fewer
/// than [`Password::MIN_CHARS`] characters are left. zxcvbn alone lets
/// some through: a long address repeated four times, or an address typed
/// in another form than the stored one.
fn built_from_own_words(password: &str, user_inputs: &[&str]) -> bool {
    use unicode_normalization::UnicodeNormalization;
    let fold = |s: &str| s.nfkc().collect::<String>().to_lowercase();
    let mut words: Vec<String> = user_inputs
        .iter()
        .map(|w| fold(w))
        .filter(|w| w.chars().count() >= 3)
        .collect();
    // Longest first: the whole address goes before its local part.
    words.sort_by_key(|w| std::cmp::Reverse(w.len()));
    let whole = fold(password);
    let mut rest = whole.clone();
    for w in &words {
        rest = rest.replace(w.as_str(), "");
    }
    rest.len() < whole.len() && rest.chars().count() < Password::MIN_CHARS
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pw(s: &str) -> Result<Password, PasswordProblem> {
        Password::parse(SecretString::from(s.to_string()))
    }

    #[test]
    fn lengths_count_characters_not_bytes() {
        assert_eq!(pw("short").unwrap_err(), PasswordProblem::TooShort);
        assert!(pw(&"🔐".repeat(8)).is_ok());
        assert!(pw(&"🦀".repeat(64)).is_ok());
        assert!(pw(&"x".repeat(128)).is_ok());
        assert_eq!(pw(&"x".repeat(129)).unwrap_err(), PasswordProblem::TooLong);
    }

    #[test]
    fn common_passwords_are_refused() {
        let policy = PasswordPolicy { min_score: 2 };
        for bad in [
            "password",
            "12345678",
            "password123",
            "qwertyuiop",
            "iloveyou1",
        ] {
            let p = pw(bad).unwrap();
            assert!(policy.check(&p, &[]).is_err(), "{bad} accepted");
        }
        let p = pw("alice@example.com").unwrap();
        assert!(policy.check(&p, &["alice@example.com"]).is_err());
        let good = pw("correct horse battery staple").unwrap();
        assert!(policy.check(&good, &[]).is_ok());
        let repeated = pw(&"🔐".repeat(20)).unwrap();
        assert!(policy.check(&repeated, &[]).is_err());
    }

    /// 64 varied emoji (a real passphrase in another script).
    fn varied_emoji() -> String {
        (0..64u32)
            .map(|i| char::from_u32(0x1F600 + (i * 7) % 80).unwrap())
            .collect()
    }

    #[test]
    fn no_length_skips_the_strength_check() {
        let policy = PasswordPolicy { min_score: 2 };
        let email = "victim@example.com";
        for bad in [
            "a".repeat(64),
            "a".repeat(128),
            "🔐".repeat(64),
            email.repeat(4),
            "password".repeat(16),
        ] {
            let p = pw(&bad).unwrap();
            assert!(policy.check(&p, &[email]).is_err(), "{bad} accepted");
        }
        let strong = pw(&varied_emoji()).unwrap();
        assert_eq!(strong.expose().chars().count(), 64);
        assert!(policy.check(&strong, &[email]).is_ok());
        let phrase =
            pw("the quiet otter juggles seven brass lanterns beneath a violet harbor").unwrap();
        assert!(policy.check(&phrase, &[email]).is_ok());
    }

    /// The user's own address repeated is refused whatever its form:
    /// zxcvbn alone accepted a long one × 4 and other spellings of it.
    #[test]
    fn own_email_repeated_is_refused_in_every_form() {
        let policy = PasswordPolicy { min_score: 2 };
        for (typed, inputs) in [
            (
                "j.doe+tag@mail.example.org",
                vec!["j.doe+tag@mail.example.org", "j.doe+tag"],
            ),
            (
                "uni@bücher.example",
                vec!["uni@xn--bcher-kva.example", "uni", "uni@bücher.example"],
            ),
            ("ｅｍａｉｌ@example.com", vec!["email@example.com", "email"]),
            ("Victim@Example.com", vec!["victim@example.com", "victim"]),
        ] {
            for times in 1..=4 {
                let p = pw(&typed.repeat(times)).unwrap();
                assert!(policy.check(&p, &inputs).is_err(), "{typed} x {times}");
            }
            let p = pw(&format!("{typed}!1")).unwrap();
            assert!(policy.check(&p, &inputs).is_err(), "{typed}!1");
        }
        // A real passphrase that mentions the name still passes.
        let p = pw("anna climbs seven granite towers at dawn").unwrap();
        assert!(
            policy
                .check(&p, &["anna@example.com", "anna", "Anna"])
                .is_ok()
        );
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let p = pw("hunter2hunter2").unwrap();
        assert!(!format!("{p:?}").contains("hunter2"));
    }

    proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,200}") {
            let _ = pw(&s);
        }
    }
}
