//! What one point read of the embedded store costs inline on the async
//! thread versus through `spawn_blocking` (issue 16: should the bearer
//! check's store read hop to the blocking pool?).
//!
//! `cargo run --release --example redb_read_cost -- MODE N` with MODE one of
//! `inline`, `blocking`, `none` (the loop alone, to subtract). The read is
//! the embedded store's: a read transaction, the `sessions` table, one
//! JSON `SessionRecord` decoded, with the data in redb's cache (a warm-up
//! pass reads every key first). Prints wall-clock ns per read; on a busy
//! machine use instruction counts instead:
//!
//! ```text
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null \
//!     target/release/examples/redb_read_cost inline 20000
//! ```
//!
//! and take (Ir(MODE) - Ir(none)) / N.

use std::time::Instant;

use portcullis::store::SessionRecord;
use redb::{Database, ReadableDatabase, TableDefinition};

const SESSIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("sessions");
const KEYS: usize = 1_000;

fn session(i: usize) -> SessionRecord {
    SessionRecord {
        id: format!("0193a5b2-7c4e-7000-8000-{i:012}"),
        user_id: format!("0193a5b2-0000-7000-8000-{i:012}").into(),
        current_jti: uuid::Uuid::new_v4().to_string(),
        previous_jti: Some(uuid::Uuid::new_v4().to_string()),
        rotated_at: 1_900_000_000,
        generation: 3,
        amr: vec!["pwd".into()],
        created_at: 1_900_000_000,
        last_used_at: 1_900_000_000,
        expires_at: 1_902_592_000,
        revoked_at: None,
        user_agent: Some("Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0".into()),
        ip: Some("203.0.113.7".into()),
        proven_at: Some(1_900_000_000),
        idp: None,
        client_id: None,
        audience: None,
        scope: None,
        dpop_jkt: None,
    }
}

fn read(db: &Database, i: usize) -> Option<SessionRecord> {
    let key = format!("0193a5b2-7c4e-7000-8000-{:012}", i % KEYS);
    let txn = db.begin_read().ok()?;
    let table = txn.open_table(SESSIONS).ok()?;
    let v = table.get(key.as_str()).ok()??;
    serde_json::from_slice(v.value()).ok()
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let mode = args.get(1).map(String::as_str).unwrap_or("inline");
    let n: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(10_000);
    let dir = tempfile::tempdir()?;
    let db = std::sync::Arc::new(Database::create(dir.path().join("bench.redb"))?);
    let txn = db.begin_write()?;
    {
        let mut t = txn.open_table(SESSIONS)?;
        for i in 0..KEYS {
            let s = session(i);
            t.insert(s.id.as_str(), serde_json::to_vec(&s)?.as_slice())?;
        }
    }
    txn.commit()?;
    for i in 0..KEYS {
        anyhow::ensure!(read(&db, i).is_some(), "warm-up read failed");
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let found = rt.block_on(async {
        let start = Instant::now();
        let mut found = 0usize;
        for i in 0..n {
            let hit = match mode {
                "inline" => read(&db, i).is_some(),
                "blocking" => {
                    let db = db.clone();
                    tokio::task::spawn_blocking(move || read(&db, i).is_some())
                        .await
                        .unwrap_or(false)
                }
                _ => std::hint::black_box(i % KEYS) < KEYS,
            };
            found += usize::from(hit);
        }
        let ns = start.elapsed().as_nanos() / n.max(1) as u128;
        println!("{mode}: {n} reads, {ns} ns/read (wall clock)");
        found
    });
    anyhow::ensure!(found == n, "{found} of {n} reads found their key");
    Ok(())
}
