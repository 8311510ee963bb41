//! Mail templates: a subject, a text body and an HTML body per message
//! kind and locale, rendered with `minijinja`.
//!
//! Built-in templates (`en`) are compiled in from `src/mail/templates/`.
//! `PORTCULLIS_TEMPLATES_DIR` overrides any of them: a file
//! `<dir>/<locale>/<name>.<subject|txt|html>` wins over the built-in one of
//! that locale. A locale without the template falls back to `en`. Values
//! are HTML-escaped in `.html` templates (minijinja's auto-escape by file
//! extension) and inserted as they are in the text ones; the text part is
//! always there.

use std::collections::BTreeMap;
use std::path::PathBuf;

use minijinja::{Environment, Value};

/// The locale every template exists in.
pub const FALLBACK_LOCALE: &str = "en";

/// Built-in templates: (path, source).
const BUILT_IN: &[(&str, &str)] = &[
    (
        "en/reset.subject",
        include_str!("templates/en/reset.subject"),
    ),
    ("en/reset.txt", include_str!("templates/en/reset.txt")),
    ("en/reset.html", include_str!("templates/en/reset.html")),
    (
        "en/verify.subject",
        include_str!("templates/en/verify.subject"),
    ),
    ("en/verify.txt", include_str!("templates/en/verify.txt")),
    ("en/verify.html", include_str!("templates/en/verify.html")),
    (
        "en/already_registered.subject",
        include_str!("templates/en/already_registered.subject"),
    ),
    (
        "en/already_registered.txt",
        include_str!("templates/en/already_registered.txt"),
    ),
    (
        "en/already_registered.html",
        include_str!("templates/en/already_registered.html"),
    ),
    (
        "en/notice.subject",
        include_str!("templates/en/notice.subject"),
    ),
    ("en/notice.txt", include_str!("templates/en/notice.txt")),
    ("en/notice.html", include_str!("templates/en/notice.html")),
    (
        "en/new_sign_in.subject",
        include_str!("templates/en/new_sign_in.subject"),
    ),
    (
        "en/new_sign_in.txt",
        include_str!("templates/en/new_sign_in.txt"),
    ),
    (
        "en/new_sign_in.html",
        include_str!("templates/en/new_sign_in.html"),
    ),
    // Passwordless sign-in.
    (
        "en/sign_in.subject",
        include_str!("templates/en/sign_in.subject"),
    ),
    ("en/sign_in.txt", include_str!("templates/en/sign_in.txt")),
    ("en/sign_in.html", include_str!("templates/en/sign_in.html")),
];

/// A rendered message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// One line.
    pub subject: String,
    /// The text/plain part.
    pub text: String,
    /// The text/html part.
    pub html: String,
}

/// The template set.
pub struct Templates {
    env: Environment<'static>,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Templates").finish_non_exhaustive()
    }
}

/// A locale tag reduced to what can name a folder (`en`, `pt-BR`);
/// anything else is the fallback.
fn clean_locale(locale: Option<&str>) -> String {
    match locale {
        Some(l)
            if !l.is_empty()
                && l.len() <= 35
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') =>
        {
            l.to_string()
        }
        _ => FALLBACK_LOCALE.to_string(),
    }
}

impl Templates {
    /// The built-in templates, overridden by files under `dir` when given.
    pub fn new(dir: Option<PathBuf>) -> Self {
        let built_in: BTreeMap<&'static str, &'static str> = BUILT_IN.iter().copied().collect();
        let mut env = Environment::new();
        env.set_loader(move |name| {
            if let Some(dir) = &dir {
                // Names are `<clean locale>/<fixed name>.<ext>`: no path
                // from outside reaches the file system.
                match std::fs::read_to_string(dir.join(name)) {
                    Ok(s) => return Ok(Some(s)),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => {
                        return Err(minijinja::Error::new(
                            minijinja::ErrorKind::InvalidOperation,
                            format!("reading template {name}: {e}"),
                        ));
                    }
                }
            }
            Ok(built_in.get(name).map(|s| (*s).to_string()))
        });
        Self { env }
    }

    /// Renders `name` in `locale` (falling back to `en` per part) with `ctx`.
    pub fn render(
        &self,
        name: &str,
        locale: Option<&str>,
        ctx: &Value,
    ) -> Result<Rendered, minijinja::Error> {
        let locale = clean_locale(locale);
        let part = |ext: &str| -> Result<String, minijinja::Error> {
            let wanted = format!("{locale}/{name}.{ext}");
            let template = match self.env.get_template(&wanted) {
                Ok(t) => t,
                Err(e) if e.kind() == minijinja::ErrorKind::TemplateNotFound => self
                    .env
                    .get_template(&format!("{FALLBACK_LOCALE}/{name}.{ext}"))?,
                Err(e) => return Err(e),
            };
            template.render(ctx)
        };
        Ok(Rendered {
            subject: part("subject")?
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .to_string(),
            text: part("txt")?,
            html: part("html")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use minijinja::context;

    fn reset_ctx(link: &str) -> Value {
        context! { link => link, code => "12345678", minutes => 30, email => "a@example.com" }
    }

    #[test]
    fn every_built_in_template_renders() {
        let t = Templates::new(None);
        for name in [
            "reset",
            "verify",
            "already_registered",
            "notice",
            "new_sign_in",
            "sign_in",
        ] {
            let r = t
                .render(
                    name,
                    None,
                    &context! { link => "https://x/y?token=t", code => "12345678",
                    minutes => 30, hours => 24, email => "a@example.com",
                    notice => "password_changed", sign_in_url => "https://x",
                    reset_url => "https://x/reset-password", at => "2026-11-25T12:00:00Z",
                    device => "Firefox on Linux", ip => "192.0.2.1" },
                )
                .unwrap();
            assert!(!r.subject.is_empty(), "{name}");
            assert!(!r.text.trim().is_empty(), "{name}");
            assert!(r.html.contains("<html"), "{name}");
        }
    }

    #[test]
    fn html_escapes_values_and_text_keeps_them() {
        let t = Templates::new(None);
        let r = t
            .render("reset", Some("en"), &reset_ctx("https://x/?a=1&token=<b>"))
            .unwrap();
        assert!(r.html.contains("?a=1&amp;token=&lt;b&gt;"), "{}", r.html);
        assert!(!r.html.contains("<b>"));
        assert!(r.text.contains("https://x/?a=1&token=<b>"));
        assert!(r.text.contains("12345678"));
    }

    #[test]
    fn unknown_locale_falls_back_and_a_dir_overrides() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("fr")).unwrap();
        std::fs::write(
            dir.path().join("fr/reset.subject"),
            "Réinitialisation {{ code }}\n",
        )
        .unwrap();
        let t = Templates::new(Some(dir.path().to_path_buf()));
        let fr = t.render("reset", Some("fr"), &reset_ctx("l")).unwrap();
        assert_eq!(fr.subject, "Réinitialisation 12345678");
        // Parts the override lacks come from `en`.
        assert!(fr.text.contains("12345678"));
        let de = t.render("reset", Some("de"), &reset_ctx("l")).unwrap();
        let en = t.render("reset", None, &reset_ctx("l")).unwrap();
        assert_eq!(de, en);
        let evil = t
            .render("reset", Some("../../etc"), &reset_ctx("l"))
            .unwrap();
        assert_eq!(evil, en);
    }
}
