//! Listing jobs and counting them by queue and state.

use std::collections::HashSet;
use std::time::Duration;

use porter::job::{InsertOpts, JobState};
use porter::store::*;

use crate::{backend_case, claim, claim_one, job, job_with, W};

backend_case! {
    async fn list_filters_and_keyset_paging(db: TestDb) {
        let s = &*db.store;
        s.job_insert_many((0..7).map(|_| job("noop")).collect())
            .await
            .unwrap();
        s.job_insert_many(
            (0..3)
                .map(|_| {
                    job_with(
                        "other",
                        InsertOpts {
                            queue: Some("mail".into()),
                            ..Default::default()
                        },
                    )
                })
                .collect(),
        )
        .await
        .unwrap();
        let first = s
            .job_claim(claim("default", &["noop"], 2, W))
            .await
            .unwrap();
        let all = s.job_list(JobListParams::default()).await.unwrap();
        assert_eq!(all.len(), 10);
        assert!(all.windows(2).all(|w| w[0].id > w[1].id), "newest first");
        let page1 = s
            .job_list(JobListParams {
                limit: Some(4),
                ..Default::default()
            })
            .await
            .unwrap();
        let page2 = s
            .job_list(JobListParams {
                limit: Some(4),
                before_id: Some(page1[3].id),
                ..Default::default()
            })
            .await
            .unwrap();
        let page3 = s
            .job_list(JobListParams {
                limit: Some(4),
                before_id: Some(page2[3].id),
                ..Default::default()
            })
            .await
            .unwrap();
        let paged: Vec<i64> = page1
            .iter()
            .chain(&page2)
            .chain(&page3)
            .map(|j| j.id)
            .collect();
        assert_eq!(paged, all.iter().map(|j| j.id).collect::<Vec<_>>());
        let running = s
            .job_list(JobListParams {
                states: vec![JobState::Running],
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(
            running.iter().map(|j| j.id).collect::<HashSet<_>>(),
            first.iter().map(|j| j.id).collect()
        );
        let two_states = s
            .job_list(JobListParams {
                states: vec![JobState::Running, JobState::Available],
                kind: Some("noop".into()),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(two_states.len(), 7);
        let mail = s
            .job_list(JobListParams {
                queue: Some("mail".into()),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(mail.len(), 3);
        assert!(mail.iter().all(|j| j.kind == "other"));
        assert!(s
            .job_list(JobListParams {
                kind: Some("nope".into()),
                ..Default::default()
            })
            .await
            .unwrap()
            .is_empty());
    }
}

backend_case! {
    async fn counts_by_queue_and_state(db: TestDb) {
        let s = &*db.store;
        s.job_insert_many((0..4).map(|_| job("noop")).collect())
            .await
            .unwrap();
        s.job_insert_many(vec![job_with(
            "noop",
            InsertOpts {
                queue: Some("mail".into()),
                schedule_in: Some(Duration::from_secs(600)),
                ..Default::default()
            },
        )])
        .await
        .unwrap();
        let r = claim_one(s, "noop").await;
        s.job_complete_many(vec![r.fence()]).await.unwrap();
        claim_one(s, "noop").await;
        let c = s.job_counts().await.unwrap();
        assert_eq!(c.total.len(), JobState::ALL.len(), "every state present");
        assert_eq!(
            (
                c.total[&JobState::Available],
                c.total[&JobState::Running],
                c.total[&JobState::Completed],
                c.total[&JobState::Scheduled]
            ),
            (2, 1, 1, 1)
        );
        assert_eq!(c.queues["default"][&JobState::Available], 2);
        assert_eq!(c.queues["mail"][&JobState::Scheduled], 1);
        assert_eq!(c.queues["mail"][&JobState::Discarded], 0);
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(json["total"]["completed"], 1);
        assert_eq!(json["queues"]["mail"]["scheduled"], 1);
    }
}
