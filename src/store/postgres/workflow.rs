//! Workflows on PostgreSQL (see [`crate::store::workflow`]).

use super::*;
use crate::store::workflow::{
    fold_workflow_rows, StepParents, WorkflowInsertParams, WorkflowInserted, WorkflowJobRow,
    WorkflowParts, WorkflowRow,
};

/// Inserts a workflow inside a caller's transaction (in a savepoint of its own, so that a
/// refused workflow leaves nothing behind even if the caller goes on): it exists if and only
/// if that transaction commits, and producers are notified when it does.
///
/// The params are checked first ([`WorkflowInsertParams::check`]): nothing is written when
/// it fails.
pub async fn workflow_insert_tx(
    conn: &mut PgConnection,
    params: &WorkflowInsertParams,
) -> Result<WorkflowInserted> {
    params.check()?;
    let mut sp = Savepoint::open(conn).await?;
    let out = if params.outside_parents().is_empty() {
        insert_workflow(sp.conn(), params).await
    } else {
        // Its outside parents are locked until the end: see RetryPoint.
        retrying_from_a_point(sp.conn(), params).await
    };
    let mut out = sp.end(out).await?;
    let needed = params.serving_needed();
    let served = served_on(conn, &needed).await;
    out.warn_unserved(needed, &served);
    Ok(out)
}

async fn retrying_from_a_point(
    conn: &mut PgConnection,
    params: &WorkflowInsertParams,
) -> Result<WorkflowInserted> {
    Ok(from_retry_point!(
        conn,
        "a workflow's insert",
        insert_workflow(conn, params).await
    ))
}

/// A workflow's row, its steps and their names, in one try.
async fn insert_workflow(
    conn: &mut PgConnection,
    params: &WorkflowInsertParams,
) -> Result<WorkflowInserted> {
    let (id,): (i64,) = sqlx::query_as(sql!("workflow_insert"))
        .bind(&params.name)
        .fetch_one(&mut *conn)
        .await?;
    // Every step's unique key first, before any sequence's or parent's lock (as every insert).
    super::lock_unique_keys(conn, params.steps.iter().map(|s| &s.job)).await?;
    // Without sequences, the steps go in together, their outside parents locked together.
    let out = if params.steps.iter().all(|s| s.job.sequence_key.is_none()) {
        insert_steps(conn, params, id).await?
    } else {
        lock_ahead(conn, params).await?;
        insert_tagged(conn, params, id).await?
    };
    let (ids, names): (Vec<i64>, Vec<&str>) = out
        .steps
        .iter()
        .map(|(name, job)| (job.id, name.as_str()))
        .unzip();
    sqlx::query(sql!("workflow_steps_insert"))
        .bind(id)
        .bind(&ids)
        .bind(&names)
        .execute(&mut *conn)
        .await?;
    Ok(out)
}

/// Takes, before the first run of steps, every lock the runs will take (the sequences of its
/// steps, its parents outside the workflow and their sequences), in the order every path
/// takes them (job_parents_lock.sql). Taken run by run, a run's locks came after those of the
/// runs before, whatever their order.
async fn lock_ahead(conn: &mut PgConnection, params: &WorkflowInsertParams) -> Result<()> {
    let outside = params.outside_parents();
    let mut keys: Vec<&str> = params
        .steps
        .iter()
        .filter_map(|s| s.job.sequence_key.as_deref())
        .collect();
    keys.sort_unstable();
    keys.dedup();
    // One run takes its locks in order itself.
    if (outside.is_empty() && keys.is_empty()) || params.runs().len() < 2 {
        return Ok(());
    }
    let keys: Vec<String> = keys.into_iter().map(str::to_string).collect();
    super::lock_parents(conn, false, &outside, &keys).await?;
    Ok(())
}

/// The steps of a workflow with sequence keys, a run at a time through the ordinary insert
/// (which orders a sequence's jobs), each tagged after its insert.
async fn insert_tagged(
    conn: &mut PgConnection,
    params: &WorkflowInsertParams,
    id: i64,
) -> Result<WorkflowInserted> {
    let mut ids: Vec<i64> = Vec::with_capacity(params.steps.len());
    let mut own = std::collections::HashSet::with_capacity(params.steps.len());
    let mut steps = Vec::with_capacity(params.steps.len());
    for run in params.runs() {
        // As SQLite refuses it, and insert_steps: the row found here is not a parent's.
        params.refuse_own_ids(run.clone(), |p| own.contains(&p))?;
        let jobs: Vec<JobInsertParams> = run.clone().map(|i| params.resolved(i, &ids)).collect();
        // Inside insert_workflow's RetryPoint, which holds the outside parents' locks.
        for (i, result) in run.zip(super::insert_jobs_once(conn, &jobs).await?) {
            if !result.inserted {
                return Err(params.unique_key_held(i, &result.job, &ids));
            }
            ids.push(result.job.id);
            own.insert(result.job.id);
            steps.push((params.steps[i].name.clone(), result.job));
        }
    }
    sqlx::query(sql!("workflow_tag"))
        .bind(id)
        .bind(&ids)
        .bind(
            params
                .steps
                .iter()
                .map(|s| s.name.clone())
                .collect::<Vec<_>>(),
        )
        .execute(&mut *conn)
        .await?;
    Ok(WorkflowInserted {
        id,
        name: params.name.clone(),
        steps,
        warnings: Vec::new(),
    })
}

/// The steps of a workflow without sequence keys, each row inserted tagged as its step and,
/// when later steps wait for it, marked as having dependents: nothing is written twice. (A job
/// of any insert takes the second round: marked by its children's insert, tagged after;
/// 10,000 rows rewritten twice took most of a 10,000-step workflow's insert.) Parents outside
/// the workflow are marked and locked as for any insert (job_parents_mark.sql), all in one
/// statement; its own steps need neither: no other transaction sees them before this one
/// commits, so they are still as inserted.
///
/// How a step starts depends on its parents' states only through whether they ended, and an
/// own step has not, unless it starts cancelled: so steps go in together, one insert and one
/// edge insert, their own parents known by placeholder until their ids are. Only a step that
/// starts cancelled because of an own step (its error names that step's id) waits for the
/// steps before it to be inserted. (Inserted a run at a time, a workflow of 100 chains of 100
/// took 200 statements.)
async fn insert_steps(
    conn: &mut PgConnection,
    params: &WorkflowInsertParams,
    id: i64,
) -> Result<WorkflowInserted> {
    let has_children = params.steps_with_children();
    let outside = params.outside_parents();
    // Parents by id, and own steps not inserted yet by placeholder (-1 for the first step).
    let mut parents: HashMap<i64, JobState> =
        HashMap::with_capacity(outside.len() + params.steps.len());
    if !outside.is_empty() {
        let rows = super::mark_parents(conn, &outside, &[]).await?;
        for (id, state, _, _) in rows {
            parents.insert(id, state.parse::<JobState>()?);
        }
    }
    // SQLite checks a run's parents before it inserts any step of the run: a parent missing
    // in a run is refused after the runs before it are in (an earlier run's held unique key
    // answers first), but before any step of its own run (whose held key does not).
    let refused = params.runs().into_iter().find_map(|run| {
        run.clone()
            .flat_map(|i| params.steps[i].job.depends_on.iter().copied())
            .find(|&p| p > 0 && !parents.contains_key(&p))
            .map(|missing| (run.start, missing))
    });
    let mut pending = Pending::default();
    for (i, step) in params.steps.iter().enumerate() {
        if let Some((_, missing)) = refused.filter(|&(start, _)| start == i) {
            pending.flush(conn, params, &mut parents).await?;
            return Err(crate::store::missing_parent(missing));
        }
        let resolve = |ids: &[i64]| {
            let mut job = step.job.clone();
            for p in &mut job.depends_on {
                if *p < 0 && ((-*p - 1) as usize) < ids.len() {
                    *p = ids[(-*p - 1) as usize];
                }
            }
            job
        };
        let mut job = resolve(&pending.ids);
        // A step refused is refused after the steps before it are in, as when steps went in a
        // run at a time (and on SQLite): an earlier step's unique key held answers first.
        let missing = job
            .depends_on
            .iter()
            .filter(|&&p| p > 0)
            .find(|p| !parents.contains_key(p));
        if let Some(&missing) = missing {
            pending.flush(conn, params, &mut parents).await?;
            return Err(crate::store::missing_parent(missing));
        }
        if let Err(e) = job.check_times() {
            pending.flush(conn, params, &mut parents).await?;
            return Err(e);
        }
        let mut hold = job.hold(false, &parents)?;
        // The parent a step starts cancelled for is named by id: a step not inserted yet has
        // none, so the steps before this one go in first.
        if hold.failed_parent.is_some_and(|p| p < 0) {
            pending.flush(conn, params, &mut parents).await?;
            job = resolve(&pending.ids);
            hold = job.hold(false, &parents)?;
        }
        hold.has_dependents = has_children[i];
        hold.workflow = Some((id, step.name.clone()));
        // Available or scheduled alike: not ended, which is all a child's start reads.
        parents.insert(-(i as i64) - 1, hold.state.unwrap_or(JobState::Available));
        pending.jobs.push(job);
        pending.holds.push(hold);
    }
    pending.flush(conn, params, &mut parents).await?;
    let queues = pending.steps.iter().map(|(_, j)| j.queue.clone()).collect();
    notify_queues(conn, queues).await?;
    Ok(WorkflowInserted {
        id,
        name: params.name.clone(),
        steps: pending.steps,
        warnings: Vec::new(),
    })
}

/// Steps of [`insert_steps`] not inserted yet, after those that are.
#[derive(Default)]
struct Pending {
    jobs: Vec<JobInsertParams>,
    holds: Vec<JobHold>,
    /// The ids of the steps inserted, by step index.
    ids: Vec<i64>,
    steps: Vec<(String, JobRow)>,
}

impl Pending {
    /// Inserts the pending steps and their edges, their own parents' placeholders replaced
    /// by ids (a placeholder names an earlier step: inserted before, or in this insert).
    async fn flush(
        &mut self,
        conn: &mut PgConnection,
        params: &WorkflowInsertParams,
        parents: &mut HashMap<i64, JobState>,
    ) -> Result<()> {
        if self.jobs.is_empty() {
            return Ok(());
        }
        let first = self.ids.len();
        let out = insert_rounds(conn, &self.jobs, &self.holds).await?;
        for (k, result) in out.iter().enumerate() {
            if !result.inserted {
                return Err(params.unique_key_held(first + k, &result.job, &self.ids));
            }
            self.ids.push(result.job.id);
            parents.insert(result.job.id, result.job.state);
        }
        for hold in &mut self.holds {
            for edge in &mut hold.edges {
                if edge.0 < 0 {
                    edge.0 = self.ids[(-edge.0 - 1) as usize];
                }
            }
        }
        insert_edges(conn, &self.jobs, &self.holds, &out).await?;
        self.jobs.clear();
        self.holds.clear();
        for (k, result) in out.into_iter().enumerate() {
            self.steps
                .push((params.steps[first + k].name.clone(), result.job));
        }
        Ok(())
    }
}

impl PgStore {
    pub(super) async fn workflow_insert_own(
        &self,
        params: WorkflowInsertParams,
    ) -> Result<WorkflowInserted> {
        let write = || async {
            let mut tx = self.begin().await?;
            let out = insert_workflow(&mut tx, &params).await?;
            tx.commit().await?;
            Ok(out)
        };
        let parents = !params.outside_parents().is_empty();
        insert_written_again(parents, "a workflow's insert", write).await
    }

    pub(super) async fn workflow_list_page(
        &self,
        before_id: Option<i64>,
        limit: u32,
    ) -> Result<Vec<WorkflowRow>> {
        let rows: Vec<crate::store::workflow::WorkflowCountRow> =
            sqlx::query_as(sql!("workflow_list"))
                .bind(before_id)
                .bind(i64::from(limit))
                .fetch_all(&mut *self.conn().await?)
                .await?;
        fold_workflow_rows(rows)
    }

    pub(super) async fn workflow_parts(
        &self,
        id: i64,
        page: StepPage,
    ) -> Result<Option<WorkflowParts>> {
        // One transaction at REPEATABLE READ, so that the counts, the jobs and the edges agree.
        let mut tx = self.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await?;
        let row: Option<(i64, String, DateTime<Utc>)> = sqlx::query_as(sql!("workflow_get"))
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        let Some((id, name, created_at)) = row else {
            return Ok(None);
        };
        // A step and its job's columns (NULL when the job is gone).
        type StepTuple = (
            i64,
            Option<String>,
            Option<i64>,
            Option<String>,
            Option<String>,
            Option<i32>,
            Option<DateTime<Utc>>,
            Option<DateTime<Utc>>,
        );
        let counts: Vec<(String, i64)> = if page.skip_counts && page.offset == 0 {
            Vec::new()
        } else {
            sqlx::query_as(sql!("workflow_counts"))
                .bind(id)
                .fetch_all(&mut *tx)
                .await?
        };
        let counts = counts
            .into_iter()
            .map(|(state, n)| Ok((state.parse()?, n)))
            .collect::<Result<Vec<_>>>()?;
        // A step whose job is gone is passed over, and the page read on past it for as many
        // steps as were passed over (rare: only a delete with triggers off leaves one), so that
        // a page is full while steps follow; SQLite's join does the same in one statement.
        let mut jobs = Vec::new();
        let (mut after_id, mut offset, mut limit) = (page.after_id, page.offset, page.limit);
        // An offset counts steps whose jobs are there, as SQLite's does: when a step whose job
        // is gone is among the workflow's, the page starts after the offset-th of the others.
        if offset > 0 {
            let (steps,): (i64,) = sqlx::query_as(sql!("workflow_steps_count"))
                .bind(id)
                .fetch_one(&mut *tx)
                .await?;
            if steps != counts.iter().map(|(_, n)| n).sum::<i64>() {
                let before: Option<(i64,)> = sqlx::query_as(sql!("workflow_step_before"))
                    .bind(id)
                    .bind(after_id)
                    .bind(i64::from(offset))
                    .fetch_optional(&mut *tx)
                    .await?;
                // None: fewer steps than the offset, so the page is empty.
                (after_id, offset) = (before.map_or(i64::MAX, |(job,)| job), 0);
            }
        }
        loop {
            let steps: Vec<StepTuple> = sqlx::query_as(sql!("workflow_jobs"))
                .bind(id)
                .bind(after_id)
                .bind(limit.map(i64::from))
                .bind(i64::from(offset))
                .fetch_all(&mut *tx)
                .await?;
            let read = steps.len();
            let last = steps.last().map(|s| s.0);
            let mut found = 0u32;
            for (_, step, job, kind, state, attempt, attempted_at, finalized_at) in steps {
                let (Some(id), Some(kind), Some(state), Some(attempt)) =
                    (job, kind, state, attempt)
                else {
                    continue;
                };
                found += 1;
                jobs.push(WorkflowJobRow {
                    id,
                    step: step.unwrap_or_default(),
                    kind,
                    state: state.parse()?,
                    attempt,
                    attempted_at,
                    finalized_at,
                });
            }
            match (limit, last) {
                (Some(n), Some(last)) if read == n as usize && found < n => {
                    (after_id, offset, limit) = (last, 0, Some(n - found));
                }
                _ => break,
            }
        }
        let mut parents_total = std::collections::BTreeMap::new();
        let edges: Vec<(i64, i64, Option<String>)> = match (jobs.first(), jobs.last()) {
            (Some(first), Some(last)) if page.parents != StepParents::All => {
                let ids: Vec<i64> = jobs.iter().map(|j| j.id).collect();
                let first_n = match page.parents {
                    StepParents::First(n) => Some(i64::from(n)),
                    _ => None,
                };
                let rows: Vec<(i64, i64, Option<String>, Option<i64>)> =
                    sqlx::query_as(sql!("workflow_edges_some"))
                        .bind(id)
                        .bind(&ids)
                        .bind(first_n)
                        .bind(first.id)
                        .bind(last.id)
                        .fetch_all(&mut *tx)
                        .await?;
                for &(child, _, _, total) in &rows {
                    if let Some(total) = total {
                        parents_total.insert(child, total as u64);
                    }
                }
                rows.into_iter().map(|(c, p, s, _)| (c, p, s)).collect()
            }
            (Some(first), Some(last)) => {
                sqlx::query_as(sql!("workflow_edges"))
                    .bind(id)
                    .bind(first.id)
                    .bind(last.id)
                    .fetch_all(&mut *tx)
                    .await?
            }
            _ => Vec::new(),
        };
        tx.commit().await?;
        Ok(Some(WorkflowParts {
            row: WorkflowRow {
                id,
                name,
                created_at,
                total: 0,
                counts: Default::default(),
            },
            counts,
            jobs,
            edges,
            parents_total,
        }))
    }

    pub(super) async fn workflow_cancel_all(&self, id: i64) -> Result<Option<Vec<JobChange>>> {
        // Locks as a bulk cancel does, and can deadlock with a completion the same way.
        again_if_deadlocked("a workflow's cancel", || async {
            let mut tx = self.begin().await?;
            let exists: Option<(i64, String, DateTime<Utc>)> = sqlx::query_as(sql!("workflow_get"))
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
            if exists.is_none() {
                return Ok(None);
            }
            let rows: Vec<(i64, String, String, Option<String>)> =
                sqlx::query_as(sql!("workflow_cancel"))
                    .bind(id)
                    .fetch_all(&mut *tx)
                    .await?;
            let changes = job_changes(rows)?;
            notify_cancel_requests(&mut tx, &changes).await?;
            tx.commit().await?;
            Ok(Some(changes))
        })
        .await
    }
}
