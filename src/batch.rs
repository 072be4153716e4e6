//! Batches: a set of jobs and one callback job, run once when they have all ended.
//!
//! ```
//! use porter::batch::Batch;
//! # #[derive(serde::Serialize, serde::Deserialize)] struct Resize { image: u32 }
//! # impl porter::JobArgs for Resize { const KIND: &'static str = "resize"; }
//! # #[derive(serde::Serialize, serde::Deserialize)] struct Publish { album: u32 }
//! # impl porter::JobArgs for Publish { const KIND: &'static str = "publish"; }
//! let mut batch = Batch::new();
//! for image in 1..=3 {
//!     batch.push(&Resize { image });
//! }
//! let batch = batch.on_success(&Publish { album: 7 });
//! // client.insert_batch(batch).await? inserts the three jobs and the callback, or nothing.
//! # let _ = batch.params().unwrap();
//! ```
//!
//! * [`Batch::on_complete`]: the callback runs once every member has ended, however.
//! * [`Batch::on_success`]: the callback runs only if every member completed; as soon as one
//!   ends discarded or cancelled, the callback is cancelled (its error names that member).
//!
//! The callback's args are the given ones (a JSON object) plus `batch_id`, and, written when
//! it becomes due, the members' counts by end state: `completed`, `cancelled`, `discarded`.
//!
//! **Exactly once.** The callback is inserted with the batch, `pending`, as a job that depends
//! on every member (the dependencies of [`InsertOpts::depends_on`], with `after_any` for
//! `on_complete`). The database makes it due in the transaction that ends the last member,
//! whichever process that is: on PostgreSQL every member's end updates the callback's row, so
//! ends at the same moment take turns on it and exactly one sees the last one; on SQLite the
//! one writer serializes them. So the callback job exists once from the start (it is never
//! inserted later, twice or not at all) and leaves `pending` once: to run, or cancelled.

use crate::error::{Error, Result};
use crate::job::{InsertOpts, JobArgs};
use crate::store::batch::{check_member_count, BatchInsertParams};
use crate::store::JobInsertParams;

pub use crate::store::batch::{BatchInserted, BatchRow, RESERVED_ARGS};

/// A batch being built: member jobs and a callback.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    jobs: Vec<Result<JobInsertParams, String>>,
    callback: Option<(Result<JobInsertParams, String>, bool)>,
}

fn typed<A: JobArgs>(args: &A, opts: Option<InsertOpts>) -> Result<JobInsertParams, String> {
    let value = crate::job::to_json(args).map_err(|e| format!("invalid args: {e}"))?;
    let opts = match opts {
        Some(own) => own.over(args.insert_opts()),
        None => args.insert_opts(),
    };
    JobInsertParams::new(A::KIND, value, opts).map_err(|e| e.to_string())
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Self {
        Batch::default()
    }

    /// Adds a typed member job, with the options its type gives.
    pub fn job<A: JobArgs>(mut self, args: &A) -> Self {
        self.push(args);
        self
    }

    /// Adds a typed member job (for loops).
    pub fn push<A: JobArgs>(&mut self, args: &A) -> &mut Self {
        self.jobs.push(typed(args, None));
        self
    }

    /// Adds a typed member job with these options over its type's, field by field, as
    /// [`crate::Client::insert`] takes them ([`InsertOpts::over`]). (Until 6 Dec they replaced
    /// the type's whole.)
    pub fn job_with<A: JobArgs>(mut self, args: &A, opts: InsertOpts) -> Self {
        self.jobs.push(typed(args, Some(opts)));
        self
    }

    /// Adds a member job already checked into params (checked again, as params may be built
    /// by hand: a bad one is named when the batch is checked, as a bad [`Batch::push`] is).
    pub fn push_params(&mut self, params: JobInsertParams) -> &mut Self {
        let checked = params.check().map(|()| params).map_err(|e| e.to_string());
        self.jobs.push(checked);
        self
    }

    /// The callback runs once every member has ended, however.
    pub fn on_complete<A: JobArgs>(mut self, args: &A) -> Self {
        self.callback = Some((typed(args, None), false));
        self
    }

    /// The callback runs only if every member completed.
    pub fn on_success<A: JobArgs>(mut self, args: &A) -> Self {
        self.callback = Some((typed(args, None), true));
        self
    }

    /// The callback by kind name, JSON args (an object) and options; `on_success` as
    /// [`Batch::on_success`], else [`Batch::on_complete`].
    pub fn callback_raw(
        mut self,
        kind: &str,
        args: serde_json::Value,
        opts: InsertOpts,
        on_success: bool,
    ) -> Self {
        let params = JobInsertParams::new(kind, args, opts).map_err(|e| e.to_string());
        self.callback = Some((params, on_success));
        self
    }

    /// Checks the batch into insert params; nothing is written.
    pub fn params(self) -> Result<BatchInsertParams> {
        check_member_count(self.jobs.len())?;
        let jobs = self
            .jobs
            .into_iter()
            .enumerate()
            .map(|(i, j)| j.map_err(|e| Error::invalid("batch", format!("job {i}: {e}"))))
            .collect::<Result<Vec<_>>>()?;
        let Some((callback, on_success)) = self.callback else {
            return Err(Error::invalid(
                "batch",
                "has no callback (on_complete or on_success)",
            ));
        };
        let callback = callback.map_err(|e| Error::invalid("batch", format!("callback: {e}")))?;
        let params = BatchInsertParams {
            jobs,
            callback,
            on_success,
        };
        params.check()?;
        Ok(params)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MAX_PARENTS;
    use serde_json::json;

    fn job(kind: &str) -> JobInsertParams {
        JobInsertParams::new(kind, json!({}), InsertOpts::default()).unwrap()
    }

    /// A member's own options go over its type's field by field, as `Client::insert` and a
    /// workflow step's do: they replaced them whole, so a member of a type that asks for one
    /// attempt in its own queue, given a priority, ran 25 times in `default` (review of 6 Dec).
    #[test]
    fn a_members_options_go_over_its_types_field_by_field() {
        use crate::job::test_args::Mail;
        let p = Batch::new()
            .job_with(
                &Mail {},
                InsertOpts {
                    priority: Some(2),
                    ..Default::default()
                },
            )
            .on_complete(&Mail {})
            .params()
            .unwrap();
        let member = &p.jobs[0];
        assert_eq!(
            (member.queue.as_str(), member.max_attempts, member.priority),
            ("emails", 1, 2)
        );
    }

    #[test]
    fn bad_batches_are_refused_before_anything_is_written() {
        let cb = |b: Batch| b.callback_raw("done", json!({}), InsertOpts::default(), false);
        let err = |b: Batch| b.params().unwrap_err().to_string();
        assert!(err(cb(Batch::new())).contains("no jobs"));
        let mut one = Batch::new();
        one.push_params(job("a"));
        assert!(err(one.clone()).contains("no callback"));
        let reserved =
            one.clone()
                .callback_raw("done", json!({"completed": 1}), InsertOpts::default(), true);
        assert!(err(reserved).contains("\"completed\""));
        let not_object = one
            .clone()
            .callback_raw("done", json!([1]), InsertOpts::default(), true);
        assert!(err(not_object).contains("JSON object"));
        let bad_kind = one
            .clone()
            .callback_raw("Bad Kind", json!({}), InsertOpts::default(), true);
        assert!(err(bad_kind).contains("callback"));
        for key in RESERVED_ARGS {
            let reserved =
                one.clone()
                    .callback_raw("done", json!({ key: 1 }), InsertOpts::default(), true);
            assert!(err(reserved).contains(&format!("{key:?}")), "{key}");
        }
        // A bad member built by hand is named first, as one pushed by value is (until 5 Dec
        // the batch's check found it only after the callback's).
        let mut by_hand = Batch::new();
        by_hand.push_params(JobInsertParams {
            kind: "Bad Kind".into(),
            ..job("a")
        });
        let message = err(by_hand);
        assert!(
            message.contains("job 0") && message.contains("kind"),
            "{message}"
        );
        let mut most = Batch::new();
        for _ in 0..MAX_PARENTS {
            most.push_params(job("a"));
        }
        assert!(cb(most.clone()).params().is_ok(), "{MAX_PARENTS} jobs");
        most.push_params(job("a"));
        assert!(err(cb(most)).contains(&format!("at most {MAX_PARENTS}")));
    }
}
