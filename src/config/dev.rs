//! Developer mode (`portcullis serve --dev` or `PORTCULLIS_DEV=true`): a
//! laptop setting. Per-IP rate limits are off, CORS answers any
//! `http://localhost:*` and `http://127.0.0.1:*` page, every mail's links
//! and codes are also written to the log, and a banner says so at start-up.
//! It refuses to start unless the public URL names the loopback (so it can
//! never be left on by accident on a server others reach).

use std::net::IpAddr;

use anyhow::bail;

use super::Settings;

/// The start-up banner (one log line).
pub const DEV_BANNER: &str = "DEVELOPER MODE: per-IP rate limits are off, CORS accepts http://localhost:* and http://127.0.0.1:*, and every mail's links and codes are printed to this log; never use it in production";

impl Settings {
    /// Turns developer mode on (see the module docs). Fails, in one line,
    /// when the public URL is not a loopback URL.
    pub fn enable_dev(&mut self) -> anyhow::Result<()> {
        let url = &self.http.public_url;
        if !is_loopback_url(url) {
            bail!(
                "developer mode (--dev / PORTCULLIS_DEV) needs a loopback public URL such as http://localhost:8080, not {url:?}: unset PORTCULLIS_PUBLIC_URL or turn developer mode off"
            );
        }
        self.dev = true;
        self.limits.rate_limit = false;
        Ok(())
    }
}

/// Parses `PORTCULLIS_DEV` (unset: off).
pub(super) fn parse_dev(value: Option<&str>) -> anyhow::Result<bool> {
    match value {
        None | Some("false" | "off" | "0") => Ok(false),
        Some("true" | "on" | "1") => Ok(true),
        Some(other) => bail!("PORTCULLIS_DEV must be true or false, not {other:?}"),
    }
}

/// Whether `url` is an `http(s)` URL whose host is `localhost` (or a name
/// under `.localhost`) or a loopback address (`127.0.0.0/8`, `[::1]`).
pub fn is_loopback_url(url: &str) -> bool {
    let Some(rest) = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
    else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority.rsplit('@').next().unwrap_or_default();
    let host = if let Some(v6) = host_port.strip_prefix('[') {
        match v6.split_once(']') {
            Some((h, _)) => h,
            None => return false,
        }
    } else {
        host_port.split(':').next().unwrap_or_default()
    };
    let host = host.to_ascii_lowercase();
    if host == "localhost" || host.ends_with(".localhost") {
        return true;
    }
    host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_urls() {
        for ok in [
            "http://localhost:8080",
            "http://LOCALHOST",
            "https://app.localhost:3000/x",
            "http://127.0.0.1:8080",
            "http://127.1.2.3",
            "http://[::1]:8080",
        ] {
            assert!(is_loopback_url(ok), "{ok}");
        }
        for bad in [
            "https://auth.example.com",
            "http://localhost.example.com",
            "http://10.0.0.1:8080",
            "http://0.0.0.0:8080",
            "http://[::2]:80",
            "http://user@example.com",
            "ftp://localhost",
            "localhost:8080",
        ] {
            assert!(!is_loopback_url(bad), "{bad}");
        }
    }

    #[test]
    fn dev_mode_turns_rate_limits_off_and_refuses_public_urls() {
        use std::collections::BTreeMap;
        let map = BTreeMap::from([("PORTCULLIS_DEV".to_string(), "true".to_string())]);
        let s = Settings::from_map(&map).unwrap();
        assert!(s.dev);
        assert!(!s.limits.rate_limit);
        let off = Settings::from_map(&BTreeMap::new()).unwrap();
        assert!(!off.dev);
        assert!(off.limits.rate_limit);
        let public = BTreeMap::from([
            ("PORTCULLIS_DEV".to_string(), "true".to_string()),
            (
                "PORTCULLIS_PUBLIC_URL".to_string(),
                "https://auth.example.com".to_string(),
            ),
        ]);
        let err = Settings::from_map(&public).unwrap_err().to_string();
        assert!(err.contains("loopback"), "{err}");
        assert!(!err.contains('\n'), "{err}");
        let bad = BTreeMap::from([("PORTCULLIS_DEV".to_string(), "yes".to_string())]);
        assert!(Settings::from_map(&bad).is_err());
    }
}
