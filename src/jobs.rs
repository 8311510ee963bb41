//! Background tasks that run beside the server: today the purge of expired
//! records and idle rate-limit buckets.

use std::time::Duration;

use crate::service::Core;

/// How often expired records are purged.
pub const PURGE_EVERY: Duration = Duration::from_secs(600);

/// Handles of the running background tasks.
pub struct Jobs {
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Jobs {
    /// Stops every task.
    pub fn stop(self) {
        for t in self.tasks {
            t.abort();
        }
    }
}

/// Starts the background tasks for `core`.
pub fn spawn(core: Core) -> Jobs {
    let purge = tokio::spawn(async move {
        let mut tick = tokio::time::interval(PURGE_EVERY);
        loop {
            tick.tick().await;
            match core.housekeeping().await {
                Ok(n) if n > 0 => tracing::info!(purged = n, "expired records purged"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "purge of expired records failed"),
            }
        }
    });
    Jobs { tasks: vec![purge] }
}
