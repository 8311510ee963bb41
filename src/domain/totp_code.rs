//! `TotpCode`: what a user types from an authenticator app.

/// Six ASCII digits (spaces, as apps display `123 456`, are dropped). Only
/// the format is checked here; whether it is the right code is for
/// `auth::totp::check`.
#[derive(Clone, PartialEq, Eq)]
pub struct TotpCode(String);

impl std::fmt::Debug for TotpCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A code is a (short-lived) credential: never logged.
        f.write_str("TotpCode(..)")
    }
}

impl TotpCode {
    /// Digits of a code.
    pub const DIGITS: usize = 6;

    /// Parses a code as typed; the error says why it cannot be one.
    pub fn parse(input: &str) -> Result<Self, &'static str> {
        let digits: String = input.chars().filter(|c| *c != ' ').collect();
        if digits.len() != Self::DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err("must be the 6 digits shown by the authenticator app");
        }
        Ok(Self(digits))
    }

    /// The six digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn six_digits_with_optional_spaces() {
        assert_eq!(TotpCode::parse("123456").unwrap().as_str(), "123456");
        assert_eq!(TotpCode::parse("123 456").unwrap().as_str(), "123456");
        for bad in [
            "",
            "12345",
            "1234567",
            "12345a",
            "１２３４５６",
            "+12345",
            "12\t3456",
        ] {
            assert!(TotpCode::parse(bad).is_err(), "{bad:?}");
        }
        assert!(!format!("{:?}", TotpCode::parse("123456").unwrap()).contains("123"));
    }
}
