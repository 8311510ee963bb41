//! Value parsing shared by the settings: comma-separated lists, the TOML
//! file flattened into `PORTCULLIS_*` keys, and durations like `15m`.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, bail};

pub(super) fn split_list(value: Option<&str>) -> Vec<String> {
    value
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// Reads a TOML file into `PORTCULLIS_*` keys.
pub(super) fn parse_toml(text: &str) -> anyhow::Result<BTreeMap<String, String>> {
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
