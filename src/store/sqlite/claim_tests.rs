//! Claims must read about the jobs they take. The plain claim (job_claim.sql) of a queue it
//! leaves to others (paused, or with limits) must give up before it reads the queue's jobs: it
//! runs before every limited claim, so a walk over the backlog made each claim of a limited
//! queue cost its whole backlog. Counted in SQLite's virtual-machine steps, not in time.

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

/// VM steps of one claim of 100 jobs of `queue` by `sql` with `params`, and the jobs it took;
/// rolled back, so each count starts from the same rows.
fn claim_steps(path: &std::path::Path, sql: &str, params: &[&dyn rusqlite::ToSql]) -> (i32, usize) {
    let mut conn = Connection::open(path).unwrap();
    ensure_clock(&conn).unwrap();
    let tx = conn.transaction().unwrap();
    let counted = {
        let mut stmt = tx.prepare(sql).unwrap();
        let took = stmt.query_map(params, |_| Ok(())).unwrap().count();
        (stmt.get_status(StatementStatus::VmStep), took)
    };
    tx.rollback().unwrap();
    counted
}

/// The per-key claim looks at about the jobs it may take, not at a fixed multiple of them: a
/// pool of 4 x the jobs asked for (before) cost 3 x the steps of the same claim without
/// limits, and most of it was never taken. (Taking all that the limits allow even when a pool
/// holds several jobs of one key is a conformance case: `per_key_and_global_limits_combine`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_per_key_claim_reads_about_the_jobs_it_takes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("claim.db");
    let store = crate::store::open(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    for queue in ["plain", "keyed"] {
        let jobs = (0..20_000)
            .map(|i| {
                let opts = InsertOpts {
                    queue: Some(queue.into()),
                    concurrency_key: Some(format!("k{}", i % 1000)),
                    ..Default::default()
                };
                JobInsertParams::new("noop", serde_json::json!({}), opts).unwrap()
            })
            .collect();
        store.job_insert_many(jobs).await.unwrap();
    }
    let kinds = r#"["noop"]"#;
    let (plain, took) = claim_steps(&path, sql!("job_claim"), params!["plain", "w", kinds, 100]);
    assert_eq!(took, 100);
    let none: Option<u32> = None;
    let no_window: Option<String> = None;
    // ?4 = 100 asked, ?6 = per key 1, ?11 = 100 for free slots, none waiting or in slots.
    let (keyed, took) = claim_steps(
        &path,
        sql!("job_claim_limited"),
        params!["keyed", "w", kinds, 100, none, 1, none, no_window, none, no_window, 100, 0, 0, 0],
    );
    assert_eq!(took, 100, "one job of each of 100 keys");
    assert!(
        keyed < 2 * plain,
        "the per-key claim took {keyed} VM steps against {plain} without limits"
    );
}

/// VM steps of porter's claim of 100 jobs of `queue` and of their completion, in one
/// transaction that is rolled back; with `bare`, on a schema without the five triggers on
/// `state` (dropped inside that transaction).
fn claim_and_complete_steps(path: &std::path::Path, queue: &str, bare: bool) -> (i32, i32) {
    let mut conn = Connection::open(path).unwrap();
    ensure_clock(&conn).unwrap();
    let tx = conn.transaction().unwrap();
    if bare {
        tx.execute_batch(
            "DROP TRIGGER porter_batch_callback_due; DROP TRIGGER porter_jobs_reopened; \
             DROP TRIGGER porter_jobs_finalized; DROP TRIGGER porter_jobs_sequence_next; \
             DROP TRIGGER porter_jobs_parent_failed;",
        )
        .unwrap();
    }
    let (claim, fences) = {
        let mut stmt = tx.prepare(sql!("job_claim")).unwrap();
        let fences = stmt
            .query_map(params![queue, "w", r#"["noop"]"#, 100], |r| {
                Ok((r.get::<_, i64>("id")?, r.get::<_, i64>("attempt")?, "w"))
            })
            .unwrap()
            .collect::<rusqlite::Result<Vec<_>>>()
            .unwrap();
        (stmt.get_status(StatementStatus::VmStep), fences)
    };
    assert_eq!(fences.len(), 100);
    let complete = {
        let mut stmt = tx.prepare(sql!("job_complete")).unwrap();
        let fences = serde_json::to_string(&fences).unwrap();
        let done = stmt.query_map([fences], |_| Ok(())).unwrap().count();
        assert_eq!(done, 100);
        stmt.get_status(StatementStatus::VmStep)
    };
    tx.rollback().unwrap();
    (claim, complete)
}

/// A job that no other job waits on (no batch, no dependents, no sequence key) pays almost
/// nothing for the triggers on `state`: each tells at its first term that it has nothing to do
/// (migration 0021; five triggers since 0025 split porter_jobs_finalized in three). Before,
/// each claimed or completed row ran their WHENs' `state IN (...)` terms first, each a
/// temporary b-tree built anew: 48 more VM steps per claimed row and 74 per completed row than
/// on a schema without those triggers (17 each since 0021, 25 with five triggers), and about
/// twice the time (7.8 + 8.5 us per job against 4.2 + 3.9).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_job_pays_almost_nothing_for_the_triggers_on_state() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hot.db");
    let store = crate::store::open(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let jobs = (0..100)
        .map(|_| {
            let opts = InsertOpts {
                queue: Some("plain".into()),
                ..Default::default()
            };
            JobInsertParams::new("noop", serde_json::json!({}), opts).unwrap()
        })
        .collect();
    store.job_insert_many(jobs).await.unwrap();
    let (claim, complete) = claim_and_complete_steps(&path, "plain", false);
    let (bare_claim, bare_complete) = claim_and_complete_steps(&path, "plain", true);
    // Per row and statement, each of the five triggers may cost a handful of steps: the
    // sub-program's entry, one column read and test, its exit.
    let allowance = 100 * 5 * 8;
    assert!(
        claim <= bare_claim + allowance && complete <= bare_complete + allowance,
        "the triggers on state cost a plain job too much: claim {claim} VM steps against \
         {bare_claim} without them, completion {complete} against {bare_complete}"
    );
}
