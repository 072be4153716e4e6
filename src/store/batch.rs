//! Batches in the store: what an insert takes ([`BatchInsertParams`], checked by
//! [`crate::batch::Batch`]) and what listings give ([`BatchRow`]).
//!
//! A batch is a row of `porter_batches` (id, callback_id, on_success, members, created_at),
//! its member jobs and its callback job, each tagged with the batch's id
//! (`porter_jobs.batch_id`). The callback is inserted `pending`, waiting for every member
//! through the dependencies of migration 0007 (after_any edges for `on_complete`), so it
//! becomes due exactly once, in the transaction that ends the last member; a trigger of
//! migration 0011 then writes the members' counts by end state into its args.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{JobInsertParams, MAX_PARENTS};
use crate::error::{Error, Result};
use crate::job::{JobRow, JobState};

/// A checked batch, ready to insert.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchInsertParams {
    /// The member jobs, in order.
    pub jobs: Vec<JobInsertParams>,
    /// The callback job. Its `depends_on` is filled at insert (the members), and `after_any`
    /// set from `on_success`; its args (a JSON object) get `batch_id` at insert and the counts
    /// when it becomes due.
    pub callback: JobInsertParams,
    /// Run the callback only if every member completed (else it is cancelled as soon as one
    /// member ends discarded or cancelled). `false`: run it once all ended, however.
    pub on_success: bool,
}

/// The callback's args keys porter writes (and refuses in the given args).
pub const RESERVED_ARGS: [&str; 4] = ["batch_id", "completed", "cancelled", "discarded"];

/// A batch has 1 to [`MAX_PARENTS`] jobs.
pub(crate) fn check_member_count(jobs: usize) -> Result<()> {
    if jobs == 0 {
        return Err(Error::invalid(
            "batch",
            "has no jobs; a batch needs at least one (its callback waits for them)",
        ));
    }
    if jobs > MAX_PARENTS {
        return Err(Error::invalid(
            "batch",
            format!(
                "has {jobs} jobs; a batch has at most {MAX_PARENTS} (its callback waits for each)"
            ),
        ));
    }
    Ok(())
}

impl BatchInsertParams {
    /// Checks params as [`crate::batch::Batch::params`] makes them (the fields are public, so
    /// params may be built by hand): the store calls it before it writes anything.
    pub fn check(&self) -> Result<()> {
        check_member_count(self.jobs.len())?;
        for (i, job) in self.jobs.iter().enumerate() {
            job.check()
                .map_err(|e| Error::invalid("batch", format!("job {i}: {e}")))?;
        }
        let callback = &self.callback;
        callback
            .check()
            .map_err(|e| Error::invalid("batch", format!("callback: {e}")))?;
        let Some(args) = callback.args.as_object() else {
            return Err(Error::invalid(
                "batch",
                "callback: its args must be a JSON object (porter adds batch_id and the counts)",
            ));
        };
        if let Some(key) = RESERVED_ARGS.iter().find(|k| args.contains_key(**k)) {
            return Err(Error::invalid(
                "batch",
                format!("callback: its args may not hold {key:?}: porter writes it"),
            ));
        }
        if !callback.depends_on.is_empty() || callback.sequence_key.is_some() {
            return Err(Error::invalid(
                "batch",
                "callback: it waits for the batch's jobs; it takes no depends_on or sequence_key",
            ));
        }
        Ok(())
    }

    /// The queues and kinds a batch needs served, each once, with how many of its jobs have
    /// it: its callback's first (counting the jobs of the same queue and kind, 0 when none),
    /// then the others of its jobs'.
    pub fn serving_needed(&self) -> Vec<((String, String), u64)> {
        let mut jobs: BTreeMap<(String, String), u64> = BTreeMap::new();
        for j in &self.jobs {
            *jobs.entry((j.queue.clone(), j.kind.clone())).or_default() += 1;
        }
        let callback = (self.callback.queue.clone(), self.callback.kind.clone());
        let sharing = jobs.remove(&callback).unwrap_or(0);
        std::iter::once((callback, sharing)).chain(jobs).collect()
    }

    /// The callback's params for a batch of this id whose members got these ids.
    pub fn callback_for(&self, batch_id: i64, member_ids: Vec<i64>) -> JobInsertParams {
        let mut callback = self.callback.clone();
        callback.depends_on = member_ids;
        callback.after_any = !self.on_success;
        if let Some(args) = callback.args.as_object_mut() {
            args.insert("batch_id".into(), batch_id.into());
        }
        callback
    }

    /// The error for a member (`index`; the callback when it is past the members) whose unique
    /// key an unfinished job already holds: a batch is inserted whole or not at all, so it is
    /// refused. `own`: the ids of the members inserted so far, in order. A holder among them is
    /// named as that member: its id is undone with the refusal (until 5 Dec the error named
    /// it, an id no job kept).
    pub fn unique_key_held(&self, index: usize, holder: &JobRow, own: &[i64]) -> Error {
        let (who, job) = match self.jobs.get(index) {
            Some(job) => (format!("batch job {index}"), job),
            None => ("the batch's callback".to_string(), &self.callback),
        };
        let key = job.unique_key.as_deref().unwrap_or_default();
        let held_by = match own.iter().position(|id| *id == holder.id) {
            Some(at) => format!("is batch job {at}'s too"),
            None => format!("is held by job {}", holder.id),
        };
        Error::Conflict(format!(
            "{who}: its unique key {key:?} {held_by}; nothing was inserted"
        ))
    }
}

/// A batch just inserted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchInserted {
    /// The batch's id.
    pub id: i64,
    /// Its member jobs, in order.
    pub jobs: Vec<JobRow>,
    /// Its callback job (`pending`).
    pub callback: JobRow,
    /// One line per queue and kind of its jobs or its callback that no live worker serves at
    /// insert ([`Store::batch_insert`](crate::Store::batch_insert) asks after its commit, the
    /// `_tx` inserts on the caller's connection; the jobs are in either way and wait until a
    /// worker serving them runs).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

impl BatchInserted {
    /// Records (and logs) a warning for each entry of
    /// [`BatchInsertParams::serving_needed`] that no live worker serves (`served` false).
    pub fn warn_unserved(&mut self, needed: Vec<((String, String), u64)>, served: &[bool]) {
        for (i, (((queue, kind), jobs), served)) in needed.into_iter().zip(served).enumerate() {
            if *served {
                continue;
            }
            let warning = if i == 0 {
                // The callback's, with the jobs of its queue and kind.
                let with = match jobs {
                    0 => String::new(),
                    1 => " and 1 job".to_string(),
                    n => format!(" and {n} jobs"),
                };
                format!(
                    "batch {}, callback job {}{with}: {}",
                    self.id,
                    self.callback.id,
                    super::UnservedRow::warning(&queue, &kind, jobs + 1)
                )
            } else {
                format!(
                    "batch {}, {jobs} {}: {}",
                    self.id,
                    if jobs == 1 { "job" } else { "jobs" },
                    super::UnservedRow::warning(&queue, &kind, jobs)
                )
            };
            tracing::warn!(batch_id = self.id, queue, kind, "{warning}");
            self.warnings.push(warning);
        }
    }
}

/// A batch as `porter batches list` and `show` give it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchRow {
    /// Its id.
    pub id: i64,
    /// When it was inserted.
    pub created_at: DateTime<Utc>,
    /// `true`: the callback runs only if every member completed; `false`: once all ended.
    pub on_success: bool,
    /// How many members it was inserted with.
    pub members: i64,
    /// Its members by state now (only states that have members; members retention deleted
    /// are no longer counted).
    pub counts: BTreeMap<JobState, i64>,
    /// The callback job's id.
    pub callback_id: Option<i64>,
    /// Its kind.
    pub callback_kind: Option<String>,
    /// Its state: `pending` until the members ended, then as any job (`cancelled` when
    /// `on_success` and a member did not complete).
    pub callback_state: Option<JobState>,
}

impl BatchRow {
    /// When its callback runs, by the builder's name: `on_success` or `on_complete`.
    pub fn mode(&self) -> &'static str {
        if self.on_success {
            "on_success"
        } else {
            "on_complete"
        }
    }
}

/// One row of a batch listing: id, created_at, on_success, members, callback id, kind and
/// state, then a member state (none when no member is left) and its count.
pub type BatchCountRow = (
    i64,
    DateTime<Utc>,
    bool,
    i64,
    Option<i64>,
    Option<String>,
    Option<String>,
    Option<String>,
    i64,
);

/// Folds listing rows into batches, in the order their ids first appear.
pub fn fold_batch_rows(rows: Vec<BatchCountRow>) -> Result<Vec<BatchRow>> {
    let mut out: Vec<BatchRow> = Vec::new();
    for (id, created_at, on_success, members, cb_id, cb_kind, cb_state, state, count) in rows {
        if out.last().map(|b| b.id) != Some(id) {
            out.push(BatchRow {
                id,
                created_at,
                on_success,
                members,
                counts: BTreeMap::new(),
                callback_id: cb_id,
                callback_kind: cb_kind,
                callback_state: cb_state.map(|s| s.parse()).transpose()?,
            });
        }
        let b = out.last_mut().expect("just pushed");
        if let Some(state) = state {
            b.counts.insert(state.parse()?, count);
        }
    }
    Ok(out)
}
