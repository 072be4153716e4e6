//! Batches on SQLite (see [`crate::store::batch`]).

use super::*;
use crate::store::batch::{fold_batch_rows, BatchInsertParams, BatchInserted, BatchRow};

/// Inserts a batch on a caller's connection, inside whatever transaction it has open (in a
/// savepoint of its own, so that a refused batch leaves nothing behind even if the caller goes
/// on): it exists if and only if that transaction commits.
///
/// The params are checked first ([`BatchInsertParams::check`]): nothing is written when it fails.
pub fn batch_insert_tx(conn: &Connection, params: &BatchInsertParams) -> Result<BatchInserted> {
    params.check()?;
    ensure_clock(conn)?;
    conn.execute_batch("SAVEPOINT porter_batch")?;
    match insert_batch(conn, params) {
        Ok(mut out) => {
            conn.execute_batch("RELEASE porter_batch")?;
            let needed = params.serving_needed();
            let served = served_on(conn, &needed);
            out.warn_unserved(needed, &served);
            Ok(out)
        }
        Err(e) => {
            conn.execute_batch("ROLLBACK TO porter_batch; RELEASE porter_batch")?;
            Err(e)
        }
    }
}

/// [`batch_insert_tx`] without the savepoint: the writer's own savepoint undoes a failed
/// write.
pub(super) fn insert_batch(conn: &Connection, params: &BatchInsertParams) -> Result<BatchInserted> {
    let id: i64 = conn.query_row(
        sql!("batch_insert"),
        params![params.on_success, params.jobs.len() as i64],
        |r| r.get(0),
    )?;
    let mut tag = conn.prepare_cached(sql!("batch_tag"))?;
    let mut jobs = Vec::with_capacity(params.jobs.len());
    for (i, result) in insert_jobs(conn, &params.jobs)?.into_iter().enumerate() {
        if !result.inserted {
            let own: Vec<i64> = jobs.iter().map(|j: &JobRow| j.id).collect();
            return Err(params.unique_key_held(i, &result.job, &own));
        }
        tag.execute(params![id, result.job.id])?;
        jobs.push(result.job);
    }
    let callback = params.callback_for(id, jobs.iter().map(|j| j.id).collect());
    let mut callback = insert_jobs(conn, std::slice::from_ref(&callback))?.remove(0);
    if !callback.inserted {
        let own: Vec<i64> = jobs.iter().map(|j| j.id).collect();
        return Err(params.unique_key_held(params.jobs.len(), &callback.job, &own));
    }
    tag.execute(params![id, callback.job.id])?;
    conn.execute(sql!("batch_callback_set"), params![id, callback.job.id])?;
    if conn.execute(sql!("batch_callback_args"), params![id, callback.job.id])? > 0 {
        // Due at insert (every member had already ended): read its args back.
        if let Some(row) = one_job(conn, sql!("job_get"), [callback.job.id])? {
            callback.job = row;
        }
    }
    Ok(BatchInserted {
        id,
        jobs,
        callback: callback.job,
        warnings: Vec::new(),
    })
}

pub(super) fn list(
    conn: &Connection,
    before_id: Option<i64>,
    limit: u32,
    only: Option<i64>,
) -> Result<Vec<BatchRow>> {
    let mut stmt = conn.prepare_cached(sql!("batch_list"))?;
    let rows = stmt
        .query_map(params![before_id, limit, only], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                time_outside_jobs_or_epoch(r.get_ref(1)?),
                r.get::<_, bool>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, Option<i64>>(4)?,
                // As text: another program may have bound the callback's kind as a BLOB.
                opt_text_col(r.get_ref(5)?),
                opt_text_col(r.get_ref(6)?),
                opt_text_col(r.get_ref(7)?),
                r.get::<_, i64>(8)?,
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    fold_batch_rows(rows)
}
