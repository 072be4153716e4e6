//! Flow control (issue 15): global and per-key concurrency, rate and per-key rate limits of a
//! queue, held by the claim on both backends; their bad input refused with nothing written.

use std::time::Duration;

use porter::job::{InsertOpts, JobState};
use porter::store::*;
use porter::Error;

use crate::{backend_case, claim, clocked, insert, job_with, raw_exec, W};

fn keyed(queue: &str, key: Option<&str>) -> JobInsertParams {
    job_with(
        "noop",
        InsertOpts {
            queue: Some(queue.into()),
            concurrency_key: key.map(str::to_string),
            ..Default::default()
        },
    )
}

async fn insert_n(s: &Store, queue: &str, key: Option<&str>, n: usize) {
    s.job_insert_many((0..n).map(|_| keyed(queue, key)).collect())
        .await
        .unwrap();
}

fn limit(queue: &str, set: QueueLimits) -> QueueLimitParams {
    QueueLimitParams {
        queue: queue.into(),
        clear: false,
        set,
    }
}

fn rate(limit: u32, period: Duration) -> Rate {
    Rate {
        limit,
        period_ms: period.as_millis() as u64,
    }
}

async fn running(s: &Store, queue: &str) -> i64 {
    s.job_counts().await.unwrap().queues[queue][&JobState::Running]
}

backend_case! {
    /// `queues limit --concurrency` is persisted and listed; `--clear` removes every limit;
    /// limits given later replace only their own.
    async fn queue_limits_are_persisted_listed_and_cleared(db: TestDb) {
        let s = &*db.store;
        let row = s
            .queue_limit_set(limit("mail", QueueLimits { concurrency: Some(3), ..Default::default() }))
            .await
            .unwrap();
        assert_eq!(row.limits.concurrency, Some(3));
        let row = s
            .queue_limit_set(limit(
                "mail",
                QueueLimits {
                    per_key: Some(1),
                    rate: Some(rate(20, Duration::from_secs(1))),
                    rate_per_key: Some(rate(5, Duration::from_secs(3600))),
                    ..Default::default()
                },
            ))
            .await
            .unwrap();
        let want = QueueLimits {
            concurrency: Some(3),
            per_key: Some(1),
            rate: Some(rate(20, Duration::from_secs(1))),
            rate_per_key: Some(rate(5, Duration::from_secs(3600))),
        };
        assert_eq!(row.limits, want);
        assert_eq!(want.to_string(), "concurrency=3 per_key=1 rate=20/1s rate_per_key=5/1h");
        let listed = s.queue_list().await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!((listed[0].name.as_str(), listed[0].limits), ("mail", want));
        // Pausing keeps the limits.
        s.queue_pause("mail").await.unwrap();
        assert_eq!(s.queue_list().await.unwrap()[0].limits, want);
        let row = s
            .queue_limit_set(QueueLimitParams { queue: "mail".into(), clear: true, set: QueueLimits::default() })
            .await
            .unwrap();
        assert_eq!(row.limits, QueueLimits::default());
        assert!(row.paused_at.is_some(), "clearing limits does not resume");
        // A fresh reader sees the same.
        let other = db.reopen().await;
        assert_eq!(other.queue_list().await.unwrap()[0].limits, QueueLimits::default());
    }
}

backend_case! {
    /// A limit of 0 or less, a rate without a period or under 1 ms, a bad queue name, a
    /// concurrency key too long or with NUL: a clear error, and nothing written.
    async fn bad_limits_and_keys_are_refused_and_write_nothing(db: TestDb) {
        let s = &*db.store;
        let bad = [
            limit("q", QueueLimits { concurrency: Some(0), ..Default::default() }),
            limit("q", QueueLimits { per_key: Some(0), ..Default::default() }),
            limit("q", QueueLimits { rate: Some(rate(0, Duration::from_secs(1))), ..Default::default() }),
            limit("q", QueueLimits { rate: Some(Rate { limit: 5, period_ms: 0 }), ..Default::default() }),
            limit("q", QueueLimits { rate_per_key: Some(Rate { limit: 5, period_ms: 0 }), ..Default::default() }),
            limit("q", QueueLimits { concurrency: Some(porter::store::limits::MAX_LIMIT + 1), ..Default::default() }),
            limit("q';DROP TABLE porter_jobs;--", QueueLimits { concurrency: Some(1), ..Default::default() }),
            limit("q\u{7}", QueueLimits { concurrency: Some(1), ..Default::default() }),
            limit("q", QueueLimits::default()),
        ];
        for p in bad {
            let e = s.queue_limit_set(p.clone()).await.unwrap_err();
            assert!(matches!(e, Error::Invalid { .. }), "{p:?}: {e:?}");
        }
        for text in ["20", "20/", "0/1s", "-3/1s", "5/0ms", "5/0s", "5/1x", "five/1s"] {
            assert!(Rate::parse("rate", text).is_err(), "{text:?}");
        }
        assert!(s.queue_list().await.unwrap().is_empty(), "nothing written");
        for key in ["".to_string(), "k".repeat(256), "a\0b".to_string()] {
            let e = JobInsertParams::new(
                "noop",
                serde_json::json!({}),
                InsertOpts { concurrency_key: Some(key.clone()), ..Default::default() },
            )
            .unwrap_err();
            assert!(matches!(e, Error::Invalid { .. }), "{key:?}: {e:?}");
        }
        // 255 bytes and hostile text are fine, stored verbatim.
        for key in ["k".repeat(255), "x';DROP TABLE porter_jobs;--".to_string(), "é\u{1b}[31m".to_string()] {
            let j = insert(s, keyed("q", Some(&key))).await;
            assert_eq!(j.concurrency_key.as_deref(), Some(key.as_str()));
            assert_eq!(s.job_get(j.id).await.unwrap().unwrap().concurrency_key, Some(key));
        }
    }
}

backend_case! {
    /// At no moment more than N running jobs of a queue with a global limit, over any number of
    /// claims and workers; a finished job frees its slot; other queues are not held.
    async fn global_concurrency_holds_across_claims_and_workers(db: TestDb) {
        let s = &*db.store;
        insert_n(s, "limited", None, 10).await;
        insert_n(s, "free", None, 10).await;
        s.queue_limit_set(limit("limited", QueueLimits { concurrency: Some(3), ..Default::default() }))
            .await
            .unwrap();
        let other = db.reopen().await;
        let a = s.job_claim_limited(claim("limited", &["noop"], 2, "wa")).await.unwrap();
        assert_eq!((a.jobs.len(), a.held_back), (2, false));
        let b = other.job_claim_limited(claim("limited", &["noop"], 10, "wb")).await.unwrap();
        assert_eq!((b.jobs.len(), b.held_back), (1, true), "one slot left of 3");
        let c = other.job_claim_limited(claim("limited", &["noop"], 10, "wb")).await.unwrap();
        assert_eq!((c.jobs.len(), c.held_back), (0, true));
        assert_eq!(running(s, "limited").await, 3);
        assert_eq!(s.job_claim(claim("free", &["noop"], 10, W)).await.unwrap().len(), 10);
        // A completion frees one slot.
        assert_eq!(s.job_complete_many(vec![a.jobs[0].fence()]).await.unwrap(), vec![true]);
        assert_eq!(s.job_claim(claim("limited", &["noop"], 10, W)).await.unwrap().len(), 1);
        assert_eq!(running(s, "limited").await, 3);
        // Raising the limit lets more start; clearing lets the rest.
        s.queue_limit_set(limit("limited", QueueLimits { concurrency: Some(5), ..Default::default() }))
            .await
            .unwrap();
        assert_eq!(s.job_claim(claim("limited", &["noop"], 10, W)).await.unwrap().len(), 2);
        s.queue_limit_set(QueueLimitParams { queue: "limited".into(), clear: true, set: QueueLimits::default() })
            .await
            .unwrap();
        assert_eq!(s.job_claim(claim("limited", &["noop"], 10, W)).await.unwrap().len(), 4);
        assert_eq!(running(s, "limited").await, 9);
    }
}

/// A hint with none of the producer's jobs in a slot.
fn ahead(ahead: u32, waiting: u32, limited: bool) -> ClaimAhead {
    ClaimAhead {
        ahead,
        waiting,
        in_slots: 0,
        limited,
    }
}

/// A hint with `in_slots` of the producer's jobs in a slot.
fn ahead_busy(ahead: u32, waiting: u32, in_slots: u32) -> ClaimAhead {
    ClaimAhead {
        in_slots,
        ..self::ahead(ahead, waiting, true)
    }
}

backend_case! {
    /// A claim ahead of free slots (a producer's local queue) takes jobs for its free slots up
    /// to the limit, and beyond them only while the producer's waiting jobs stay within half of
    /// the room the limit leaves it; never past the limit itself.
    async fn claims_ahead_take_at_most_half_the_room_a_limit_leaves(db: TestDb) {
        let s = &*db.store;
        insert_n(s, "q", None, 40).await;
        s.queue_limit_set(limit("q", QueueLimits { concurrency: Some(10), ..Default::default() }))
            .await
            .unwrap();
        // Another worker runs 2.
        assert_eq!(s.job_claim(claim("q", &["noop"], 2, "other")).await.unwrap().len(), 2);
        // 2 for free slots and 6 ahead: room 10 - 2 - 2 = 6, so 3 ahead.
        let a = s.job_claim_ahead(claim("q", &["noop"], 8, W), ahead(6, 0, true)).await.unwrap();
        assert_eq!((a.jobs.len(), a.limited, a.rate_limited), (5, true, false));
        assert!(a.held_back, "jobs were left because of the limit");
        // Now holding 3 waiting and 2 in slots: room 10 - (7 - 3) = 6, half is 3, all held
        // already.
        let b = s.job_claim_ahead(claim("q", &["noop"], 4, W), ahead_busy(4, 3, 2)).await.unwrap();
        assert_eq!(b.jobs.len(), 0);
        // Free slots are filled up to the limit whatever is held ahead: 3 left of 10.
        let c = s.job_claim_ahead(claim("q", &["noop"], 5, W), ahead_busy(0, 3, 2)).await.unwrap();
        assert_eq!(c.jobs.len(), 3);
        assert_eq!(running(s, "q").await, 10);
        let d = s.job_claim_ahead(claim("q", &["noop"], 5, W), ahead(0, 0, true)).await.unwrap();
        assert_eq!((d.jobs.len(), d.held_back), (0, true));
    }
}

backend_case! {
    /// A worker's own running jobs that are neither waiting nor in a slot have finished, their
    /// completion still being written: the claim counts them from the worker's own rows, at
    /// the claim, and leaves them out of the room the worker may claim ahead in (not out of
    /// the limit). A completion already written is not counted, whatever the producer thinks
    /// (a count kept by the producer went stale there and claimed a tight limit ahead), and
    /// other workers' running jobs are never counted as this worker's finished ones.
    async fn a_workers_jobs_finished_and_being_recorded_leave_it_room_to_claim_ahead(db: TestDb) {
        let s = &*db.store;
        insert_n(s, "q", None, 40).await;
        s.queue_limit_set(limit("q", QueueLimits { concurrency: Some(10), ..Default::default() }))
            .await
            .unwrap();
        assert_eq!(s.job_claim(claim("q", &["noop"], 2, "other")).await.unwrap().len(), 2);
        // 2 for free slots and 3 ahead: room 10 - 2 - 2 = 6, half is 3.
        let a = s.job_claim_ahead(claim("q", &["noop"], 5, W), ahead(3, 0, true)).await.unwrap();
        assert_eq!(a.jobs.len(), 5);
        // 3 waiting and 2 in slots: room 10 - (7 - 3) = 6, half is 3, all held already.
        let b = s.job_claim_ahead(claim("q", &["noop"], 4, W), ahead_busy(4, 3, 2)).await.unwrap();
        assert_eq!(b.jobs.len(), 0);
        // The 2 in slots finished, their completions not written yet: room 10 - (7 - 3 - 2) = 8,
        // half is 4, 1 more ahead.
        let c = s.job_claim_ahead(claim("q", &["noop"], 4, W), ahead_busy(4, 3, 0)).await.unwrap();
        assert_eq!(c.jobs.len(), 1);
        assert_eq!(running(s, "q").await, 8);
        // Their completions are written: 4 waiting, none finished: room 10 - (6 - 4) = 8, half
        // is 4, all held already (counting the 2 as still finishing would take 1 more).
        let done: Vec<_> = a.jobs[..2].iter().map(|j| j.fence()).collect();
        assert_eq!(s.job_complete_many(done).await.unwrap(), vec![true, true]);
        let d = s.job_claim_ahead(claim("q", &["noop"], 4, W), ahead_busy(4, 4, 0)).await.unwrap();
        assert_eq!(d.jobs.len(), 0);
        // A third worker has none of its own: room 10 - 6 = 4, half is 2 (counting the others'
        // 6 running jobs as its finished ones would take 4).
        let e = s.job_claim_ahead(claim("q", &["noop"], 4, "third"), ahead(4, 0, true)).await.unwrap();
        assert_eq!(e.jobs.len(), 2);
        assert_eq!(running(s, "q").await, 8);
    }
}

backend_case! {
    /// A rate-limited queue is claimed for free slots only; a per-key limit alone lets claims
    /// ahead take what each key has left.
    async fn claims_ahead_of_a_rate_limited_queue_take_only_the_free_slots(db: TestDb) {
        let s = &*db.store;
        insert_n(s, "r", None, 20).await;
        s.queue_limit_set(limit("r", QueueLimits { rate: Some(rate(100, Duration::from_secs(60))), ..Default::default() }))
            .await
            .unwrap();
        let a = s.job_claim_ahead(claim("r", &["noop"], 8, W), ahead(6, 0, false)).await.unwrap();
        assert_eq!((a.jobs.len(), a.limited, a.rate_limited), (2, true, true));
        let b = s.job_claim_ahead(claim("r", &["noop"], 4, W), ahead(4, 0, true)).await.unwrap();
        assert_eq!(b.jobs.len(), 0);
        for k in ["a", "b", "c"] {
            insert_n(s, "k", Some(k), 3).await;
        }
        s.queue_limit_set(limit("k", QueueLimits { per_key: Some(2), ..Default::default() }))
            .await
            .unwrap();
        let k = s.job_claim_ahead(claim("k", &["noop"], 9, W), ahead(8, 0, false)).await.unwrap();
        assert_eq!((k.jobs.len(), k.rate_limited), (6, false), "2 of each key");
    }
}

backend_case! {
    /// A producer that saw limits goes straight to the limited claim; when the limits were
    /// cleared meanwhile, or the queue paused, that claim still does what the plain one would.
    async fn a_claim_told_of_limits_that_are_gone_claims_plainly(db: TestDb) {
        let s = &*db.store;
        insert_n(s, "q", None, 10).await;
        s.queue_limit_set(limit("q", QueueLimits { concurrency: Some(2), ..Default::default() }))
            .await
            .unwrap();
        let a = s.job_claim_ahead(claim("q", &["noop"], 5, W), ahead(0, 0, true)).await.unwrap();
        assert_eq!((a.jobs.len(), a.limited), (2, true));
        s.queue_limit_set(QueueLimitParams { queue: "q".into(), clear: true, set: QueueLimits::default() })
            .await
            .unwrap();
        let b = s.job_claim_ahead(claim("q", &["noop"], 5, W), ahead(0, 0, true)).await.unwrap();
        assert_eq!((b.jobs.len(), b.limited), (5, false));
        s.queue_pause("q").await.unwrap();
        let c = s.job_claim_ahead(claim("q", &["noop"], 5, W), ahead(0, 0, true)).await.unwrap();
        assert_eq!(c.jobs.len(), 0, "a paused queue gives nothing");
        s.queue_resume("q").await.unwrap();
        let d = s.job_claim_ahead(claim("q", &["noop"], 5, W), ahead(0, 0, true)).await.unwrap();
        assert_eq!(d.jobs.len(), 3);
    }
}

backend_case! {
    /// Claims racing from several stores (separate connection sets, as separate processes)
    /// never take more than the global limit together.
    async fn concurrent_claims_from_several_stores_never_pass_the_limit(db: TestDb) {
        let s = &*db.store;
        insert_n(s, "q", None, 200).await;
        s.queue_limit_set(limit("q", QueueLimits { concurrency: Some(7), ..Default::default() }))
            .await
            .unwrap();
        let mut stores = Vec::new();
        for _ in 0..4 {
            stores.push(db.reopen().await);
        }
        let claims = stores.iter().enumerate().flat_map(|(i, st)| {
            (0..5).map(move |n| {
                let st = st.clone();
                async move {
                    st.job_claim(claim("q", &["noop"], 3, &format!("w{i}-{n}"))).await.unwrap().len()
                }
            })
        });
        let taken: usize = futures::future::join_all(claims).await.into_iter().sum();
        assert_eq!(taken, 7);
        assert_eq!(running(s, "q").await, 7);
    }
}

backend_case! {
    /// Jobs of a SIGKILLed worker keep their slots while they wait for rescue (they are still
    /// `running`), and after rescue the limit still holds.
    async fn a_lost_workers_jobs_hold_their_slots_until_rescued(db: TestDb) {
        let s = &*db.store;
        insert_n(s, "q", None, 6).await;
        s.queue_limit_set(limit("q", QueueLimits { concurrency: Some(2), ..Default::default() }))
            .await
            .unwrap();
        // Claims while its heartbeat is fresh, then registers a lease short enough to run out
        // (a worker claims nothing once its heartbeat is older than half its lease).
        s.worker_register(crate::register("lost", Duration::from_secs(60), &[])).await.unwrap();
        assert_eq!(s.job_claim(claim("q", &["noop"], 5, "lost")).await.unwrap().len(), 2);
        s.worker_register(crate::register("lost", Duration::from_millis(100), &[])).await.unwrap();
        // The worker dies: nobody else may start a job of the queue until the rescue.
        assert!(s.job_claim(claim("q", &["noop"], 5, W)).await.unwrap().is_empty());
        tokio::time::sleep(Duration::from_millis(300)).await;
        let counts = s
            .job_rescue(JobRescueParams { ending: Vec::new(), by: None, lease: Duration::from_secs(60), stuck_after: vec![], limit: 100 })
            .await
            .unwrap();
        assert_eq!(counts.retried, 2);
        assert_eq!(running(s, "q").await, 0);
        let again = s.job_claim(claim("q", &["noop"], 5, W)).await.unwrap();
        assert_eq!(again.len(), 2, "after the rescue, the limit again: 2");
        assert_eq!(running(s, "q").await, 2);
    }
}

backend_case! {
    /// Per-key concurrency: at most N running per key, jobs without a key unheld by it, and a
    /// backlog of one key ahead in the queue never starves the other keys.
    async fn per_key_limits_hold_each_key_without_head_of_line_blocking(db: TestDb) {
        let s = &*db.store;
        // The hot key's backlog is inserted first, so it is ahead of every other job.
        insert_n(s, "q", Some("hot"), 50).await;
        for k in ["a", "b", "c"] {
            insert_n(s, "q", Some(k), 3).await;
        }
        insert_n(s, "q", None, 2).await;
        s.queue_limit_set(limit("q", QueueLimits { per_key: Some(2), ..Default::default() }))
            .await
            .unwrap();
        let first = s.job_claim(claim("q", &["noop"], 4, W)).await.unwrap();
        assert_eq!(
            first.iter().filter(|j| j.concurrency_key.as_deref() == Some("hot")).count(),
            2,
            "the hot key takes its 2, not the whole claim"
        );
        // Claim one at a time, as many small workers would: the hot key never takes a third.
        let mut all = first;
        for _ in 0..20 {
            all.extend(s.job_claim(claim("q", &["noop"], 1, W)).await.unwrap());
        }
        let per = |k: Option<&str>| all.iter().filter(|j| j.concurrency_key.as_deref() == k).count();
        assert_eq!(
            (per(Some("hot")), per(Some("a")), per(Some("b")), per(Some("c")), per(None)),
            (2, 2, 2, 2, 2)
        );
        let held = s.job_claim_limited(claim("q", &["noop"], 10, W)).await.unwrap();
        assert_eq!((held.jobs.len(), held.held_back), (0, true));
        // One hot job done: exactly one more hot job may start.
        let hot = all.iter().find(|j| j.concurrency_key.as_deref() == Some("hot")).unwrap();
        s.job_complete_many(vec![hot.fence()]).await.unwrap();
        let next = s.job_claim(claim("q", &["noop"], 10, W)).await.unwrap();
        assert_eq!(next.len(), 1);
        assert_eq!(next[0].concurrency_key.as_deref(), Some("hot"));
        let waiting = s.queue_limit_waiting().await.unwrap();
        assert_eq!(waiting["q"], 47 + 1 + 1 + 1, "the hot backlog and one of each other key");
    }
}

backend_case! {
    /// Per-key and global limits together: the smaller binds.
    async fn per_key_and_global_limits_combine(db: TestDb) {
        let s = &*db.store;
        for k in ["a", "b", "c", "d"] {
            insert_n(s, "q", Some(k), 5).await;
        }
        s.queue_limit_set(limit("q", QueueLimits { concurrency: Some(5), per_key: Some(2), ..Default::default() }))
            .await
            .unwrap();
        let got = s.job_claim(claim("q", &["noop"], 100, W)).await.unwrap();
        assert_eq!(got.len(), 5);
        for k in ["a", "b", "c", "d"] {
            assert!(got.iter().filter(|j| j.concurrency_key.as_deref() == Some(k)).count() <= 2);
        }
        assert_eq!(s.queue_limit_waiting().await.unwrap()["q"], 15);
    }
}

backend_case! {
    /// A paused queue's jobs wait for its resume, not for its limits: the limits' gauge leaves
    /// it out while it is paused (it said the limit held all but the limit's worth, which a
    /// claim would not have taken either), and counts it again once it is resumed.
    async fn a_paused_queue_is_not_waiting_for_its_limits(db: TestDb) {
        let s = &*db.store;
        insert_n(s, "q", None, 20).await;
        insert_n(s, "other", None, 20).await;
        for q in ["q", "other"] {
            s.queue_limit_set(limit(q, QueueLimits { concurrency: Some(5), ..Default::default() }))
                .await
                .unwrap();
        }
        s.queue_pause("q").await.unwrap();
        assert!(s.job_claim(claim("q", &["noop"], 100, W)).await.unwrap().is_empty());
        let waiting = s.queue_limit_waiting().await.unwrap();
        assert_eq!(waiting.get("q"), None, "paused: {waiting:?}");
        assert_eq!(waiting.get("other"), Some(&15), "{waiting:?}");
        s.queue_resume("q").await.unwrap();
        assert_eq!(s.queue_limit_waiting().await.unwrap().get("q"), Some(&15));
    }
}

backend_case! {
    /// A rate limit: at most N starts in any window of its period, counted on the database
    /// clock; a retried job's earlier start still counts; the window slides.
    async fn rate_limits_count_starts_in_a_sliding_window(db: TestDb) {
        let (s, clock) = clocked(&db).await;
        let s = &*s;
        insert_n(s, "q", None, 20).await;
        s.queue_limit_set(limit("q", QueueLimits { rate: Some(rate(3, Duration::from_secs(10))), ..Default::default() }))
            .await
            .unwrap();
        let a = s.job_claim(claim("q", &["noop"], 2, W)).await.unwrap();
        assert_eq!(a.len(), 2);
        clock.advance(Duration::from_secs(4));
        // A failed attempt retried at once: its first start still counts.
        s.job_fail(JobFailParams {
            fence: a[0].fence(),
            error: "boom".into(),
            trace: None,
            retry_in: Duration::ZERO,
            discard: false,
        })
        .await
        .unwrap();
        let b = s.job_claim_limited(claim("q", &["noop"], 10, W)).await.unwrap();
        assert_eq!((b.jobs.len(), b.held_back), (1, true), "3 starts in 10 s");
        clock.advance(Duration::from_secs(5));
        assert!(s.job_claim(claim("q", &["noop"], 10, W)).await.unwrap().is_empty(), "9 s after the first");
        assert_eq!(s.queue_limit_waiting().await.unwrap()["q"], 18);
        clock.advance(Duration::from_millis(1001));
        // 10.001 s after the first two: those two no longer count; the one at 4 s does.
        let c = s.job_claim(claim("q", &["noop"], 10, W)).await.unwrap();
        assert_eq!(c.len(), 2);
        clock.advance(Duration::from_secs(3));
        assert!(s.job_claim(claim("q", &["noop"], 10, W)).await.unwrap().is_empty());
        clock.advance(Duration::from_secs(1));
        assert_eq!(s.job_claim(claim("q", &["noop"], 10, W)).await.unwrap().len(), 1, "the start at 4 s left the window");
    }
}

backend_case! {
    /// A per-key rate limit holds each key alone; other keys keep starting.
    async fn per_key_rate_limits_hold_each_key_alone(db: TestDb) {
        let (s, clock) = clocked(&db).await;
        let s = &*s;
        insert_n(s, "q", Some("hot"), 10).await;
        insert_n(s, "q", Some("cold"), 2).await;
        s.queue_limit_set(limit(
            "q",
            QueueLimits { rate_per_key: Some(rate(2, Duration::from_secs(60))), ..Default::default() },
        ))
        .await
        .unwrap();
        let got = s.job_claim(claim("q", &["noop"], 100, W)).await.unwrap();
        let per = |k: &str| got.iter().filter(|j| j.concurrency_key.as_deref() == Some(k)).count();
        assert_eq!((per("hot"), per("cold")), (2, 2));
        s.job_complete_many(got.iter().map(|j| j.fence()).collect()).await.unwrap();
        clock.advance(Duration::from_secs(59));
        assert!(s.job_claim(claim("q", &["noop"], 100, W)).await.unwrap().is_empty());
        clock.advance(Duration::from_secs(2));
        assert_eq!(s.job_claim(claim("q", &["noop"], 100, W)).await.unwrap().len(), 2);
    }
}

backend_case! {
    /// Starts recorded under a clock that was then set back lie in the future of every claim
    /// after it: they count as started at the first claim that sees them there, so a clock set
    /// right holds a rate-limited queue for one window at most, not until the clock reaches
    /// them again (review of 7 Dec: a queue limited to 5 a second stood still for the hour its
    /// clock had been fast). Per-key rates alike.
    async fn starts_left_in_the_future_by_a_clock_set_back_hold_a_queue_one_window(db: TestDb) {
        let (s, clock) = clocked(&db).await;
        let s = &*s;
        insert_n(s, "q", None, 2).await;
        insert_n(s, "k", Some("hot"), 2).await;
        s.queue_limit_set(limit("q", QueueLimits { rate: Some(rate(2, Duration::from_secs(10))), ..Default::default() }))
            .await
            .unwrap();
        s.queue_limit_set(limit(
            "k",
            QueueLimits { rate_per_key: Some(rate(2, Duration::from_secs(10))), ..Default::default() },
        ))
        .await
        .unwrap();
        let fast = clock.now();
        assert_eq!(s.job_claim(claim("q", &["noop"], 10, W)).await.unwrap().len(), 2);
        assert_eq!(s.job_claim(claim("k", &["noop"], 10, W)).await.unwrap().len(), 2);
        // The clock was an hour fast: set right, the four starts are an hour ahead, and count
        // as started now. (Jobs inserted now, due now.)
        clock.set(fast - chrono::Duration::hours(1));
        insert_n(s, "q", None, 5).await;
        insert_n(s, "k", Some("hot"), 5).await;
        assert!(s.job_claim(claim("q", &["noop"], 10, W)).await.unwrap().is_empty());
        assert!(s.job_claim(claim("k", &["noop"], 10, W)).await.unwrap().is_empty());
        clock.advance(Duration::from_millis(10_001));
        assert_eq!(s.job_claim(claim("q", &["noop"], 10, W)).await.unwrap().len(), 2, "the rate, a window on");
        assert_eq!(s.job_claim(claim("k", &["noop"], 10, W)).await.unwrap().len(), 2, "the key's rate, a window on");
    }
}

backend_case! {
    /// A paused queue with limits claims nothing, and a queue without limits is unaffected by
    /// another queue's.
    async fn limits_and_pause_together(db: TestDb) {
        let s = &*db.store;
        insert_n(s, "q", None, 3).await;
        s.queue_limit_set(limit("q", QueueLimits { concurrency: Some(2), ..Default::default() }))
            .await
            .unwrap();
        s.queue_pause("q").await.unwrap();
        let c = s.job_claim_limited(claim("q", &["noop"], 10, W)).await.unwrap();
        assert_eq!((c.jobs.len(), c.held_back), (0, false));
        s.queue_resume("q").await.unwrap();
        assert_eq!(s.job_claim(claim("q", &["noop"], 10, W)).await.unwrap().len(), 2);
    }
}

backend_case! {
    /// A job another program inserted with an attempt count porter cannot count on (on
    /// SQLite not a whole number, a billion or more, or below 32 bits' range; on PostgreSQL a
    /// billion or more) is
    /// passed over by the plain and the limited claims alike, and does not count as left for
    /// a limited claim to come back for: the jobs beside it are claimed, and it waits. On
    /// SQLite, until 2 Dec, such a row failed every claim of its queue.
    async fn a_job_whose_attempts_porter_cannot_count_is_passed_over(db: TestDb) {
        let s = &*db.store;
        let bad = match s.backend() {
            Backend::Sqlite => vec!["1.5", "1099511627776", "'three'", "1000000000", "-3000000000"],
            Backend::Postgres => vec!["1000000000", "2147483647"],
        };
        for queue in ["plain", "limited"] {
            let rows: Vec<String> = bad
                .iter()
                .map(|a| format!("INSERT INTO porter_jobs (kind, queue, args, attempt) VALUES ('noop', '{queue}', '{{}}', {a});"))
                .collect();
            raw_exec(&db, &rows.join("\n")).await;
            insert_n(s, queue, None, 2).await;
        }
        s.queue_limit_set(limit("limited", QueueLimits { concurrency: Some(10), ..Default::default() }))
            .await
            .unwrap();
        let plain = s.job_claim(claim("plain", &["noop"], 10, W)).await.unwrap();
        assert_eq!(plain.len(), 2, "{plain:?}");
        assert!(plain.iter().all(|j| j.attempt == 1 && j.unreadable.is_none()), "{plain:?}");
        let limited = s.job_claim_limited(claim("limited", &["noop"], 10, W)).await.unwrap();
        assert_eq!((limited.jobs.len(), limited.held_back), (2, false), "{limited:?}");
        for queue in ["plain", "limited"] {
            let left = s.job_claim(claim(queue, &["noop"], 10, W)).await.unwrap();
            assert!(left.is_empty(), "{queue}: {left:?}");
            let listed = s
                .job_list(JobListParams { queue: Some(queue.into()), ..Default::default() })
                .await
                .unwrap();
            let waiting = listed.iter().filter(|j| j.state == JobState::Available).count();
            assert_eq!(waiting, bad.len(), "{queue}: {listed:?}");
        }
    }
}

backend_case! {
    /// Another process's claim that commits while this one waits for the queue's lock is
    /// counted, whatever isolation the server gives transactions by default. On PostgreSQL
    /// (review of 6 Dec) porter's transactions took the server's default: under REPEATABLE
    /// READ a limited claim's snapshot was taken by its first statement, while it waited for
    /// the queue row's lock, so once the other claim committed it counted the running jobs as
    /// they were before that claim and passed the limit (two running under a limit of one).
    /// Porter's connections ask for READ COMMITTED now; here the URL asks for REPEATABLE READ
    /// as a server's or a role's default would. SQLite's one writer takes the claims in turn.
    async fn a_claim_counts_the_claim_it_waited_for_whatever_the_default_isolation(db: TestDb) {
        db.store
            .queue_limit_set(limit("q", QueueLimits { concurrency: Some(1), ..Default::default() }))
            .await
            .unwrap();
        for kind in ["a", "b"] {
            insert(&db.store, job_with(kind, InsertOpts { queue: Some("q".into()), ..Default::default() })).await;
        }
        let other = "UPDATE porter_jobs SET state = 'running', attempt = attempt + 1, \
                     attempted_by = 'other', attempted_at = finalized_at WHERE kind = 'a'";
        let taken = if db.sqlite_path().is_some() {
            // Another process's claim, first.
            let first = db.reopen().await.job_claim(claim("q", &["a"], 1, "other")).await.unwrap();
            assert_eq!(first.len(), 1);
            db.store.job_claim_ahead(claim("q", &["b"], 1, W), ahead(0, 0, true)).await.unwrap().jobs
        } else {
            use sqlx::Connection;
            let url = format!("{}&options[default_transaction_isolation]=repeatable%5C%20read", db.url);
            let store = porter::store::open(&url).await.unwrap();
            // Another process's claim, holding the queue's row as a limited claim does.
            let mut holder = sqlx::PgConnection::connect(&db.url).await.unwrap();
            let pid = crate::common::pg_pid(&mut holder).await;
            sqlx::raw_sql("BEGIN; SELECT 1 FROM porter_queues WHERE name = 'q' FOR UPDATE")
                .execute(&mut holder)
                .await
                .unwrap();
            sqlx::raw_sql(&other.replace("finalized_at", "clock_timestamp()")).execute(&mut holder).await.unwrap();
            let claiming = tokio::spawn(async move { store.job_claim_ahead(claim("q", &["b"], 1, W), ahead(0, 0, true)).await });
            crate::common::pg_blocked_by(&db.url, pid, 1, None).await;
            sqlx::raw_sql("COMMIT").execute(&mut holder).await.unwrap();
            claiming.await.unwrap().unwrap().jobs
        };
        assert!(taken.is_empty(), "the limit's one slot is taken: {taken:?}");
        assert_eq!(running(&db.store, "q").await, 1);
    }
}

backend_case! {
    /// Clearing the limits of a queue that has no record writes none: the answer is the queue
    /// without limits, and it is not listed (nor taken as known by `queues resume`). Review of 6
    /// Dec: `porter queues limit tyypo --clear` inserted a record, and the typo was listed for
    /// good (what resume stopped doing on 4 Dec). Setting a limit on a queue before its first
    /// job still records it.
    async fn clearing_the_limits_of_a_queue_without_a_record_writes_none(db: TestDb) {
        let s = &*db.store;
        let row = s
            .queue_limit_set(QueueLimitParams { queue: "tyypo".into(), clear: true, set: QueueLimits::default() })
            .await
            .unwrap();
        assert_eq!((row.name.as_str(), row.paused_at, row.limits), ("tyypo", None, QueueLimits::default()));
        assert!(s.queue_list().await.unwrap().iter().all(|q| q.name != "tyypo"));
        let row = s
            .queue_limit_set(limit("early", QueueLimits { concurrency: Some(2), ..Default::default() }))
            .await
            .unwrap();
        assert_eq!(row.limits.concurrency, Some(2));
        let row = s
            .queue_limit_set(QueueLimitParams { queue: "early".into(), clear: true, set: QueueLimits::default() })
            .await
            .unwrap();
        assert_eq!(row.limits, QueueLimits::default());
        assert!(s.queue_list().await.unwrap().iter().any(|q| q.name == "early"), "a record kept");
    }
}
