//! Offline breached-password screening: a binary fuse
//! filter (`xorf::BinaryFuse8`, about 9 bits per entry, false positives
//! about 0.4 %) built by `portcullis passwords build-filter SOURCE OUT` from a
//! SHA-1 list the operator supplies (one hex hash per line, `HASH` or
//! `HASH:COUNT` as in the Have I Been Pwned download), and loaded from
//! `PORTCULLIS_BREACHED_PASSWORDS`. A new password whose SHA-1 is in the
//! filter is refused (422, code `breached`). Nothing leaves the host: no
//! password, hash or prefix is ever sent anywhere.
//!
//! Keys are the first 8 bytes of the SHA-1, big-endian. File format:
//! `PCBF1\n`, a little-endian u32 length, that many bytes of JSON (the
//! filter's parameters, `fingerprints` empty), then the raw fingerprints.

use std::io::BufRead;
use std::path::Path;

use anyhow::{Context, bail};
use xorf::{BinaryFuse8, Filter};

const MAGIC: &[u8] = b"PCBF1\n";

/// A loaded filter of breached passwords.
#[derive(Debug)]
pub struct BreachedFilter {
    filter: BinaryFuse8,
}

/// What building a filter read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuildReport {
    /// Distinct hashes in the filter.
    pub entries: usize,
    /// Lines that were not a SHA-1 hex hash (skipped).
    pub skipped: usize,
    /// Size of the written filter in bytes.
    pub bytes: usize,
}

/// The filter key of a SHA-1 given in hex (`None` if it is not one).
pub fn key_of_hex(line: &str) -> Option<u64> {
    let hex = line.trim().split(':').next()?.trim();
    if hex.len() != 40 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(&hex[..16], 16).ok()
}

/// The filter key of a password: the first 8 bytes of its SHA-1.
pub fn key_of_password(password: &str) -> u64 {
    let digest = aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY,
        password.as_bytes(),
    );
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest.as_ref()[..8]);
    u64::from_be_bytes(first)
}

impl BreachedFilter {
    /// Builds a filter from SHA-1 lines.
    pub fn build(source: impl BufRead) -> anyhow::Result<(Self, usize, usize)> {
        let mut keys = Vec::new();
        let mut skipped = 0;
        for line in source.lines() {
            let line = line.context("reading the source list")?;
            if line.trim().is_empty() {
                continue;
            }
            match key_of_hex(&line) {
                Some(k) => keys.push(k),
                None => skipped += 1,
            }
        }
        keys.sort_unstable();
        keys.dedup();
        if keys.is_empty() {
            bail!("the source list has no SHA-1 hashes");
        }
        let entries = keys.len();
        let filter = BinaryFuse8::try_from(&keys)
            .map_err(|e| anyhow::anyhow!("building the filter: {e}"))?;
        Ok((Self { filter }, entries, skipped))
    }

    /// Whether the password is (probably) in the list.
    pub fn contains_password(&self, password: &str) -> bool {
        self.filter.contains(&key_of_password(password))
    }

    /// Whether the key is (probably) in the list.
    pub fn contains_key(&self, key: u64) -> bool {
        self.filter.contains(&key)
    }

    /// The filter as bytes (see the module docs for the format).
    pub fn to_bytes(&self) -> anyhow::Result<Vec<u8>> {
        let mut header = serde_json::to_value(&self.filter).context("encoding the filter")?;
        header["fingerprints"] = serde_json::Value::Array(Vec::new());
        let header = serde_json::to_vec(&header)?;
        let mut out =
            Vec::with_capacity(MAGIC.len() + 4 + header.len() + self.filter.fingerprints.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&u32::try_from(header.len())?.to_le_bytes());
        out.extend_from_slice(&header);
        out.extend_from_slice(&self.filter.fingerprints);
        Ok(out)
    }

    /// Reads a filter written by [`BreachedFilter::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> anyhow::Result<Self> {
        let rest = bytes
            .strip_prefix(MAGIC)
            .context("not a Portcullis breached-password filter")?;
        let (len, rest) = rest.split_at_checked(4).context("truncated filter")?;
        let len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize;
        let (header, fingerprints) = rest.split_at_checked(len).context("truncated filter")?;
        let mut header: serde_json::Value =
            serde_json::from_slice(header).context("filter header")?;
        header["fingerprints"] = serde_json::Value::Array(
            fingerprints
                .iter()
                .map(|b| serde_json::Value::from(*b))
                .collect(),
        );
        let filter: BinaryFuse8 = serde_json::from_value(header).context("filter header")?;
        Ok(Self { filter })
    }

    /// Loads `PORTCULLIS_BREACHED_PASSWORDS`.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let bytes = std::fs::read(path).with_context(|| {
            format!("reading {} (PORTCULLIS_BREACHED_PASSWORDS)", path.display())
        })?;
        Self::from_bytes(&bytes).with_context(|| format!("in {}", path.display()))
    }
}

/// `portcullis passwords build-filter SOURCE OUT`.
pub fn build_filter_file(source: &Path, out: &Path) -> anyhow::Result<BuildReport> {
    let file =
        std::fs::File::open(source).with_context(|| format!("opening {}", source.display()))?;
    let (filter, entries, skipped) = BreachedFilter::build(std::io::BufReader::new(file))?;
    let bytes = filter.to_bytes()?;
    std::fs::write(out, &bytes).with_context(|| format!("writing {}", out.display()))?;
    Ok(BuildReport {
        entries,
        skipped,
        bytes: bytes.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha1_hex(s: &str) -> String {
        let d =
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, s.as_bytes());
        d.as_ref().iter().map(|b| format!("{b:02X}")).collect()
    }

    #[test]
    fn listed_passwords_are_found_after_a_round_trip() {
        let listed: Vec<String> = (0..20_000)
            .map(|i| format!("breached password {i}"))
            .collect();
        let source: String = listed
            .iter()
            .enumerate()
            .map(|(i, p)| format!("{}:{}\n", sha1_hex(p), i + 1))
            .chain(["not a hash\n".to_string()])
            .collect();
        let (filter, entries, skipped) = BreachedFilter::build(source.as_bytes()).unwrap();
        assert_eq!((entries, skipped), (20_000, 1));
        let filter = BreachedFilter::from_bytes(&filter.to_bytes().unwrap()).unwrap();
        assert!(
            listed.iter().all(|p| filter.contains_password(p)),
            "no false negatives"
        );
        // False positives: about 1/256 for 8-bit fingerprints.
        let fp = (0..100_000)
            .filter(|i| filter.contains_password(&format!("never listed {i}")))
            .count();
        let rate = fp as f64 / 100_000.0;
        eprintln!("false-positive rate {rate:.4}");
        assert!(rate < 0.01, "{rate}");
        assert!(BreachedFilter::from_bytes(b"garbage").is_err());
    }

    /// The README's figures: `cargo test --lib million -- --ignored --nocapture`.
    #[test]
    #[ignore = "figures for the README; builds a million-entry filter"]
    fn million_entry_figures() {
        let source: String = (0..1_000_000)
            .map(|i| format!("{}\n", sha1_hex(&format!("leaked {i}"))))
            .collect();
        let (filter, entries, _) = BreachedFilter::build(source.as_bytes()).unwrap();
        let bytes = filter.to_bytes().unwrap().len();
        let probes = 1_000_000;
        let fp = (0..probes)
            .filter(|i| filter.contains_password(&format!("never listed {i}")))
            .count();
        eprintln!(
            "{entries} entries: {bytes} bytes ({:.3} bytes/entry), false positives {fp}/{probes} = {:.4} %",
            bytes as f64 / entries as f64,
            100.0 * fp as f64 / probes as f64
        );
    }
}
