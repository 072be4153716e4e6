//! A claimed job's outcomes: completion, failure and backoff, discard, snooze, release, all
//! fenced; and a user's retry.

use std::time::Duration;

use porter::job::{InsertOpts, JobState};
use porter::store::*;
use porter::Error;

use crate::{backend_case, claim, claim_one, fail, insert, job, job_with, W};

backend_case! {
    async fn complete_is_fenced(db: TestDb) {
        let s = &*db.store;
        insert(s, job("noop")).await;
        let r = claim_one(s, "noop").await;
        let wrong_attempt = JobFence {
            attempt: r.attempt + 1,
            ..r.fence()
        };
        let wrong_worker = JobFence {
            worker_id: "someone-else".into(),
            ..r.fence()
        };
        assert_eq!(
            s.job_complete_many(vec![wrong_attempt, wrong_worker])
                .await
                .unwrap(),
            vec![false, false]
        );
        assert_eq!(
            s.job_get(r.id).await.unwrap().unwrap().state,
            JobState::Running
        );
        assert_eq!(
            s.job_complete_many(vec![r.fence()]).await.unwrap(),
            vec![true]
        );
        let done = s.job_get(r.id).await.unwrap().unwrap();
        assert_eq!(done.state, JobState::Completed);
        assert!(done.finalized_at.is_some());
        assert_eq!(
            s.job_complete_many(vec![r.fence()]).await.unwrap(),
            vec![false],
            "twice changes nothing"
        );
    }
}

backend_case! {
    async fn fail_makes_retryable_with_backoff_and_history(db: TestDb) {
        let s = &*db.store;
        insert(s, job("noop")).await;
        let r = claim_one(s, "noop").await;
        let now = s.now().await.unwrap();
        let mut p = fail(&r, "smtp timeout", Duration::from_secs(16));
        p.trace = Some("at mail.rs:10".into());
        let f = s.job_fail(p).await.unwrap();
        assert_eq!(f.state, JobState::Retryable);
        let delay = (f.scheduled_at - now).num_milliseconds();
        assert!(
            (15_000..=17_000).contains(&delay),
            "due in ~16 s, got {delay} ms"
        );
        assert!(f.finalized_at.is_none());
        assert_eq!(f.errors.len(), 1);
        assert_eq!(
            (f.errors[0].attempt, f.errors[0].error.as_str()),
            (1, "smtp timeout")
        );
        assert_eq!(f.errors[0].trace.as_deref(), Some("at mail.rs:10"));
        assert!(
            s.job_claim(claim("default", &["noop"], 10, W))
                .await
                .unwrap()
                .is_empty(),
            "not before its backoff"
        );
        // The default backoff: attempt^4 s, within ±10 %.
        for attempt in 1..=5 {
            let d = porter::job::default_backoff(attempt).as_secs_f64();
            let base = (attempt as f64).powi(4);
            assert!(d >= base * 0.9 - 1e-9 && d <= base * 1.1 + 1e-9);
        }
    }
}

backend_case! {
    /// One completion write of many fences (the completer's batch) answers each fence in the
    /// order given: a fence given twice completes its job once and reports once (the second
    /// is false), a stale fence (another worker's) changes nothing beside the others, and the
    /// job it named is still its worker's to complete. (Review of 6 Dec: documented on
    /// `Store`, tested nowhere.)
    async fn a_batch_of_completions_answers_each_fence_once_in_order(db: TestDb) {
        let s = &*db.store;
        for _ in 0..3 {
            insert(s, job("noop")).await;
        }
        let rows = s.job_claim(claim("default", &["noop"], 3, W)).await.unwrap();
        assert_eq!(rows.len(), 3);
        let (a, b, c) = (rows[0].fence(), rows[1].fence(), rows[2].fence());
        let stale_b = JobFence {
            worker_id: "someone-else".into(),
            ..b.clone()
        };
        assert_eq!(
            s.job_complete_many(vec![a.clone(), a.clone(), stale_b, c.clone()])
                .await
                .unwrap(),
            vec![true, false, false, true]
        );
        let state = |id| async move { s.job_get(id).await.unwrap().unwrap().state };
        assert_eq!(
            (state(a.id).await, state(b.id).await, state(c.id).await),
            (JobState::Completed, JobState::Running, JobState::Completed)
        );
        assert_eq!(s.job_complete_many(vec![b.clone()]).await.unwrap(), vec![true]);
        assert_eq!(state(b.id).await, JobState::Completed);
    }
}

backend_case! {
    /// Which completions an earlier write committed, asked by a completer whose write failed
    /// after part of it may have committed: only a job `completed` by that very attempt of
    /// that worker. One still running, one completed by an earlier attempt and run again, one
    /// failed, another worker's, and an id with no job all say no.
    async fn a_worker_finds_which_of_its_completions_were_written(db: TestDb) {
        let s = &*db.store;
        for _ in 0..5 {
            insert(s, job("noop")).await;
        }
        let rows = s.job_claim(claim("default", &["noop"], 5, W)).await.unwrap();
        let fences: Vec<JobFence> = rows.iter().map(|r| r.fence()).collect();
        let (done, running, failed, again) = (&fences[0], &fences[1], &fences[2], &fences[3]);
        let theirs = JobFence {
            worker_id: "worker-b".into(),
            ..fences[4].clone()
        };
        assert_eq!(
            s.job_complete_many(vec![done.clone(), again.clone()]).await.unwrap(),
            vec![true, true]
        );
        s.job_fail(fail(&rows[2], "boom", Duration::ZERO)).await.unwrap();
        // Completed, retried by a user and claimed again: attempt 2 runs; attempt 1's
        // completion is no longer what the row says.
        s.job_retry(again.id).await.unwrap();
        let rerun = s.job_claim(claim("default", &["noop"], 5, W)).await.unwrap();
        assert!(rerun.iter().any(|r| r.id == again.id && r.attempt == 2), "{rerun:?}");
        let missing = JobFence {
            id: i64::MAX,
            ..done.clone()
        };
        let asked = vec![
            done.clone(),
            running.clone(),
            failed.clone(),
            again.clone(),
            missing,
        ];
        assert_eq!(
            s.job_completed_already(&asked).await.unwrap(),
            vec![true, false, false, false, false]
        );
        assert_eq!(s.job_completed_already(&[theirs]).await.unwrap(), vec![false]);
        s.job_complete_many(vec![fences[4].clone()]).await.unwrap();
        let theirs = JobFence {
            worker_id: "worker-b".into(),
            ..fences[4].clone()
        };
        assert_eq!(s.job_completed_already(&[theirs]).await.unwrap(), vec![false]);
        assert_eq!(
            s.job_completed_already(&[fences[4].clone()]).await.unwrap(),
            vec![true]
        );
        assert_eq!(s.job_completed_already(&[]).await.unwrap(), Vec::<bool>::new());
    }
}

backend_case! {
    async fn fail_discards_when_attempts_used_up(db: TestDb) {
        let s = &*db.store;
        insert(
            s,
            job_with(
                "noop",
                InsertOpts {
                    max_attempts: Some(2),
                    ..Default::default()
                },
            ),
        )
        .await;
        let first = claim_one(s, "noop").await;
        s.job_fail(fail(&first, "one", Duration::ZERO))
            .await
            .unwrap();
        let second = claim_one(s, "noop").await;
        let d = s
            .job_fail(fail(&second, "two", Duration::ZERO))
            .await
            .unwrap();
        assert_eq!(d.state, JobState::Discarded);
        assert!(d.finalized_at.is_some());
        let errs: Vec<_> = d
            .errors
            .iter()
            .map(|e| (e.attempt, e.error.as_str()))
            .collect();
        assert_eq!(errs, vec![(1, "one"), (2, "two")]);
        assert!(s
            .job_claim(claim("default", &["noop"], 10, W))
            .await
            .unwrap()
            .is_empty());
    }
}

backend_case! {
    async fn fail_with_discard_flag(db: TestDb) {
        let s = &*db.store;
        insert(s, job("noop")).await;
        let r = claim_one(s, "noop").await;
        let mut p = fail(&r, "args cannot be decoded", Duration::from_secs(1));
        p.discard = true;
        let d = s.job_fail(p).await.unwrap();
        assert_eq!((d.state, d.attempt), (JobState::Discarded, 1));
    }
}

backend_case! {
    async fn stale_fail_is_fenced(db: TestDb) {
        let s = &*db.store;
        insert(s, job("noop")).await;
        let r = claim_one(s, "noop").await;
        let mut stale = fail(&r, "late", Duration::ZERO);
        stale.fence.attempt += 1;
        assert!(matches!(s.job_fail(stale).await, Err(Error::Fenced { .. })));
        assert!(matches!(
            s.job_snooze(JobSnoozeParams { fence: JobFence {
                    worker_id: "x".into(),
                    ..r.fence()
                }, delay: Duration::ZERO })
            .await,
            Err(Error::Fenced { .. })
        ));
        assert!(matches!(
            s.job_cancel_running(JobCancelRunningParams { started: true, fence: JobFence {
                    worker_id: "x".into(),
                    ..r.fence()
                }, reason: "no".into() })
            .await,
            Err(Error::Fenced { .. })
        ));
        let row = s.job_get(r.id).await.unwrap().unwrap();
        assert_eq!(
            (row.state, row.errors.len()),
            (JobState::Running, 0),
            "nothing changed"
        );
    }
}

backend_case! {
    /// A job its worker gives back (stopped by a shutdown, or found by its reconcile) is run
    /// again at once without that attempt counting toward max_attempts (issue 11.1); the
    /// reason joins its history, and the write is fenced.
    async fn release_uses_no_attempt(db: TestDb) {
        let s = &*db.store;
        insert(
            s,
            job_with(
                "noop",
                InsertOpts {
                    max_attempts: Some(1),
                    ..Default::default()
                },
            ),
        )
        .await;
        let r = claim_one(s, "noop").await;
        let back = s
            .job_release(JobReleaseParams { fence: r.fence(), reason: "worker shut down".into(), started: true })
            .await
            .unwrap();
        assert_eq!(
            (back.state, back.attempt, back.max_attempts),
            (JobState::Available, 1, 2)
        );
        assert!(back.finalized_at.is_none());
        assert_eq!(back.errors.len(), 1);
        assert_eq!(
            (back.errors[0].attempt, back.errors[0].error.as_str()),
            (1, "worker shut down")
        );
        // Fenced: a second release of the same attempt, or one by another worker, changes nothing.
        assert!(matches!(
            s.job_release(JobReleaseParams { fence: r.fence(), reason: "again".into(), started: true }).await,
            Err(Error::Fenced { .. })
        ));
        let again = claim_one(s, "noop").await;
        assert_eq!((again.id, again.attempt), (r.id, 2));
        let other = JobFence {
            worker_id: "someone-else".into(),
            ..again.fence()
        };
        assert!(matches!(
            s.job_release(JobReleaseParams { fence: other, reason: "x".into(), started: true }).await,
            Err(Error::Fenced { .. })
        ));
        // The attempt left is a real one: a failure now uses it up.
        let d = s
            .job_fail(fail(&again, "boom", Duration::ZERO))
            .await
            .unwrap();
        assert_eq!((d.state, d.errors.len()), (JobState::Discarded, 2));
    }
}

backend_case! {
    async fn snooze_uses_no_attempt(db: TestDb) {
        let s = &*db.store;
        insert(
            s,
            job_with(
                "noop",
                InsertOpts {
                    max_attempts: Some(1),
                    ..Default::default()
                },
            ),
        )
        .await;
        let r = claim_one(s, "noop").await;
        let z = s
            .job_snooze(JobSnoozeParams { fence: r.fence(), delay: Duration::from_secs(30) })
            .await
            .unwrap();
        assert_eq!(
            (z.state, z.max_attempts, z.errors.len()),
            (JobState::Scheduled, 2, 0)
        );
        assert!(s
            .job_claim(claim("default", &["noop"], 1, W))
            .await
            .unwrap()
            .is_empty());
        insert(s, job("other")).await;
        let r2 = s
            .job_claim(claim("default", &["other"], 1, W))
            .await
            .unwrap()
            .remove(0);
        let z2 = s.job_snooze(JobSnoozeParams { fence: r2.fence(), delay: Duration::ZERO }).await.unwrap();
        assert_eq!(z2.state, JobState::Scheduled);
        let again = s
            .job_claim(claim("default", &["other"], 1, W))
            .await
            .unwrap()
            .remove(0);
        assert_eq!((again.id, again.attempt), (r2.id, 2));
        // Attempts left are what they were: one failure on a 1-attempt job discards it.
        let f = s
            .job_fail(fail(
                &s.job_get(r.id).await.unwrap().unwrap(),
                "x",
                Duration::ZERO,
            ))
            .await;
        assert!(f.is_err(), "not running, so fenced");
    }
}

backend_case! {
    /// max_attempts is bounded so that snoozes and shutdown releases, which add one each, never
    /// overflow the 32-bit column (which made the release fail and the job use an attempt).
    async fn max_attempts_has_room_for_every_snooze_and_release(db: TestDb) {
        let s = &*db.store;
        let opts = |n| InsertOpts {
            max_attempts: Some(n),
            ..Default::default()
        };
        for n in [MAX_ATTEMPTS + 1, i32::MAX] {
            let refused = JobInsertParams::new("noop", serde_json::json!({}), opts(n));
            assert!(
                matches!(
                    refused,
                    Err(Error::Invalid {
                        what: "max_attempts",
                        ..
                    })
                ),
                "{n}: {refused:?}"
            );
        }
        insert(s, job_with("noop", opts(MAX_ATTEMPTS))).await;
        let j = claim_one(s, "noop").await;
        let released = s
            .job_release(JobReleaseParams { fence: j.fence(), reason: "worker shut down".into(), started: true })
            .await
            .unwrap();
        assert_eq!(released.max_attempts, MAX_ATTEMPTS + 1);
        let j = claim_one(s, "noop").await;
        let snoozed = s.job_snooze(JobSnoozeParams { fence: j.fence(), delay: Duration::ZERO }).await.unwrap();
        assert_eq!(snoozed.max_attempts, MAX_ATTEMPTS + 2);
    }
}

backend_case! {
    async fn user_retry(db: TestDb) {
        let s = &*db.store;
        insert(
            s,
            job_with(
                "noop",
                InsertOpts {
                    max_attempts: Some(1),
                    ..Default::default()
                },
            ),
        )
        .await;
        let r = claim_one(s, "noop").await;
        assert!(
            matches!(s.job_retry(r.id).await, Err(Error::Conflict(_))),
            "running"
        );
        let d = s.job_fail(fail(&r, "bad", Duration::ZERO)).await.unwrap();
        assert_eq!(d.state, JobState::Discarded);
        let back = s.job_retry(r.id).await.unwrap();
        assert_eq!((back.state, back.errors.len()), (JobState::Available, 1));
        assert!(back.finalized_at.is_none());
        assert!(back.max_attempts > back.attempt, "one more attempt allowed");
        let again = claim_one(s, "noop").await;
        assert_eq!((again.id, again.attempt), (r.id, 2));
        assert!(matches!(
            s.job_retry(424_242).await,
            Err(Error::NotFound { .. })
        ));
        // Retrying a finished keyed job while another unfinished job holds the key is a conflict.
        let keyed = || {
            job_with(
                "other",
                InsertOpts {
                    unique_key: Some("k".into()),
                    ..Default::default()
                },
            )
        };
        let k1 = insert(s, keyed()).await;
        s.job_cancel(k1.id).await.unwrap();
        insert(s, keyed()).await;
        // Said the same on both backends, not in the database's own words.
        let said = format!("job {} cannot be retried: an unfinished job holds its unique key \"k\"", k1.id);
        assert!(matches!(s.job_retry(k1.id).await, Err(Error::Conflict(m)) if m == said));
    }
}

backend_case! {
    /// A backtrace is ~20 KB and a job may fail 25 times: each stored trace is cut to
    /// MAX_TRACE_BYTES (marked), keeping its top; short traces are kept whole.
    async fn stored_traces_are_capped(db: TestDb) {
        let s = &*db.store;
        insert(s, job("noop")).await;
        let row = claim_one(s, "noop").await;
        let long = format!("panicked at src/jobs.rs:1:1\n{}", "  frame é\n".repeat(3000));
        let failed = s
            .job_fail(JobFailParams {
                trace: Some(long.clone()),
                ..fail(&row, "panic: boom", std::time::Duration::ZERO)
            })
            .await
            .unwrap();
        let trace = failed.errors[0].trace.clone().unwrap();
        assert!(trace.len() <= MAX_TRACE_BYTES, "{} bytes", trace.len());
        assert!(trace.starts_with("panicked at src/jobs.rs:1:1"));
        assert!(trace.ends_with(TRACE_CUT));
        let stored = s.job_get(row.id).await.unwrap().unwrap();
        assert_eq!(stored.errors[0].trace.as_deref(), Some(trace.as_str()));

        let again = claim_one(s, "noop").await;
        let failed = s
            .job_fail(JobFailParams {
                trace: Some("short".into()),
                ..fail(&again, "boom", std::time::Duration::ZERO)
            })
            .await
            .unwrap();
        assert_eq!(failed.errors[1].trace.as_deref(), Some("short"));
    }
}

backend_case! {
    /// An attempt's error, trace and cancel reason are the handler's text: whatever it holds,
    /// the outcome is written. A NUL, which PostgreSQL's text refuses, is kept as U+FFFD on
    /// both backends (review of 6 Dec: on PostgreSQL the refused write was retried as an
    /// outage, given up on after about 70 s and put back without using the attempt, so the
    /// job ran again for good); an error longer than MAX_ERROR_BYTES is cut, marked, as a
    /// trace is (25 attempts of a 10 MB error made a row past jsonb's limit).
    async fn an_attempts_error_text_is_written_whatever_it_holds(db: TestDb) {
        let s = &*db.store;
        insert(s, job("noop")).await;
        let row = claim_one(s, "noop").await;
        let failed = s
            .job_fail(JobFailParams {
                trace: Some("at \0 frame".into()),
                ..fail(&row, "read \0 from the socket", Duration::ZERO)
            })
            .await
            .unwrap();
        assert_eq!(failed.state, JobState::Retryable);
        let stored = s.job_get(row.id).await.unwrap().unwrap();
        assert_eq!(stored.errors[0].error, "read \u{FFFD} from the socket");
        assert_eq!(stored.errors[0].trace.as_deref(), Some("at \u{FFFD} frame"));

        let again = claim_one(s, "noop").await;
        let long = format!("upstream said: {}", "é".repeat(MAX_ERROR_BYTES));
        s.job_fail(fail(&again, &long, Duration::ZERO)).await.unwrap();
        let stored = s.job_get(row.id).await.unwrap().unwrap();
        let error = &stored.errors[1].error;
        assert!(error.len() <= MAX_ERROR_BYTES, "{} bytes", error.len());
        assert!(error.starts_with("upstream said: é"), "{error:?}");
        assert!(error.ends_with(ERROR_CUT), "{error:?}");

        let third = claim_one(s, "noop").await;
        let cancelled = s
            .job_cancel_running(JobCancelRunningParams {
                fence: third.fence(),
                reason: "gave up on \0".into(),
                started: true,
            })
            .await
            .unwrap();
        assert_eq!(cancelled.state, JobState::Cancelled);
        let stored = s.job_get(row.id).await.unwrap().unwrap();
        assert_eq!(stored.errors[2].error, "gave up on \u{FFFD}");
    }
}
