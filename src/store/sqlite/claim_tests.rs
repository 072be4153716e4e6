//! The plain claim (job_claim.sql) of a queue it leaves to others (paused, or with limits)
//! must give up before it reads the queue's jobs: it runs before every limited claim, so a
//! walk over the backlog made each claim of a limited queue cost its whole backlog. Counted in
//! SQLite's virtual-machine steps, not in time.

use rusqlite::{params, Connection, StatementStatus};

use super::ensure_clock;
use crate::job::InsertOpts;
use crate::store::{JobInsertParams, QueueLimitParams, QueueLimits};

/// VM steps of one plain claim of `queue`, which holds `backlog` available jobs.
fn plain_claim_steps(path: &std::path::Path, queue: &str) -> i32 {
    let conn = Connection::open(path).unwrap();
    ensure_clock(&conn).unwrap();
    let mut stmt = conn.prepare(sql!("job_claim")).unwrap();
    let claimed = stmt
        .query_map(params![queue, "w", r#"["noop"]"#, 100], |_| Ok(()))
        .unwrap()
        .count();
    assert_eq!(claimed, 0, "the plain claim leaves {queue} alone");
    stmt.get_status(StatementStatus::VmStep)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plain_claim_of_a_paused_or_limited_queue_reads_none_of_its_jobs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("claim.db");
    let store = crate::store::open(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let backlog = 20_000;
    for queue in ["paused", "limited"] {
        let jobs = (0..backlog)
            .map(|_| {
                let opts = InsertOpts {
                    queue: Some(queue.into()),
                    ..Default::default()
                };
                JobInsertParams::new("noop", serde_json::json!({}), opts).unwrap()
            })
            .collect();
        store.job_insert_many(jobs).await.unwrap();
    }
    store.queue_pause("paused").await.unwrap();
    store
        .queue_limit_set(QueueLimitParams {
            queue: "limited".into(),
            clear: false,
            set: QueueLimits {
                concurrency: Some(5),
                ..Default::default()
            },
        })
        .await
        .unwrap();
    for queue in ["paused", "limited"] {
        let steps = plain_claim_steps(&path, queue);
        assert!(
            steps < 1_000,
            "{steps} VM steps for a claim that takes nothing from {queue} ({backlog} jobs)"
        );
    }
}
