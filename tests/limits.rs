//! Durations and times at their limits, on both backends: a duration too long for the
//! database's time arithmetic is clamped (see `porter::store::MAX_DURATION`), and a time
//! outside the documented range is refused alike (issue 11, items 5 and 13).

use std::time::Duration;

mod common;

on_both_backends!(cases:
    rescue_of_lost_workers_survives_a_huge_stuck_limit, retention_of_centuries_deletes_nothing_and_does_not_fail,
    huge_retry_and_snooze_delays_are_clamped,
);

#[test]
fn default_backoff_is_capped_for_any_attempt() {
    let cap = porter::job::MAX_DEFAULT_BACKOFF;
    for attempt in [700, 10_000, i32::MAX] {
        let d = porter::job::default_backoff(attempt);
        assert!(d <= cap, "attempt {attempt}: {d:?} exceeds the cap {cap:?}");
        assert!(
            d >= cap.mul_f64(0.89),
            "attempt {attempt}: {d:?} is capped, not wrapped around"
        );
    }
    assert!(
        porter::job::default_backoff(2) < Duration::from_secs(20),
        "small attempts keep attempt^4"
    );
}

mod cases {
    use std::time::Duration;

    use porter::job::{InsertOpts, JobState};
    use porter::store::*;

    use crate::common::TestDb;

    fn job(kind: &str) -> JobInsertParams {
        JobInsertParams::new(kind, serde_json::json!({}), InsertOpts::default()).unwrap()
    }

    fn claim(kinds: &[&str], limit: u32, worker: &str) -> JobClaimParams {
        JobClaimParams {
            queue: "default".into(),
            kinds: kinds.iter().map(|k| k.to_string()).collect(),
            limit,
            worker_id: worker.into(),
        }
    }

    /// A worker with `max_timeout = Duration::MAX` gives the rescuer a stuck limit of
    /// `Duration::MAX`: the lost-worker rescue must still happen (Postgres raised "interval out
    /// of range" and rolled it back on every pass).
    pub async fn rescue_of_lost_workers_survives_a_huge_stuck_limit(db: TestDb) {
        let s = &*db.store;
        s.worker_heartbeat("alive", "host", 1).await.unwrap();
        s.job_insert_many(vec![job("forever"), job("forever"), job("centuries")])
            .await
            .unwrap();
        let lost = s
            .job_claim(claim(&["forever"], 1, "gone"))
            .await
            .unwrap()
            .remove(0);
        let live = s
            .job_claim(claim(&["forever", "centuries"], 2, "alive"))
            .await
            .unwrap();
        let params = JobRescueParams {
            lease: Duration::from_secs(60),
            stuck_after: vec![
                ("forever".into(), Duration::MAX),
                (
                    "centuries".into(),
                    Duration::from_secs(10_000 * 365 * 86_400),
                ),
            ],
            limit: 100,
        };
        let counts = s
            .job_rescue(params)
            .await
            .expect("a huge stuck limit is no error");
        assert_eq!(
            counts,
            RescueCounts {
                retried: 1,
                discarded: 0,
                cancelled: 0
            }
        );
        assert_eq!(
            s.job_get(lost.id).await.unwrap().unwrap().state,
            JobState::Retryable
        );
        for j in live {
            assert_eq!(
                s.job_get(j.id).await.unwrap().unwrap().state,
                JobState::Running,
                "never stuck"
            );
        }
        // The lease is clamped alike: a huge one declares nobody lost, and fails nothing.
        let huge_lease = JobRescueParams {
            lease: Duration::MAX,
            stuck_after: vec![],
            limit: 100,
        };
        assert_eq!(
            s.job_rescue(huge_lease).await.unwrap(),
            RescueCounts::default()
        );
    }

    pub async fn retention_of_centuries_deletes_nothing_and_does_not_fail(db: TestDb) {
        let s = &*db.store;
        s.job_insert_many(vec![job("noop"), job("noop")])
            .await
            .unwrap();
        let rows = s.job_claim(claim(&["noop"], 2, "w")).await.unwrap();
        s.job_complete_many(vec![rows[0].fence()]).await.unwrap();
        s.job_cancel(rows[1].id).await.unwrap();
        for keep in [Duration::MAX, Duration::from_secs(5_000 * 365 * 86_400)] {
            let p = JobDeleteFinalizedParams {
                completed: keep,
                cancelled: keep,
                discarded: keep,
                limit: 100,
            };
            assert_eq!(
                s.job_delete_finalized(p)
                    .await
                    .expect("a huge retention is no error"),
                0
            );
        }
        let p = JobDeleteFinalizedParams {
            completed: Duration::ZERO,
            cancelled: Duration::MAX,
            discarded: Duration::MAX,
            limit: 100,
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(
            s.job_delete_finalized(p).await.unwrap(),
            1,
            "only the completed job was past its retention"
        );
    }

    /// A worker's `next_retry` or snooze of `Duration::MAX` must not leave the job running (the
    /// write failed: "NOT NULL constraint failed" on SQLite, "interval out of range" on
    /// Postgres); it is clamped, so the job waits about a thousand years.
    pub async fn huge_retry_and_snooze_delays_are_clamped(db: TestDb) {
        let s = &*db.store;
        s.job_insert_many(vec![job("noop"), job("noop")])
            .await
            .unwrap();
        let rows = s.job_claim(claim(&["noop"], 2, "w")).await.unwrap();
        let failed = s
            .job_fail(JobFailParams {
                fence: rows[0].fence(),
                error: "x".into(),
                trace: None,
                retry_in: Duration::MAX,
                discard: false,
            })
            .await
            .expect("a huge retry delay is no error");
        assert_eq!(failed.state, JobState::Retryable);
        let snoozed = s
            .job_snooze(rows[1].fence(), Duration::MAX)
            .await
            .expect("a huge snooze is no error");
        assert_eq!(snoozed.state, JobState::Scheduled);
        let now = s.now().await.unwrap();
        for j in [failed, snoozed] {
            let years = (j.scheduled_at - now).num_days() / 365;
            assert!(
                (990..=1001).contains(&years),
                "due in about a thousand years, got {years}"
            );
        }
        assert!(s
            .job_claim(claim(&["noop"], 2, "w"))
            .await
            .unwrap()
            .is_empty());
    }
}
