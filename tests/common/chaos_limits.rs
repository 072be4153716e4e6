//! The fault suite's flow-control soak (issue 15): queue limits held across real worker
//! processes while workers are SIGKILLed, on both backends. One queue carries every limit at
//! once (global and per-key concurrency, rate and per-key rate), since each binds at its own
//! moments; the check is after the fact, from each execution's own record (the `sleep`
//! built-in's `sleep started` / `sleep ended` debug events, with the process's clock for the
//! overlap and the claim time on the database clock for the rate windows). An execution cut
//! short by a SIGKILL ends, at the latest, when the test saw its process gone.
//!
//! Prints `LIMITS backend=.. jobs=.. kills=.. max_running=../.. max_per_key=../..
//! max_window_starts=../.. max_key_window_starts=../.. duplicates=..`.
//!
//! The sequence soak (issue 15.4) checks the same way that each sequence's jobs ran one at a
//! time in insertion order: every execution of a job began after every execution of the job
//! before it in its sequence had ended. Prints `SEQUENCES backend=.. jobs=.. kills=..
//! max_running=.. max_per_sequence=../1 out_of_order=0 duplicates=..`.

use std::collections::BTreeSet;
use std::time::Duration;

use porter::store::{QueueLimitParams, QueueLimits, Rate};
use porter::JobState;
use serde_json::json;

use crate::backend_case;
use crate::chaos_proc::*;
use crate::refs;

const QUEUE: &str = "limited";
const CONCURRENCY: u32 = 4;
const PER_KEY: u32 = 1;
const RATE: (u32, u64) = (40, 1000);
const RATE_PER_KEY: (u32, u64) = (12, 1000);
const KEYS: usize = 6;

/// The executions one process logged; those without an end ended by `killed_at_us`.
fn executions(log: &str, killed_at_us: Option<i64>) -> Vec<Execution> {
    executions_of(QUEUE, log, killed_at_us)
}

/// The most claim times in any half-open window `[t, t + period)`.
fn max_in_window(mut times: Vec<i64>, period_us: i64) -> usize {
    times.sort();
    let mut most = 0;
    let mut lo = 0;
    for hi in 0..times.len() {
        while times[hi] - times[lo] >= period_us {
            lo += 1;
        }
        most = most.max(hi - lo + 1);
    }
    most
}

backend_case! {
    /// Several worker processes with mixed leases run hundreds of short jobs of one queue with
    /// every limit set, while one of them is SIGKILLed every couple of seconds; afterwards the
    /// executions show no moment with more running than the global or per-key limit and no
    /// window with more starts than the rates allow, and every job completed.
    async fn queue_limits_hold_under_a_kill_soak(db: TestDb) {
        let size = Size::from_env();
        let jobs = knob("PORTER_CHAOS_LIMIT_JOBS", 360);
        let kills = size.kills.max(3);
        let dir = scratch();
        let launcher = Launcher::new(&db.url, dir.path()).with_env("RUST_LOG", "info,porter::jobs=debug");
        db.store
            .queue_limit_set(QueueLimitParams {
                queue: QUEUE.into(),
                clear: false,
                set: QueueLimits {
                    concurrency: Some(CONCURRENCY),
                    per_key: Some(PER_KEY),
                    rate: Some(Rate { limit: RATE.0, period_ms: RATE.1 }),
                    rate_per_key: Some(Rate { limit: RATE_PER_KEY.0, period_ms: RATE_PER_KEY.1 }),
                },
            })
            .await
            .unwrap();
        let spawn = |i: u64| {
            let args = soak_worker_args(QUEUE, size.concurrency, size.lease_secs, i);
            launcher.spawn(&format!("w{i}"), &refs(&args))
        };
        let mut workers = start_soak_workers(size.workers, &spawn).await;
        // Jobs with keys, and some without (held only by the queue's own limits).
        let params: Vec<_> = (0..jobs)
            .map(|n| {
                let key = (n % (KEYS as u64 + 1)) as usize;
                porter::store::JobInsertParams::new(
                    "sleep",
                    json!({ "ms": 30 + (n % 4) * 10 }),
                    porter::InsertOpts {
                        queue: Some(QUEUE.into()),
                        concurrency_key: (key < KEYS).then(|| format!("k{key}")),
                        ..Default::default()
                    },
                )
                .unwrap()
            })
            .collect();
        let ids: BTreeSet<i64> = db
            .store
            .job_insert_many(params)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.job.id)
            .collect();
        let retired = kill_every_few_seconds(&db, &mut workers, size.workers, kills, &spawn).await;
        wait_totals(&db.store, "every limited job finished", Duration::from_secs(240), |t| {
            t[&JobState::Completed] as u64 >= jobs
                && t[&JobState::Available] + t[&JobState::Running] + t[&JobState::Retryable] + t[&JobState::Scheduled] == 0
        })
        .await;
        let ledger = Ledger::read(&db.store, "sleep", &ids).await;
        let mut live = Vec::new();
        for (_, mut w) in workers {
            // A replacement may not have installed its signal handlers yet.
            w.ready().await;
            let status = w.term(Duration::from_secs(30)).await;
            assert!(status.success(), "{} exits 0 after SIGTERM: {status:?}\n{}", w.name, w.output());
            live.push(w);
        }
        let mut all: Vec<Execution> = Vec::new();
        for (p, killed_at) in &retired {
            p.assert_clean_log();
            all.extend(executions(&p.output(), Some(*killed_at)));
        }
        for p in &live {
            p.assert_clean_log();
            all.extend(executions(&p.output(), None));
        }
        let finished: BTreeSet<(i64, i64)> = all.iter().map(|e| (e.job_id, e.attempt)).collect();
        assert_eq!(finished.len(), all.len(), "each (job, attempt) ran once");
        assert!(
            ids.iter().all(|id| all.iter().any(|e| e.job_id == *id)),
            "every job has a recorded execution"
        );
        let running = max_overlap(all.iter());
        let mut per_key = 0;
        let mut key_window = 0;
        let keys: BTreeSet<&str> = all.iter().map(|e| e.key.as_str()).filter(|k| !k.is_empty()).collect();
        for k in keys {
            per_key = per_key.max(max_overlap(all.iter().filter(|e| e.key == k)));
            key_window = key_window.max(max_in_window(
                all.iter().filter(|e| e.key == k).map(|e| e.claimed_us).collect(),
                RATE_PER_KEY.1 as i64 * 1000,
            ));
        }
        let window = max_in_window(all.iter().map(|e| e.claimed_us).collect(), RATE.1 as i64 * 1000);
        let backend = db.store.backend().to_string();
        println!(
            "LIMITS backend={backend} jobs={jobs} kills={kills} executions={} max_running={running}/{CONCURRENCY} \
             max_per_key={per_key}/{PER_KEY} max_window_starts={window}/{} max_key_window_starts={key_window}/{} \
             duplicates={}",
            all.len(),
            RATE.0,
            RATE_PER_KEY.0,
            ledger.duplicates
        );
        report("limits_soak", &backend, jobs, kills, ledger.lost, ledger.stuck, ledger.duplicates);
        assert!(running <= CONCURRENCY as usize, "global limit: {running} ran at once");
        assert!(per_key <= PER_KEY as usize, "per-key limit: {per_key} of one key ran at once");
        assert!(window <= RATE.0 as usize, "rate: {window} starts in one window");
        assert!(key_window <= RATE_PER_KEY.0 as usize, "per-key rate: {key_window} starts of one key in one window");
        assert!(running >= 2, "the soak ran jobs side by side (else it proves nothing): {running}");
        // Each kill costs at most what the victim held: HOLD_FACTOR x its slots (issue 14).
        ledger.assert_all_completed(
            "limits_soak",
            kills * CONCURRENCY as u64 * porter::runtime::HOLD_FACTOR as u64,
        );
    }
}

const SEQUENCED: &str = "sequenced";

/// Jobs of one sequence that began before the job inserted before them had ended every
/// execution: (earlier job, later job) pairs, given each sequence's job ids in insertion order.
fn out_of_order(sequences: &[Vec<i64>], all: &[Execution]) -> Vec<(i64, i64)> {
    let mut bad = Vec::new();
    for ids in sequences {
        for pair in ids.windows(2) {
            let last_end = all
                .iter()
                .filter(|e| e.job_id == pair[0])
                .map(|e| e.end_us)
                .max();
            let first_start = all
                .iter()
                .filter(|e| e.job_id == pair[1])
                .map(|e| e.start_us)
                .min();
            if let (Some(end), Some(start)) = (last_end, first_start) {
                if start < end {
                    bad.push((pair[0], pair[1]));
                }
            }
        }
    }
    bad
}

backend_case! {
    /// Sequences under the same kill soak: several worker processes with mixed leases run many
    /// sequences of short jobs, inserted interleaved, while one of them is SIGKILLed every
    /// couple of seconds (a killed job holds its sequence until it is rescued and run again).
    /// Afterwards every job completed, no two jobs of one sequence overlapped, and each began
    /// only after the one inserted before it had ended.
    async fn sequences_run_in_order_one_at_a_time_under_a_kill_soak(db: TestDb) {
        let size = Size::from_env();
        let per_sequence = knob("PORTER_CHAOS_SEQUENCE_JOBS", 60);
        let sequences = 8u64;
        let kills = size.kills.max(3);
        let dir = scratch();
        let launcher = Launcher::new(&db.url, dir.path()).with_env("RUST_LOG", "info,porter::jobs=debug");
        // Fewer slots than sequences, so every worker always runs some: each kill cuts jobs
        // short.
        let spawn = |i: u64| {
            let args = soak_worker_args(SEQUENCED, 2, size.lease_secs, i);
            launcher.spawn(&format!("s{i}"), &refs(&args))
        };
        let mut workers = start_soak_workers(size.workers, &spawn).await;
        // Interleaved: job n belongs to sequence n % sequences; inserted in batches of 20, so
        // a sequence's next job often lands in the same insert as its previous one.
        let jobs = per_sequence * sequences;
        let mut order: Vec<Vec<i64>> = vec![Vec::new(); sequences as usize];
        for chunk in (0..jobs).collect::<Vec<_>>().chunks(20) {
            let params: Vec<_> = chunk
                .iter()
                .map(|n| {
                    porter::store::JobInsertParams::new(
                        "sleep",
                        json!({ "ms": 60 + (n % 3) * 30 }),
                        porter::InsertOpts {
                            queue: Some(SEQUENCED.into()),
                            sequence_key: Some(format!("account-{}", n % sequences)),
                            ..Default::default()
                        },
                    )
                    .unwrap()
                })
                .collect();
            let rows = db.store.job_insert_many(params).await.unwrap();
            for (n, row) in chunk.iter().zip(rows) {
                order[(n % sequences) as usize].push(row.job.id);
            }
        }
        let ids: BTreeSet<i64> = order.iter().flatten().copied().collect();
        let retired = kill_every_few_seconds(&db, &mut workers, size.workers, kills, &spawn).await;
        wait_totals(&db.store, "every sequenced job finished", Duration::from_secs(300), |t| {
            t[&JobState::Completed] as u64 >= jobs
                && t[&JobState::Available] + t[&JobState::Running] + t[&JobState::Retryable]
                    + t[&JobState::Scheduled] + t[&JobState::Pending] == 0
        })
        .await;
        let ledger = Ledger::read(&db.store, "sleep", &ids).await;
        let mut live = Vec::new();
        for (_, mut w) in workers {
            w.ready().await;
            let status = w.term(Duration::from_secs(30)).await;
            assert!(status.success(), "{} exits 0 after SIGTERM: {status:?}\n{}", w.name, w.output());
            live.push(w);
        }
        let mut all: Vec<Execution> = Vec::new();
        for (p, killed_at) in &retired {
            p.assert_clean_log();
            all.extend(executions_of(SEQUENCED, &p.output(), Some(*killed_at)));
        }
        for p in &live {
            p.assert_clean_log();
            all.extend(executions_of(SEQUENCED, &p.output(), None));
        }
        assert!(
            ids.iter().all(|id| all.iter().any(|e| e.job_id == *id)),
            "every job has a recorded execution"
        );
        let running = max_overlap(all.iter());
        let per_sequence_max = order
            .iter()
            .map(|seq| max_overlap(all.iter().filter(|e| seq.contains(&e.job_id))))
            .max()
            .unwrap_or(0);
        let bad = out_of_order(&order, &all);
        let cut = all.iter().filter(|e| e.cut_short).count();
        let backend = db.store.backend().to_string();
        println!(
            "SEQUENCES backend={backend} jobs={jobs} sequences={sequences} kills={kills} executions={} \
             cut_short={cut} max_running={running} max_per_sequence={per_sequence_max}/1 out_of_order={} \
             duplicates={}",
            all.len(),
            bad.len(),
            ledger.duplicates
        );
        report("sequences_soak", &backend, jobs, kills, ledger.lost, ledger.stuck, ledger.duplicates);
        assert!(bad.is_empty(), "jobs that began before the previous of their sequence ended: {bad:?}");
        assert!(per_sequence_max <= 1, "{per_sequence_max} jobs of one sequence ran at once");
        assert!(running >= 2, "sequences ran side by side (else it proves nothing): {running}");
        assert!(cut >= 1, "a kill cut a running job short (else the soak proves nothing)");
        // Each kill costs at most what the victim held: HOLD_FACTOR x its 2 slots (issue 14).
        ledger.assert_all_completed("sequences_soak", kills * 2 * porter::runtime::HOLD_FACTOR as u64);
    }
}

#[test]
fn the_soak_checks_count_overlaps_and_windows() {
    let e = |start_us, end_us| Execution {
        job_id: 0,
        attempt: 0,
        key: String::new(),
        claimed_us: 0,
        start_us,
        end_us,
        cut_short: false,
    };
    assert_eq!(max_overlap([e(0, 10), e(10, 20), e(5, 15)].iter()), 2);
    assert_eq!(max_overlap([e(0, 10), e(1, 9), e(2, 8)].iter()), 3);
    assert_eq!(max_in_window(vec![0, 999, 1000, 1999], 1000), 2);
    assert_eq!(max_in_window(vec![0, 1, 2, 1001], 1000), 3);
    let job = |job_id, start_us, end_us| Execution {
        job_id,
        ..e(start_us, end_us)
    };
    let runs = [
        job(1, 0, 10),
        job(1, 20, 30),
        job(2, 30, 40),
        job(3, 35, 50),
    ];
    assert_eq!(out_of_order(&[vec![1, 2, 3]], &runs), vec![(2, 3)]);
    assert!(out_of_order(&[vec![1, 2], vec![3]], &runs).is_empty());
}
