//! The model test: porter's job state machine written again as a plain-Rust reference model,
//! and random sequences of operations applied to the model and to a real store, on SQLite
//! (always) and on PostgreSQL (when PORTER_TEST_DATABASE_URL is set). After every step every
//! observable of every job (state, attempt, max_attempts, error history, who holds it, whether
//! it is due, unique-key occupancy through inserts and retries) and the counts by queue and
//! state must equal the model's; every operation's answer (claimed ids in claim order, which
//! fenced writes changed a row, conflicts, not-found) must equal the model's prediction.
//!
//! Operations: inserts (priorities, due now or later, unique keys, max_attempts from 1), claims
//! by two workers with kind filters, complete, fail (retry now or later, or discard), snooze,
//! a job cancelling itself, a worker giving a job back at shutdown, user cancel and retry,
//! lost workers and rescue, retention, periodic slots, queue pause and resume. Worker-side
//! writes use the fences of running jobs and, a quarter of the time, any fence ever handed out
//! (a stale worker's write).
//!
//! Time: a job is either due now or due a day from now, and a worker's lease expires when the
//! test removes its registration, so a case needs no clock and never sleeps for long. On SQLite
//! (millisecond timestamps) each step waits 2 ms so that due times of different steps differ.
//!
//! Cases per backend: `PORTER_MODEL_CASES` (default 200); a failure is shrunk by proptest to a
//! short sequence, which is kept below as a named regression case.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use porter::job::{InsertOpts, JobState};
use porter::store::*;
use porter::{Error, JobRow};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

use crate::common::TestDb;

const QUEUES: [&str; 2] = ["default", "other"];
const KINDS: [&str; 2] = ["alpha", "beta"];
const WORKERS: [&str; 2] = ["worker-0", "worker-1"];
const UNIQUE_KEYS: [&str; 2] = ["key-0", "key-1"];
const PERIODIC: [&str; 2] = ["every-minute", "hourly"];
/// "Later": far enough that nothing a case does makes it due.
const LATER: Duration = Duration::from_secs(86_400);

/// A job to insert.
#[derive(Debug, Clone, Copy)]
struct Spec {
    queue: usize,
    kind: usize,
    priority: i16,
    later: bool,
    unique: Option<usize>,
    max_attempts: i32,
}

/// One operation of a case. Indexes pick among what exists when the step runs, so a shrunk
/// sequence stays meaningful.
#[derive(Debug, Clone)]
enum Op {
    Insert(Spec),
    Claim {
        worker: usize,
        queue: usize,
        limit: u32,
        only_kind: Option<usize>,
    },
    Complete {
        pick: Pick,
    },
    Fail {
        pick: Pick,
        later: bool,
        discard: bool,
    },
    Snooze {
        pick: Pick,
        later: bool,
    },
    CancelSelf {
        pick: Pick,
    },
    /// The worker gives the job back without a result (shutdown, reconcile).
    Release {
        pick: Pick,
    },
    Cancel {
        job: Index,
    },
    Retry {
        job: Index,
    },
    LoseWorker {
        worker: usize,
    },
    Rescue,
    Retention,
    Periodic {
        name: usize,
        slot: i64,
    },
    Pause {
        queue: usize,
    },
    Resume {
        queue: usize,
    },
}

/// Picks one of what exists when the step runs (the value modulo how many there are).
type Index = u16;

/// Which fence a worker-side write uses: one of a running job (a live worker's write) or any
/// fence ever handed out (often a stale worker's write).
#[derive(Debug, Clone)]
struct Pick {
    stale: bool,
    index: Index,
}

fn pick() -> impl Strategy<Value = Pick> {
    (prop::bool::weighted(0.25), any::<Index>()).prop_map(|(stale, index)| Pick { stale, index })
}

fn nth<T: Clone>(items: &[T], index: Index) -> Option<T> {
    (!items.is_empty()).then(|| items[usize::from(index) % items.len()].clone())
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..2usize, 0..2usize, 1..=4i16, prop::bool::weighted(0.2), prop::option::weighted(0.4, 0..2usize), 1..=3i32)
            .prop_map(|(queue, kind, priority, later, unique, max_attempts)| Op::Insert(Spec { queue, kind, priority, later, unique, max_attempts })),
        5 => (0..2usize, 0..2usize, 1..=3u32, prop::option::weighted(0.2, 0..2usize))
            .prop_map(|(worker, queue, limit, only_kind)| Op::Claim { worker, queue, limit, only_kind }),
        3 => pick().prop_map(|pick| Op::Complete { pick }),
        3 => (pick(), prop::bool::weighted(0.3), prop::bool::weighted(0.2)).prop_map(|(pick, later, discard)| Op::Fail { pick, later, discard }),
        1 => (pick(), any::<bool>()).prop_map(|(pick, later)| Op::Snooze { pick, later }),
        1 => pick().prop_map(|pick| Op::CancelSelf { pick }),
        1 => pick().prop_map(|pick| Op::Release { pick }),
        1 => any::<Index>().prop_map(|job| Op::Cancel { job }),
        2 => any::<Index>().prop_map(|job| Op::Retry { job }),
        1 => (0..2usize).prop_map(|worker| Op::LoseWorker { worker }),
        1 => Just(Op::Rescue),
        1 => Just(Op::Retention),
        1 => (0..2usize, 0..5i64).prop_map(|(name, slot)| Op::Periodic { name, slot }),
        1 => (0..2usize).prop_map(|queue| Op::Pause { queue }),
        1 => (0..2usize).prop_map(|queue| Op::Resume { queue }),
    ]
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(op(), 1..40)
}

/// A job as the model knows it.
#[derive(Debug, Clone)]
struct MJob {
    id: i64,
    queue: usize,
    kind: usize,
    priority: i16,
    state: JobState,
    attempt: i32,
    max_attempts: i32,
    /// The attempt number of each entry of the error history.
    errors: Vec<i32>,
    /// The step at which it became due, or `None` when it is due only later.
    due: Option<u64>,
    worker: Option<usize>,
    unique: Option<usize>,
}

impl MJob {
    fn unfinished(&self) -> bool {
        !self.state.is_final()
    }
}

/// The reference model: what porter promises, in plain Rust.
#[derive(Debug, Default)]
struct Model {
    /// Jobs by id (ascending, as the database assigns them).
    jobs: BTreeMap<i64, MJob>,
    /// Every id ever inserted (also those retention deleted since).
    ids: Vec<i64>,
    registered: [bool; 2],
    paused: [bool; 2],
    periodic: [Option<i64>; 2],
    /// Every fence ever handed out by a claim.
    fences: Vec<JobFence>,
    step: u64,
}

impl Model {
    fn unique_holder(&self, key: usize) -> Option<i64> {
        self.jobs
            .values()
            .find(|j| j.unique == Some(key) && j.unfinished())
            .map(|j| j.id)
    }

    /// Whether a fence matches the job's current run: only then may that worker write.
    fn fence_holds(&self, f: &JobFence) -> bool {
        self.jobs.get(&f.id).is_some_and(|j| {
            j.state == JobState::Running
                && j.attempt == f.attempt
                && j.worker.map(|w| WORKERS[w]) == Some(f.worker_id.as_str())
        })
    }

    fn running_fences(&self) -> Vec<JobFence> {
        self.fences
            .iter()
            .filter(|f| self.fence_holds(f))
            .cloned()
            .collect()
    }

    fn choose_fence(&self, pick: &Pick) -> Option<JobFence> {
        let running = self.running_fences();
        let pool = if pick.stale || running.is_empty() {
            &self.fences
        } else {
            &running
        };
        nth(pool, pick.index)
    }

    fn choose_id(&self, index: Index) -> Option<i64> {
        nth(&self.ids, index)
    }

    fn job(&mut self, id: i64) -> &mut MJob {
        self.jobs.get_mut(&id).expect("model job")
    }

    fn insert(&mut self, id: i64, spec: Spec) {
        let Spec {
            queue,
            kind,
            priority,
            later,
            unique,
            max_attempts,
        } = spec;
        self.ids.push(id);
        let due = (!later).then_some(self.step);
        let state = if later {
            JobState::Scheduled
        } else {
            JobState::Available
        };
        self.jobs.insert(
            id,
            MJob {
                id,
                queue,
                kind,
                priority,
                state,
                attempt: 0,
                max_attempts,
                errors: Vec::new(),
                due,
                worker: None,
                unique,
            },
        );
    }

    /// A failed attempt (a worker's error, or the rescuer's "worker lost").
    fn fail(&mut self, id: i64, later: bool, discard: bool) {
        let step = self.step;
        let j = self.job(id);
        j.errors.push(j.attempt);
        if discard || j.attempt >= j.max_attempts {
            j.state = JobState::Discarded;
        } else {
            j.state = JobState::Retryable;
            j.due = (!later).then_some(step);
        }
    }

    fn counts(&self) -> JobCounts {
        JobCounts::from_rows(
            self.jobs
                .values()
                .map(|j| (QUEUES[j.queue].to_string(), j.state, 1)),
        )
    }
}

fn check(cond: bool, what: impl FnOnce() -> String) -> Result<(), TestCaseError> {
    if cond {
        Ok(())
    } else {
        Err(TestCaseError::fail(what()))
    }
}

fn job_params(spec: Spec) -> JobInsertParams {
    let Spec {
        queue,
        kind,
        priority,
        later,
        unique,
        max_attempts,
    } = spec;
    let opts = InsertOpts {
        queue: Some(QUEUES[queue].to_string()),
        priority: Some(priority),
        max_attempts: Some(max_attempts),
        schedule_in: later.then_some(LATER),
        unique_key: unique.map(|k| UNIQUE_KEYS[k].to_string()),
        ..InsertOpts::default()
    };
    JobInsertParams::new(KINDS[kind], serde_json::json!({}), opts).expect("valid params")
}

fn expect_conflict<T: std::fmt::Debug>(
    what: &str,
    got: porter::Result<T>,
) -> Result<(), TestCaseError> {
    check(matches!(got, Err(Error::Conflict(_))), || {
        format!("{what}: expected a conflict, got {got:?}")
    })
}

fn expect_not_found<T: std::fmt::Debug>(
    what: &str,
    got: porter::Result<T>,
) -> Result<(), TestCaseError> {
    check(matches!(got, Err(Error::NotFound { .. })), || {
        format!("{what}: expected not found, got {got:?}")
    })
}

fn expect_fenced<T: std::fmt::Debug>(
    what: &str,
    got: porter::Result<T>,
) -> Result<(), TestCaseError> {
    check(matches!(got, Err(Error::Fenced { .. })), || {
        format!("{what}: expected the write to be fenced off, got {got:?}")
    })
}

fn ok<T>(what: &str, got: porter::Result<T>) -> Result<T, TestCaseError> {
    got.map_err(|e| TestCaseError::fail(format!("{what}: unexpected error {e}")))
}

/// The job a periodic slot inserts.
fn periodic_spec(name: usize) -> Spec {
    Spec {
        queue: 0,
        kind: name,
        priority: 2,
        later: false,
        unique: None,
        max_attempts: 3,
    }
}

/// Applies one operation to the model and the store, comparing the store's answer with the
/// model's prediction.
async fn apply(m: &mut Model, s: &dyn Store, op: &Op) -> Result<(), TestCaseError> {
    match op {
        &Op::Insert(spec) => {
            let mut got = ok("insert", s.job_insert_many(vec![job_params(spec)]).await)?;
            let got = got.remove(0);
            match spec.unique.and_then(|k| m.unique_holder(k)) {
                Some(holder) => {
                    check(!got.inserted && got.job.id == holder, || {
                        format!("insert: key held by job {holder}, got {got:?}")
                    })?;
                }
                None => {
                    check(got.inserted, || {
                        format!("insert: expected a new job, got {got:?}")
                    })?;
                    let newest = m.ids.iter().copied().max().unwrap_or(0);
                    check(got.job.id > newest, || {
                        format!("insert: id {} not above {newest}", got.job.id)
                    })?;
                    m.insert(got.job.id, spec);
                }
            }
        }
        &Op::Claim {
            worker,
            queue,
            limit,
            only_kind,
        } => {
            if !m.registered[worker] {
                ok(
                    "register",
                    s.worker_heartbeat(WORKERS[worker], "model-host", 1).await,
                )?;
                m.registered[worker] = true;
            }
            let kinds: Vec<String> = match only_kind {
                Some(k) => vec![KINDS[k].to_string()],
                None => KINDS.iter().map(|k| k.to_string()).collect(),
            };
            let got = ok(
                "claim",
                s.job_claim(JobClaimParams {
                    queue: QUEUES[queue].into(),
                    kinds,
                    limit,
                    worker_id: WORKERS[worker].into(),
                })
                .await,
            )?;
            // Due scheduled and retryable jobs of the queue become available, paused or not.
            for j in m.jobs.values_mut() {
                if j.queue == queue
                    && matches!(j.state, JobState::Scheduled | JobState::Retryable)
                    && j.due.is_some()
                {
                    j.state = JobState::Available;
                }
            }
            let mut want: Vec<&MJob> = if m.paused[queue] {
                Vec::new()
            } else {
                m.jobs
                    .values()
                    .filter(|j| {
                        j.queue == queue
                            && j.state == JobState::Available
                            && only_kind.is_none_or(|k| k == j.kind)
                    })
                    .collect()
            };
            want.sort_by_key(|j| (j.priority, j.due, j.id));
            let want: Vec<i64> = want
                .into_iter()
                .take(limit as usize)
                .map(|j| j.id)
                .collect();
            let got_ids: Vec<i64> = got.iter().map(|j| j.id).collect();
            check(got_ids == want, || {
                format!("claim: expected {want:?} in this order, got {got_ids:?}")
            })?;
            for id in want {
                let j = m.job(id);
                j.state = JobState::Running;
                j.attempt += 1;
                j.worker = Some(worker);
                let fence = JobFence {
                    id,
                    attempt: j.attempt,
                    worker_id: WORKERS[worker].into(),
                };
                m.fences.push(fence);
            }
        }
        Op::Complete { pick } => {
            let Some(fence) = m.choose_fence(pick) else {
                return Ok(());
            };
            let holds = m.fence_holds(&fence);
            let got = ok("complete", s.job_complete_many(vec![fence.clone()]).await)?;
            check(got == vec![holds], || {
                format!("complete {fence:?}: expected [{holds}], got {got:?}")
            })?;
            if holds {
                m.job(fence.id).state = JobState::Completed;
            }
        }
        &Op::Fail {
            ref pick,
            later,
            discard,
        } => {
            let Some(fence) = m.choose_fence(pick) else {
                return Ok(());
            };
            let params = JobFailParams {
                fence: fence.clone(),
                error: "boom".into(),
                trace: None,
                retry_in: if later { LATER } else { Duration::ZERO },
                discard,
            };
            let got = s.job_fail(params).await;
            if m.fence_holds(&fence) {
                let row = ok("fail", got)?;
                m.fail(fence.id, later, discard);
                let want = m.jobs[&fence.id].state;
                check(row.state == want, || {
                    format!("fail {fence:?}: expected {want}, got {}", row.state)
                })?;
            } else {
                expect_fenced("fail", got)?;
            }
        }
        &Op::Snooze { ref pick, later } => {
            let Some(fence) = m.choose_fence(pick) else {
                return Ok(());
            };
            let got = s
                .job_snooze(fence.clone(), if later { LATER } else { Duration::ZERO })
                .await;
            if m.fence_holds(&fence) {
                ok("snooze", got)?;
                let step = m.step;
                let j = m.job(fence.id);
                j.state = JobState::Scheduled;
                j.max_attempts += 1;
                j.due = (!later).then_some(step);
            } else {
                expect_fenced("snooze", got)?;
            }
        }
        Op::CancelSelf { pick } => {
            let Some(fence) = m.choose_fence(pick) else {
                return Ok(());
            };
            let got = s.job_cancel_running(fence.clone(), "stopping".into()).await;
            if m.fence_holds(&fence) {
                ok("cancel running", got)?;
                let j = m.job(fence.id);
                j.state = JobState::Cancelled;
                j.errors.push(j.attempt);
            } else {
                expect_fenced("cancel running", got)?;
            }
        }
        Op::Release { pick } => {
            let Some(fence) = m.choose_fence(pick) else {
                return Ok(());
            };
            let got = s
                .job_release(fence.clone(), "worker shut down".into())
                .await;
            if m.fence_holds(&fence) {
                ok("release", got)?;
                let step = m.step;
                let j = m.job(fence.id);
                // Due at once, and the attempt does not count: max_attempts grows by one.
                j.state = JobState::Available;
                j.due = Some(step);
                j.max_attempts += 1;
                j.errors.push(j.attempt);
            } else {
                expect_fenced("release", got)?;
            }
        }
        Op::Cancel { job } => {
            let Some(id) = m.choose_id(*job) else {
                return Ok(());
            };
            let got = s.job_cancel(id).await;
            match m.jobs.get(&id).map(|j| j.unfinished()) {
                None => expect_not_found("cancel", got)?,
                Some(false) => expect_conflict("cancel of a finished job", got)?,
                Some(true) => {
                    ok("cancel", got)?;
                    m.job(id).state = JobState::Cancelled;
                }
            }
        }
        Op::Retry { job } => {
            let Some(id) = m.choose_id(*job) else {
                return Ok(());
            };
            let got = s.job_retry(id).await;
            let Some(j) = m.jobs.get(&id) else {
                return expect_not_found("retry", got);
            };
            if j.state == JobState::Running {
                return expect_conflict("retry of a running job", got);
            }
            // Retrying a finished job takes its unique key back: a conflict while another
            // unfinished job holds it.
            if let Some(k) = j.unique {
                if m.unique_holder(k).is_some_and(|holder| holder != id) {
                    return expect_conflict("retry while another job holds the unique key", got);
                }
            }
            ok("retry", got)?;
            let step = m.step;
            let j = m.job(id);
            j.state = JobState::Available;
            j.due = Some(step);
            j.max_attempts = j.max_attempts.max(j.attempt + 1);
        }
        &Op::LoseWorker { worker } => {
            ok("worker delete", s.worker_delete(WORKERS[worker]).await)?;
            m.registered[worker] = false;
        }
        Op::Rescue => {
            let got = ok(
                "rescue",
                s.job_rescue(JobRescueParams {
                    lease: LATER,
                    stuck_after: Vec::new(),
                    limit: 10_000,
                })
                .await,
            )?;
            let lost: Vec<i64> = m
                .jobs
                .values()
                .filter(|j| {
                    j.state == JobState::Running && j.worker.is_some_and(|w| !m.registered[w])
                })
                .map(|j| j.id)
                .collect();
            let mut want = RescueCounts::default();
            for id in lost {
                m.fail(id, false, false);
                match m.jobs[&id].state {
                    JobState::Discarded => want.discarded += 1,
                    _ => want.retried += 1,
                }
            }
            check(got == want, || {
                format!("rescue: expected {want:?}, got {got:?}")
            })?;
        }
        Op::Retention => {
            // Retention of zero: every job finished before this step goes (2 ms on, so that a
            // job finished within this millisecond on SQLite is older than "now").
            tokio::time::sleep(Duration::from_millis(2)).await;
            let params = JobDeleteFinalizedParams {
                completed: Duration::ZERO,
                cancelled: Duration::ZERO,
                discarded: Duration::ZERO,
                limit: 10_000,
            };
            let got = ok("retention", s.job_delete_finalized(params).await)?;
            let gone: Vec<i64> = m
                .jobs
                .values()
                .filter(|j| !j.unfinished())
                .map(|j| j.id)
                .collect();
            check(got == gone.len() as u64, || {
                format!("retention: expected {} deleted, got {got}", gone.len())
            })?;
            for id in gone {
                m.jobs.remove(&id);
            }
        }
        &Op::Periodic { name, slot } => {
            let params = PeriodicEnqueueParams {
                name: PERIODIC[name].into(),
                slot,
                insert_if_new: true,
                job: job_params(periodic_spec(name)),
            };
            let got = ok("periodic", s.periodic_enqueue(params).await)?;
            let advances = m.periodic[name].is_none_or(|last| last < slot);
            check(got.is_some() == advances, || {
                format!("periodic {name} slot {slot}: expected a job: {advances}, got {got:?}")
            })?;
            if let Some(got) = got {
                m.periodic[name] = Some(slot);
                m.insert(got.job.id, periodic_spec(name));
            }
        }
        &Op::Pause { queue } => {
            ok("pause", s.queue_pause(QUEUES[queue]).await)?;
            m.paused[queue] = true;
        }
        &Op::Resume { queue } => {
            ok("resume", s.queue_resume(QUEUES[queue]).await)?;
            m.paused[queue] = false;
        }
    }
    Ok(())
}

/// Compares every job and the counts with the model.
async fn observe(m: &Model, s: &dyn Store, after: &Op) -> Result<(), TestCaseError> {
    let rows = ok(
        "list",
        s.job_list(JobListParams {
            limit: Some(10_000),
            ..JobListParams::default()
        })
        .await,
    )?;
    let now = ok("now", s.now().await)?;
    let got_ids: Vec<i64> = rows.iter().rev().map(|j| j.id).collect();
    let want_ids: Vec<i64> = m.jobs.keys().copied().collect();
    check(got_ids == want_ids, || {
        format!("after {after:?}: jobs {got_ids:?}, model {want_ids:?}")
    })?;
    for row in &rows {
        compare(&m.jobs[&row.id], row, now)
            .map_err(|e| TestCaseError::fail(format!("after {after:?}: job {}: {e}", row.id)))?;
    }
    let counts = ok("counts", s.job_counts().await)?;
    let want = m.counts();
    check(counts.total == want.total, || {
        format!(
            "after {after:?}: counts {:?}, model {:?}",
            counts.total, want.total
        )
    })?;
    for (queue, c) in &want.queues {
        check(counts.queues.get(queue) == Some(c), || {
            format!(
                "after {after:?}: queue {queue}: {:?}, model {c:?}",
                counts.queues.get(queue)
            )
        })?;
    }
    Ok(())
}

fn compare(want: &MJob, got: &JobRow, now: chrono::DateTime<chrono::Utc>) -> Result<(), String> {
    let errors: Vec<i32> = got.errors.iter().map(|e| e.attempt).collect();
    let fields = [
        ("state", format!("{}", want.state), format!("{}", got.state)),
        ("attempt", want.attempt.to_string(), got.attempt.to_string()),
        (
            "max_attempts",
            want.max_attempts.to_string(),
            got.max_attempts.to_string(),
        ),
        (
            "errors",
            format!("{:?}", want.errors),
            format!("{errors:?}"),
        ),
        ("queue", QUEUES[want.queue].to_string(), got.queue.clone()),
        ("kind", KINDS[want.kind].to_string(), got.kind.clone()),
        (
            "priority",
            want.priority.to_string(),
            got.priority.to_string(),
        ),
        (
            "attempted_by",
            format!("{:?}", want.worker.map(|w| WORKERS[w])),
            format!("{:?}", got.attempted_by.as_deref()),
        ),
        (
            "unique_key",
            format!("{:?}", want.unique.map(|k| UNIQUE_KEYS[k])),
            format!("{:?}", got.unique_key.as_deref()),
        ),
        (
            "finalized",
            want.state.is_final().to_string(),
            got.finalized_at.is_some().to_string(),
        ),
    ];
    for (name, w, g) in fields {
        if w != g {
            return Err(format!("{name}: model {w}, store {g}"));
        }
    }
    if matches!(
        want.state,
        JobState::Available | JobState::Scheduled | JobState::Retryable
    ) {
        let due = got.scheduled_at <= now;
        if due != want.due.is_some() {
            return Err(format!(
                "due: model {:?}, store scheduled_at {} at {now}",
                want.due, got.scheduled_at
            ));
        }
    }
    Ok(())
}

async fn run_case(db: TestDb, ops: &[Op]) -> Result<(), TestCaseError> {
    let mut m = Model::default();
    let s = db.store.as_ref();
    let sqlite = s.backend() == Backend::Sqlite;
    for op in ops {
        m.step += 1;
        if sqlite {
            // Timestamps have millisecond precision: due times of different steps must differ
            // for the claim order (priority, due time, id) to be the model's.
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        apply(&mut m, s, op).await?;
        observe(&m, s, op).await?;
    }
    Ok(())
}

fn cases() -> u32 {
    std::env::var("PORTER_MODEL_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Runs `cases()` random sequences, each on a fresh database from `fresh`.
fn run_model<F, Fut>(fresh: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = TestDb>,
{
    let rt = runtime();
    let config = Config {
        cases: cases(),
        failure_persistence: None,
        max_shrink_iters: 2_000,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let result = runner.run(&ops(), |ops| {
        rt.block_on(async { run_case(fresh().await, &ops).await })
    });
    if let Err(e) = result {
        panic!("the store differs from the model: {e}");
    }
}

/// Runs one fixed sequence (a kept counterexample) on a fresh database.
fn run_fixed<Fut: std::future::Future<Output = TestDb>>(fresh: impl Fn() -> Fut, ops: Vec<Op>) {
    let rt = runtime();
    rt.block_on(async {
        if let Err(e) = run_case(fresh().await, &ops).await {
            panic!("{e}");
        }
    });
}

/// Kept counterexamples and hand-written sequences for the interleavings that matter most.
mod regressions {
    use super::*;

    /// A worker lost with a job running: rescue, then the stale worker's write changes nothing
    /// and the retried job runs again under the other worker.
    const KEYED: Spec = Spec {
        queue: 0,
        kind: 0,
        priority: 1,
        later: false,
        unique: Some(0),
        max_attempts: 2,
    };

    pub fn lost_worker_then_stale_write() -> Vec<Op> {
        let live = Pick {
            stale: false,
            index: 0,
        };
        vec![
            Op::Insert(KEYED),
            Op::Claim {
                worker: 0,
                queue: 0,
                limit: 1,
                only_kind: None,
            },
            Op::LoseWorker { worker: 0 },
            Op::Rescue,
            Op::Complete {
                pick: Pick {
                    stale: true,
                    index: 0,
                },
            },
            Op::Insert(KEYED),
            Op::Claim {
                worker: 1,
                queue: 0,
                limit: 1,
                only_kind: None,
            },
            Op::Fail {
                pick: live,
                later: false,
                discard: false,
            },
            Op::Retry { job: 0 },
            Op::Retention,
        ]
    }
}

mod sqlite {
    #[test]
    fn model_matches_store() {
        super::run_model(crate::common::sqlite);
    }

    #[test]
    fn regression_lost_worker_then_stale_write() {
        super::run_fixed(
            crate::common::sqlite,
            super::regressions::lost_worker_then_stale_write(),
        );
    }
}

mod postgres {
    #[test]
    #[cfg_attr(
        not(porter_pg_tests),
        ignore = "PORTER_TEST_DATABASE_URL not set: Postgres half skipped"
    )]
    fn model_matches_store() {
        super::run_model(crate::common::postgres);
    }

    #[test]
    #[cfg_attr(
        not(porter_pg_tests),
        ignore = "PORTER_TEST_DATABASE_URL not set: Postgres half skipped"
    )]
    fn regression_lost_worker_then_stale_write() {
        super::run_fixed(
            crate::common::postgres,
            super::regressions::lost_worker_then_stale_write(),
        );
    }
}
