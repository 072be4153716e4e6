//! What a dependency costs must not grow with the jobs that wait elsewhere: finalizing a parent
//! (the porter_jobs_finalized and porter_jobs_parent_failed triggers) reads that parent's
//! children, and deleting a parent (its edges go by ON DELETE CASCADE; retention asks whether
//! its children have ended) finds that parent's edges, by index. A scan of every waiting job per finalize made a workflow of
//! 100 chains of 100 drain 18x slower than the same jobs without dependencies, and a scan of
//! every edge per deleted job made deleting such a workflow take minutes. Counted in SQLite's
//! virtual-machine steps, not in time.

use rusqlite::{params, Connection, StatementStatus};

use super::ensure_clock;
use crate::job::InsertOpts;
use crate::store::{JobInsertParams, Store};

fn job(depends_on: Vec<i64>) -> JobInsertParams {
    let opts = InsertOpts {
        depends_on,
        ..Default::default()
    };
    JobInsertParams::new("noop", serde_json::json!({}), opts).unwrap()
}

/// A store holding a parent with one child, and `waiting` other jobs waiting for another
/// parent; returns the first parent's and its child's ids.
async fn parent_beside_waiting_jobs(store: &Store, waiting: usize) -> (i64, i64) {
    let parent = store.job_insert_many(vec![job(vec![])]).await.unwrap()[0]
        .job
        .id;
    let child = store
        .job_insert_many(vec![job(vec![parent])])
        .await
        .unwrap()[0]
        .job
        .id;
    let other = store.job_insert_many(vec![job(vec![])]).await.unwrap()[0]
        .job
        .id;
    if waiting > 0 {
        store
            .job_insert_many((0..waiting).map(|_| job(vec![other])).collect())
            .await
            .unwrap();
    }
    (parent, child)
}

/// VM steps of one statement run on its own connection, and the rows it changed.
fn steps(path: &std::path::Path, sql: &str, id: i64) -> (i32, usize) {
    let conn = Connection::open(path).unwrap();
    ensure_clock(&conn).unwrap();
    conn.execute_batch("PRAGMA foreign_keys = ON; PRAGMA recursive_triggers = ON;")
        .unwrap();
    let mut stmt = conn.prepare(sql).unwrap();
    let changed = stmt.execute(params![id]).unwrap();
    (stmt.get_status(StatementStatus::VmStep), changed)
}

async fn open(dir: &tempfile::TempDir) -> (std::path::PathBuf, std::sync::Arc<Store>) {
    let path = dir.path().join("deps.db");
    let store = crate::store::open(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    (path, store)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finalizing_a_parent_reads_its_children_not_every_waiting_job() {
    let mut cost = Vec::new();
    for waiting in [0, 5_000] {
        let dir = tempfile::tempdir().unwrap();
        let (path, store) = open(&dir).await;
        let (parent, child) = parent_beside_waiting_jobs(&store, waiting).await;
        let (n, changed) = steps(
            &path,
            "UPDATE porter_jobs SET state = 'completed', finalized_at = porter_now() WHERE id = ?1",
            parent,
        );
        assert_eq!(changed, 1);
        let row = store.job_get(child).await.unwrap().unwrap();
        assert_eq!(
            row.state,
            crate::JobState::Available,
            "the child was promoted"
        );
        cost.push(n);
    }
    assert!(
        cost[1] < cost[0] * 2,
        "VM steps to finalize a parent with one child: {} beside no waiting job, {} beside 5,000",
        cost[0],
        cost[1]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_finished_parent_finds_its_edges_by_index() {
    let mut cost = Vec::new();
    for waiting in [0, 5_000] {
        let dir = tempfile::tempdir().unwrap();
        let (path, store) = open(&dir).await;
        let (parent, child) = parent_beside_waiting_jobs(&store, waiting).await;
        steps(
            &path,
            "UPDATE porter_jobs SET state = 'completed', finalized_at = porter_now() WHERE id = ?1",
            parent,
        );
        // Retention's own statement keeps the parent (its child has not run: the pick asks
        // that of the parent's edges); a plain delete then takes it (its edge goes by cascade).
        let conn = Connection::open(&path).unwrap();
        ensure_clock(&conn).unwrap();
        conn.execute_batch("PRAGMA foreign_keys = ON;").unwrap();
        let mut stmt = conn.prepare(sql!("job_delete_finalized")).unwrap();
        let deleted = stmt
            .execute(params!["completed", "-0.000 seconds", 10])
            .unwrap();
        assert_eq!(deleted, 0, "the parent of a child still to run stays");
        let retention = stmt.get_status(StatementStatus::VmStep);
        let (delete, changed) = steps(&path, "DELETE FROM porter_jobs WHERE id = ?1", parent);
        assert_eq!(changed, 1);
        assert!(store.job_get(child).await.unwrap().is_some());
        cost.push((retention, delete));
    }
    assert!(
        cost[1].0 < cost[0].0 * 2 && cost[1].1 < cost[0].1 * 2,
        "VM steps (retention keeping a parent, delete of it): {:?} beside no waiting job, {:?} \
         beside 5,000",
        cost[0],
        cost[1]
    );
}

/// A parent's end that leaves its child waiting for other parents lowers the child's count and
/// nothing else: an update that sets `state`, even to itself, rewrites the row's entries in
/// every index on `state` and fires the triggers on it, which a fan-in step of 10,000 parents
/// paid 9,999 times (24 us against 4.5 us per end, measured).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parent_that_leaves_its_child_waiting_writes_only_its_count() {
    let dir = tempfile::tempdir().unwrap();
    let (path, store) = open(&dir).await;
    let parents: Vec<i64> = store
        .job_insert_many((0..3).map(|_| job(vec![])).collect())
        .await
        .unwrap()
        .iter()
        .map(|r| r.job.id)
        .collect();
    let child = store
        .job_insert_many(vec![job(parents.clone())])
        .await
        .unwrap()[0]
        .job
        .id;
    let complete =
        "UPDATE porter_jobs SET state = 'completed', finalized_at = porter_now() WHERE id = ?1";
    let (counted, _) = steps(&path, complete, parents[0]);
    steps(&path, complete, parents[1]);
    let row = store.job_get(child).await.unwrap().unwrap();
    assert_eq!(row.state, crate::JobState::Pending, "one parent left");
    let (freed, _) = steps(&path, complete, parents[2]);
    let row = store.job_get(child).await.unwrap().unwrap();
    assert_eq!(
        row.state,
        crate::JobState::Available,
        "the last parent frees it"
    );
    assert!(
        counted * 10 < freed * 9,
        "VM steps of a parent's end: {counted} leaving its child waiting, {freed} freeing it"
    );
}

/// VM steps of porter's completion statement (through [`super::complete`], as the writer runs
/// it) for a batch of 100 running jobs of `kind`, and the children it made available.
fn completion_steps(path: &std::path::Path, kind: &str) -> (i32, usize) {
    let mut conn = Connection::open(path).unwrap();
    ensure_clock(&conn).unwrap();
    conn.execute_batch("PRAGMA foreign_keys = ON; PRAGMA recursive_triggers = ON;")
        .unwrap();
    let tx = conn.transaction().unwrap();
    let fences: Vec<(i64, i64, String)> = {
        let mut stmt = tx
            .prepare(
                "UPDATE porter_jobs SET state = 'running', attempt = 1, attempted_by = 'w', \
                 attempted_at = porter_now() WHERE kind = ?1 RETURNING id, attempt, attempted_by",
            )
            .unwrap();
        let rows = stmt
            .query_map([kind], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap();
        rows.collect::<rusqlite::Result<_>>().unwrap()
    };
    assert_eq!(fences.len(), 100);
    let done = super::complete(&tx, serde_json::to_string(&fences).unwrap()).unwrap();
    assert_eq!(done.len(), 100);
    let steps = tx
        .prepare_cached(sql!("job_complete"))
        .unwrap()
        .get_status(StatementStatus::VmStep);
    let freed: usize = tx
        .query_row(
            "SELECT count(*) FROM porter_jobs WHERE kind = 'child' AND state = 'available'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    (steps, freed)
}

/// porter's completion of a batch of parents counts their children's ends once per batch,
/// after the statement (migration 0040), not in porter_jobs_finalized once per parent: the
/// statement itself costs about what it costs for jobs nobody waits on. With the trigger
/// doing it, each parent's end ran its two statements (opening porter_jobs and its indexes
/// each time), and a chain of workflow steps drained at 2.2-2.3x the same jobs without
/// dependencies (1000 slots); counted once per batch, 1.8x.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_completion_batch_counts_its_childrens_ends_once_not_per_parent() {
    let dir = tempfile::tempdir().unwrap();
    let (path, store) = open(&dir).await;
    let with = |kind: &str, depends_on: Vec<i64>| {
        let opts = InsertOpts {
            depends_on,
            ..Default::default()
        };
        JobInsertParams::new(kind, serde_json::json!({}), opts).unwrap()
    };
    store
        .job_insert_many((0..100).map(|_| with("plain", vec![])).collect())
        .await
        .unwrap();
    let parents: Vec<i64> = store
        .job_insert_many((0..100).map(|_| with("parent", vec![])).collect())
        .await
        .unwrap()
        .iter()
        .map(|r| r.job.id)
        .collect();
    store
        .job_insert_many(parents.iter().map(|p| with("child", vec![*p])).collect())
        .await
        .unwrap();
    let (plain, _) = completion_steps(&path, "plain");
    let (of_parents, freed) = completion_steps(&path, "parent");
    assert_eq!(freed, 100, "each child made available");
    assert!(
        of_parents < plain + plain / 4,
        "VM steps to complete 100 parents: {of_parents}, against {plain} for 100 jobs nobody waits on"
    );
}

/// A page of a fan-out's children (`GET /admin/jobs/{id}/children`) reads that page's edges
/// from the cursor on, by index: its cost does not grow with the children the parent has.
/// Until 0049 the index was by parent alone, and each page read and sorted every child (a
/// review on 5 Dec: 3 s a page of 10,000 of 100,000 children).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_of_children_reads_that_page_not_every_child() {
    let mut cost = Vec::new();
    for children in [100, 5_000] {
        let dir = tempfile::tempdir().unwrap();
        let (path, store) = open(&dir).await;
        let root = store.job_insert_many(vec![job(vec![])]).await.unwrap()[0]
            .job
            .id;
        let ids: Vec<i64> = store
            .job_insert_many((0..children).map(|_| job(vec![root])).collect())
            .await
            .unwrap()
            .iter()
            .map(|r| r.job.id)
            .collect();
        let conn = Connection::open(&path).unwrap();
        let mut stmt = conn.prepare(sql!("job_links")).unwrap();
        let page: Vec<i64> = stmt
            .query_map(params![root, true, ids[49], 10], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(page, ids[50..60].to_vec());
        cost.push(stmt.get_status(StatementStatus::VmStep));
    }
    assert!(
        cost[1] < cost[0] * 2,
        "VM steps for a page of 10 children: {} of 100 children, {} of 5,000",
        cost[0],
        cost[1]
    );
}
