//! Retention: finalized jobs are deleted once old enough; young and unfinished ones stay.

use std::time::Duration;

use porter::job::JobState;
use porter::store::*;

use crate::{backend_case, claim, claim_one, fail, job, total, W};

backend_case! {
    async fn delete_finalized_keeps_young_and_unfinished(db: TestDb) {
        // On a clock that moves only when told: the young job is young however slow the
        // machine (on the real clock it had to be deleted within a second of its end).
        let (store, clock) = crate::clocked(&db).await;
        let s = &*store;
        s.job_insert_many((0..6).map(|_| job("noop")).collect())
            .await
            .unwrap();
        let old = s
            .job_claim(claim("default", &["noop"], 3, W))
            .await
            .unwrap();
        s.job_complete_many(vec![old[0].fence()]).await.unwrap();
        s.job_cancel_running(JobCancelRunningParams { started: true, fence: old[1].fence(), reason: "x".into() })
            .await
            .unwrap();
        s.job_fail(JobFailParams {
            discard: true,
            ..fail(&old[2], "x", Duration::ZERO)
        })
        .await
        .unwrap();
        clock.advance(Duration::from_millis(1200));
        let young = claim_one(s, "noop").await;
        s.job_complete_many(vec![young.fence()]).await.unwrap();
        let p = |completed: u64, discarded: u64, limit: u32| JobDeleteFinalizedParams {
            completed: Duration::from_millis(completed),
            cancelled: Duration::from_millis(completed),
            discarded: Duration::from_millis(discarded),
            limit,
        };
        // Discarded kept for an hour: only the old completed and cancelled go.
        assert_eq!(
            s.job_delete_finalized(p(1000, 3_600_000, 1000))
                .await
                .unwrap(),
            2
        );
        assert!(
            s.job_get(old[0].id).await.unwrap().is_none()
                && s.job_get(old[1].id).await.unwrap().is_none()
        );
        assert!(s.job_get(old[2].id).await.unwrap().is_some());
        assert!(s.job_get(young.id).await.unwrap().is_some(), "too young");
        // Bounded batches (a moment later: at no age, a job that ended this very
        // millisecond is not older than it).
        clock.advance(Duration::from_millis(1));
        assert_eq!(s.job_delete_finalized(p(0, 0, 1)).await.unwrap(), 1);
        assert_eq!(s.job_delete_finalized(p(0, 0, 100)).await.unwrap(), 1);
        assert_eq!(s.job_delete_finalized(p(0, 0, 100)).await.unwrap(), 0);
        let c = s.job_counts().await.unwrap().total;
        assert_eq!(
            (c[&JobState::Available], c[&JobState::Running]),
            (2, 0),
            "unfinished untouched"
        );
    }
}

backend_case! {
    /// Retention deletes past one internal batch, up to the caller's limit and no further.
    async fn retention_deletes_past_one_batch_up_to_the_limit(db: TestDb) {
        let clock = porter::store::clock::Clock::new();
        let s = porter::store::open_with_clock(&db.url, clock.clone())
            .await
            .unwrap();
        let s = &*s;
        s.job_insert_many((0..2_500).map(|_| job("noop")).collect())
            .await
            .unwrap();
        let running = s
            .job_claim(claim("default", &["noop"], 2_500, W))
            .await
            .unwrap();
        assert_eq!(running.len(), 2_500);
        s.job_complete_many(running.iter().map(|j| j.fence()).collect())
            .await
            .unwrap();
        clock.advance(Duration::from_secs(2 * 86_400));
        let day = Duration::from_secs(86_400);
        let params = JobDeleteFinalizedParams {
            completed: day,
            cancelled: day,
            discarded: day,
            limit: 2_200,
        };
        assert_eq!(s.job_delete_finalized(params.clone()).await.unwrap(), 2_200);
        assert_eq!(s.job_delete_finalized(params.clone()).await.unwrap(), 300);
        assert_eq!(s.job_delete_finalized(params).await.unwrap(), 0);
        assert_eq!(total(s).await, 0);
    }
}
