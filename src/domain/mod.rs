//! Validated newtypes: a value that exists is valid.

mod display_name;
mod email;
mod password;
mod profile;
mod totp_code;
mod user_id;

pub use display_name::DisplayName;
pub use email::Email;
pub use password::{Password, PasswordPolicy, PasswordProblem};
pub use profile::{Locale, Metadata, TimeZoneName};
pub use totp_code::TotpCode;
pub use user_id::UserId;
