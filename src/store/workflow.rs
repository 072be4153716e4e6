//! Workflows in the store: what an insert takes ([`WorkflowInsertParams`], checked by
//! [`crate::workflow::Workflow`]) and what listings give ([`WorkflowRow`], [`WorkflowDetail`]).
//!
//! A workflow is a row of `porter_workflows` (id, name, created_at) and its jobs, each tagged
//! with the workflow's id and its step's name (`porter_jobs.workflow_id`, `workflow_step`) and
//! listed in `porter_workflow_steps` (workflow, step, job), a table written once at insert that
//! finds a workflow's jobs (migration 0028: an index of `porter_jobs` took a new entry at every
//! claim and completion of a step on PostgreSQL). A step waits for earlier steps through the dependencies of migration 0007, so a workflow is
//! nothing but jobs with parents once inserted: fenced, rescued and promoted like any other.

use std::collections::BTreeMap;
use std::ops::Range;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::JobInsertParams;
use crate::error::{Error, Result};
use crate::job::{JobRow, JobState};

/// A checked workflow, ready to insert: its name and its steps in insertion order.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkflowInsertParams {
    /// The workflow's name (1 to 255 bytes, no NUL; not unique).
    pub name: String,
    /// The steps, each after the steps it waits for.
    pub steps: Vec<WorkflowStepParams>,
}

/// One checked step.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkflowStepParams {
    /// The step's name, unique within its workflow.
    pub name: String,
    /// The job. Its `depends_on` holds, besides jobs outside the workflow (positive ids), one
    /// placeholder per earlier step it waits for: `-(index + 1)`, which the insert replaces by
    /// that step's job id once it has one ([`WorkflowInsertParams::resolved`]).
    pub job: JobInsertParams,
}

/// Most steps in one workflow (each is a job inserted in the one transaction).
pub const MAX_STEPS: usize = 100_000;

/// A workflow or step name: 1 to 255 bytes, no NUL.
pub(crate) fn check_text(what: &'static str, text: &str) -> Result<()> {
    if text.is_empty() || text.len() > 255 {
        return Err(Error::invalid(
            what,
            format!("{text:?} must be 1 to 255 bytes"),
        ));
    }
    if text.contains('\0') {
        return Err(Error::invalid(what, "contains a NUL character"));
    }
    Ok(())
}

/// A workflow has 1 to [`MAX_STEPS`] steps.
pub(crate) fn check_step_count(name: &str, steps: usize) -> Result<()> {
    if steps == 0 {
        return Err(Error::invalid(
            "workflow",
            format!("{name:?} has no steps; a workflow needs at least one"),
        ));
    }
    if steps > MAX_STEPS {
        return Err(Error::invalid(
            "workflow",
            format!("{name:?} has {steps} steps; a workflow has at most {MAX_STEPS}"),
        ));
    }
    Ok(())
}

/// A placeholder for the job of the step at `index`, in a step's `depends_on`.
pub(crate) fn step_placeholder(index: usize) -> i64 {
    -(index as i64 + 1)
}

impl WorkflowInsertParams {
    /// Checks params as [`crate::workflow::Workflow::params`] makes them (the fields are
    /// public, so params may be built by hand): the store calls it before it writes anything.
    /// A step waits only for jobs (positive ids) and for earlier steps (their placeholders).
    pub fn check(&self) -> Result<()> {
        check_text("workflow name", &self.name)?;
        check_step_count(&self.name, self.steps.len())?;
        let mut names = std::collections::HashSet::with_capacity(self.steps.len());
        for (i, step) in self.steps.iter().enumerate() {
            check_text("step name", &step.name)?;
            if !names.insert(step.name.as_str()) {
                return Err(Error::invalid(
                    "workflow",
                    format!("two steps are named {:?}; step names are unique", step.name),
                ));
            }
            // A placeholder -(index + 1) names the step at index, which must come before.
            if let Some(id) = step
                .job
                .depends_on
                .iter()
                .find(|&&id| id == 0 || (id < 0 && (-(id + 1)) as u64 >= i as u64))
            {
                return Err(Error::invalid(
                    "depends_on",
                    format!(
                        "step {:?}: {id} is neither a job id nor an earlier step's placeholder",
                        step.name
                    ),
                ));
            }
            step.job.check().map_err(|e| match e {
                Error::Invalid { what, message } => Error::Invalid {
                    what,
                    message: format!("step {:?}: {message}", step.name),
                },
                other => other,
            })?;
        }
        Ok(())
    }

    /// Per step, whether a later step of the workflow waits for it (it is inserted marked as
    /// having dependents).
    pub(crate) fn steps_with_children(&self) -> Vec<bool> {
        let mut has_children = vec![false; self.steps.len()];
        for step in &self.steps {
            for &p in step.job.depends_on.iter().filter(|&&p| p < 0) {
                has_children[(-p - 1) as usize] = true;
            }
        }
        has_children
    }

    /// The jobs outside the workflow its steps wait for, in id order, each once.
    pub fn outside_parents(&self) -> Vec<i64> {
        let mut outside: Vec<i64> = self
            .steps
            .iter()
            .flat_map(|s| s.job.depends_on.iter().copied())
            .filter(|&p| p > 0)
            .collect();
        outside.sort_unstable();
        outside.dedup();
        outside
    }

    /// The queues and kinds its steps need served, each with how many steps have it.
    pub fn serving_needed(&self) -> Vec<((String, String), u64)> {
        let mut pairs: BTreeMap<(String, String), u64> = BTreeMap::new();
        for s in &self.steps {
            *pairs
                .entry((s.job.queue.clone(), s.job.kind.clone()))
                .or_default() += 1;
        }
        pairs.into_iter().collect()
    }

    /// The steps in runs that can be inserted together: no step waits for a step of its own
    /// run (a run's steps only wait for steps of earlier runs).
    pub fn runs(&self) -> Vec<Range<usize>> {
        let mut runs = Vec::new();
        let mut start = 0;
        for (i, step) in self.steps.iter().enumerate() {
            let waits_inside = step
                .job
                .depends_on
                .iter()
                .any(|&id| id < 0 && (-id - 1) as usize >= start);
            if waits_inside && i > start {
                runs.push(start..i);
                start = i;
            }
        }
        if start < self.steps.len() {
            runs.push(start..self.steps.len());
        }
        runs
    }

    /// Refuses a run whose steps name by id a job this insert gave an earlier step (`own`): a
    /// parent named by id is a job outside the workflow, inserted before it (as its own, the
    /// job was not marked as having dependents, and its child waited for good).
    pub(crate) fn refuse_own_ids(
        &self,
        run: Range<usize>,
        own: impl Fn(i64) -> bool,
    ) -> Result<()> {
        match run
            .flat_map(|i| self.steps[i].job.depends_on.iter().copied())
            .find(|&p| p > 0 && own(p))
        {
            Some(p) => Err(super::missing_parent(p)),
            None => Ok(()),
        }
    }

    /// Step `index`'s job with its placeholders replaced by the job ids of the steps inserted
    /// so far (`ids`, by step index).
    pub fn resolved(&self, index: usize, ids: &[i64]) -> JobInsertParams {
        let mut job = self.steps[index].job.clone();
        for id in &mut job.depends_on {
            if *id < 0 {
                *id = ids[(-*id - 1) as usize];
            }
        }
        job
    }

    /// The error for a step whose unique key an unfinished job already holds: a workflow is
    /// inserted whole or not at all, so it is refused. `own`: the ids of the steps inserted so
    /// far, in step order. A holder among them is named as that step: its id is undone with
    /// the refusal (until 5 Dec the error named it, an id no job kept).
    pub fn unique_key_held(&self, index: usize, holder: &JobRow, own: &[i64]) -> Error {
        let step = &self.steps[index];
        let key = step.job.unique_key.as_deref().unwrap_or_default();
        let held_by = match own.iter().position(|id| *id == holder.id) {
            Some(at) => format!("as step {:?} of this workflow has", self.steps[at].name),
            None => format!("held by job {}", holder.id),
        };
        Error::Conflict(format!(
            "workflow {:?}: step {:?} has unique key {key:?}, {held_by}; nothing was inserted",
            self.name, step.name
        ))
    }
}

/// A workflow just inserted: its id and its steps' jobs, in insertion order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkflowInserted {
    /// The workflow's id.
    pub id: i64,
    /// Its name.
    pub name: String,
    /// (step name, its job) per step, in insertion order.
    pub steps: Vec<(String, JobRow)>,
    /// One line per queue and kind of its steps that no live worker serves at insert
    /// ([`Store::workflow_insert`](crate::Store::workflow_insert) asks after its commit, the
    /// `_tx` inserts on the caller's connection; the steps are in either way and wait until a
    /// worker serving them runs).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

impl WorkflowInserted {
    /// The job of a step, by the step's name.
    pub fn job(&self, step: &str) -> Option<&JobRow> {
        self.steps.iter().find(|(s, _)| s == step).map(|(_, j)| j)
    }
}

impl WorkflowInserted {
    /// Records (and logs) a warning for each entry of
    /// [`WorkflowInsertParams::serving_needed`] that no live worker serves (`served` false).
    pub fn warn_unserved(&mut self, needed: Vec<((String, String), u64)>, served: &[bool]) {
        for (((queue, kind), n), served) in needed.into_iter().zip(served) {
            if *served {
                continue;
            }
            let warning = format!(
                "workflow {}, {n} {}: {}",
                self.id,
                if n == 1 { "step" } else { "steps" },
                super::UnservedRow::warning(&queue, &kind, n)
            );
            tracing::warn!(workflow_id = self.id, queue, kind, "{warning}");
            self.warnings.push(warning);
        }
    }
}

/// A workflow as `porter workflows list` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkflowRow {
    /// Its id.
    pub id: i64,
    /// Its name.
    pub name: String,
    /// When it was inserted.
    pub created_at: DateTime<Utc>,
    /// How many steps it has (jobs retention deleted are no longer counted).
    pub total: i64,
    /// Its steps by state (only states that have steps).
    pub counts: BTreeMap<JobState, i64>,
}

impl WorkflowRow {
    /// Whether every step is final (completed, cancelled or discarded).
    pub fn finished(&self) -> bool {
        self.counts.keys().all(|s| s.is_final())
    }
}

/// One step of a workflow, as `porter workflows show` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkflowStep {
    /// The step's name.
    pub step: String,
    /// Its job's id.
    pub job_id: i64,
    /// The job's kind.
    pub kind: String,
    /// Its state now.
    pub state: JobState,
    /// Attempts started.
    pub attempt: i32,
    /// When its latest attempt started.
    pub attempted_at: Option<DateTime<Utc>>,
    /// When it ended.
    pub finalized_at: Option<DateTime<Utc>>,
    /// What it waits (or waited) for: the names of earlier steps, and `job N` for a job
    /// outside the workflow.
    pub after: Vec<String>,
    /// The job ids of the same parents, in the same order (a step may be named `job N`, so
    /// only the ids say which parent is which).
    #[serde(default)]
    pub after_ids: Vec<i64>,
    /// How many parents it has in all, when the page read only its first ones
    /// ([`StepParents::First`]); `None` otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parents_total: Option<u64>,
}

/// A workflow with its steps (or a page of them), in insertion order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkflowDetail {
    /// The workflow and its counts (of all its steps, whatever page `steps` is).
    #[serde(flatten)]
    pub workflow: WorkflowRow,
    /// Its steps: all of them, or the page asked for ([`StepPage`]).
    pub steps: Vec<WorkflowStep>,
    /// The last job id of this page when more steps follow it (ask again with it as
    /// `after_id`); `null` on the last page.
    #[serde(default)]
    pub next_after_id: Option<i64>,
}

/// Which of a workflow's steps to read, in insertion (job id) order: those after the job
/// `after_id`, the first `offset` of them skipped, at most `limit` (all when `None`); and which
/// of each one's parents (`parents`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StepPage {
    /// Only steps whose job id is above this one (0: from the first).
    pub after_id: i64,
    /// How many of those to skip first (the dashboard's page numbers).
    pub offset: u32,
    /// At most this many; `None` for every one.
    pub limit: Option<u32>,
    /// Which of each step's parents are read: a step may wait for 10,000 jobs, and a page of
    /// 200 such steps named 2,000,000 parents.
    pub parents: StepParents,
    /// Leave the workflow's counts unread (the detail's counts and total are then empty): a
    /// reader that has them from its first page. Counting reads every step of the workflow, and
    /// the admin route, which reads a page a few steps at a time, counted a 100,000-step
    /// workflow a thousand times for one page (review of 7 Dec). A page with an offset counts
    /// on PostgreSQL anyway, to place it.
    pub skip_counts: bool,
}

/// Which of each step's parents a page of steps reads ([`StepPage::parents`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StepParents {
    /// Every one.
    #[default]
    All,
    /// The first this many (by id, at least 1), with how many the step has in all
    /// ([`WorkflowStep::parents_total`]): what a table's cell names.
    First(u32),
    /// Only those whose ids lie between the page's first step's and its last's, without a
    /// count: every edge between the page's own steps, what a graph of the page draws.
    InPage,
}

impl StepPage {
    /// Every step.
    pub fn all() -> Self {
        StepPage::default()
    }
}

/// A step's job as read from the store, before its edges are named.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkflowJobRow {
    /// The job's id.
    pub id: i64,
    /// Its step name.
    pub step: String,
    /// Its kind.
    pub kind: String,
    /// Its state.
    pub state: JobState,
    /// Attempts started.
    pub attempt: i32,
    /// When its latest attempt started.
    pub attempted_at: Option<DateTime<Utc>>,
    /// When it ended.
    pub finalized_at: Option<DateTime<Utc>>,
}

/// One edge of a step a driver reads: the step's job (child), its parent's job, and the
/// parent's step name when the parent is a step of the same workflow.
pub type WorkflowEdgeRow = (i64, i64, Option<String>);

/// The raw pieces of a workflow (or of a page of its steps) a driver reads: its row, its
/// steps' counts by state (all of them), the page's jobs by id, and their edges.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkflowParts {
    /// id, name, created_at (its counts are filled from `counts`).
    pub row: WorkflowRow,
    /// How many of all its steps' jobs are in each state.
    pub counts: Vec<(JobState, i64)>,
    /// The page's jobs, by id.
    pub jobs: Vec<WorkflowJobRow>,
    /// Every edge whose child is one of `jobs` (those [`StepPage::parents`] asks for), by
    /// child then parent.
    pub edges: Vec<WorkflowEdgeRow>,
    /// With [`StepParents::First`]: how many parents each job that has some has in all.
    pub parents_total: BTreeMap<i64, u64>,
}

impl WorkflowParts {
    /// The detail: counts, and each step's parents named. `next_after_id` is left empty: only
    /// the caller knows whether it asked for a page.
    pub fn detail(self) -> WorkflowDetail {
        let mut after: BTreeMap<i64, (Vec<String>, Vec<i64>)> = BTreeMap::new();
        for (child, parent, step) in self.edges {
            let name = match step {
                Some(step) => step,
                None => format!("job {parent}"),
            };
            let (names, ids) = after.entry(child).or_default();
            names.push(name);
            ids.push(parent);
        }
        let mut totals = self.parents_total;
        let mut row = self.row;
        row.counts = self.counts.into_iter().filter(|(_, n)| *n > 0).collect();
        row.total = row.counts.values().sum();
        let steps = self
            .jobs
            .into_iter()
            .map(|j| {
                let (after, after_ids) = after.remove(&j.id).unwrap_or_default();
                WorkflowStep {
                    parents_total: totals.remove(&j.id),
                    after,
                    after_ids,
                    step: j.step,
                    job_id: j.id,
                    kind: j.kind,
                    state: j.state,
                    attempt: j.attempt,
                    attempted_at: j.attempted_at,
                    finalized_at: j.finalized_at,
                }
            })
            .collect();
        WorkflowDetail {
            workflow: row,
            steps,
            next_after_id: None,
        }
    }
}

/// One row of a workflow listing: id, name, created_at, a state (none for a workflow with no
/// jobs left) and how many of its jobs are in it.
pub type WorkflowCountRow = (i64, String, DateTime<Utc>, Option<String>, i64);

/// Folds `(id, name, created_at, state, count)` rows (a workflow with no jobs left has one row
/// with no state) into workflows, in the order their ids first appear.
pub fn fold_workflow_rows(rows: Vec<WorkflowCountRow>) -> Result<Vec<WorkflowRow>> {
    let mut out: Vec<WorkflowRow> = Vec::new();
    for (id, name, created_at, state, count) in rows {
        if out.last().map(|w| w.id) != Some(id) {
            out.push(WorkflowRow {
                id,
                name,
                created_at,
                total: 0,
                counts: BTreeMap::new(),
            });
        }
        let w = out.last_mut().expect("just pushed");
        if let Some(state) = state {
            w.counts.insert(state.parse()?, count);
            w.total += count;
        }
    }
    Ok(out)
}

/// The workflow a job is a step of (its page links to it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobWorkflow {
    /// The workflow's id.
    pub id: i64,
    /// Its name.
    pub name: String,
    /// The job's step name.
    pub step: String,
}

/// What cancelling a workflow did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkflowCancelled {
    /// The workflow's id.
    pub id: i64,
    /// Steps cancelled at once (they had not started, or were waiting to retry).
    pub cancelled: u64,
    /// Running steps asked to stop (their workers were told; they end `cancelled`).
    pub cancel_requested: u64,
}
