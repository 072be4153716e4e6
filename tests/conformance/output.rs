//! Job output and progress (issue 15.5): recorded by the running attempt (fenced), capped,
//! read with the job.

use porter::store::*;
use porter::Error;
use serde_json::json;

use super::*;

fn record(
    row: &porter::JobRow,
    output: Option<serde_json::Value>,
    progress: Option<serde_json::Value>,
) -> JobRecordParams {
    JobRecordParams {
        fence: row.fence(),
        output,
        progress,
    }
}

backend_case! {
    /// The running attempt records an output and progress; one job read has them, a list does
    /// not, and each write replaces only what it gives.
    async fn output_and_progress_are_recorded_and_read_with_the_job(db: TestDb) {
        let s = &db.store;
        insert(s, job("out")).await;
        let row = claim_one(s, "out").await;
        assert_eq!(s.job_get(row.id).await.unwrap().unwrap().output, None);
        s.job_output_record(record(&row, None, Some(json!({"done": 1, "total": 4})))).await.unwrap();
        s.job_output_record(record(&row, Some(json!({"rows": [1, 2, 3]})), None)).await.unwrap();
        s.job_output_record(record(&row, None, Some(json!({"done": 4, "total": 4})))).await.unwrap();
        let got = s.job_get(row.id).await.unwrap().unwrap();
        assert_eq!(got.output, Some(json!({"rows": [1, 2, 3]})));
        assert_eq!(got.progress, Some(json!({"done": 4, "total": 4})));
        s.job_complete_many(vec![row.fence()]).await.unwrap();
        let done = s.job_get(row.id).await.unwrap().unwrap();
        assert_eq!(done.state, porter::JobState::Completed);
        assert_eq!(done.output, Some(json!({"rows": [1, 2, 3]})), "kept after the end");
        let listed = s.job_list(JobListParams::default()).await.unwrap();
        assert_eq!(listed[0].output, None, "lists leave outputs out");
        let many = s.job_output_get(vec![row.id, row.id + 100]).await.unwrap();
        assert_eq!(many.len(), 1);
        assert_eq!(many[&row.id].output, Some(json!({"rows": [1, 2, 3]})));
    }
}

backend_case! {
    /// A stale worker's output or progress (wrong attempt, wrong worker, job no longer running)
    /// changes nothing and is reported fenced.
    async fn output_writes_are_fenced(db: TestDb) {
        let s = &db.store;
        insert(s, job("out")).await;
        let row = claim_one(s, "out").await;
        s.job_output_record(record(&row, Some(json!("mine")), None)).await.unwrap();
        let mut other = row.clone();
        other.attempted_by = Some("worker-b".into());
        let mut older = row.clone();
        older.attempt -= 1;
        for stale in [&other, &older] {
            let err = s.job_output_record(record(stale, Some(json!("stale")), Some(json!(9)))).await.unwrap_err();
            assert!(matches!(err, Error::Fenced { .. }), "{err:?}");
        }
        // Rescued away from this worker: its late write changes nothing.
        s.job_fail(fail(&row, "boom", std::time::Duration::ZERO)).await.unwrap();
        let err = s.job_output_record(record(&row, Some(json!("late")), None)).await.unwrap_err();
        assert!(matches!(err, Error::Fenced { .. }), "{err:?}");
        let got = s.job_get(row.id).await.unwrap().unwrap();
        assert_eq!(got.output, Some(json!("mine")));
        assert_eq!(got.progress, None);
        // The next attempt records its own.
        let again = s.job_claim(claim("default", &["out"], 1, "worker-b")).await.unwrap().remove(0);
        s.job_output_record(record(&again, Some(json!("second")), None)).await.unwrap();
        assert_eq!(s.job_get(row.id).await.unwrap().unwrap().output, Some(json!("second")));
    }
}

backend_case! {
    /// An output over 256 KiB (or a progress over 16 KiB, or one with NUL) is refused with a
    /// clear error, and nothing is written; one at the cap is taken.
    async fn output_over_the_cap_is_refused_and_nothing_written(db: TestDb) {
        let s = &db.store;
        insert(s, job("out")).await;
        let row = claim_one(s, "out").await;
        // A JSON string of n characters is n + 2 bytes.
        let at_cap = json!("x".repeat(MAX_OUTPUT_BYTES - 2));
        let over = json!("x".repeat(MAX_OUTPUT_BYTES - 1));
        let err = s.job_output_record(record(&row, Some(over), None)).await.unwrap_err();
        assert!(matches!(err, Error::Invalid { .. }), "{err:?}");
        assert!(err.to_string().contains("output") && err.to_string().contains("262144"), "{err}");
        assert_eq!(s.job_get(row.id).await.unwrap().unwrap().output, None, "nothing written");
        let big_progress = json!("x".repeat(MAX_PROGRESS_BYTES));
        let err = s.job_output_record(record(&row, Some(json!(1)), Some(big_progress))).await.unwrap_err();
        assert!(matches!(err, Error::Invalid { .. }), "{err:?}");
        let err = s.job_output_record(record(&row, Some(json!({"k": "a\u{0}b"})), None)).await.unwrap_err();
        assert!(matches!(err, Error::Invalid { .. }), "{err:?}");
        let got = s.job_get(row.id).await.unwrap().unwrap();
        assert_eq!((got.output, got.progress), (None, None), "nothing written");
        s.job_output_record(record(&row, Some(at_cap.clone()), None)).await.unwrap();
        assert_eq!(s.job_get(row.id).await.unwrap().unwrap().output, Some(at_cap));
    }
}

backend_case! {
    /// A job's recorded output goes with the job when retention deletes it.
    async fn output_is_deleted_with_its_job(db: TestDb) {
        let s = &db.store;
        insert(s, job("out")).await;
        let row = claim_one(s, "out").await;
        s.job_output_record(record(&row, Some(json!("bye")), Some(json!(1)))).await.unwrap();
        s.job_complete_many(vec![row.fence()]).await.unwrap();
        let zero = std::time::Duration::ZERO;
        // Finalized "now": a retention of zero deletes it once the clock has moved on.
        eventually_deleted(s, zero).await;
        assert!(s.job_output_get(vec![row.id]).await.unwrap().is_empty());
    }
}

async fn eventually_deleted(s: &Store, zero: std::time::Duration) {
    crate::common::eventually("the finished job deleted", || async {
        s.job_delete_finalized(JobDeleteFinalizedParams {
            completed: zero,
            cancelled: zero,
            discarded: zero,
            limit: 100,
        })
        .await
        .unwrap();
        total(s).await == 0
    })
    .await;
}

/// Keeps what its job read of its parents' outputs.
#[derive(Clone, Default)]
struct ReadParents {
    seen: std::sync::Arc<std::sync::Mutex<Vec<porter::ParentOutput>>>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct ReadParentsArgs {}

impl porter::JobArgs for ReadParentsArgs {
    const KIND: &'static str = "read_parents";
}

#[async_trait::async_trait]
impl porter::Worker<ReadParentsArgs> for ReadParents {
    async fn work(&self, job: porter::Job<ReadParentsArgs>) -> Result<(), porter::JobError> {
        *self.seen.lock().unwrap() = job.parent_outputs().await?;
        Ok(())
    }
}

backend_case! {
    /// A job reads each parent's state and output as they were at one moment. They were read
    /// in two statements: a parent retried by an operator between them, its new run claimed
    /// and its output recorded, was answered `completed` (its first run's end) with the new
    /// run's output, a pair that never existed (both backends).
    async fn parent_outputs_are_read_at_one_moment(db: TestDb) {
        let s = db.store.clone();
        let gated = crate::chaos_gated_store::GatedStore::new(s.clone());
        let parent = insert(&s, job("out")).await;
        let child = insert(&s, porter::store::JobInsertParams {
            depends_on: vec![parent.id],
            ..job("read_parents")
        })
        .await;
        let first = claim_one(&s, "out").await;
        s.job_output_record(record(&first, Some(json!("run 1")), None)).await.unwrap();
        s.job_complete_many(vec![first.fence()]).await.unwrap();
        let row = claim_one(&s, "read_parents").await;
        assert_eq!(row.id, child.id);

        let by_hand = s.clone();
        gated.before_output_read(Box::new(move || {
            Box::pin(async move {
                porter::Client::new(by_hand.clone()).retry(parent.id).await.unwrap();
                let again = by_hand.job_claim(claim("default", &["out"], 1, "worker-b")).await.unwrap();
                by_hand.job_output_record(record(&again[0], Some(json!("run 2")), None)).await.unwrap();
            })
        }));
        let reader = ReadParents::default();
        let mut workers = porter::Workers::new();
        workers.add(reader.clone()).unwrap();
        let context = porter::JobContext::new(gated.store(), row.fence());
        let started = workers
            .get("read_parents")
            .unwrap()
            .start(row, tokio_util::sync::CancellationToken::new(), context)
            .unwrap_or_else(|_| panic!("the args decode"));
        started.work.await.unwrap();
        let seen = reader.seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 1);
        assert_eq!(
            (seen[0].state, seen[0].output.clone()),
            (porter::JobState::Running, Some(json!("run 2"))),
            "the parent as it is after its retry: {seen:?}"
        );
    }
}

backend_case! {
    /// One job read (`jobs show`, the dashboard's job page, `GET /admin/jobs/{id}`) gives its
    /// state and its output as they were at one moment. They were read in two statements: a
    /// job retried between them, its new run claimed and its output recorded, was shown
    /// `completed` (its first run's end) with the new run's output (both backends).
    async fn a_job_read_gives_its_state_and_output_at_one_moment(db: TestDb) {
        let s = db.store.clone();
        let gated = crate::chaos_gated_store::GatedStore::new(s.clone());
        let j = insert(&s, job("out")).await;
        let first = claim_one(&s, "out").await;
        s.job_output_record(record(&first, Some(json!("run 1")), None)).await.unwrap();
        s.job_complete_many(vec![first.fence()]).await.unwrap();
        let by_hand = s.clone();
        gated.before_output_read(Box::new(move || {
            Box::pin(async move {
                by_hand.job_retry(j.id).await.unwrap();
                let again = by_hand.job_claim(claim("default", &["out"], 1, "worker-b")).await.unwrap();
                by_hand.job_output_record(record(&again[0], Some(json!("run 2")), None)).await.unwrap();
            })
        }));
        let got = gated.store().job_get(j.id).await.unwrap().unwrap();
        let seen = (got.state, got.output.clone());
        assert!(
            seen == (porter::JobState::Completed, Some(json!("run 1")))
                || seen == (porter::JobState::Running, Some(json!("run 2"))),
            "a state and an output that never were together: {seen:?}"
        );
    }
}
