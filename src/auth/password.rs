//! Password hashing: bcrypt over a fixed-length pre-hash, off the async
//! runtime, on a fixed pool of threads fed by one queue.
//!
//! The pool (`PORTCULLIS_BCRYPT_CONCURRENCY` threads, one per core by
//! default) replaced a semaphore in front of tokio's blocking pool: there, a
//! finished hash released its permit, the next waiter's task was woken on
//! the async runtime and only then handed its work to a blocking thread, so
//! each core idled for a moment between two hashes (sign-in reached 0.88 of
//! the bcrypt limit at 2 connections). A pool thread takes the next job off
//! the queue the instant it finishes one. A job whose caller has gone (the
//! client hung up while it queued) is skipped, not computed.
//!
//! bcrypt reads only 72 bytes of its input, so the input we give it is
//! `base64(HMAC-SHA-256(pepper, password))`: 44 ASCII bytes whatever the
//! password's length or script, so nothing is ever truncated. The pepper is a
//! 32-byte server secret in `<keys dir>/password-pepper.key`; a stolen
//! database alone cannot be attacked offline without it. Losing the pepper
//! invalidates every password, so back it up with the signing keys.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use secrecy::{ExposeSecret, SecretBox, SecretString};

use super::secrets::hmac_sha256;
use crate::domain::Password;

const PEPPER_FILE: &str = "password-pepper.key";

/// Counter of completed bcrypt verifications (sign-in, password checks).
pub const VERIFICATIONS_METRIC: &str = "portcullis_password_verifications_total";

/// Hashes and verifies passwords.
#[derive(Clone)]
pub struct PasswordHasher {
    pepper: Arc<SecretBox<[u8; 32]>>,
    cost: u32,
    pool: Arc<BcryptPool>,
    /// A well-formed hash of the configured cost that matches no password:
    /// unknown emails are checked against it so they cost what a wrong
    /// password costs.
    dummy_hash: Arc<str>,
    /// Dummy hashes of the costs below the configured one that imports may
    /// have (see [`PasswordHasher::verify_legacy`]), by cost.
    pads: Arc<[(u32, String)]>,
}

/// How far an imported hash's cost may be from the configured cost.
pub const IMPORT_COST_SPREAD: u32 = 2;
/// The highest bcrypt cost ever imported or verified as imported (about
/// 4 s a check): a stray cost-31 row would hold a bcrypt thread for days.
pub const MAX_IMPORTED_COST: u32 = 16;

impl std::fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHasher")
            .field("cost", &self.cost)
            .finish_non_exhaustive()
    }
}

/// Reads the pepper from the keys folder, creating it (mode 0600) if absent.
pub fn load_or_create_pepper(keys_dir: &Path) -> anyhow::Result<(SecretBox<[u8; 32]>, bool)> {
    super::secrets::load_or_create_secret(keys_dir, PEPPER_FILE)
}

impl PasswordHasher {
    /// A hasher at bcrypt `cost` with at most `concurrency` hashes at once.
    ///
    /// The dummy hash for unknown accounts is made here by the real hasher
    /// (same cost, same pepper path, a random password nobody knows), so
    /// checking against it is a real bcrypt verification of the same cost.
    /// A hand-written constant once was not valid bcrypt (non-zero trailing
    /// bits in its salt): verification failed at once and unknown emails
    /// answered 200 times faster than wrong passwords.
    pub fn new(pepper: SecretBox<[u8; 32]>, cost: u32, concurrency: usize) -> anyhow::Result<Self> {
        let mut hasher = Self {
            pepper: Arc::new(pepper),
            cost,
            pool: Arc::new(BcryptPool::new(concurrency.max(1))?),
            dummy_hash: Arc::from(""),
            pads: Arc::from(Vec::new()),
        };
        let mut unknown = [0u8; 32];
        rand::Rng::fill(&mut rand::rng(), &mut unknown);
        let input = hasher.prehash(&B64.encode(unknown));
        let dummy = bcrypt::non_truncating_hash(input.expose_secret(), cost)
            .context("making the dummy hash")?;
        hasher.dummy_hash = dummy.into();
        let mut pads = Vec::new();
        for c in *hasher.importable_costs().start()..cost {
            let pad = bcrypt::non_truncating_hash(input.expose_secret(), c)
                .context("making a padding hash")?;
            pads.push((c, pad));
        }
        hasher.pads = pads.into();
        Ok(hasher)
    }

    /// The bcrypt costs `users import` accepts: the configured cost ± 2
    /// (at least 4, at most [`MAX_IMPORTED_COST`] unless the configured
    /// cost is higher), so an imported account's wrong password costs what
    /// an unknown address's does, and no row can stall a bcrypt thread.
    pub fn importable_costs(&self) -> std::ops::RangeInclusive<u32> {
        let low = self.cost.saturating_sub(IMPORT_COST_SPREAD).max(4);
        let high = (self.cost + IMPORT_COST_SPREAD).min(MAX_IMPORTED_COST.max(self.cost));
        low..=high
    }

    /// The cost of a bcrypt hash (`$2b$12$...` → 12).
    pub fn bcrypt_cost(hash: &str) -> Option<u32> {
        hash.get(4..6)?.parse().ok()
    }

    /// A keyed, one-way name for `text` (an email) in logs: the same
    /// address always gives the same 16 hex digits, so an investigation can
    /// follow it, but nobody without the pepper can tell which address it
    /// is. Domain-separated from the password pre-hash.
    pub fn pseudonym(&self, text: &str) -> String {
        let mac = hmac_sha256(
            self.pepper.expose_secret(),
            format!("log-pseudonym\0{text}").as_bytes(),
        );
        mac.iter().take(8).map(|b| format!("{b:02x}")).collect()
    }

    /// The fixed-length bcrypt input for a password.
    fn prehash(&self, password: &str) -> SecretString {
        let mac = hmac_sha256(self.pepper.expose_secret(), password.as_bytes());
        SecretString::from(B64.encode(mac))
    }

    /// Hashes a password for storage.
    pub async fn hash(&self, password: &Password) -> anyhow::Result<String> {
        let input = self.prehash(password.expose());
        let cost = self.cost;
        self.pool
            .run(move || {
                bcrypt::non_truncating_hash(input.expose_secret(), cost).context("bcrypt hash")
            })
            .await?
    }

    /// Checks a password against an imported hash: plain bcrypt of the raw
    /// password (`$2a$`, `$2b$`, `$2y$`), as other systems (the seed
    /// application among them) store it. Like those systems, bcrypt reads
    /// the first 72 bytes. Runs under the same cap as every hash.
    ///
    /// Timing: a hash of a lower cost `c` is followed by
    /// checks against dummy hashes of costs `c` to configured − 1, whose
    /// work adds up to the configured cost's (2^c + 2^c + ... + 2^(C-1) =
    /// 2^C), so it answers in the time of an unknown address. A hash
    /// outside [`PasswordHasher::importable_costs`] (stored before that
    /// rule) is never run: the check is the dummy's, and it fails.
    pub async fn verify_legacy(&self, password: &Password, hash: &str) -> anyhow::Result<bool> {
        let cost = Self::bcrypt_cost(hash);
        if !cost.is_some_and(|c| self.importable_costs().contains(&c)) {
            tracing::warn!("imported hash of a cost outside the accepted range: not checked");
            self.verify(password, None).await?;
            return Ok(false);
        }
        let pads: Vec<String> = self
            .pads
            .iter()
            .filter(|(c, _)| cost.is_some_and(|cost| *c >= cost))
            .map(|(_, pad)| pad.clone())
            .collect();
        let input = SecretString::from(password.expose().to_string());
        let padding = self.prehash(password.expose());
        let hash = hash.to_string();
        self.pool
            .run(move || {
                let matched = bcrypt::verify(input.expose_secret(), &hash).unwrap_or(false);
                for pad in &pads {
                    let _ = bcrypt::non_truncating_verify(padding.expose_secret(), pad);
                }
                matched
            })
            .await
    }

    /// Whether `hash` is a bcrypt hash this service can import (`$2a$`,
    /// `$2b$` or `$2y$`, a cost of 4 to 31, 53 characters of bcrypt's
    /// alphabet after the cost).
    pub fn is_importable_bcrypt(hash: &str) -> bool {
        let Some(rest) = ["$2a$", "$2b$", "$2y$"]
            .iter()
            .find_map(|p| hash.strip_prefix(p))
        else {
            return false;
        };
        let Some((cost, tail)) = rest.split_once('$') else {
            return false;
        };
        cost.len() == 2
            && cost.parse::<u32>().is_ok_and(|c| (4..=31).contains(&c))
            && tail.len() == 53
            && tail
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '/')
    }

    /// Checks a password against a stored hash, or against the dummy hash
    /// when there is none (unknown account), so both take the same time.
    ///
    /// A verification that cannot run (a malformed stored hash) is an error,
    /// never a silent "no match": a silent failure is fast, and fast is
    /// what tells an attacker which emails have accounts. Every completed
    /// verification counts in `portcullis_password_verifications_total`.
    pub async fn verify(&self, password: &Password, stored: Option<&str>) -> anyhow::Result<bool> {
        let input = self.prehash(password.expose());
        let known = stored.is_some();
        let hash = stored.unwrap_or(&self.dummy_hash).to_string();
        let matched = self
            .pool
            .run(move || bcrypt::non_truncating_verify(input.expose_secret(), &hash))
            .await?
            .context("bcrypt verify (malformed stored hash?)")?;
        metrics::counter!(VERIFICATIONS_METRIC).increment(1);
        Ok(known && matched)
    }
}

/// A job for the pool: computes, then sends its result to its caller.
type Job = Box<dyn FnOnce() + Send>;

/// A fixed set of threads that run bcrypt, fed by one FIFO queue. The
/// threads end when the last [`PasswordHasher`] holding the pool is dropped
/// (the queue's sender goes with it).
struct BcryptPool {
    jobs: crossbeam_channel::Sender<Job>,
}

impl BcryptPool {
    fn new(threads: usize) -> anyhow::Result<Self> {
        let (jobs, queue) = crossbeam_channel::unbounded::<Job>();
        for i in 0..threads {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("bcrypt-{i}"))
                .spawn(move || {
                    while let Ok(job) = queue.recv() {
                        job();
                    }
                })
                .context("starting a bcrypt thread")?;
        }
        Ok(Self { jobs })
    }

    /// Runs `work` on a pool thread, after the jobs queued before it.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> anyhow::Result<T> {
        let (reply, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            if reply.is_closed() {
                return; // the caller is gone: nobody needs this hash
            }
            // A panic in bcrypt must not take the thread (and with it a
            // core's worth of sign-ins) down: the caller gets an error.
            if let Ok(out) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)) {
                let _ = reply.send(out);
            }
        });
        self.jobs
            .send(job)
            .map_err(|_| anyhow::anyhow!("the bcrypt pool has stopped"))?;
        result.await.context("bcrypt job failed")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hasher() -> PasswordHasher {
        PasswordHasher::new(SecretBox::new(Box::new([7u8; 32])), 4, 2).unwrap()
    }

    fn pw(s: &str) -> Password {
        Password::for_verification(SecretString::from(s.to_string()))
    }

    #[tokio::test]
    async fn hash_and_verify() {
        let h = hasher();
        let stored = h.hash(&pw("correct horse battery staple")).await.unwrap();
        assert!(stored.starts_with("$2b$04$"));
        assert!(
            h.verify(&pw("correct horse battery staple"), Some(&stored))
                .await
                .unwrap()
        );
        assert!(
            !h.verify(&pw("correct horse battery stapler"), Some(&stored))
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn passwords_sharing_72_bytes_differ() {
        let h = hasher();
        let base = "a".repeat(72);
        let stored = h.hash(&pw(&format!("{base}-one"))).await.unwrap();
        assert!(
            !h.verify(&pw(&format!("{base}-two")), Some(&stored))
                .await
                .unwrap()
        );
        assert!(!h.verify(&pw(&base), Some(&stored)).await.unwrap());
        assert!(
            h.verify(&pw(&format!("{base}-one")), Some(&stored))
                .await
                .unwrap()
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn pool_runs_at_most_its_threads_at_once() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let pool = Arc::new(BcryptPool::new(3).unwrap());
        let (now, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let jobs: Vec<_> = (0..12)
            .map(|_| {
                let (pool, now, most) = (pool.clone(), now.clone(), most.clone());
                tokio::spawn(async move {
                    pool.run(move || {
                        let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(n, Ordering::SeqCst);
                        std::thread::sleep(std::time::Duration::from_millis(20));
                        now.fetch_sub(1, Ordering::SeqCst);
                    })
                    .await
                    .unwrap()
                })
            })
            .collect();
        for j in jobs {
            j.await.unwrap();
        }
        assert_eq!(most.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_job_whose_caller_left_is_skipped() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let pool = BcryptPool::new(1).unwrap();
        let (release, gate) = std::sync::mpsc::channel::<()>();
        let ran = Arc::new(AtomicUsize::new(0));
        // Occupies the only thread until released.
        let busy = pool.run(move || gate.recv().unwrap());
        tokio::pin!(busy);
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(20), &mut busy)
                .await
                .is_err()
        );
        // Queued behind it, then abandoned by its caller.
        let counted = ran.clone();
        let abandoned = pool.run(move || counted.fetch_add(1, Ordering::SeqCst));
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(20), abandoned)
                .await
                .is_err()
        );
        release.send(()).unwrap();
        busy.await.unwrap();
        // A later job runs; the abandoned one did not.
        let counted = ran.clone();
        pool.run(move || counted.load(Ordering::SeqCst))
            .await
            .unwrap();
        assert_eq!(ran.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn dummy_hash_is_real_bcrypt_of_the_configured_cost() {
        let h = hasher();
        assert!(h.dummy_hash.starts_with("$2b$04$"), "{}", h.dummy_hash);
        // It parses and verifies (to false), instead of failing at once.
        assert!(!bcrypt::non_truncating_verify("anything", &h.dummy_hash).unwrap());
        let h10 = PasswordHasher::new(SecretBox::new(Box::new([7u8; 32])), 10, 1).unwrap();
        assert!(h10.dummy_hash.starts_with("$2b$10$"));
    }

    #[tokio::test]
    async fn malformed_stored_hash_is_an_error_not_a_quiet_mismatch() {
        let h = hasher();
        let bad = "$2b$04$PortcullisDummySaltAAAPortcullisDummyHashThatMatchesX";
        assert!(h.verify(&pw("anything at all"), Some(bad)).await.is_err());
    }

    /// L10: an imported hash of a cost outside the accepted range is never
    /// run (a cost-31 check would hold a thread for days).
    #[tokio::test]
    async fn imported_hash_of_a_wild_cost_is_not_run() {
        let h = hasher();
        let legacy = bcrypt::hash("legacy password", 4).unwrap();
        let wild = legacy.replacen("$04$", "$31$", 1);
        let password = pw("legacy password");
        let check = h.verify_legacy(&password, &wild);
        let matched = tokio::time::timeout(std::time::Duration::from_secs(10), check)
            .await
            .expect("a cost-31 hash was run")
            .unwrap();
        assert!(!matched);
        assert_eq!(h.importable_costs(), 4..=6);
        let h7 = PasswordHasher::new(SecretBox::new(Box::new([7u8; 32])), 7, 1).unwrap();
        assert_eq!(h7.importable_costs(), 5..=9);
        assert_eq!(h7.pads.iter().map(|(c, _)| *c).collect::<Vec<_>>(), [5, 6]);
    }

    /// L10: a lower-cost import still verifies (padded to the configured
    /// cost's work), and a wrong password still fails.
    #[tokio::test]
    async fn lower_cost_import_verifies_with_padding() {
        let h = PasswordHasher::new(SecretBox::new(Box::new([7u8; 32])), 6, 1).unwrap();
        let legacy = bcrypt::hash("legacy password", 4).unwrap();
        assert!(
            h.verify_legacy(&pw("legacy password"), &legacy)
                .await
                .unwrap()
        );
        assert!(
            !h.verify_legacy(&pw("wrong password"), &legacy)
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn unknown_account_never_matches() {
        let h = hasher();
        assert!(!h.verify(&pw("anything at all"), None).await.unwrap());
    }

    #[tokio::test]
    async fn another_pepper_does_not_verify() {
        let stored = hasher()
            .hash(&pw("correct horse battery staple"))
            .await
            .unwrap();
        let other = PasswordHasher::new(SecretBox::new(Box::new([8u8; 32])), 4, 2).unwrap();
        assert!(
            !other
                .verify(&pw("correct horse battery staple"), Some(&stored))
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn legacy_hashes_of_every_prefix_verify() {
        let h = hasher();
        let raw = bcrypt::hash("legacy password", 4).unwrap();
        assert!(PasswordHasher::is_importable_bcrypt(&raw));
        for prefix in ["$2a$", "$2b$", "$2y$"] {
            let hash = format!("{prefix}{}", &raw[4..]);
            assert!(PasswordHasher::is_importable_bcrypt(&hash));
            assert!(
                h.verify_legacy(&pw("legacy password"), &hash)
                    .await
                    .unwrap()
            );
            assert!(!h.verify_legacy(&pw("wrong password"), &hash).await.unwrap());
        }
        // The peppered scheme does not accept a plain bcrypt hash.
        assert!(!h.verify(&pw("legacy password"), Some(&raw)).await.unwrap());
        for bad in ["", "$2b$12$short", "$1$abc", "$2b$99$", "plaintext"] {
            assert!(!PasswordHasher::is_importable_bcrypt(bad), "{bad}");
        }
    }

    #[test]
    fn pepper_file_is_created_once() {
        let dir = tempfile::tempdir().unwrap();
        let (a, created) = load_or_create_pepper(dir.path()).unwrap();
        assert!(created);
        let (b, created) = load_or_create_pepper(dir.path()).unwrap();
        assert!(!created);
        assert_eq!(a.expose_secret(), b.expose_secret());
    }
}
