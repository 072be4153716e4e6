//! Workflows: named steps wired by name, inserted as one graph in one transaction.
//!
//! ```
//! use porter::workflow::{Step, Workflow};
//! # #[derive(serde::Serialize, serde::Deserialize)] struct Fetch { url: String }
//! # impl porter::JobArgs for Fetch { const KIND: &'static str = "fetch"; }
//! # #[derive(serde::Serialize, serde::Deserialize)] struct Report {}
//! # impl porter::JobArgs for Report { const KIND: &'static str = "report"; }
//! let workflow = Workflow::new("nightly")
//!     .step(Step::new("fetch_a", &Fetch { url: "https://a.example".into() }))
//!     .step(Step::new("fetch_b", &Fetch { url: "https://b.example".into() }))
//!     .step(Step::new("report", &Report {}).after(["fetch_a", "fetch_b"]));
//! // client.insert_workflow(workflow).await? inserts the three jobs, or none of them.
//! # let _ = workflow.params().unwrap();
//! ```
//!
//! A step waits for the steps it names with [`Step::after`], which must have been added before
//! it: a step cannot wait for itself or for a later step, so a workflow has no cycles by
//! construction. A step runs once every step it waits for completed; a step it waits for
//! ending discarded or cancelled cancels it, and so on down the graph (unless
//! [`Step::after_any`]). This is the dependency mechanism of [`InsertOpts::depends_on`], with
//! the ids filled in at insert.
//!
//! The whole graph is inserted in one transaction ([`Client::insert_workflow`]), or inside the
//! caller's ([`Client::insert_workflow_tx_sqlite`], [`Client::insert_workflow_tx_pg`]): every
//! step or none. Bad input is refused before anything is written: an empty workflow, two steps
//! of one name, a step waiting for a step not added before it, any step's own bad options. A
//! step whose unique key an unfinished job holds refuses the whole workflow
//! ([`Error::Conflict`]).
//!
//! [`Client::insert_workflow`]: crate::Client::insert_workflow
//! [`Client::insert_workflow_tx_sqlite`]: crate::Client::insert_workflow_tx_sqlite
//! [`Client::insert_workflow_tx_pg`]: crate::Client::insert_workflow_tx_pg

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::job::{InsertOpts, JobArgs};
use crate::store::workflow::{
    check_step_count, check_text, step_placeholder, WorkflowInsertParams, WorkflowStepParams,
};
use crate::store::JobInsertParams;

pub use crate::store::workflow::{
    StepPage, StepParents, WorkflowCancelled, WorkflowDetail, WorkflowInserted, WorkflowRow,
    WorkflowStep, MAX_STEPS,
};

/// A workflow being built: a name and steps in order.
#[derive(Debug, Clone)]
pub struct Workflow {
    name: String,
    steps: Vec<Step>,
}

/// One step: a name, a job (kind, args, options) and the earlier steps it waits for.
#[derive(Debug, Clone)]
pub struct Step {
    name: String,
    kind: String,
    args: std::result::Result<serde_json::Value, String>,
    opts: InsertOpts,
    after: Vec<String>,
}

impl Step {
    /// A step running a typed job, with the options its type gives
    /// ([`JobArgs::insert_opts`]); [`Step::opts`] overrides them.
    pub fn new<A: JobArgs>(name: impl Into<String>, args: &A) -> Self {
        Step {
            name: name.into(),
            kind: A::KIND.to_string(),
            args: crate::job::to_json(args).map_err(|e| format!("invalid args: {e}")),
            opts: args.insert_opts(),
            after: Vec::new(),
        }
    }

    /// A step running a job by kind name with JSON args (for jobs of other programs).
    pub fn raw(name: impl Into<String>, kind: impl Into<String>, args: serde_json::Value) -> Self {
        Step {
            name: name.into(),
            kind: kind.into(),
            args: Ok(args),
            opts: InsertOpts::default(),
            after: Vec::new(),
        }
    }

    /// Waits for these earlier steps (by name) to complete.
    pub fn after<I, S>(mut self, steps: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.after.extend(steps.into_iter().map(Into::into));
        self
    }

    /// Runs once every step (and job) it waits for has ended, however it ended.
    pub fn after_any(mut self) -> Self {
        self.opts.after_any = true;
        self
    }

    /// The job's options (queue, priority, attempts, due time, ...), over those the step has
    /// (its type's, for [`Step::new`]) field by field, as [`crate::Client::insert`] takes them;
    /// its `depends_on` may name jobs outside the workflow to wait for as well. (Until 6 Dec
    /// they replaced the type's options whole.)
    pub fn opts(mut self, opts: InsertOpts) -> Self {
        let after_any = self.opts.after_any || opts.after_any;
        let base = std::mem::take(&mut self.opts);
        self.opts = InsertOpts {
            after_any,
            ..opts.over(base)
        };
        self
    }
}

impl Workflow {
    /// An empty workflow of this name (1 to 255 bytes, no NUL; names need not be unique).
    pub fn new(name: impl Into<String>) -> Self {
        Workflow {
            name: name.into(),
            steps: Vec::new(),
        }
    }

    /// Adds a step after the ones added so far.
    pub fn step(mut self, step: Step) -> Self {
        self.steps.push(step);
        self
    }

    /// Adds a step (for loops, where the builder is held in a variable).
    pub fn push(&mut self, step: Step) -> &mut Self {
        self.steps.push(step);
        self
    }

    /// Checks the workflow into insert params; nothing is written.
    pub fn params(self) -> Result<WorkflowInsertParams> {
        check_text("workflow name", &self.name)?;
        check_step_count(&self.name, self.steps.len())?;
        let mut index: HashMap<String, usize> = HashMap::with_capacity(self.steps.len());
        let mut steps = Vec::with_capacity(self.steps.len());
        for (i, step) in self.steps.into_iter().enumerate() {
            check_text("step name", &step.name)?;
            if index.contains_key(&step.name) {
                return Err(Error::invalid(
                    "workflow",
                    format!("two steps are named {:?}; step names are unique", step.name),
                ));
            }
            let args = step.args.map_err(|e| {
                Error::invalid("args", format!("step {:?}: {e}", step.name.as_str()))
            })?;
            let mut opts = step.opts;
            if let Some(id) = opts.depends_on.iter().find(|id| **id <= 0) {
                return Err(Error::invalid(
                    "depends_on",
                    format!("step {:?}: {id} is not a job id", step.name),
                ));
            }
            for dep in &step.after {
                match index.get(dep) {
                    Some(&at) => opts.depends_on.push(step_placeholder(at)),
                    None if *dep == step.name => {
                        return Err(Error::invalid(
                            "workflow",
                            format!("step {:?} waits for itself", step.name),
                        ))
                    }
                    None => {
                        return Err(Error::invalid(
                            "workflow",
                            format!(
                                "step {:?} waits for {dep:?}, which is not a step added before it \
                                 (a step waits only for earlier steps, so a workflow has no cycles)",
                                step.name
                            ),
                        ))
                    }
                }
            }
            let job = JobInsertParams::new(&step.kind, args, opts).map_err(|e| match e {
                Error::Invalid { what, message } => Error::Invalid {
                    what,
                    message: format!("step {:?}: {message}", step.name),
                },
                other => other,
            })?;
            index.insert(step.name.clone(), i);
            steps.push(WorkflowStepParams {
                name: step.name,
                job,
            });
        }
        Ok(WorkflowInsertParams {
            name: self.name,
            steps,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noop(name: &str) -> Step {
        Step::raw(name, "noop", serde_json::json!({}))
    }

    #[test]
    fn bad_workflows_are_refused_before_anything_is_written() {
        let err = |w: Workflow| w.params().unwrap_err().to_string();
        assert!(err(Workflow::new("w")).contains("no steps"));
        assert!(err(Workflow::new("w").step(noop("a")).step(noop("a"))).contains("two steps"));
        let unknown = err(Workflow::new("w")
            .step(noop("a").after(["b"]))
            .step(noop("b")));
        assert!(unknown.contains("not a step added before it"), "{unknown}");
        assert!(err(Workflow::new("w").step(noop("a").after(["a"]))).contains("itself"));
        assert!(err(Workflow::new("").step(noop("a"))).contains("1 to 255"));
        let bad_kind =
            err(Workflow::new("w").step(Step::raw("a", "Bad Kind", serde_json::json!({}))));
        assert!(bad_kind.contains("step \"a\""), "{bad_kind}");
    }

    /// `Step::opts` overrides the options the args' type gives, field by field, as
    /// `Client::insert` does: it replaced them all, so a step of a type that asks for one
    /// attempt in its own queue, given a priority, ran 25 times in `default` (review of 6 Dec).
    #[test]
    fn step_options_override_the_types_own_field_by_field() {
        use crate::job::test_args::Mail;
        let p = Workflow::new("w")
            .step(Step::new("a", &Mail {}).opts(InsertOpts {
                priority: Some(2),
                ..Default::default()
            }))
            .step(Step::new("b", &Mail {}).opts(InsertOpts {
                queue: Some("bulk".into()),
                ..Default::default()
            }))
            .params()
            .unwrap();
        let a = &p.steps[0].job;
        assert_eq!(
            (a.queue.as_str(), a.max_attempts, a.priority),
            ("emails", 1, 2)
        );
        let b = &p.steps[1].job;
        assert_eq!((b.queue.as_str(), b.max_attempts), ("bulk", 1));
    }

    /// The due time is one option given two ways: a step given `schedule_in` over a type
    /// that sets `scheduled_at` runs after the step's delay, and the reverse. The type's
    /// `scheduled_at` was kept beside the step's `schedule_in` and won (review of 6 Dec).
    #[test]
    fn a_steps_due_time_overrides_the_types_whichever_way_each_gives_it() {
        #[derive(serde::Serialize, serde::Deserialize)]
        struct Digest {
            at_nine: bool,
        }
        let tomorrow = chrono::Utc::now() + chrono::Duration::days(1);
        impl JobArgs for Digest {
            const KIND: &'static str = "digest";
            fn insert_opts(&self) -> InsertOpts {
                if self.at_nine {
                    InsertOpts {
                        scheduled_at: Some(chrono::Utc::now() + chrono::Duration::days(1)),
                        ..Default::default()
                    }
                } else {
                    InsertOpts {
                        schedule_in: Some(std::time::Duration::from_secs(86_400)),
                        ..Default::default()
                    }
                }
            }
        }
        let soon = std::time::Duration::from_secs(10);
        let now = chrono::Utc::now();
        let p = Workflow::new("w")
            .step(Step::new("a", &Digest { at_nine: true }).opts(InsertOpts {
                schedule_in: Some(soon),
                ..Default::default()
            }))
            .step(Step::new("b", &Digest { at_nine: false }).opts(InsertOpts {
                scheduled_at: Some(now),
                ..Default::default()
            }))
            .step(Step::new("c", &Digest { at_nine: true }).opts(InsertOpts {
                priority: Some(3),
                ..Default::default()
            }))
            .params()
            .unwrap();
        let due = |i: usize| (p.steps[i].job.scheduled_at, p.steps[i].job.schedule_in);
        assert_eq!(due(0), (None, Some(soon)));
        assert_eq!(due(1), (Some(now), None));
        let (kept, none) = due(2);
        assert!(kept.unwrap() >= tomorrow && none.is_none(), "{:?}", due(2));
    }

    #[test]
    fn runs_split_where_a_step_waits_inside_its_run() {
        let p = Workflow::new("w")
            .step(noop("a"))
            .step(noop("b"))
            .step(noop("c").after(["a"]))
            .step(noop("d").after(["a"]))
            .step(noop("e").after(["c", "d"]))
            .params()
            .unwrap();
        assert_eq!(p.runs(), vec![0..2, 2..4, 4..5]);
        let job = p.resolved(4, &[10, 11, 12, 13]);
        assert_eq!(job.depends_on, vec![12, 13]);
    }
}
