//! Time comes from the database clock, and an injected clock moves it for every operation.

use std::time::Duration;

use porter::job::{InsertOpts, JobState};
use porter::store::*;

use crate::{backend_case, claim, insert, job, job_with, W};

backend_case! {
    async fn times_come_from_the_database_clock(db: TestDb) {
        let s = &*db.store;
        let before = s.now().await.unwrap();
        let j = insert(s, job("noop")).await;
        let after = s.now().await.unwrap();
        assert!(
            j.created_at >= before - chrono::Duration::milliseconds(1)
                && j.created_at <= after + chrono::Duration::milliseconds(1)
        );
        assert_eq!(j.created_at, j.scheduled_at);
    }
}

backend_case! {
    /// Due times, claims, leases, backoff and retention all read the injected clock: time is
    /// moved, never slept through.
    async fn an_injected_clock_moves_time_for_every_operation(db: TestDb) {
        let clock = porter::store::clock::Clock::new();
        let s = porter::store::open_with_clock(&db.url, clock.clone())
            .await
            .unwrap();
        let s = &*s;
        let real = s.now().await.unwrap();
        // A year ahead, to the millisecond (SQLite keeps milliseconds).
        let start = chrono::DateTime::from_timestamp_millis(real.timestamp_millis()).unwrap()
            + chrono::Duration::days(365);
        clock.set(start);
        assert_eq!(s.now().await.unwrap(), start);
        let hour = Duration::from_secs(3600);
        let j = insert(
            s,
            job_with(
                "noop",
                InsertOpts {
                    schedule_in: Some(hour),
                    ..Default::default()
                },
            ),
        )
        .await;
        assert_eq!((j.state, j.created_at), (JobState::Scheduled, start));
        assert_eq!(j.scheduled_at, start + chrono::Duration::hours(1));
        assert!(
            s.job_claim(claim("default", &["noop"], 10, W))
                .await
                .unwrap()
                .is_empty(),
            "not due yet"
        );

        let due = clock.advance(2 * hour);
        s.worker_heartbeat(WorkerHeartbeatParams { id: W.to_string(), host: "host".into(), pid: 1 }).await.unwrap();
        let got = s
            .job_claim(claim("default", &["noop"], 10, W))
            .await
            .unwrap();
        assert_eq!(got.len(), 1, "due once the clock passed its time");
        assert_eq!(got[0].attempted_at, Some(due));

        // The lease runs on the same clock: a worker silent for 16 s of it is lost.
        let rescue = |lease: u64| JobRescueParams { ending: Vec::new(), by: None,
            lease: Duration::from_secs(lease),
            stuck_after: Vec::new(),
            limit: 100,
        };
        assert_eq!(
            s.job_rescue(rescue(15)).await.unwrap(),
            RescueCounts::default()
        );
        let lost_at = clock.advance(Duration::from_secs(16));
        assert_eq!(s.job_rescue(rescue(15)).await.unwrap().retried, 1);
        let j = s.job_get(j.id).await.unwrap().unwrap();
        assert_eq!((j.state, j.scheduled_at), (JobState::Retryable, lost_at));
        assert_eq!(j.errors[0].at, lost_at);

        // Backoff: a failure 30 s out is due 30 s later on the clock, not before.
        let again = s
            .job_claim(claim("default", &["noop"], 10, W))
            .await
            .unwrap()
            .remove(0);
        let failed = s
            .job_fail(JobFailParams {
                fence: again.fence(),
                error: "boom".into(),
                trace: None,
                retry_in: Duration::from_secs(30),
                discard: false,
            })
            .await
            .unwrap();
        assert_eq!(failed.scheduled_at, lost_at + chrono::Duration::seconds(30));
        clock.advance(Duration::from_secs(29));
        assert!(s
            .job_claim(claim("default", &["noop"], 10, W))
            .await
            .unwrap()
            .is_empty());
        clock.advance(Duration::from_secs(1));
        let last = s
            .job_claim(claim("default", &["noop"], 10, W))
            .await
            .unwrap()
            .remove(0);
        assert_eq!(
            s.job_complete_many(vec![last.fence()]).await.unwrap(),
            vec![true]
        );

        // Retention: a day of the clock later, the completed job goes.
        let keep = JobDeleteFinalizedParams {
            completed: Duration::from_secs(86_400),
            cancelled: Duration::from_secs(86_400),
            discarded: Duration::from_secs(86_400),
            limit: 100,
        };
        assert_eq!(s.job_delete_finalized(keep.clone()).await.unwrap(), 0);
        clock.advance(Duration::from_secs(86_401));
        assert_eq!(s.job_delete_finalized(keep).await.unwrap(), 1);

        // Back to real time.
        clock.reset();
        let now = s.now().await.unwrap();
        assert!(
            (now - real).num_seconds().abs() < 600,
            "real time again: {now} vs {real}"
        );
    }
}
