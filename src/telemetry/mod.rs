//! Structured logs with `tracing`, and the Prometheus metrics recorder.
//!
//! Secrets never reach a log line: passwords and tokens live in
//! `SecretString` (redacted `Debug`), handlers never log bodies, and the
//! request span records the path without its query string.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::FmtSpan;

use crate::config::LogFormat;

mod json;

/// Installs the global subscriber. `RUST_LOG` overrides the default level
/// (`info`). Safe to call more than once (later calls do nothing).
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,poem=warn,mongodb=warn,hickory=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_span_events(FmtSpan::NONE)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder
            .fmt_fields(json::JsonSpanFields)
            .event_format(json::JsonLine)
            .try_init(),
        LogFormat::Pretty => builder.compact().try_init(),
    };
}

static METRICS: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// The process-wide Prometheus recorder (installed on first use; one per
/// process, shared by every server in it).
pub fn metrics() -> Option<&'static PrometheusHandle> {
    METRICS
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets(&[
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                ])
                .ok()?;
            match builder.install_recorder() {
                Ok(handle) => {
                    spawn_upkeep(handle.clone());
                    Some(handle)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "metrics recorder not installed");
                    None
                }
            }
        })
        .as_ref()
}

/// How often the recorder's histograms are drained. `install_recorder`
/// leaves this to the caller: without it every recorded duration stays in
/// memory until `/metrics` is scraped (about 200 bytes a refresh under load,
/// without end when nothing scrapes).
const UPKEEP_EVERY: Duration = Duration::from_secs(5);
const UPKEEP_THREAD: &str = "metrics-upkeep";

/// One thread per process (the recorder is process-wide), not a task on a
/// runtime: the recorder outlives any one server's runtime.
fn spawn_upkeep(handle: PrometheusHandle) {
    let spawned = std::thread::Builder::new()
        .name(UPKEEP_THREAD.into())
        .spawn(move || {
            loop {
                std::thread::sleep(UPKEEP_EVERY);
                handle.run_upkeep();
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "metrics upkeep thread not started");
    }
}

/// Every counter the service increments, with each label set it uses: they
/// are registered at 0 when the server starts, so a dashboard or an alert on
/// `rate(...)` sees them before the first event.
pub const COUNTERS: &[(&str, &[(&str, &str)])] = &[
    ("portcullis_logins_total", &[("result", "success")]),
    ("portcullis_logins_total", &[("result", "failure")]),
    ("portcullis_logins_total", &[("result", "throttled")]),
    ("portcullis_registrations_total", &[]),
    ("portcullis_refresh_reuse_total", &[]),
    ("portcullis_password_verifications_total", &[]),
    (
        "portcullis_password_changes_total",
        &[("result", "success")],
    ),
    (
        "portcullis_password_changes_total",
        &[("result", "failure")],
    ),
    ("portcullis_captcha_refusals_total", &[]),
    ("portcullis_rate_limited_total", &[]),
    ("portcullis_sessions_evicted_total", &[]),
    ("portcullis_store_writes_total", &[]),
    ("portcullis_store_flushes_total", &[]),
];

/// Registers every counter of [`COUNTERS`] at 0 (an increment by 0 creates
/// a series without changing a value already there).
pub fn register_counters() {
    for (name, labels) in COUNTERS {
        let labels: Vec<metrics::Label> = labels
            .iter()
            .map(|(k, v)| metrics::Label::new(*k, *v))
            .collect();
        metrics::counter!(*name, labels).increment(0);
    }
}

/// Maps request paths to their route templates (`/v1/sessions/{sid}`), so
/// metric labels stay few whatever the paths requested.
#[derive(Debug, Clone)]
pub struct RouteLabels {
    /// Templates without a parameter, by their path: one lookup for most
    /// requests instead of a scan of every template.
    exact: std::collections::HashMap<String, Arc<str>>,
    routes: Vec<(Vec<Option<String>>, Arc<str>)>,
    unmatched: Arc<str>,
}

impl RouteLabels {
    /// From the OpenAPI paths (`{param}` segments match anything), plus extras.
    pub fn new<'a>(templates: impl IntoIterator<Item = &'a str>) -> Self {
        let mut routes: Vec<(Vec<Option<String>>, Arc<str>)> = templates
            .into_iter()
            .map(|t| {
                let segments = t
                    .trim_matches('/')
                    .split('/')
                    .map(|s| (!s.starts_with('{')).then(|| s.to_string()))
                    .collect();
                (segments, Arc::from(t))
            })
            .collect();
        // Literal segments win over parameters (`/refresh` before `/{sid}`).
        routes.sort_by_key(|(segments, _)| segments.iter().filter(|s| s.is_none()).count());
        let exact = routes
            .iter()
            .filter(|(segments, _)| segments.iter().all(Option::is_some))
            .map(|(_, t)| (t.trim_matches('/').to_owned(), t.clone()))
            .collect();
        Self {
            exact,
            routes,
            unmatched: Arc::from("unmatched"),
        }
    }

    /// The template a path matches (cheap to clone: a shared string).
    pub fn label(&self, path: &str) -> Arc<str> {
        let path = path.trim_matches('/');
        if let Some(t) = self.exact.get(path) {
            return t.clone();
        }
        let count = path.split('/').count();
        self.routes
            .iter()
            .find(|(segments, _)| {
                segments.len() == count
                    && segments
                        .iter()
                        .zip(path.split('/'))
                        .all(|(s, p)| s.as_deref().is_none_or(|s| s == p))
            })
            .map_or_else(|| self.unmatched.clone(), |(_, t)| t.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_labels() {
        let l = RouteLabels::new([
            "/v1/sessions",
            "/v1/sessions/{sid}",
            "/v1/sessions/refresh",
            "/docs",
        ]);
        assert_eq!(&*l.label("/v1/sessions"), "/v1/sessions");
        assert_eq!(&*l.label("/v1/sessions/refresh"), "/v1/sessions/refresh");
        assert_eq!(&*l.label("/v1/sessions/abc-123"), "/v1/sessions/{sid}");
        assert_eq!(&*l.label("/v1/sessions/a/b"), "unmatched");
        assert_eq!(&*l.label("/etc/passwd"), "unmatched");
    }

    /// Without upkeep the histograms keep every recorded value until a
    /// scrape; the soak benchmark saw RSS grow ~11 MB a minute.
    #[cfg(target_os = "linux")]
    #[test]
    fn histograms_are_drained_without_a_scrape() {
        if metrics().is_none() {
            return; // another recorder owns this process
        }
        // The new thread names itself once it runs: look for a while.
        let names = || -> Vec<String> {
            std::fs::read_dir("/proc/self/task")
                .unwrap()
                .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
                .map(|c| c.trim().to_owned())
                .collect()
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !names().iter().any(|n| n == UPKEEP_THREAD) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let names = names();
        assert!(
            names.iter().any(|n| n == UPKEEP_THREAD),
            "no {UPKEEP_THREAD} thread among {names:?}"
        );
    }
}
