//! Typed settings, loaded in layers: built-in defaults, then an optional
//! `portcullis.toml`, then `PORTCULLIS_*` environment variables.
//!
//! The TOML file takes the same keys as the environment, either spelled in
//! full (`PORTCULLIS_LISTEN = "0.0.0.0:8080"`) or without the prefix in lower
//! case (`listen = "0.0.0.0:8080"`). Its path is `PORTCULLIS_CONFIG`, or
//! `./portcullis.toml` when that file exists.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use ipnet::IpNet;
use secrecy::SecretString;

/// JOSE algorithm used for newly generated keys and newly issued tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigningAlg {
    EdDsa,
    Es256,
    Rs256,
}

impl SigningAlg {
    pub fn parse(s: &str) -> anyhow::Result<Self> {
        match s.trim().to_ascii_uppercase().as_str() {
            "EDDSA" | "ED25519" => Ok(Self::EdDsa),
            "ES256" => Ok(Self::Es256),
            "RS256" => Ok(Self::Rs256),
            other => bail!("unsupported signing algorithm {other:?} (EdDSA, ES256 or RS256)"),
        }
    }

    pub fn jose_name(self) -> &'static str {
        match self {
            Self::EdDsa => "EdDSA",
            Self::Es256 => "ES256",
            Self::Rs256 => "RS256",
        }
    }
}

/// When a proof-of-work CAPTCHA is demanded on sign-in and registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaptchaMode {
    Off,
    OnFailures,
    Always,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

/// Every setting of the service. Field docs name the configuration key.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `PORTCULLIS_LISTEN`: socket address to bind (port 0 picks a free port).
    pub listen: SocketAddr,
    /// `PORTCULLIS_PUBLIC_URL`: base URL clients reach the service at (links in emails).
    pub public_url: String,
    /// `PORTCULLIS_ISSUER`: the `iss` of every token (defaults to the public URL).
    pub issuer: String,
    /// `PORTCULLIS_AUDIENCE`: the `aud` of every token.
    pub audience: String,
    /// `PORTCULLIS_DATA_DIR`: directory of the embedded store and the email outbox.
    pub data_dir: PathBuf,
    /// `PORTCULLIS_KEYS_DIR`: directory of the PEM signing keys and server secrets.
    pub keys_dir: PathBuf,
    /// `PORTCULLIS_MONGODB_URI`: when set, MongoDB is the store instead of the embedded one.
    pub mongodb_uri: Option<SecretString>,
    /// `PORTCULLIS_MONGODB_DB`: MongoDB database name.
    pub mongodb_db: String,
    /// `PORTCULLIS_MONGODB_TIMEOUT`: server selection / connect timeout (default 3s).
    pub mongodb_timeout: Duration,
    /// `PORTCULLIS_BCRYPT_COST`: bcrypt work factor (4..=31).
    pub bcrypt_cost: u32,
    /// `PORTCULLIS_BCRYPT_CONCURRENCY`: how many bcrypt computations run at once
    /// (default: the number of CPU cores).
    pub bcrypt_concurrency: usize,
    /// `PORTCULLIS_PASSWORD_MIN_SCORE`: lowest accepted zxcvbn score, 0..=4 (default 2).
    pub password_min_score: u8,
    /// `PORTCULLIS_SIGNING_ALG`: algorithm of new keys and new tokens.
    pub signing_alg: SigningAlg,
    /// `PORTCULLIS_ACCESS_TTL`: access-token lifetime.
    pub access_ttl: Duration,
    /// `PORTCULLIS_REFRESH_TTL`: refresh-token (session) lifetime, renewed at each refresh.
    pub refresh_ttl: Duration,
    /// `PORTCULLIS_REFRESH_GRACE`: how long a just-retired refresh token still
    /// yields the family's current pair (0 disables the grace window).
    pub refresh_grace: Duration,
    /// `PORTCULLIS_CORS_ORIGINS`: origins allowed to call the API from a browser.
    pub cors_origins: Vec<String>,
    /// `PORTCULLIS_TRUSTED_PROXIES`: CIDRs whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
    /// `PORTCULLIS_SMTP_URL`: SMTP server for outgoing mail; unset writes to `<data>/outbox/`.
    pub smtp_url: Option<SecretString>,
    /// `PORTCULLIS_SMTP_FROM`: sender address of outgoing mail.
    pub smtp_from: String,
    /// `PORTCULLIS_CAPTCHA`: `off`, `on-failures` or `always`.
    pub captcha: CaptchaMode,
    /// `PORTCULLIS_LOGIN_MAX_FAILURES`: failed sign-ins per account in 15 minutes
    /// before throttling.
    pub login_max_failures: u32,
    /// `PORTCULLIS_RATE_LIMIT`: per-IP rate limits on (`on`) or off (`off`).
    pub rate_limit: bool,
    /// `PORTCULLIS_MAX_BODY_BYTES`: largest accepted JSON request body (default 64 KiB).
    pub max_body_bytes: usize,
    /// `PORTCULLIS_LOG_FORMAT`: `pretty` or `json` (default: pretty on a terminal).
    pub log_format: LogFormat,
}

impl Settings {
    /// Defaults, then the optional TOML file, then the process environment.
    pub fn load() -> anyhow::Result<Self> {
        let mut layers = BTreeMap::new();
        let file = std::env::var_os("PORTCULLIS_CONFIG").map(PathBuf::from);
        let file = match file {
            Some(path) => Some(path),
            None => {
                let default = PathBuf::from("portcullis.toml");
                default.exists().then_some(default)
            }
        };
        if let Some(path) = file {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            layers.extend(parse_toml(&text).with_context(|| format!("in {}", path.display()))?);
        }
        for (key, value) in std::env::vars() {
            if key.starts_with("PORTCULLIS_") {
                layers.insert(key, value);
            }
        }
        Self::from_map(&layers)
    }

    /// Builds settings from `PORTCULLIS_*` keys; anything missing takes its default.
    pub fn from_map(map: &BTreeMap<String, String>) -> anyhow::Result<Self> {
        let get = |key: &str| map.get(key).map(|v| v.trim()).filter(|v| !v.is_empty());
        let parse_with =
            |key: &str, default: &str| -> String { get(key).unwrap_or(default).to_string() };

        let listen = parse_with("PORTCULLIS_LISTEN", "127.0.0.1:8080")
            .parse()
            .context("PORTCULLIS_LISTEN must be an address like 127.0.0.1:8080")?;
        let public_url = parse_with("PORTCULLIS_PUBLIC_URL", "http://localhost:8080")
            .trim_end_matches('/')
            .to_string();
        let issuer = get("PORTCULLIS_ISSUER")
            .map(str::to_string)
            .unwrap_or_else(|| public_url.clone());
        let bcrypt_cost: u32 = parse_with("PORTCULLIS_BCRYPT_COST", "12")
            .parse()
            .context("PORTCULLIS_BCRYPT_COST must be a number")?;
        if !(4..=31).contains(&bcrypt_cost) {
            bail!("PORTCULLIS_BCRYPT_COST must be between 4 and 31");
        }
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let bcrypt_concurrency: usize = match get("PORTCULLIS_BCRYPT_CONCURRENCY") {
            Some(v) => v
                .parse()
                .context("PORTCULLIS_BCRYPT_CONCURRENCY must be a number")?,
            None => cores,
        };
        if bcrypt_concurrency == 0 {
            bail!("PORTCULLIS_BCRYPT_CONCURRENCY must be at least 1");
        }
        let password_min_score: u8 = parse_with("PORTCULLIS_PASSWORD_MIN_SCORE", "2")
            .parse()
            .ok()
            .filter(|s| *s <= 4)
            .context("PORTCULLIS_PASSWORD_MIN_SCORE must be 0..=4")?;
        let access_ttl = parse_duration(&parse_with("PORTCULLIS_ACCESS_TTL", "15m"))
            .context("PORTCULLIS_ACCESS_TTL")?;
        let refresh_ttl = parse_duration(&parse_with("PORTCULLIS_REFRESH_TTL", "30d"))
            .context("PORTCULLIS_REFRESH_TTL")?;
        let refresh_grace = parse_duration(&parse_with("PORTCULLIS_REFRESH_GRACE", "10s"))
            .context("PORTCULLIS_REFRESH_GRACE")?;
        if access_ttl.is_zero() || refresh_ttl.is_zero() {
            bail!("token lifetimes must be longer than zero");
        }
        let mongodb_timeout = parse_duration(&parse_with("PORTCULLIS_MONGODB_TIMEOUT", "3s"))
            .context("PORTCULLIS_MONGODB_TIMEOUT")?;
        let cors_origins = split_list(get("PORTCULLIS_CORS_ORIGINS"));
        let trusted_proxies = split_list(get("PORTCULLIS_TRUSTED_PROXIES"))
            .iter()
            .map(|s| {
                s.parse::<IpNet>()
                    .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                    .with_context(|| format!("PORTCULLIS_TRUSTED_PROXIES: {s:?} is not a CIDR"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let captcha = match parse_with("PORTCULLIS_CAPTCHA", "on-failures").as_str() {
            "off" => CaptchaMode::Off,
            "on-failures" => CaptchaMode::OnFailures,
            "always" => CaptchaMode::Always,
            other => bail!("PORTCULLIS_CAPTCHA must be off, on-failures or always, not {other:?}"),
        };
        let login_max_failures = parse_with("PORTCULLIS_LOGIN_MAX_FAILURES", "5")
            .parse()
            .context("PORTCULLIS_LOGIN_MAX_FAILURES must be a number")?;
        let rate_limit = match parse_with("PORTCULLIS_RATE_LIMIT", "on").as_str() {
            "on" | "true" | "1" => true,
            "off" | "false" | "0" => false,
            other => bail!("PORTCULLIS_RATE_LIMIT must be on or off, not {other:?}"),
        };
        let max_body_bytes = parse_with("PORTCULLIS_MAX_BODY_BYTES", "65536")
            .parse()
            .context("PORTCULLIS_MAX_BODY_BYTES must be a number of bytes")?;
        let log_format = match get("PORTCULLIS_LOG_FORMAT") {
            Some("json") => LogFormat::Json,
            Some("pretty") => LogFormat::Pretty,
            Some(other) => bail!("PORTCULLIS_LOG_FORMAT must be pretty or json, not {other:?}"),
            None => {
                use std::io::IsTerminal;
                if std::io::stderr().is_terminal() {
                    LogFormat::Pretty
                } else {
                    LogFormat::Json
                }
            }
        };

        Ok(Self {
            listen,
            public_url,
            issuer,
            audience: parse_with("PORTCULLIS_AUDIENCE", "portcullis"),
            data_dir: PathBuf::from(parse_with("PORTCULLIS_DATA_DIR", "./data")),
            keys_dir: PathBuf::from(parse_with("PORTCULLIS_KEYS_DIR", "./keys")),
            mongodb_uri: get("PORTCULLIS_MONGODB_URI").map(|s| SecretString::from(s.to_string())),
            mongodb_db: parse_with("PORTCULLIS_MONGODB_DB", "portcullis"),
            mongodb_timeout,
            bcrypt_cost,
            bcrypt_concurrency,
            password_min_score,
            signing_alg: SigningAlg::parse(&parse_with("PORTCULLIS_SIGNING_ALG", "EdDSA"))?,
            access_ttl,
            refresh_ttl,
            refresh_grace,
            cors_origins,
            trusted_proxies,
            smtp_url: get("PORTCULLIS_SMTP_URL").map(|s| SecretString::from(s.to_string())),
            smtp_from: parse_with("PORTCULLIS_SMTP_FROM", "Portcullis <no-reply@localhost>"),
            captcha,
            login_max_failures,
            rate_limit,
            max_body_bytes,
            log_format,
        })
    }
}

fn split_list(value: Option<&str>) -> Vec<String> {
    value
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// Reads a TOML file into `PORTCULLIS_*` keys.
fn parse_toml(text: &str) -> anyhow::Result<BTreeMap<String, String>> {
    let table: toml::Table = text.parse().context("not valid TOML")?;
    let mut out = BTreeMap::new();
    for (key, value) in table {
        let key = key.to_ascii_uppercase();
        let key = if key.starts_with("PORTCULLIS_") {
            key
        } else {
            format!("PORTCULLIS_{key}")
        };
        let value = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Boolean(b) => if b { "on" } else { "off" }.to_string(),
            toml::Value::Array(items) => items
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| v.to_string())
                })
                .collect::<Vec<_>>()
                .join(","),
            other => bail!("{key}: unsupported value {other}"),
        };
        out.insert(key, value);
    }
    Ok(out)
}

/// Parses durations written like `15m`, `30d`, `10s`, `500ms`, `2h` (or bare seconds).
pub fn parse_duration(s: &str) -> anyhow::Result<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let n: u64 = digits
        .parse()
        .with_context(|| format!("{s:?} is not a duration like 15m, 30d or 10s"))?;
    let secs = |m: u64| {
        n.checked_mul(m)
            .map(Duration::from_secs)
            .context("duration too large")
    };
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "" | "s" => secs(1),
        "m" => secs(60),
        "h" => secs(3600),
        "d" => secs(86_400),
        "w" => secs(7 * 86_400),
        _ => bail!("{s:?}: unknown unit {unit:?} (use ms, s, m, h, d or w)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("15m").unwrap(), Duration::from_secs(900));
        assert_eq!(
            parse_duration("30d").unwrap(),
            Duration::from_secs(2_592_000)
        );
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("0s").unwrap(), Duration::ZERO);
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert!(parse_duration("15 minutes").is_err());
        assert!(parse_duration("m").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn defaults_match_the_contract() {
        let s = Settings::from_map(&BTreeMap::new()).unwrap();
        assert_eq!(s.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(s.issuer, "http://localhost:8080");
        assert_eq!(s.audience, "portcullis");
        assert_eq!(s.bcrypt_cost, 12);
        assert_eq!(s.signing_alg, SigningAlg::EdDsa);
        assert_eq!(s.access_ttl, Duration::from_secs(900));
        assert_eq!(s.refresh_ttl, Duration::from_secs(30 * 86_400));
        assert_eq!(s.refresh_grace, Duration::from_secs(10));
        assert_eq!(s.captcha, CaptchaMode::OnFailures);
        assert_eq!(s.login_max_failures, 5);
        assert!(s.rate_limit);
        assert!(s.mongodb_uri.is_none());
    }

    #[test]
    fn toml_keys_with_and_without_prefix() {
        let map = parse_toml("listen = \"0.0.0.0:9000\"\nPORTCULLIS_BCRYPT_COST = 4\ncors_origins = [\"https://a\", \"https://b\"]\n").unwrap();
        let s = Settings::from_map(&map).unwrap();
        assert_eq!(s.listen.port(), 9000);
        assert_eq!(s.bcrypt_cost, 4);
        assert_eq!(s.cors_origins, vec!["https://a", "https://b"]);
    }

    #[test]
    fn bad_values_are_refused() {
        for (k, v) in [
            ("PORTCULLIS_BCRYPT_COST", "3"),
            ("PORTCULLIS_SIGNING_ALG", "HS256"),
            ("PORTCULLIS_CAPTCHA", "sometimes"),
            ("PORTCULLIS_TRUSTED_PROXIES", "not-a-cidr"),
            ("PORTCULLIS_ACCESS_TTL", "0s"),
        ] {
            let map = BTreeMap::from([(k.to_string(), v.to_string())]);
            assert!(Settings::from_map(&map).is_err(), "{k}={v} accepted");
        }
    }
}
