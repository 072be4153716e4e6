//! The fault suite's dependency soak (issue 16): workflows of short jobs run by several worker
//! processes while one of them is SIGKILLed every couple of seconds, with retention deleting
//! completed jobs half a second old the whole time. Checked after the fact from each
//! execution's own record (the `sleep` built-in's debug events; an execution cut short by a
//! SIGKILL ends, at the latest, when the test saw its process gone) and from snapshots of the
//! rows taken during the soak (one statement each).
//!
//! Prints `DEPS backend=.. workflows=.. jobs=.. kills=.. executions=.. cut_short=..
//! parents_rescued=.. out_of_order=0 duplicates=.. ended_twice=.. held_past_retention=..
//! deleted_while_waiting=0`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use porter::maintenance::{RetentionCleaner, RetentionConfig};
use porter::store::{JobListParams, MAX_LIST_LIMIT};
use porter::workflow::{Step, Workflow};
use porter::{InsertOpts, JobState};
use tokio_util::sync::CancellationToken;

use crate::backend_case;
use crate::chaos_proc::*;
use crate::refs;

const QUEUE: &str = "deps";
/// How old a completed job gets before retention deletes it (unless a child still waits).
const RETENTION: Duration = Duration::from_millis(500);

/// Each workflow: `a` -> `b`, `c` -> `d` -> `e`, with `c` slow, so `b` stays completed (and
/// past its retention) while `d` waits for `c`: (step, ms, after).
const STEPS: [(&str, u64, &[&str]); 5] = [
    ("a", 150, &[]),
    ("b", 60, &["a"]),
    ("c", 900, &["a"]),
    ("d", 100, &["b", "c"]),
    ("e", 60, &["d"]),
];

/// What the row snapshots saw.
#[derive(Debug, Default)]
struct Watch {
    /// (child, parent) seen with the child pending and the parent's row gone.
    deleted_while_waiting: BTreeSet<(i64, i64)>,
    /// Per parent: when it was first and last seen completed with a child still pending.
    held: BTreeMap<i64, (Instant, Instant)>,
    snapshots: u64,
}

/// Until `stop`: reads every job of the queue in one statement, and notes each pending child
/// whose parent is gone and each completed parent kept for a pending child.
async fn watch(
    store: Arc<porter::store::Store>,
    parents: BTreeMap<i64, Vec<i64>>,
    seen: Arc<Mutex<Watch>>,
    stop: CancellationToken,
) {
    while !stop.is_cancelled() {
        let rows = store
            .job_list(JobListParams {
                queue: Some(QUEUE.into()),
                limit: Some(MAX_LIST_LIMIT),
                ..Default::default()
            })
            .await
            .expect("list the soak's jobs");
        let now = Instant::now();
        let state: BTreeMap<i64, JobState> = rows.iter().map(|r| (r.id, r.state)).collect();
        {
            let mut w = seen.lock().unwrap();
            w.snapshots += 1;
            for (child, ps) in &parents {
                if state.get(child) != Some(&JobState::Pending) {
                    continue;
                }
                for p in ps {
                    match state.get(p) {
                        None => {
                            w.deleted_while_waiting.insert((*child, *p));
                        }
                        Some(JobState::Completed) => {
                            w.held.entry(*p).or_insert((now, now)).1 = now;
                        }
                        Some(_) => {}
                    }
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
}

backend_case! {
    /// Workflows under the kill soak, with retention deleting completed jobs half a second old
    /// all along: several worker processes with mixed leases run them while one is SIGKILLed
    /// every couple of seconds. Afterwards every job completed; a parent cut short by a kill
    /// was rescued and run again; every job's executions all began after every execution of
    /// each of its parents had ended; and no snapshot showed a waiting child whose parent
    /// retention had deleted.
    async fn workflows_run_each_step_after_its_parents_under_a_kill_soak_and_retention(db: TestDb) {
        let size = Size::from_env();
        let workflows = knob("PORTER_CHAOS_DEP_WORKFLOWS", 100);
        let kills = size.kills.max(3);
        let dir = scratch();
        let launcher = Launcher::new(&db.url, dir.path()).with_env("RUST_LOG", "info,porter::jobs=debug");
        let spawn = |i: u64| {
            let args = soak_worker_args(QUEUE, 3, size.lease_secs, i);
            launcher.spawn(&format!("d{i}"), &refs(&args))
        };
        let mut workers = start_soak_workers(size.workers, &spawn).await;
        let client = porter::Client::new(db.store.clone());
        // child -> its parents.
        let mut parents: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
        for n in 0..workflows {
            let mut w = Workflow::new(format!("soak {n}"));
            for (name, ms, after) in STEPS {
                let opts = InsertOpts { queue: Some(QUEUE.into()), ..Default::default() };
                w.push(Step::raw(name, "sleep", serde_json::json!({ "ms": ms })).opts(opts).after(after.iter().copied()));
            }
            let w = client.insert_workflow(w).await.unwrap();
            for (name, _, after) in STEPS {
                let ps = after.iter().map(|p| w.job(p).unwrap().id).collect();
                parents.insert(w.job(name).unwrap().id, ps);
            }
        }
        let ids: BTreeSet<i64> = parents.keys().copied().collect();
        let jobs = ids.len() as u64;
        let stop = CancellationToken::new();
        let retention = tokio::spawn(
            RetentionCleaner::new(
                db.store.clone(),
                RetentionConfig {
                    completed: RETENTION,
                    interval: Duration::from_millis(200),
                    ..Default::default()
                },
            )
            .run(stop.clone()),
        );
        let seen = Arc::new(Mutex::new(Watch::default()));
        let watcher = tokio::spawn(watch(db.store.clone(), parents.clone(), seen.clone(), stop.clone()));

        let retired = kill_every_few_seconds(&db, &mut workers, size.workers, kills, &spawn).await;
        wait_totals(&db.store, "every workflow step finished", Duration::from_secs(300), |t| {
            t[&JobState::Available] + t[&JobState::Running] + t[&JobState::Retryable]
                + t[&JobState::Scheduled] + t[&JobState::Pending] == 0
        })
        .await;
        stop.cancel();
        retention.await.unwrap();
        watcher.await.unwrap();
        let mut live = Vec::new();
        for (_, mut w) in workers {
            w.ready().await;
            let status = w.term(Duration::from_secs(30)).await;
            assert!(status.success(), "{} exits 0 after SIGTERM: {status:?}\n{}", w.name, w.output());
            live.push(w);
        }

        // Every job completed: the rows left are completed, and retention (which keeps
        // cancelled and discarded jobs a day) deleted only completed ones.
        let left = all_jobs(&db.store, Some("sleep")).await;
        let not_completed: Vec<_> = left.iter().filter(|r| ids.contains(&r.id) && r.state != JobState::Completed).collect();
        assert!(not_completed.is_empty(), "jobs that ended other than completed: {not_completed:?}");
        let deleted = ids.len() - left.iter().filter(|r| ids.contains(&r.id)).count();

        let mut all: Vec<Execution> = Vec::new();
        // (job, attempt) of the executions on processes a kill ended.
        let mut on_killed: BTreeSet<(i64, i64)> = BTreeSet::new();
        for (p, killed_at) in &retired {
            p.assert_clean_log();
            let executions = executions_of(QUEUE, &p.output(), Some(*killed_at));
            on_killed.extend(executions.iter().map(|e| (e.job_id, e.attempt)));
            all.extend(executions);
        }
        // Executions on processes never killed: a job runs again only after a run a kill cut
        // short or left unrecorded, so it has at most one of these, and it is its last.
        let mut unkilled: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
        for p in &live {
            p.assert_clean_log();
            let executions = executions_of(QUEUE, &p.output(), None);
            for e in &executions {
                unkilled.entry(e.job_id).or_default().push(e.attempt);
            }
            all.extend(executions);
        }
        let mut runs: BTreeMap<i64, Vec<&Execution>> = BTreeMap::new();
        for e in &all {
            runs.entry(e.job_id).or_default().push(e);
        }
        let unfinished: Vec<&i64> = ids.iter().filter(|id| !runs.get(id).is_some_and(|r| r.iter().any(|e| !e.cut_short))).collect();
        assert!(unfinished.is_empty(), "jobs without an execution that ran to its end: {unfinished:?}");
        let has_children: BTreeSet<i64> = parents.values().flatten().copied().collect();
        // A parent cut short, then run again to its end by a later attempt.
        let rescued = has_children
            .iter()
            .filter(|p| {
                let r = &runs[p];
                r.iter().any(|cut| cut.cut_short && r.iter().any(|e| !e.cut_short && e.attempt > cut.attempt))
            })
            .count();
        let mut out_of_order = Vec::new();
        for (child, ps) in &parents {
            let start = runs[child].iter().map(|e| e.start_us).min().unwrap();
            for p in ps {
                let end = runs[p].iter().map(|e| e.end_us).max().unwrap();
                if start < end {
                    out_of_order.push((*p, *child));
                }
            }
        }
        let duplicates: usize = runs.values().map(|r| r.len() - 1).sum();
        let ended_twice = runs.values().filter(|r| r.iter().filter(|e| !e.cut_short).count() > 1).count();
        let cut = all.iter().filter(|e| e.cut_short).count();
        let w = seen.lock().unwrap();
        let past_retention = RETENTION + Duration::from_millis(200);
        let held = w.held.values().filter(|(first, last)| *last - *first > past_retention).count();
        let backend = db.store.backend().to_string();
        println!(
            "DEPS backend={backend} workflows={workflows} jobs={jobs} kills={kills} executions={} \
             cut_short={cut} parents_rescued={rescued} out_of_order={} duplicates={duplicates} \
             ended_twice={ended_twice} retention_deleted={deleted} snapshots={} \
             held_past_retention={held} deleted_while_waiting={}",
            all.len(),
            out_of_order.len(),
            w.snapshots,
            w.deleted_while_waiting.len()
        );
        report("deps_soak", &backend, jobs, kills, 0, 0, duplicates as u64);
        assert!(out_of_order.is_empty(), "(parent, child) where the child began before the parent's last execution ended: {out_of_order:?}");
        // Each job ran once but for what kills cost: a second run follows only a run on a
        // killed process (the "its children wait and then run once").
        let rerun_without_a_kill: Vec<(i64, Vec<i64>)> = unkilled
            .iter()
            .filter(|(id, attempts)| {
                let last = runs[id].iter().map(|e| e.attempt).max().unwrap();
                attempts.len() > 1 || attempts[0] != last
            })
            .map(|(id, attempts)| (*id, attempts.clone()))
            .collect();
        assert!(
            rerun_without_a_kill.is_empty(),
            "(job, attempts on processes never killed) run again without a kill: {rerun_without_a_kill:?}"
        );
        // No attempt ran twice (two processes holding one claim), and a job ran to its end
        // more than once only where a kill ended the process of each earlier such run before
        // its completion was written.
        let mut attempts: BTreeMap<(i64, i64), usize> = BTreeMap::new();
        for e in &all {
            *attempts.entry((e.job_id, e.attempt)).or_default() += 1;
        }
        let attempt_twice: Vec<&(i64, i64)> = attempts.iter().filter(|(_, n)| **n > 1).map(|(k, _)| k).collect();
        assert!(attempt_twice.is_empty(), "(job, attempt) executed twice: {attempt_twice:?}");
        let ended_twice_without_a_kill: Vec<i64> = runs
            .iter()
            .filter(|(id, r)| {
                let mut full: Vec<i64> = r.iter().filter(|e| !e.cut_short).map(|e| e.attempt).collect();
                full.sort();
                full.pop();
                full.iter().any(|a| !on_killed.contains(&(**id, *a)))
            })
            .map(|(id, _)| *id)
            .collect();
        assert!(
            ended_twice_without_a_kill.is_empty(),
            "jobs run to their end twice where no kill took the earlier run's process: {ended_twice_without_a_kill:?}"
        );
        assert!(w.deleted_while_waiting.is_empty(), "(child, parent) deleted while the child waited: {:?}", w.deleted_while_waiting);
        assert!(rescued >= 1, "a kill cut a parent short and it ran again (else the soak proves nothing): {cut} cut short");
        assert!(held >= 1, "a completed parent outlived its retention while its child waited (else retention proves nothing)");
        assert!(deleted >= 1, "retention deleted jobs during the soak");
        // Each kill costs at most what the victim held: HOLD_FACTOR x its 3 slots (issue 14).
        assert!(
            duplicates as u64 <= kills * 3 * porter::runtime::HOLD_FACTOR as u64,
            "{duplicates} executions beyond the first"
        );
    }
}
