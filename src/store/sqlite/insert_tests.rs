//! Jobs that wait for parents, and the steps of a workflow, are inserted in multi-row
//! statements, as jobs that wait for nothing are: a statement per row (and one per edge, and
//! one marking each job's parents) made a workflow's insert cost three to four times the plain
//! insert of the same jobs. Counted in statements SQLite runs, not in time. The multi-row path
//! must answer as the statement per row did: compared with it here, job by job.

use std::os::raw::{c_int, c_uint, c_void};
use std::sync::atomic::{AtomicUsize, Ordering};

use rusqlite::{ffi, params, Connection};

use super::{ensure_clock, job_insert_tx, workflow_insert_tx, SqliteStore};
use crate::error::Error;
use crate::job::{InsertOpts, JobRow, JobState};
use crate::store::workflow::{step_placeholder, WorkflowInsertParams, WorkflowStepParams};
use crate::store::{InsertResult, JobInsertParams};

fn job(opts: InsertOpts) -> JobInsertParams {
    JobInsertParams::new("noop", serde_json::json!({}), opts).unwrap()
}

fn after(parents: Vec<i64>) -> JobInsertParams {
    job(InsertOpts {
        depends_on: parents,
        ..Default::default()
    })
}

/// `EXPLAIN QUERY PLAN` of `sql`, parameters left unbound (NULL: the plans these tests read do
/// not depend on them): each step's parent and its text.
fn query_plan(conn: &Connection, sql: &str) -> Vec<(i64, String)> {
    let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
    let mut rows = stmt.raw_query();
    let mut steps = Vec::new();
    while let Some(row) = rows.next().unwrap() {
        steps.push((row.get(1).unwrap(), row.get(3).unwrap()));
    }
    steps
}

/// The steps' texts, a line each.
fn plan_text(steps: &[(i64, String)]) -> String {
    steps.iter().map(|(_, step)| format!("{step}\n")).collect()
}

/// A migrated database at `dir`, and a connection of the caller's own to it.
async fn open(dir: &tempfile::TempDir) -> Connection {
    let path = dir.path().join("insert.db");
    let store = crate::store::open(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    drop(store);
    let conn = Connection::open(&path).unwrap();
    ensure_clock(&conn).unwrap();
    conn.execute_batch("PRAGMA foreign_keys = ON; PRAGMA recursive_triggers = ON;")
        .unwrap();
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .unwrap();
    conn
}

unsafe extern "C" fn count_statement(
    _mask: c_uint,
    counter: *mut c_void,
    _stmt: *mut c_void,
    _sql: *mut c_void,
) -> c_int {
    // SAFETY: `counter` is the AtomicUsize that `statements` keeps alive while tracing.
    unsafe { &*(counter as *const AtomicUsize) }.fetch_add(1, Ordering::Relaxed);
    0
}

/// How many statements `f` runs on `conn` (SQLite's statement trace, which rusqlite's
/// features here leave out).
fn statements<T>(conn: &Connection, f: impl FnOnce() -> T) -> (usize, T) {
    let counter = AtomicUsize::new(0);
    // SAFETY: the trace is removed before `counter` goes out of scope.
    unsafe {
        ffi::sqlite3_trace_v2(
            conn.handle(),
            ffi::SQLITE_TRACE_STMT as c_uint,
            Some(count_statement),
            &counter as *const AtomicUsize as *mut c_void,
        );
    }
    let out = f();
    // SAFETY: as above; no callback runs after this.
    unsafe {
        ffi::sqlite3_trace_v2(conn.handle(), 0, None, std::ptr::null_mut());
    }
    (counter.load(Ordering::Relaxed), out)
}

fn step(name: &str, job: JobInsertParams) -> WorkflowStepParams {
    WorkflowStepParams {
        name: name.into(),
        job,
    }
}

/// A root, `n` steps after it, and one step after all of them.
fn fan(n: usize) -> WorkflowInsertParams {
    let mut steps = vec![step("root", after(vec![]))];
    for i in 0..n {
        steps.push(step(&format!("item{i}"), after(vec![step_placeholder(0)])));
    }
    steps.push(step("end", after((1..=n).map(step_placeholder).collect())));
    WorkflowInsertParams {
        name: "fan".into(),
        steps,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_with_parents_go_in_a_few_statements_not_a_few_per_job() {
    let dir = tempfile::tempdir().unwrap();
    let conn = open(&dir).await;
    let n = 2_000;
    let (fan_statements, inserted) =
        statements(&conn, || workflow_insert_tx(&conn, &fan(n)).unwrap());
    assert_eq!(inserted.steps.len(), n + 2);
    let edges: i64 = conn
        .query_row("SELECT count(*) FROM porter_job_deps", [], |r| r.get(0))
        .unwrap();
    assert_eq!(edges, 2 * n as i64);
    let parent = job_insert_tx(&conn, &[after(vec![])]).unwrap()[0].job.id;
    let children: Vec<_> = (0..n).map(|_| after(vec![parent])).collect();
    let (child_statements, results) =
        statements(&conn, || job_insert_tx(&conn, &children).unwrap());
    assert_eq!(results.len(), n);
    eprintln!("{n}-step fan workflow: {fan_statements} statements; {n} children of one parent: {child_statements}");
    // A statement per row took 3 per step of the fan (its row, its edge, the last step's edge)
    // and 3 per child (marking its parent, its row, its edge).
    assert!(
        fan_statements < 100,
        "a {n}-step workflow ran {fan_statements} statements"
    );
    assert!(
        child_statements < 100,
        "{n} children of one parent ran {child_statements} statements"
    );
}

/// A result with its clock readings (one per statement, where a statement per row read one
/// per row) set aside, to compare two inserts.
fn untimed(mut r: InsertResult) -> InsertResult {
    let at = chrono::DateTime::<chrono::Utc>::UNIX_EPOCH;
    r.job.created_at = at;
    r.job.scheduled_at = at;
    r.job.finalized_at = r.job.finalized_at.map(|_| at);
    for e in &mut r.job.errors {
        e.at = at;
    }
    r
}

/// Parents in each state a child may find: completed, running, discarded, pending.
fn parents(conn: &Connection) -> [i64; 4] {
    let ids: Vec<i64> = job_insert_tx(conn, &[after(vec![]), after(vec![]), after(vec![])])
        .unwrap()
        .iter()
        .map(|r| r.job.id)
        .collect();
    let pending = job_insert_tx(conn, &[after(vec![ids[1]])]).unwrap()[0]
        .job
        .id;
    for (id, state) in [
        (ids[0], "completed"),
        (ids[1], "running"),
        (ids[2], "discarded"),
    ] {
        conn.execute(
            "UPDATE porter_jobs SET state = ?2, finalized_at = CASE WHEN ?2 = 'running' THEN NULL ELSE porter_now() END WHERE id = ?1",
            params![id, state],
        )
        .unwrap();
    }
    [ids[0], ids[1], ids[2], pending]
}

fn keyed(key: &str, parents: Vec<i64>, after_any: bool) -> JobInsertParams {
    job(InsertOpts {
        unique_key: Some(key.into()),
        depends_on: parents,
        after_any,
        ..Default::default()
    })
}

/// (waiting_for, has_dependents, workflow_id, workflow_step) of a job, and its edges.
type Extra = (
    i32,
    bool,
    Option<i64>,
    Option<String>,
    Vec<(i64, bool, bool)>,
);

fn extra(conn: &Connection, id: i64) -> Extra {
    let (w, d, wf, step) = conn
        .query_row(
            "SELECT waiting_for, has_dependents, workflow_id, workflow_step FROM porter_jobs WHERE id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap();
    let edges = conn
        .prepare("SELECT parent_id, after_any, resolved FROM porter_job_deps WHERE child_id = ?1 ORDER BY parent_id")
        .unwrap()
        .query_map([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    (w, d, wf, step, edges)
}

/// The whole row as the store reads it back.
fn row(conn: &Connection, id: i64) -> JobRow {
    conn.query_row(sql!("job_get"), [id], super::job_from_row)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_multi_row_path_answers_as_a_statement_per_row_did() {
    // The same batch on two databases: alone (the multi-row path), and followed by a job of a
    // sequence, which sends the whole batch down the statement per row.
    let mut answers = Vec::new();
    for per_row in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let conn = open(&dir).await;
        let [completed, running, discarded, pending] = parents(&conn);
        job_insert_tx(&conn, &[keyed("held", vec![], false)]).unwrap();
        let mut batch = vec![
            after(vec![]),
            after(vec![completed]),
            after(vec![running, completed]),
            after(vec![discarded, running]),
            job(InsertOpts {
                depends_on: vec![discarded, pending],
                after_any: true,
                ..Default::default()
            }),
            // Held by the job above; then a cancelled job with that key, which holds nothing.
            keyed("held", vec![completed], false),
            keyed("held", vec![discarded], false),
            // Taken by the first of these, which holds it for the second.
            keyed("fresh", vec![running], false),
            keyed("fresh", vec![], false),
            keyed("late", vec![], false),
        ];
        if per_row {
            batch.push(job(InsertOpts {
                sequence_key: Some("s".into()),
                ..Default::default()
            }));
        }
        let mut results = job_insert_tx(&conn, &batch).unwrap();
        results.truncate(10);
        let held = [5, 8];
        for (i, r) in results.iter().enumerate() {
            assert_eq!(r.inserted, !held.contains(&i), "job {i}");
            if r.inserted {
                assert_eq!(r.job, row(&conn, r.job.id), "job {i} as read back");
            }
        }
        let states: Vec<JobState> = results.iter().map(|r| r.job.state).collect();
        use JobState::*;
        assert_eq!(
            states,
            [
                Available, Available, Pending, Cancelled, Pending, Available, Cancelled, Pending,
                Pending, Available
            ]
        );
        assert_eq!(
            results[3].job.errors[0].error,
            format!("parent job {discarded} was discarded")
        );
        let extras: Vec<Extra> = results.iter().map(|r| extra(&conn, r.job.id)).collect();
        assert_eq!(
            extras[4].0, 1,
            "after_any waits for the pending parent only"
        );
        assert_eq!(
            extras[4].4,
            vec![(discarded, true, false), (pending, true, false)],
            "a waiting job's edges are all unresolved, an ended parent's too (0036)"
        );
        let marked: Vec<bool> = [completed, running, discarded, pending]
            .iter()
            .map(|&p| extra(&conn, p).1)
            .collect();
        assert_eq!(marked, [true, true, true, true]);
        answers.push((results.into_iter().map(untimed).collect::<Vec<_>>(), extras));
    }
    assert_eq!(answers[0], answers[1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workflow_starts_its_steps_as_their_parents_say() {
    let dir = tempfile::tempdir().unwrap();
    let conn = open(&dir).await;
    let [completed, running, discarded, _] = parents(&conn);
    let mut any = after(vec![discarded, step_placeholder(0)]);
    any.after_any = true;
    let params = WorkflowInsertParams {
        name: "mixed".into(),
        steps: vec![
            step("a", after(vec![])),
            step("b", after(vec![completed])),
            step("c", after(vec![step_placeholder(0), running])),
            step("d", after(vec![discarded])),
            step("e", any),
            step("f", after(vec![step_placeholder(1), step_placeholder(2)])),
        ],
    };
    let out = workflow_insert_tx(&conn, &params).unwrap();
    let states: Vec<JobState> = out.steps.iter().map(|s| s.1.state).collect();
    use JobState::*;
    assert_eq!(
        states,
        [Available, Available, Pending, Cancelled, Pending, Pending]
    );
    let [a, b, c] = [0, 1, 2].map(|i| out.steps[i].1.id);
    let tagged = |waiting_for, marked, step: &str, edges| -> Extra {
        (waiting_for, marked, Some(out.id), Some(step.into()), edges)
    };
    let expected = [
        tagged(0, true, "a", vec![]),
        // Resolved only for a step that starts cancelled (0036).
        tagged(0, true, "b", vec![(completed, false, false)]),
        tagged(
            2,
            true,
            "c",
            vec![(running, false, false), (a, false, false)],
        ),
        tagged(0, false, "d", vec![(discarded, false, true)]),
        tagged(
            1,
            false,
            "e",
            vec![(discarded, true, false), (a, true, false)],
        ),
        tagged(2, false, "f", vec![(b, false, false), (c, false, false)]),
    ];
    for (i, (name, job)) in out.steps.iter().enumerate() {
        assert_eq!(name, &params.steps[i].name);
        assert_eq!(job, &row(&conn, job.id), "step {name} as read back");
        assert_eq!(extra(&conn, job.id), expected[i], "step {name}");
    }
    let before: i64 = conn
        .query_row("SELECT count(*) FROM porter_jobs", [], |r| r.get(0))
        .unwrap();
    // A step whose key an unfinished job holds refuses the whole workflow.
    job_insert_tx(&conn, &[keyed("taken", vec![], false)]).unwrap();
    let refused = WorkflowInsertParams {
        name: "refused".into(),
        steps: vec![
            step("a", after(vec![completed])),
            step("b", keyed("taken", vec![step_placeholder(0)], false)),
        ],
    };
    let err = workflow_insert_tx(&conn, &refused).unwrap_err();
    assert!(matches!(err, Error::Conflict(_)), "{err}");
    let after_refusal: i64 = conn
        .query_row("SELECT count(*) FROM porter_jobs", [], |r| r.get(0))
        .unwrap();
    assert_eq!(after_refusal, before + 1, "only the holder was inserted");
}

#[tokio::test]
async fn whether_a_sequence_is_busy_is_read_from_its_indexes() {
    // An insert of a job with a sequence key and a retry of one ask whether the sequence has
    // an unfinished job. One list of the five unfinished states implied neither partial index
    // on sequence_key, and SQLite walked porter_jobs_fetch through every unfinished job of
    // every queue instead. The plans, from EXPLAIN QUERY PLAN.
    let dir = tempfile::tempdir().unwrap();
    let conn = open(&dir).await;
    // (job_retry_many also asks, of a job with a unique key, whether another holds it: those
    // subqueries find the listed jobs by id or the key's holder by porter_jobs_unique_key.)
    for (name, sql, only_these) in [
        (
            "job_sequence_busy",
            include_str!("sql/job_sequence_busy.sql"),
            true,
        ),
        ("job_retry", include_str!("sql/job_retry.sql"), true),
        (
            "job_retry_many",
            include_str!("sql/job_retry_many.sql"),
            false,
        ),
    ] {
        let plan = plan_text(&query_plan(&conn, sql));
        assert!(
            plan.contains("porter_jobs_sequence_active")
                && plan.contains("porter_jobs_sequence_pending"),
            "{name} reads both indexes of a sequence's jobs:\n{plan}"
        );
        assert!(
            !only_these || !plan.contains("porter_jobs_fetch"),
            "{name}:\n{plan}"
        );
    }
}

#[tokio::test]
async fn a_page_of_a_workflows_steps_is_read_in_order_from_an_index() {
    // A page of steps is those after a job id, in job id order. With only the primary key
    // (workflow_id, step), every read took all the workflow's steps and sorted them: the admin
    // route's page of 100,000 steps, read 100 at a time, took 13 s on SQLite and 28 s on
    // PostgreSQL (review of 7 Dec). The plan, from EXPLAIN QUERY PLAN.
    let dir = tempfile::tempdir().unwrap();
    let conn = open(&dir).await;
    let plan = plan_text(&query_plan(&conn, include_str!("sql/workflow_jobs.sql")));
    assert!(plan.contains("porter_workflow_steps_job"), "{plan}");
    assert!(!plan.contains("TEMP B-TREE"), "no sort:\n{plan}");
}

#[tokio::test]
async fn a_queues_starts_are_counted_once_for_its_limit_usage() {
    // queue_limit_usage (the /metrics scrape) counted the queue's starts in its rate window
    // beside each of its keys: a day's window of a million starts and 2,000 keys took 81 s,
    // and every scrape timed out (review of 7 Dec). 2,000 starts and 40 keys here: the
    // statement's VM steps grow with the starts plus the keys, not their product.
    let dir = tempfile::tempdir().unwrap();
    let conn = open(&dir).await;
    conn.execute_batch(
        "INSERT INTO porter_queues (name, rate_limit, rate_period_ms) VALUES ('q', 1000000, 86400000);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000)
         INSERT INTO porter_queue_starts (queue, concurrency_key, started_at)
         SELECT 'q', NULL, strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-1 minute') FROM n;
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 40)
         INSERT INTO porter_jobs (kind, queue, args, concurrency_key)
         SELECT 'noop', 'q', '{}', 'k' || i FROM n;",
    )
    .unwrap();
    let mut stmt = conn
        .prepare(include_str!("sql/queue_limit_usage.sql"))
        .unwrap();
    let rows: Vec<(String, i64, i64)> = stmt
        .query_map([], |r| Ok((r.get(1)?, r.get(2)?, r.get(5)?)))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    assert_eq!(rows.len(), 40);
    assert!(
        rows.iter()
            .all(|(_, available, starts)| *available == 1 && *starts == 2000),
        "{rows:?}"
    );
    let vm_steps = stmt.get_status(rusqlite::StatementStatus::VmStep);
    assert!(vm_steps < 40_000, "{vm_steps} VM steps");
}

#[tokio::test]
async fn statements_over_several_states_read_an_index_of_each() {
    // Since migration 0041 porter_jobs_fetch holds available jobs only, and no index has
    // `state` in its key. A statement over several states (or over all finished jobs) that
    // read porter_jobs_fetch before must read the partial index of each state instead: a scan
    // of porter_jobs reads every finished job kept for retention. The plans, from EXPLAIN
    // QUERY PLAN (porter never runs ANALYZE on SQLite, so they do not depend on the rows).
    let dir = tempfile::tempdir().unwrap();
    let conn = open(&dir).await;
    for (name, sql) in [
        ("job_counts", include_str!("sql/job_counts.sql")),
        ("bench_unfinished", include_str!("sql/bench_unfinished.sql")),
        (
            "bench_any_unfinished",
            include_str!("sql/bench_any_unfinished.sql"),
        ),
        ("queue_due", include_str!("sql/queue_due.sql")),
        ("job_unserved", include_str!("sql/job_unserved.sql")),
        (
            "queue_limit_usage",
            include_str!("sql/queue_limit_usage.sql"),
        ),
        (
            "job_sequence_busy",
            include_str!("sql/job_sequence_busy.sql"),
        ),
        ("job_retry", include_str!("sql/job_retry.sql")),
        ("job_retry_many", include_str!("sql/job_retry_many.sql")),
        ("job_claim", include_str!("sql/job_claim.sql")),
        (
            "job_claim_limited",
            include_str!("sql/job_claim_limited.sql"),
        ),
        (
            "job_delete_finalized",
            include_str!("sql/job_delete_finalized.sql"),
        ),
        ("queue_list", include_str!("sql/queue_list.sql")),
    ] {
        let plan = plan_text(&query_plan(&conn, sql));
        // porter_jobs under its own name or an alias these statements give it.
        let scans = ["porter_jobs", "j", "o", "q", "n", "c"].map(|t| format!("SCAN {t}"));
        assert!(
            !plan.lines().any(|l| scans.iter().any(|s| s == l.trim())),
            "{name} scans porter_jobs:\n{plan}"
        );
    }
}

/// A caller's deferred transaction (rusqlite's `transaction()`, as in the crate docs' example)
/// inserting a job with a parent while another connection holds the write lock. The insert
/// read the parents first and then asked for the lock, which SQLite refuses at once to a
/// transaction that has read ("database is locked", no busy wait); it now takes the lock
/// first, and waits.
#[tokio::test]
async fn an_insert_with_parents_in_a_deferred_transaction_waits_for_another_writer() {
    let dir = tempfile::tempdir().unwrap();
    let mut conn = open(&dir).await;
    let parent = job_insert_tx(&conn, &[job(InsertOpts::default())]).unwrap()[0]
        .job
        .id;
    let holder = Connection::open(dir.path().join("insert.db")).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    let release = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(300));
        holder.execute_batch("COMMIT").unwrap();
    });
    let tx = conn.transaction().unwrap();
    let child = job_insert_tx(&tx, &[after(vec![parent])])
        .expect("waited for the other writer, then inserted");
    tx.commit().unwrap();
    release.join().unwrap();
    assert_eq!(child[0].job.state, JobState::Pending);
}

#[tokio::test]
async fn large_sorts_of_readers_spill_to_a_file_and_the_lag_sorts_no_job() {
    // SQLite groups by sorting. With temp_store=MEMORY on every connection, job_counts' sort
    // of every finished job (porter_jobs_finalized's key is (state, finalized_at, queue))
    // held them all in memory: porter bench --jobs 1000000's peak RSS went from 48 to 172 MiB
    // after migration 0041. Readers, where such statements run, now keep SQLite's default
    // and spill past the page cache to a file; the writer keeps its savepoint journals in
    // memory. queue_due sorts only its parts' few rows per queue (each part groups along its
    // index), not the due jobs themselves, which would sit below the top level.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sorts.db");
    let store = SqliteStore::open(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let reader = store.readers.get().unwrap();
    let temp_store: i64 = reader
        .query_row("PRAGMA temp_store", [], |r| r.get(0))
        .unwrap();
    assert_eq!(temp_store, 1, "readers: FILE");
    let writer: i64 = store
        .writer
        .run(|c| Ok(c.query_row("PRAGMA temp_store", [], |r| r.get(0))?))
        .await
        .unwrap();
    assert_eq!(writer, 2, "the writer: MEMORY");
    let steps = query_plan(&reader, include_str!("sql/queue_due.sql"));
    let sorts = |top: bool| {
        steps
            .iter()
            .filter(|(parent, step)| {
                step == "USE TEMP B-TREE FOR GROUP BY" && (*parent == 0) == top
            })
            .count()
    };
    assert_eq!(
        (sorts(true), sorts(false)),
        (1, 0),
        "queue_due:\n{}",
        plan_text(&steps)
    );
}

/// A write whose caller stopped waiting before the writer reached it is not run: the caller
/// was told it failed (an HTTP request's timeout answered 408), so running it later made a
/// retry insert the job twice (review of 6 Dec: another process held the write lock 40 s, the
/// web answered 408 at 30 s, then inserted the job; curl's retry inserted it again). Both the
/// gathered inserts and the plain writes are passed over.
#[tokio::test]
async fn a_write_whose_caller_stopped_waiting_is_not_run() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gone.db");
    let store = crate::store::open(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let holder = Connection::open(&path).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    let short = std::time::Duration::from_millis(300);
    let insert = tokio::time::timeout(
        short,
        store.job_insert_many(vec![job(InsertOpts::default())]),
    );
    assert!(insert.await.is_err(), "still waiting for the lock");
    let pause = tokio::time::timeout(short, store.queue_pause("held"));
    assert!(pause.await.is_err(), "still waiting for the lock");
    holder.execute_batch("COMMIT").unwrap();
    // A write queued after them: once it is answered, theirs had their turn.
    store.queue_pause("after").await.unwrap();
    let jobs = store.job_list(Default::default()).await.unwrap();
    assert!(jobs.is_empty(), "the abandoned insert ran: {jobs:?}");
    let paused: Vec<String> = store
        .queue_list()
        .await
        .unwrap()
        .into_iter()
        .filter(|q| q.paused_at.is_some())
        .map(|q| q.name)
        .collect();
    assert_eq!(paused, ["after"], "the abandoned pause ran");
}

/// A SQLite URL's path is percent-decoded, as sqlx decodes it: an application that opens the
/// same DATABASE_URL with sqlx opens the same file. (Review of 6 Dec: `my%20jobs.db` made a
/// file of that name, beside the application's `my jobs.db`.) Escapes that decode to no text
/// are refused.
#[test]
fn a_urls_percent_escapes_are_decoded_as_sqlx_decodes_them() {
    use std::path::PathBuf;
    for (url, path) in [
        ("sqlite:///tmp/my%20jobs.db", "/tmp/my jobs.db"),
        ("sqlite://rel/a%25b.db?synchronous=full", "rel/a%b.db"),
        ("sqlite:caf%C3%A9.db", "café.db"),
        ("sqlite://plain.db", "plain.db"),
    ] {
        assert_eq!(
            super::parse_url(url).unwrap().0,
            PathBuf::from(path),
            "{url}"
        );
    }
    for url in [
        "sqlite:///tmp/%ff.db",
        "sqlite:///tmp/nul%00.db",
        "sqlite://%3Amemory%3A",
        "sqlite://file:/tmp/u.db%3Fnolock%3D1",
        "sqlite://file%3A/tmp/u.db",
    ] {
        assert!(super::parse_url(url).is_err(), "{url}");
    }
    // A file an earlier porter made under the path as written is not passed over for a new,
    // empty one: the URL is refused, saying so (review of this change).
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("old%20name.db"), b"").unwrap();
    let url = format!("sqlite://{}/old%20name.db", dir.path().display());
    let refused = super::parse_url(&url).map(|(p, _)| p);
    assert!(
        matches!(&refused, Err(Error::Invalid { message, .. }) if message.contains("%25")),
        "{refused:?}"
    );
    std::fs::write(dir.path().join("old name.db"), b"").unwrap();
    assert_eq!(
        super::parse_url(&url).unwrap().0,
        dir.path().join("old name.db")
    );
}

/// A file of another application that holds some of porter's table names is refused before
/// anything changes it. It was switched to WAL first (for good: the file's header says so),
/// then refused (review of 6 Dec).
#[tokio::test]
async fn a_foreign_file_is_refused_before_its_journal_mode_changes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("theirs.db");
    Connection::open(&path)
        .unwrap()
        .execute_batch("CREATE TABLE tablos (x INTEGER); CREATE TABLE porter_jobs (a INTEGER)")
        .unwrap();
    let refused = SqliteStore::open(&format!("sqlite://{}", path.display())).await;
    assert!(
        matches!(&refused, Err(Error::Migration(m)) if m.contains("porter's table names")),
        "{:?}",
        refused.as_ref().map(|_| ())
    );
    let mode: String = Connection::open(&path)
        .unwrap()
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "delete", "the file's journal mode is left as it was");
}
