//! Workflows on SQLite (see [`crate::store::workflow`]).

use super::*;
use crate::store::workflow::{
    fold_workflow_rows, StepParents, WorkflowInsertParams, WorkflowInserted, WorkflowJobRow,
    WorkflowParts, WorkflowRow,
};

/// Inserts a workflow on a caller's connection, inside whatever transaction it has open (in a
/// savepoint of its own, so that a refused workflow leaves nothing behind even if the caller
/// goes on): it exists if and only if that transaction commits.
///
/// The params are checked first ([`WorkflowInsertParams::check`]): nothing is written when
/// it fails.
pub fn workflow_insert_tx(
    conn: &Connection,
    params: &WorkflowInsertParams,
) -> Result<WorkflowInserted> {
    params.check()?;
    ensure_clock(conn)?;
    conn.execute_batch("SAVEPOINT porter_workflow")?;
    match insert_workflow(conn, params) {
        Ok(mut out) => {
            conn.execute_batch("RELEASE porter_workflow")?;
            let needed = params.serving_needed();
            let served = served_on(conn, &needed);
            out.warn_unserved(needed, &served);
            Ok(out)
        }
        Err(e) => {
            conn.execute_batch("ROLLBACK TO porter_workflow; RELEASE porter_workflow")?;
            Err(e)
        }
    }
}

/// [`workflow_insert_tx`] without the savepoint: the writer's own savepoint undoes a failed
/// write.
pub(super) fn insert_workflow(
    conn: &Connection,
    params: &WorkflowInsertParams,
) -> Result<WorkflowInserted> {
    let id: i64 = conn.query_row(sql!("workflow_insert"), [&params.name], |r| r.get(0))?;
    // Each step is inserted tagged, and marked as having dependents when later steps wait for
    // it: nothing is written twice (tagging after the insert and marking a parent at each
    // child's insert took two more statements per step). Its children read its state from
    // `own`: this transaction inserted it, and nothing else writes meanwhile.
    let has_children = params.steps_with_children();
    let mut ids: Vec<i64> = Vec::with_capacity(params.steps.len());
    let mut own: HashMap<i64, JobState> = HashMap::with_capacity(params.steps.len());
    let mut steps = Vec::with_capacity(params.steps.len());
    for run in params.runs() {
        params.refuse_own_ids(run.clone(), |p| own.contains_key(&p))?;
        let jobs: Vec<JobInsertParams> = run.clone().map(|i| params.resolved(i, &ids)).collect();
        let starts: Vec<(bool, Option<(i64, String)>)> = run
            .clone()
            .map(|i| (has_children[i], Some((id, params.steps[i].name.clone()))))
            .collect();
        for (i, result) in run.zip(insert_jobs_as(conn, &jobs, &starts, &own)?) {
            if !result.inserted {
                return Err(params.unique_key_held(i, &result.job, &ids));
            }
            ids.push(result.job.id);
            own.insert(result.job.id, result.job.state);
            steps.push((params.steps[i].name.clone(), result.job));
        }
    }
    let pairs: Vec<(&str, i64)> = steps
        .iter()
        .map(|(name, job)| (name.as_str(), job.id))
        .collect();
    conn.prepare_cached(sql!("workflow_steps_insert"))?
        .execute(params![
            id,
            serde_json::to_string(&pairs).expect("names and ids serialize")
        ])?;
    Ok(WorkflowInserted {
        id,
        name: params.name.clone(),
        steps,
        warnings: Vec::new(),
    })
}

pub(super) fn list(
    conn: &Connection,
    before_id: Option<i64>,
    limit: u32,
) -> Result<Vec<WorkflowRow>> {
    let mut stmt = conn.prepare_cached(sql!("workflow_list"))?;
    // Names and states as text: another program may have bound one as a BLOB, or written
    // bytes that are not UTF-8 (read lossily, as the job reader does), which failed the listing.
    let rows = stmt
        .query_map(params![before_id, limit], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                text_col(r.get_ref(1)?),
                time_outside_jobs_or_epoch(r.get_ref(2)?),
                opt_text_col(r.get_ref(3)?),
                r.get::<_, i64>(4)?,
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    fold_workflow_rows(rows)
}

pub(super) fn get(conn: &Connection, id: i64, page: StepPage) -> Result<Option<WorkflowParts>> {
    let Some(row) = conn
        .query_row(sql!("workflow_get"), [id], |r| {
            Ok(WorkflowRow {
                id: r.get(0)?,
                name: text_col(r.get_ref(1)?),
                created_at: time_outside_jobs_or_epoch(r.get_ref(2)?),
                total: 0,
                counts: Default::default(),
            })
        })
        .optional()?
    else {
        return Ok(None);
    };
    let counts = if page.skip_counts {
        Vec::new()
    } else {
        let mut stmt = conn.prepare_cached(sql!("workflow_counts"))?;
        let rows = stmt
            .query_map([id], |r| Ok((text_col(r.get_ref(0)?), r.get::<_, i64>(1)?)))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows.into_iter()
            .map(|(state, n)| Ok((state.parse()?, n)))
            .collect::<Result<Vec<_>>>()?
    };
    let limit = page.limit.map_or(-1, i64::from);
    let mut stmt = conn.prepare_cached(sql!("workflow_jobs"))?;
    let jobs = stmt
        .query_map(params![id, page.after_id, limit, page.offset], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                opt_text_col(r.get_ref(1)?),
                text_col(r.get_ref(2)?),
                text_col(r.get_ref(3)?),
                // A count porter cannot read shows as 0, as the job reader shows it.
                match r.get_ref(4)? {
                    rusqlite::types::ValueRef::Integer(n) => i32::try_from(n).unwrap_or(0),
                    _ => 0,
                },
                // Job rows' times, read in porter's format only (as the job reader does);
                // another shows as no time rather than failing the workflow's page.
                opt_text_col(r.get_ref(5)?).and_then(|s| parse_time(&s).ok()),
                opt_text_col(r.get_ref(6)?).and_then(|s| parse_time(&s).ok()),
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let jobs = jobs
        .into_iter()
        .map(
            |(id, step, kind, state, attempt, attempted_at, finalized_at)| {
                Ok(WorkflowJobRow {
                    id,
                    step: step.unwrap_or_default(),
                    kind,
                    state: state.parse()?,
                    attempt,
                    attempted_at,
                    finalized_at,
                })
            },
        )
        .collect::<Result<Vec<_>>>()?;
    let mut parents_total = std::collections::BTreeMap::new();
    let edges = match (jobs.first(), jobs.last()) {
        (Some(first), Some(last)) if page.parents != StepParents::All => {
            let mut edges = Vec::new();
            let first_n = match page.parents {
                StepParents::First(n) => Some(n),
                _ => None,
            };
            let mut stmt = conn.prepare_cached(sql!("workflow_edges_some"))?;
            for job in &jobs {
                let rows = stmt
                    .query_map(params![id, job.id, first_n, first.id, last.id], |r| {
                        Ok((
                            r.get::<_, i64>(0)?,
                            opt_text_col(r.get_ref(1)?),
                            r.get::<_, Option<i64>>(2)?,
                        ))
                    })?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                for (parent, step, total) in rows {
                    if let Some(total) = total {
                        parents_total.insert(job.id, total as u64);
                    }
                    edges.push((job.id, parent, step));
                }
            }
            edges
        }
        (Some(first), Some(last)) => {
            let mut stmt = conn.prepare_cached(sql!("workflow_edges"))?;
            let edges = stmt
                .query_map(params![id, first.id, last.id], |r| {
                    Ok((r.get(0)?, r.get(1)?, opt_text_col(r.get_ref(2)?)))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            edges
        }
        _ => Vec::new(),
    };
    Ok(Some(WorkflowParts {
        row,
        counts,
        jobs,
        edges,
        parents_total,
    }))
}

pub(super) fn cancel(conn: &Connection, id: i64) -> Result<Option<Vec<JobChange>>> {
    let exists = conn
        .query_row(sql!("workflow_get"), [id], |_| Ok(()))
        .optional()?
        .is_some();
    if !exists {
        return Ok(None);
    }
    let ids = conn
        .prepare_cached(sql!("workflow_unfinished"))?
        .query_map([id], |r| r.get::<_, i64>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut out = Vec::with_capacity(ids.len());
    for job in super::cancel_order(conn, ids)? {
        if let Some(row) = one_job(conn, sql!("job_cancel"), [job])? {
            out.push(JobChange {
                id: row.id,
                queue: row.queue,
                state: row.state,
                attempted_by: row.attempted_by,
            });
        }
    }
    Ok(Some(out))
}
