//! Claiming jobs: order, limits, kinds, due times, paused queues, concurrent claimers.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use porter::job::{InsertOpts, JobState};
use porter::store::*;

use crate::{backend_case, claim, claim_one, fail, insert, job, job_with, W};

backend_case! {
    async fn claim_orders_by_priority_due_time_id(db: TestDb) {
        let s = &*db.store;
        let p = |priority: i16, ago_s: i64| {
            job_with(
                "noop",
                InsertOpts {
                    priority: Some(priority),
                    scheduled_at: Some(Utc::now() - chrono::Duration::seconds(ago_s)),
                    ..Default::default()
                },
            )
        };
        let rows = s
            .job_insert_many(vec![p(2, 100), p(1, 10), p(1, 50), p(4, 1000), p(1, 50)])
            .await
            .unwrap();
        let ids: Vec<i64> = rows.iter().map(|r| r.job.id).collect();
        let got = s
            .job_claim(claim("default", &["noop"], 10, W))
            .await
            .unwrap();
        let order: Vec<i64> = got.iter().map(|j| j.id).collect();
        assert_eq!(order, vec![ids[2], ids[4], ids[1], ids[0], ids[3]]);
        for j in &got {
            assert_eq!(
                (j.state, j.attempt, j.attempted_by.as_deref()),
                (JobState::Running, 1, Some(W))
            );
            assert!(j.attempted_at.is_some());
        }
    }
}

backend_case! {
    async fn claim_honours_limit_and_kinds(db: TestDb) {
        let s = &*db.store;
        s.job_insert_many(
            (0..5)
                .map(|_| job("noop"))
                .chain((0..3).map(|_| job("other")))
                .collect(),
        )
        .await
        .unwrap();
        s.job_insert_many(vec![job_with(
            "noop",
            InsertOpts {
                queue: Some("critical".into()),
                ..Default::default()
            },
        )])
        .await
        .unwrap();
        assert_eq!(
            s.job_claim(claim("default", &["noop"], 2, W))
                .await
                .unwrap()
                .len(),
            2
        );
        assert_eq!(
            s.job_claim(claim("default", &["noop"], 10, W))
                .await
                .unwrap()
                .len(),
            3
        );
        assert!(
            s.job_claim(claim("default", &["noop"], 10, W))
                .await
                .unwrap()
                .is_empty(),
            "kinds it cannot run stay"
        );
        assert!(s
            .job_claim(claim("default", &[], 10, W))
            .await
            .unwrap()
            .is_empty());
        assert_eq!(
            s.job_claim(claim("default", &["other", "noop"], 10, W))
                .await
                .unwrap()
                .len(),
            3
        );
        assert_eq!(
            s.job_claim(claim("critical", &["noop"], 10, W))
                .await
                .unwrap()
                .len(),
            1
        );
        assert_eq!(s.job_counts().await.unwrap().total[&JobState::Running], 9);
    }
}

backend_case! {
    async fn claim_skips_jobs_not_yet_due(db: TestDb) {
        let s = &*db.store;
        insert(
            s,
            job_with(
                "noop",
                InsertOpts {
                    schedule_in: Some(Duration::from_secs(60)),
                    ..Default::default()
                },
            ),
        )
        .await;
        assert!(s
            .job_claim(claim("default", &["noop"], 10, W))
            .await
            .unwrap()
            .is_empty());
        let soon = insert(
            s,
            job_with(
                "noop",
                InsertOpts {
                    schedule_in: Some(Duration::from_millis(300)),
                    ..Default::default()
                },
            ),
        )
        .await;
        assert_eq!(soon.state, JobState::Scheduled);
        crate::common::eventually("the scheduled job comes due and is claimed", || async {
            s.job_claim(claim("default", &["noop"], 10, W))
                .await
                .unwrap()
                .iter()
                .any(|j| j.id == soon.id)
        })
        .await;
        assert_eq!(
            s.job_counts().await.unwrap().total[&JobState::Scheduled],
            1,
            "the later one still waits"
        );
    }
}

backend_case! {
    async fn claim_skips_paused_queue(db: TestDb) {
        let s = &*db.store;
        insert(s, job("noop")).await;
        s.queue_pause("default").await.unwrap();
        s.queue_pause("default").await.unwrap();
        assert!(s
            .job_claim(claim("default", &["noop"], 10, W))
            .await
            .unwrap()
            .is_empty());
        s.queue_resume("default").await.unwrap();
        assert_eq!(
            s.job_claim(claim("default", &["noop"], 10, W))
                .await
                .unwrap()
                .len(),
            1
        );
    }
}

backend_case! {
    async fn claim_promotes_due_retryable_and_scheduled(db: TestDb) {
        let s = &*db.store;
        insert(s, job("noop")).await;
        let r = claim_one(s, "noop").await;
        let failed = s.job_fail(fail(&r, "boom", Duration::ZERO)).await.unwrap();
        assert_eq!(failed.state, JobState::Retryable);
        let again = claim_one(s, "noop").await;
        assert_eq!((again.id, again.attempt), (r.id, 2));
    }
}

backend_case! {
    async fn concurrent_claimers_never_share_a_job(db: TestDb) {
        const JOBS: usize = 600;
        db.store
            .job_insert_many((0..JOBS).map(|_| job("noop")).collect())
            .await
            .unwrap();
        // Several stores (on SQLite: several writers, as several processes have) and several
        // tasks per store, all claiming small batches at once.
        let mut stores: Vec<Arc<Store>> = vec![db.store.clone()];
        for _ in 0..2 {
            stores.push(db.reopen().await);
        }
        let mut tasks = Vec::new();
        for (si, store) in stores.iter().enumerate() {
            for t in 0..4 {
                let store = store.clone();
                let worker = format!("w{si}-{t}");
                tasks.push(tokio::spawn(async move {
                    let mut mine = Vec::new();
                    loop {
                        let got = store
                            .job_claim(claim("default", &["noop"], 7, &worker))
                            .await
                            .unwrap();
                        if got.is_empty() {
                            return mine;
                        }
                        mine.extend(got.into_iter().map(|j| j.id));
                    }
                }));
            }
        }
        let mut seen = HashSet::new();
        let mut n = 0;
        for t in tasks {
            for id in t.await.unwrap() {
                n += 1;
                assert!(seen.insert(id), "job {id} claimed twice");
            }
        }
        assert_eq!(n, JOBS);
        assert_eq!(
            db.store.job_counts().await.unwrap().total[&JobState::Running],
            JOBS as i64
        );
    }
}

/// Claims one job of `kind` at a time, `rounds` times, a little more than a second apart (the
/// Postgres claim cursor's lag, see src/store/postgres/cursor.rs), each after inserting one
/// with `opts`: the claims a cursor forms from.
async fn claims_spaced_out(s: &Store, opts: InsertOpts, rounds: usize) {
    for _ in 0..rounds {
        s.job_insert_many(vec![job_with("noop", opts.clone())])
            .await
            .unwrap();
        let got = s
            .job_claim(claim("default", &["noop"], 1, W))
            .await
            .unwrap();
        assert_eq!(got.len(), 1);
        tokio::time::sleep(Duration::from_millis(1_100)).await;
    }
}

backend_case! {
    async fn a_job_due_before_the_jobs_claimed_so_far_is_still_claimed(db: TestDb) {
        // On Postgres such a job sorts before the queue's claim cursor, which the claims walk
        // from: the next full claim, due at least every second, finds it. (SQLite's claims
        // all walk from the queue's start.)
        let s = &*db.store;
        claims_spaced_out(s, InsertOpts::default(), 3).await;
        let early = InsertOpts {
            scheduled_at: Some(Utc::now() - chrono::Duration::hours(1)),
            ..Default::default()
        };
        let early = s.job_insert_many(vec![job_with("noop", early)]).await.unwrap()[0]
            .job
            .id;
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let mut taken = Vec::new();
        while !taken.contains(&early) {
            assert!(
                std::time::Instant::now() < deadline,
                "job {early}, due an hour ago, was not claimed in 10 s: {taken:?}"
            );
            s.job_insert_many(vec![job("noop")]).await.unwrap();
            let got = s.job_claim(claim("default", &["noop"], 1, W)).await.unwrap();
            taken.extend(got.iter().map(|j| j.id));
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

backend_case! {
    async fn a_higher_priority_job_inserted_after_claims_is_claimed_first(db: TestDb) {
        // A claim cursor never passes over a priority that sorts first: after claims of
        // priority 2, the next claim takes a job of priority 1 inserted meanwhile at once.
        let s = &*db.store;
        let at = |priority: i16| InsertOpts {
            priority: Some(priority),
            ..Default::default()
        };
        claims_spaced_out(s, at(2), 3).await;
        s.job_insert_many(vec![job_with("noop", at(2))]).await.unwrap();
        let first = s.job_insert_many(vec![job_with("noop", at(1))]).await.unwrap()[0]
            .job
            .id;
        let got = s.job_claim(claim("default", &["noop"], 1, W)).await.unwrap();
        assert_eq!(got.iter().map(|j| j.id).collect::<Vec<_>>(), vec![first]);
    }
}
