//! The operator's queries (the dashboard's pages): jobs by filter with a search inside args
//! and keyset pages, match counts, bulk retry / cancel / delete (batched, fenced by the
//! confirmed highest id, running jobs through the cancel request), running jobs per worker,
//! periodic schedules with their last job, and throughput per minute.

use std::time::Duration;

use porter::job::{InsertOpts, JobState, CANCEL_REQUESTED_AT};
use porter::store::admin::BULK_BATCH;
use porter::store::*;
use porter::Error;

use crate::{backend_case, claim, claim_one, insert, job_with, W};

fn in_queue(kind: &str, queue: &str, args: serde_json::Value) -> JobInsertParams {
    JobInsertParams::new(
        kind,
        args,
        InsertOpts {
            queue: Some(queue.into()),
            ..Default::default()
        },
    )
    .unwrap()
}

fn filter(states: &[JobState]) -> JobFilter {
    JobFilter {
        states: states.to_vec(),
        ..Default::default()
    }
}

fn search(filter: JobFilter, before_id: Option<i64>, limit: u32) -> JobSearchParams {
    JobSearchParams {
        filter,
        before_id,
        limit,
        ..JobSearchParams::default()
    }
}

async fn ids(s: &Store, p: JobSearchParams) -> Vec<i64> {
    s.job_search(p)
        .await
        .unwrap()
        .iter()
        .map(|j| j.id)
        .collect()
}

async fn state_of(s: &Store, id: i64) -> Option<JobState> {
    s.job_get(id).await.unwrap().map(|j| j.state)
}

/// Discards the one available `kind` job of the default queue.
async fn discard(s: &Store, kind: &str) -> porter::JobRow {
    let row = claim_one(s, kind).await;
    s.job_fail(JobFailParams {
        fence: row.fence(),
        error: "boom".into(),
        trace: None,
        retry_in: Duration::ZERO,
        discard: true,
    })
    .await
    .unwrap()
}

backend_case! {
    async fn job_search_filters_by_state_kind_queue_and_args_text_newest_first(db: TestDb) {
        let s = &*db.store;
        let a = insert(s, in_queue("mail", "default", serde_json::json!({"to": "alice@example.com", "n": 1}))).await;
        let b = insert(s, in_queue("mail", "bulk", serde_json::json!({"to": "bob@example.com"}))).await;
        let c = insert(s, in_queue("report", "default", serde_json::json!({"for": "alice@example.com"}))).await;
        let d = insert(s, in_queue("mail", "default", serde_json::json!({"to": "carol@example.com"}))).await;
        let running = claim_one(s, "mail").await; // a: the oldest due mail job
        assert_eq!(running.id, a.id);

        let all = ids(s, search(JobFilter::default(), None, 100)).await;
        assert_eq!(all, vec![d.id, c.id, b.id, a.id], "newest first");
        let alice = JobFilter {
            args_contains: Some("alice@example.com".into()),
            ..Default::default()
        };
        assert_eq!(ids(s, search(alice.clone(), None, 100)).await, vec![c.id, a.id]);
        let alice_mail = JobFilter {
            kind: Some("mail".into()),
            ..alice
        };
        assert_eq!(ids(s, search(alice_mail, None, 100)).await, vec![a.id]);
        let default_available = JobFilter {
            queue: Some("default".into()),
            states: vec![JobState::Available],
            ..Default::default()
        };
        assert_eq!(ids(s, search(default_available, None, 100)).await, vec![d.id, c.id]);
        assert_eq!(
            ids(s, search(filter(&[JobState::Running, JobState::Completed]), None, 100)).await,
            vec![a.id]
        );
        let nobody = JobFilter {
            args_contains: Some("dave@".into()),
            ..Default::default()
        };
        assert!(ids(s, search(nobody, None, 100)).await.is_empty());
        // Case-sensitive, and a LIKE wildcard is plain text.
        let upper = JobFilter { args_contains: Some("ALICE".into()), ..Default::default() };
        assert!(ids(s, search(upper, None, 100)).await.is_empty());
        let percent = JobFilter { args_contains: Some("%".into()), ..Default::default() };
        assert!(ids(s, search(percent, None, 100)).await.is_empty());

        // Keyset pages: two at a time, each below the last id shown.
        assert_eq!(ids(s, search(JobFilter::default(), None, 2)).await, vec![d.id, c.id]);
        assert_eq!(ids(s, search(JobFilter::default(), Some(c.id), 2)).await, vec![b.id, a.id]);
        assert!(ids(s, search(JobFilter::default(), Some(a.id), 2)).await.is_empty());
    }
}

backend_case! {
    async fn job_filter_refuses_bad_names_and_search_text(db: TestDb) {
        let s = &*db.store;
        for bad in [
            JobFilter { queue: Some("Bad Queue".into()), ..Default::default() },
            JobFilter { kind: Some("x';--".into()), ..Default::default() },
            JobFilter { args_contains: Some(String::new()), ..Default::default() },
            JobFilter { args_contains: Some("x".repeat(201)), ..Default::default() },
        ] {
            assert!(matches!(s.job_search(search(bad.clone(), None, 10)).await, Err(Error::Invalid { .. })), "{bad:?}");
            assert!(matches!(s.job_count_matching(bad.clone()).await, Err(Error::Invalid { .. })), "{bad:?}");
            assert!(matches!(s.job_bulk(BulkAction::Delete, bad.clone(), i64::MAX).await.map_err(Error::from), Err(Error::Invalid { .. })), "{bad:?}");
        }
    }
}

backend_case! {
    async fn job_count_matching_counts_and_names_the_highest_id(db: TestDb) {
        let s = &*db.store;
        let counted = |c: MatchCount| (c.count, c.max_id);
        assert_eq!(counted(s.job_count_matching(JobFilter::default()).await.unwrap()), (0, None));
        let a = insert(s, in_queue("mail", "default", serde_json::json!({}))).await;
        let b = insert(s, in_queue("mail", "bulk", serde_json::json!({}))).await;
        insert(s, in_queue("report", "default", serde_json::json!({}))).await;
        let mail = JobFilter { kind: Some("mail".into()), ..Default::default() };
        assert_eq!(counted(s.job_count_matching(mail).await.unwrap()), (2, Some(b.id)));
        let default_mail = JobFilter { kind: Some("mail".into()), queue: Some("default".into()), ..Default::default() };
        assert_eq!(counted(s.job_count_matching(default_mail).await.unwrap()), (1, Some(a.id)));
    }
}

backend_case! {
    /// A bulk action judges its filter's states again where it writes. It found its jobs with
    /// one statement and acted on their ids with another, so a job whose state changed in
    /// between was acted on though the filter no longer matched it: a bulk "retry discarded"
    /// retried a job an operator had cancelled meanwhile, and a bulk "delete discarded"
    /// deleted one just retried (the job was lost).
    async fn a_bulk_action_skips_jobs_whose_state_changed_since_its_filter_found_them(db: TestDb) {
        let s = db.store.clone();
        let gated = crate::chaos_gated_store::GatedStore::new(s.clone());
        let g = gated.store();
        let discarded = filter(&[JobState::Discarded]);

        insert(&s, in_queue("fail", "default", serde_json::json!({}))).await;
        let j = discard(&s, "fail").await;
        let by_hand = s.clone();
        gated.before_bulk_write(Box::new(move || {
            Box::pin(async move {
                by_hand.job_retry(j.id).await.unwrap();
                by_hand.job_cancel(j.id).await.unwrap();
            })
        }));
        let out = g.job_bulk(BulkAction::Retry, discarded.clone(), i64::MAX).await.unwrap();
        assert_eq!((out.matched, out.changed), (1, 0));
        assert_eq!(state_of(&s, j.id).await, Some(JobState::Cancelled), "as the operator left it");

        insert(&s, in_queue("fail", "default", serde_json::json!({}))).await;
        let k = discard(&s, "fail").await;
        let by_hand = s.clone();
        gated.before_bulk_write(Box::new(move || {
            Box::pin(async move {
                by_hand.job_retry(k.id).await.unwrap();
            })
        }));
        let out = g.job_bulk(BulkAction::Delete, discarded, i64::MAX).await.unwrap();
        assert_eq!((out.matched, out.changed), (1, 0));
        assert_eq!(state_of(&s, k.id).await, Some(JobState::Available), "retried, not deleted");
    }
}

backend_case! {
    /// A confirmed bulk action acts on the jobs its check found, no more: jobs that come to
    /// match while it writes its batches (here 300 older jobs cancelled by another operator
    /// after its first batch) are left alone, though they are within its fence (review of 6
    /// Dec: "Delete 600 jobs" deleted 900, the check having been made once, before the pages).
    async fn a_confirmed_bulk_action_changes_no_more_jobs_than_it_counted(db: TestDb) {
        let s = db.store.clone();
        let older: Vec<_> = (0..300).map(|_| in_queue("noop", "bulk1", serde_json::json!({}))).collect();
        s.job_insert_many(older).await.unwrap();
        let newer: Vec<_> = (0..600).map(|_| in_queue("noop", "bulk2", serde_json::json!({}))).collect();
        s.job_insert_many(newer).await.unwrap();
        let in_queue_of = |q: &str| JobFilter { queue: Some(q.into()), ..filter(&[JobState::Available]) };
        s.job_bulk(BulkAction::Cancel, in_queue_of("bulk2"), i64::MAX).await.unwrap();
        let cancelled = filter(&[JobState::Cancelled]);
        let count = s.job_count_matching(cancelled.clone()).await.unwrap();
        assert_eq!(count.count, 600);
        let gated = crate::chaos_gated_store::GatedStore::new(s.clone());
        let other = s.clone();
        gated.before_bulk_write(Box::new(move || {
            Box::pin(async move {
                other.job_bulk(BulkAction::Cancel, in_queue_of("bulk1"), i64::MAX).await.unwrap();
            })
        }));
        let fence = BulkFence { max_id: count.max_id.unwrap(), in_progress: Vec::new(), counted: Some(600) };
        let out = gated.store().job_bulk(BulkAction::Delete, cancelled.clone(), fence).await.unwrap();
        assert_eq!((out.matched, out.changed), (600, 600));
        assert_eq!(s.job_count_matching(cancelled).await.unwrap().count, 300, "the 300 cancelled since stay");
    }
}

backend_case! {
    async fn bulk_retry_moves_stopped_jobs_leaves_running_ones_and_stops_at_the_confirmed_id(db: TestDb) {
        let s = &*db.store;
        insert(s, in_queue("fail", "default", serde_json::json!({}))).await;
        let discarded = discard(s, "fail").await;
        let cancelled = insert(s, in_queue("noop", "default", serde_json::json!({}))).await;
        s.job_cancel(cancelled.id).await.unwrap();
        insert(s, in_queue("slow", "default", serde_json::json!({}))).await;
        let running = claim_one(s, "slow").await;
        let available = insert(s, in_queue("noop", "default", serde_json::json!({}))).await;
        let fence = s.job_count_matching(JobFilter::default()).await.unwrap().max_id.unwrap();
        // Inserted after the confirmation: not touched.
        let late = insert(s, in_queue("noop", "default", serde_json::json!({}))).await;
        s.job_cancel(late.id).await.unwrap();

        let out = s.job_bulk(BulkAction::Retry, JobFilter::default(), fence).await.unwrap();
        assert_eq!((out.matched, out.changed, out.capped), (4, 2, false));
        assert_eq!(state_of(s, discarded.id).await, Some(JobState::Available));
        assert_eq!(state_of(s, cancelled.id).await, Some(JobState::Available));
        assert_eq!(state_of(s, running.id).await, Some(JobState::Running));
        assert_eq!(state_of(s, available.id).await, Some(JobState::Available));
        assert_eq!(state_of(s, late.id).await, Some(JobState::Cancelled), "past the fence");
        let retried = s.job_get(discarded.id).await.unwrap().unwrap();
        assert_eq!(retried.errors.len(), 1, "history kept");
        assert!(retried.max_attempts > retried.attempt, "an attempt left");
        // The retried job can be claimed again.
        assert!(s.job_claim(claim("default", &["fail"], 1, W)).await.unwrap().iter().any(|j| j.id == discarded.id));
    }
}

backend_case! {
    async fn bulk_cancel_cancels_waiting_jobs_and_asks_running_ones_to_stop(db: TestDb) {
        let s = &*db.store;
        let waiting = insert(s, in_queue("noop", "default", serde_json::json!({}))).await;
        insert(s, in_queue("slow", "default", serde_json::json!({}))).await;
        let running = claim_one(s, "slow").await;
        insert(s, in_queue("done", "default", serde_json::json!({}))).await;
        let done = claim_one(s, "done").await;
        assert_eq!(s.job_complete_many(vec![done.fence()]).await.unwrap(), vec![true]);
        let cancels = s.wakeup().subscribe_cancel(W);

        let out = s.job_bulk(BulkAction::Cancel, JobFilter::default(), i64::MAX).await.unwrap();
        assert_eq!((out.matched, out.changed, out.cancel_requested), (3, 2, 1));
        assert_eq!(state_of(s, waiting.id).await, Some(JobState::Cancelled));
        assert_eq!(state_of(s, done.id).await, Some(JobState::Completed));
        let still = s.job_get(running.id).await.unwrap().unwrap();
        assert_eq!(still.state, JobState::Running, "its worker stops it");
        assert!(still.metadata.get(CANCEL_REQUESTED_AT).is_some());
        assert_eq!(s.job_cancel_requests(W, &[running.id]).await.unwrap(), vec![running.fence()]);
        tokio::time::timeout(Duration::from_secs(10), cancels.notified()).await.expect("the worker is told");
        // Again while the job still runs: it was asked already, so nothing changes and nothing
        // is counted (it was counted as asked again, on both backends).
        let asked_at = still.metadata.get(CANCEL_REQUESTED_AT).cloned();
        let again = s.job_bulk(BulkAction::Cancel, JobFilter::default(), i64::MAX).await.unwrap();
        assert_eq!((again.matched, again.changed, again.cancel_requested), (3, 0, 0), "{again:?}");
        let still = s.job_get(running.id).await.unwrap().unwrap();
        assert_eq!(still.metadata.get(CANCEL_REQUESTED_AT).cloned(), asked_at, "the first request's time is kept");
        assert_eq!(s.job_cancel_requests(W, &[running.id]).await.unwrap(), vec![running.fence()]);
        // The fence still holds: the worker records the cancel itself.
        s.job_cancel_running(JobCancelRunningParams { started: true, fence: running.fence(), reason: "cancelled".into() }).await.unwrap();
        assert_eq!(state_of(s, running.id).await, Some(JobState::Cancelled));
    }
}

backend_case! {
    async fn bulk_delete_removes_all_but_running_jobs_in_batches(db: TestDb) {
        let s = &*db.store;
        let many = (BULK_BATCH as usize) * 2 + 7;
        let params: Vec<_> = (0..many)
            .map(|i| in_queue("noop", "bulk", serde_json::json!({"i": i})))
            .collect();
        s.job_insert_many(params).await.unwrap();
        insert(s, in_queue("slow", "default", serde_json::json!({}))).await;
        let running = claim_one(s, "slow").await;
        let other = insert(s, in_queue("noop", "default", serde_json::json!({}))).await;

        let bulk = JobFilter { queue: Some("bulk".into()), ..Default::default() };
        let out = s.job_bulk(BulkAction::Delete, bulk.clone(), i64::MAX).await.unwrap();
        assert_eq!((out.matched, out.changed), (many as u64, many as u64));
        assert_eq!(s.job_count_matching(bulk).await.unwrap().count, 0);
        let out = s.job_bulk(BulkAction::Delete, JobFilter::default(), i64::MAX).await.unwrap();
        assert_eq!((out.matched, out.changed), (2, 1), "the running job stays");
        assert_eq!(state_of(s, running.id).await, Some(JobState::Running));
        assert_eq!(state_of(s, other.id).await, None);
    }
}

backend_case! {
    async fn bulk_on_an_empty_match_changes_nothing(db: TestDb) {
        let s = &*db.store;
        let job = insert(s, in_queue("noop", "default", serde_json::json!({}))).await;
        let none = JobFilter { kind: Some("nobody".into()), ..Default::default() };
        for action in [BulkAction::Retry, BulkAction::Cancel, BulkAction::Delete] {
            let out = s.job_bulk(action, none.clone(), i64::MAX).await.unwrap();
            assert_eq!(out, BulkOutcome::default(), "{action:?}");
        }
        // A fence below every job matches nothing either.
        let out = s.job_bulk(BulkAction::Delete, JobFilter::default(), job.id - 1).await.unwrap();
        assert_eq!(out.matched, 0);
        assert_eq!(state_of(s, job.id).await, Some(JobState::Available));
    }
}

backend_case! {
    async fn running_jobs_are_counted_per_worker(db: TestDb) {
        let s = &*db.store;
        for _ in 0..3 {
            insert(s, in_queue("noop", "default", serde_json::json!({}))).await;
        }
        s.job_claim(claim("default", &["noop"], 2, "worker-a")).await.unwrap();
        s.job_claim(claim("default", &["noop"], 5, "worker-b")).await.unwrap();
        let by = s.job_running_by_worker().await.unwrap();
        assert_eq!(by.into_iter().collect::<Vec<_>>(), vec![("worker-a".to_string(), 2), ("worker-b".to_string(), 1)]);
    }
}

backend_case! {
    async fn periodic_list_names_the_last_slot_and_its_job(db: TestDb) {
        let s = &*db.store;
        let enqueue = |slot: i64| PeriodicEnqueueParams {
            name: "report".into(),
            slot,
            job: JobInsertParams::new(
                "noop",
                serde_json::json!({}),
                InsertOpts {
                    metadata: Some(serde_json::json!({"periodic": "report", "slot": slot})),
                    ..Default::default()
                },
            )
            .unwrap(),
        };
        assert!(s.periodic_list().await.unwrap().is_empty());
        s.periodic_enqueue(enqueue(60_000)).await.unwrap();
        assert_eq!(
            s.periodic_list().await.unwrap(),
            vec![PeriodicRow { name: "report".into(), last_slot: 60_000, last_job_id: None }],
            "first sight only records its slot"
        );
        let first = s.periodic_enqueue(enqueue(120_000)).await.unwrap().unwrap().job;
        let second = s.periodic_enqueue(enqueue(180_000)).await.unwrap().unwrap().job;
        assert!(first.id < second.id);
        assert_eq!(
            s.periodic_list().await.unwrap(),
            vec![PeriodicRow { name: "report".into(), last_slot: 180_000, last_job_id: Some(second.id) }]
        );
    }
}

backend_case! {
    async fn throughput_counts_completed_and_discarded_jobs_per_minute(db: TestDb) {
        let s = &*db.store;
        for _ in 0..3 {
            insert(s, in_queue("noop", "default", serde_json::json!({}))).await;
        }
        let done = s.job_claim(claim("default", &["noop"], 3, W)).await.unwrap();
        let fences: Vec<_> = done.iter().map(|j| j.fence()).collect();
        s.job_complete_many(fences).await.unwrap();
        insert(s, in_queue("fail", "default", serde_json::json!({}))).await;
        discard(s, "fail").await;
        insert(s, in_queue("noop", "default", serde_json::json!({}))).await; // not finished

        let now = s.now().await.unwrap();
        let rows = s.job_throughput(now - chrono::Duration::hours(1)).await.unwrap();
        let completed: i64 = rows.iter().map(|r| r.completed).sum();
        let discarded: i64 = rows.iter().map(|r| r.discarded).sum();
        assert_eq!((completed, discarded), (3, 1));
        for r in &rows {
            assert_eq!(r.minute.timestamp() % 60, 0, "whole minutes: {r:?}");
            assert!(r.minute <= now && r.minute > now - chrono::Duration::minutes(2), "{r:?}");
        }
        assert!(s.job_throughput(now + chrono::Duration::minutes(1)).await.unwrap().is_empty());
    }
}

backend_case! {
    /// A bulk retry skips, and counts as matched but unchanged, the jobs whose unique key
    /// another unfinished job holds, and retries only the newest of stopped jobs sharing a
    /// key; the rest of the batch is retried. Before, the one UPDATE broke the unique index
    /// and the whole batch (and every later submission) failed.
    async fn bulk_retry_skips_jobs_whose_unique_key_is_taken(db: TestDb) {
        let s = &*db.store;
        let keyed = |key: &str| crate::common::keyed_job("noop", key);
        let old_dup = insert(s, keyed("dup")).await;
        s.job_cancel(old_dup.id).await.unwrap();
        let new_dup = insert(s, keyed("dup")).await;
        s.job_cancel(new_dup.id).await.unwrap();
        let stopped = insert(s, keyed("held")).await;
        s.job_cancel(stopped.id).await.unwrap();
        let holder = insert(s, keyed("held")).await;
        let plain = insert(s, in_queue("noop", "default", serde_json::json!({}))).await;
        s.job_cancel(plain.id).await.unwrap();

        let out = s.job_bulk(BulkAction::Retry, JobFilter::default(), i64::MAX).await.unwrap();
        assert_eq!((out.matched, out.changed), (5, 2), "{out:?}");
        assert_eq!(state_of(s, new_dup.id).await, Some(JobState::Available));
        assert_eq!(state_of(s, old_dup.id).await, Some(JobState::Cancelled), "one per key");
        assert_eq!(state_of(s, stopped.id).await, Some(JobState::Cancelled), "key held");
        assert_eq!(state_of(s, holder.id).await, Some(JobState::Available));
        assert_eq!(state_of(s, plain.id).await, Some(JobState::Available));
    }

    /// A search for text with a NUL is refused on both backends (Postgres text cannot hold
    /// one: it answered a database error there, and nothing on SQLite).
    async fn a_search_for_a_nul_is_refused(db: TestDb) {
        let s = &*db.store;
        let f = JobFilter { args_contains: Some("a\0b".into()), ..Default::default() };
        assert!(matches!(s.job_search(search(f.clone(), None, 10)).await, Err(Error::Invalid { .. })));
        assert!(matches!(s.job_bulk(BulkAction::Delete, f, i64::MAX).await.map_err(Error::from), Err(Error::Invalid { .. })));
    }
}

backend_case! {
    /// A bulk retry of several finished jobs of one sequence retries the oldest only: the
    /// others would run beside it. Each one's check that its sequence was idle read the table
    /// as it was before the statement, so all were retried at once, and the index of active
    /// sequence jobs refused the statement: the whole bulk retry failed, every time.
    async fn a_bulk_retry_of_one_sequences_finished_jobs_retries_the_oldest(db: TestDb) {
        let s = &*db.store;
        let first = insert(s, seq(1)).await;
        let second = insert(s, seq(2)).await;
        for _ in 0..2 {
            let job = claim_one(s, "seq").await;
            s.job_complete_many(vec![job.fence()]).await.unwrap();
        }
        let completed = filter(&[JobState::Completed]);
        let out = s.job_bulk(BulkAction::Retry, completed, i64::MAX).await.unwrap();
        assert_eq!((out.matched, out.changed), (2, 1), "{out:?}");
        assert_eq!(state_of(s, first.id).await, Some(JobState::Available));
        assert_eq!(state_of(s, second.id).await, Some(JobState::Completed));
        // The other is retried alone, which queues it behind the first.
        assert_eq!(s.job_retry(second.id).await.unwrap().state, JobState::Pending);
    }
}

backend_case! {
    /// The same when a bulk retry's batches part the sequence's finished jobs: the oldest is
    /// retried. (The batches went newest first, so the newest one was retried, and the oldest,
    /// in a later batch, found its sequence busy: the sequence would have run backwards.)
    async fn a_bulk_retry_retries_a_sequences_oldest_job_across_its_batches(db: TestDb) {
        let s = &*db.store;
        let first = insert(s, seq(1)).await;
        let fill = (0..BULK_BATCH)
            .map(|_| JobInsertParams::new("fill", serde_json::json!({}), InsertOpts::default()).unwrap())
            .collect();
        s.job_insert_many(fill).await.unwrap();
        let second = insert(s, seq(2)).await;
        let out = s.job_bulk(BulkAction::Cancel, JobFilter::default(), i64::MAX).await.unwrap();
        assert_eq!(out.changed, u64::from(BULK_BATCH) + 2, "{out:?}");
        let cancelled = filter(&[JobState::Cancelled]);
        let out = s.job_bulk(BulkAction::Retry, cancelled, i64::MAX).await.unwrap();
        assert_eq!((out.matched, out.changed), (u64::from(BULK_BATCH) + 2, u64::from(BULK_BATCH) + 1), "{out:?}");
        assert_eq!(state_of(s, first.id).await, Some(JobState::Available));
        assert_eq!(state_of(s, second.id).await, Some(JobState::Cancelled));
    }
}

backend_case! {
    /// A bulk action whose filter now matches more jobs within its fence than its confirmation
    /// counted is refused, nothing changed: here a job cancelled since, whose id is below the
    /// highest counted, which the fence cannot tell from the counted ones. Counted again, the
    /// action goes on.
    async fn a_bulk_action_is_refused_when_more_jobs_match_than_were_counted(db: TestDb) {
        let s = &*db.store;
        let a = insert(s, job_with("noop", InsertOpts::default())).await;
        let b = insert(s, job_with("noop", InsertOpts::default())).await;
        s.job_cancel(b.id).await.unwrap();
        let cancelled = filter(&[JobState::Cancelled]);
        let count = s.job_count_matching(cancelled.clone()).await.unwrap();
        assert_eq!((count.count, count.max_id), (1, Some(b.id)));
        s.job_cancel(a.id).await.unwrap();
        let refused = s.job_bulk(BulkAction::Retry, cancelled.clone(), count.fence().unwrap()).await.map_err(Error::from);
        assert!(matches!(refused, Err(Error::Conflict(_))), "{refused:?}");
        for id in [a.id, b.id] {
            assert_eq!(state_of(s, id).await, Some(JobState::Cancelled), "nothing changed");
        }
        let count = s.job_count_matching(cancelled.clone()).await.unwrap();
        let out = s.job_bulk(BulkAction::Retry, cancelled, count.fence().unwrap()).await.unwrap();
        assert_eq!((out.matched, out.changed), (2, 2), "{out:?}");
    }
}

/// A `seq` job of the sequence `k`, told apart by `n`.
fn seq(n: i64) -> JobInsertParams {
    JobInsertParams::new(
        "seq",
        serde_json::json!({ "n": n }),
        InsertOpts {
            sequence_key: Some("k".into()),
            ..Default::default()
        },
    )
    .unwrap()
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Step {
    n: i64,
}

impl porter::JobArgs for Step {
    const KIND: &'static str = "seq";
}

backend_case! {
    /// A bulk delete of a sequence's active job waits for an insert queuing the next job
    /// behind it. On Postgres it took no lock of the sequence, so such an insert, not yet
    /// committed, went unseen: the active job was deleted, and the next stayed pending for
    /// good, the whole sequence with it.
    async fn a_bulk_delete_waits_for_an_insert_queuing_behind_the_job_it_deletes(db: TestDb) {
        let s = db.store.clone();
        let keyed = || Some(InsertOpts { sequence_key: Some("k".into()), ..Default::default() });
        let active = insert(&s, seq(1)).await;
        let delete = || {
            let s = s.clone();
            tokio::spawn(async move {
                s.job_bulk(BulkAction::Delete, filter(&[JobState::Available]), i64::MAX).await.unwrap()
            })
        };
        // The insert's transaction stays open while the delete runs: on PostgreSQL until the
        // delete waits for it; on SQLite a moment is given for the delete to get as far as it
        // can (an ordering aid, nothing measured).
        let next = match db.sqlite_path() {
            Some(path) => {
                let mut c = rusqlite::Connection::open(path).unwrap();
                c.busy_timeout(Duration::from_secs(30)).unwrap();
                let holder = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).unwrap();
                let next = porter::Client::insert_tx_sqlite(&holder, &Step { n: 2 }, keyed()).unwrap();
                let deleting = delete();
                tokio::time::sleep(Duration::from_millis(300)).await;
                holder.commit().unwrap();
                deleting.await.unwrap();
                next
            }
            None => {
                use sqlx::Connection;
                let mut c = sqlx::PgConnection::connect(&db.url).await.unwrap();
                let mut holder = c.begin().await.unwrap();
                let next = porter::Client::insert_tx_pg(&mut holder, &Step { n: 2 }, keyed()).await.unwrap();
                let holding = crate::common::pg_pid(&mut holder).await;
                let deleting = delete();
                crate::common::pg_blocked_by(&db.url, holding, 1, None).await;
                holder.commit().await.unwrap();
                deleting.await.unwrap();
                next
            }
        };
        assert_eq!(state_of(&s, next.job.id).await, Some(JobState::Pending));
        assert_eq!(state_of(&s, active.id).await, Some(JobState::Available), "kept: the next job waits for its end");
    }
}

backend_case! {
    async fn bulk_retry_leaves_waiting_jobs_and_busy_sequences_alone(db: TestDb) {
        // A bulk retry released a child that waited for its parent (it matched `pending`), so
        // the child could run before its parent had ended; and it retried a finished job of a
        // sequence whose next job was already queued, two of one sequence at once. A single
        // retry refused both; the bulk one now leaves them as they are.
        let s = &*db.store;
        let parent = insert(s, in_queue("noop", "default", serde_json::json!({}))).await;
        let child = insert(
            s,
            JobInsertParams::new(
                "noop",
                serde_json::json!({}),
                InsertOpts { depends_on: vec![parent.id], ..Default::default() },
            )
            .unwrap(),
        )
        .await;
        assert_eq!(state_of(s, child.id).await, Some(JobState::Pending));
        let first = insert(s, seq(1)).await;
        let second = insert(s, seq(2)).await;
        let done = claim_one(s, "seq").await;
        assert_eq!(done.id, first.id);
        s.job_complete_many(vec![done.fence()]).await.unwrap();
        assert_eq!(state_of(s, second.id).await, Some(JobState::Available));

        let fence = s.job_count_matching(JobFilter::default()).await.unwrap().max_id.unwrap();
        let out = s.job_bulk(BulkAction::Retry, JobFilter::default(), fence).await.unwrap();
        assert_eq!(out.changed, 0, "{out:?}");
        assert_eq!(state_of(s, child.id).await, Some(JobState::Pending), "still waits for its parent");
        assert_eq!(state_of(s, first.id).await, Some(JobState::Completed), "its sequence is busy");
        assert_eq!(state_of(s, second.id).await, Some(JobState::Available));
        // The single retry agrees: neither may be retried now.
        assert!(s.job_retry(child.id).await.is_err());
    }
}

backend_case! {
    async fn bulk_delete_keeps_jobs_that_others_wait_for(db: TestDb) {
        // Deleting a job that a pending child or the next job of its sequence waits for would
        // leave them pending for good (nothing ever ends the deleted job): such jobs are kept,
        // like running ones, until they end or are cancelled.
        let s = &*db.store;
        let parent = insert(s, job_with("first", InsertOpts::default())).await;
        let child = insert(s, job_with("then", InsertOpts { depends_on: vec![parent.id], ..Default::default() })).await;
        let in_seq = || InsertOpts { sequence_key: Some("k".into()), ..Default::default() };
        let head = insert(s, job_with("first", in_seq())).await;
        let next = insert(s, job_with("then", in_seq())).await;
        let alone = insert(s, job_with("first", InsertOpts::default())).await;
        assert_eq!(state_of(s, next.id).await, Some(JobState::Pending));

        let firsts = JobFilter { kind: Some("first".into()), ..Default::default() };
        let out = s.job_bulk(BulkAction::Delete, firsts.clone(), i64::MAX).await.unwrap();
        assert_eq!((out.matched, out.changed), (3, 1), "{out:?}");
        assert_eq!(state_of(s, alone.id).await, None);
        for (kept, by) in [(parent.id, child.id), (head.id, next.id)] {
            assert_eq!(state_of(s, kept).await, Some(JobState::Available), "job {kept}, which {by} waits for");
        }

        // They still run, and free what waits for them.
        let mut ran = s.job_claim(claim("default", &["first"], 10, W)).await.unwrap();
        ran.sort_by_key(|j| j.id);
        assert_eq!(ran.iter().map(|j| j.id).collect::<Vec<_>>(), vec![parent.id, head.id]);
        s.job_complete_many(ran.iter().map(|j| j.fence()).collect()).await.unwrap();
        assert_eq!(state_of(s, child.id).await, Some(JobState::Available));
        assert_eq!(state_of(s, next.id).await, Some(JobState::Available));
        // A finished parent stays while its child has not finished (the child reads its
        // output), as retention keeps it; ended and waited for by nothing, every job goes.
        let out = s.job_bulk(BulkAction::Delete, firsts, i64::MAX).await.unwrap();
        assert_eq!((out.matched, out.changed), (2, 1), "{out:?}");
        assert_eq!(state_of(s, parent.id).await, Some(JobState::Completed));
        let then = s.job_claim(claim("default", &["then"], 10, W)).await.unwrap();
        assert_eq!(then.len(), 2);
        s.job_complete_many(then.iter().map(|j| j.fence()).collect()).await.unwrap();
        let out = s.job_bulk(BulkAction::Delete, JobFilter::default(), i64::MAX).await.unwrap();
        assert_eq!((out.matched, out.changed), (3, 3), "{out:?}");
    }
}

backend_case! {
    /// A bulk retry of a stopped job whose unique key a pending job holds leaves that job as
    /// it is and retries the rest of the batch. Its check of the key's holders left out
    /// `pending`, which holds a key too: the statement hit the unique index and failed whole,
    /// retrying none of the batch.
    async fn a_bulk_retry_leaves_a_job_whose_key_a_pending_job_holds(db: TestDb) {
        let s = &db.store;
        let once = |key: Option<&str>| InsertOpts { unique_key: key.map(Into::into), max_attempts: Some(1), ..Default::default() };
        let mut stopped = Vec::new();
        for key in [Some("u"), None] {
            let id = insert(s, job_with("step", once(key))).await.id;
            let running = claim_one(s, "step").await;
            assert_eq!(running.id, id);
            s.job_fail(crate::fail(&running, "boom", Duration::ZERO)).await.unwrap();
            stopped.push(id);
        }
        let parent = insert(s, job_with("other", InsertOpts::default())).await;
        let waiting = InsertOpts { unique_key: Some("u".into()), depends_on: vec![parent.id], ..Default::default() };
        let holder = insert(s, job_with("step", waiting)).await;
        assert_eq!(holder.state, JobState::Pending);
        let changed = s.driver().job_retry_many(stopped.clone(), vec![]).await.unwrap();
        let ids: Vec<i64> = changed.iter().map(|c| c.id).collect();
        assert_eq!(ids, [stopped[1]], "the keyless job retried, the key's job left");
        let kept = s.job_get(stopped[0]).await.unwrap().unwrap();
        assert_eq!(kept.state, JobState::Discarded);
    }
}

backend_case! {
    /// A bulk retry's two rules for listed jobs (the oldest of a sequence, the newest of a
    /// unique key) count only listed jobs that the other checks let through: a sequence's
    /// older job whose key another job holds, or a key's newer job whose sequence is busy, is
    /// never retried, and held back the one that could be (review of 7 Dec: nothing retried,
    /// at every submission).
    async fn a_bulk_retry_is_not_held_back_by_a_listed_job_it_cannot_retry(db: TestDb) {
        let s = &db.store;
        let opts = |seq: Option<&str>, key: Option<&str>| InsertOpts {
            sequence_key: seq.map(Into::into),
            unique_key: key.map(Into::into),
            ..Default::default()
        };
        // x1 (sequence s, key k1) and x2 (sequence s), both discarded; k1 then held by h.
        let x1 = insert(s, job_with("r", opts(Some("s"), Some("k1")))).await;
        let x2 = insert(s, job_with("r", opts(Some("s"), None))).await;
        assert_eq!(discard(s, "r").await.id, x1.id);
        assert_eq!(discard(s, "r").await.id, x2.id);
        let h = insert(s, job_with("other", opts(None, Some("k1")))).await;
        // y1 (key k2) and y2 (key k2, sequence t), both discarded; t then busy with b.
        let y1 = insert(s, job_with("r", opts(None, Some("k2")))).await;
        assert_eq!(discard(s, "r").await.id, y1.id);
        let y2 = insert(s, job_with("r", opts(Some("t"), Some("k2")))).await;
        assert_eq!(discard(s, "r").await.id, y2.id);
        let b = insert(s, job_with("other", opts(Some("t"), None))).await;
        assert_eq!((h.state, b.state), (JobState::Available, JobState::Available));

        let listed = JobFilter {
            kind: Some("r".into()),
            ..filter(&[JobState::Discarded])
        };
        let out = s.job_bulk(BulkAction::Retry, listed, i64::MAX).await.unwrap();
        assert_eq!((out.matched, out.changed), (4, 2), "{out:?}");
        assert_eq!(state_of(s, x1.id).await, Some(JobState::Discarded), "its key is held");
        assert_eq!(state_of(s, x2.id).await, Some(JobState::Available), "the sequence's one retried");
        assert_eq!(state_of(s, y1.id).await, Some(JobState::Available), "the key's one retried");
        assert_eq!(state_of(s, y2.id).await, Some(JobState::Discarded), "its sequence is busy");
    }
}
