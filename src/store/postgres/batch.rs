//! Batches on PostgreSQL (see [`crate::store::batch`]).

use super::*;
use crate::store::batch::{
    fold_batch_rows, BatchCountRow, BatchInsertParams, BatchInserted, BatchRow,
};

/// Inserts a batch inside a caller's transaction (in a savepoint of its own, so that a refused
/// batch leaves nothing behind even if the caller goes on): it exists if and only if that
/// transaction commits, and producers are notified when it does.
///
/// The params are checked first ([`BatchInsertParams::check`]): nothing is written when it fails.
pub async fn batch_insert_tx(
    conn: &mut PgConnection,
    params: &BatchInsertParams,
) -> Result<BatchInserted> {
    params.check()?;
    let mut sp = Savepoint::open(conn).await?;
    let out = if params.jobs.iter().all(|j| j.depends_on.is_empty()) {
        insert_batch(sp.conn(), params).await
    } else {
        // The members' outside parents stay locked until the end, through the callback's
        // insert too: one RetryPoint for both (review of 7 Dec: the callback's own went back to
        // after the members, and each try met the same deadlock again).
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
    params: &BatchInsertParams,
) -> Result<BatchInserted> {
    Ok(from_retry_point!(
        conn,
        "a batch's insert",
        insert_batch(conn, params).await
    ))
}

/// A batch's row, its members and its callback, in one try.
async fn insert_batch(
    conn: &mut PgConnection,
    params: &BatchInsertParams,
) -> Result<BatchInserted> {
    let (id,): (i64,) = sqlx::query_as(sql!("batch_insert"))
        .bind(params.on_success)
        .bind(params.jobs.len() as i32)
        .fetch_one(&mut *conn)
        .await?;
    // Every key the batch inserts, its callback's with its members', locked before any row:
    // the members' insert alone locks only theirs, and a batch whose member key is another's
    // callback key, and whose callback key is that one's member key, each inserted its member
    // and waited at its callback for the other's, until PostgreSQL ended one as a deadlock.
    lock_unique_keys(conn, params.jobs.iter().chain([&params.callback])).await?;
    let mut jobs = Vec::with_capacity(params.jobs.len());
    for (i, result) in insert_jobs_once(conn, &params.jobs)
        .await?
        .into_iter()
        .enumerate()
    {
        if !result.inserted {
            let own: Vec<i64> = jobs.iter().map(|j: &JobRow| j.id).collect();
            return Err(params.unique_key_held(i, &result.job, &own));
        }
        jobs.push(result.job);
    }
    let ids: Vec<i64> = jobs.iter().map(|j| j.id).collect();
    let callback = params.callback_for(id, ids.clone());
    // Its parents are the members, which no other transaction sees yet.
    let mut callback = insert_jobs_once(conn, &[callback]).await?.remove(0);
    if !callback.inserted {
        return Err(params.unique_key_held(params.jobs.len(), &callback.job, &ids));
    }
    let mut tagged = ids;
    tagged.push(callback.job.id);
    sqlx::query(sql!("batch_tag"))
        .bind(id)
        .bind(&tagged)
        .execute(&mut *conn)
        .await?;
    sqlx::query(sql!("batch_callback_set"))
        .bind(id)
        .bind(callback.job.id)
        .execute(&mut *conn)
        .await?;
    let filled = sqlx::query(sql!("batch_callback_args"))
        .bind(id)
        .bind(callback.job.id)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    if filled > 0 {
        // Due at insert (every member had already ended): read its args back.
        if let Some(row) = one_job(conn, callback.job.id).await? {
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

impl PgStore {
    pub(super) async fn batch_insert_own(
        &self,
        params: BatchInsertParams,
    ) -> Result<BatchInserted> {
        let write = || async {
            let mut tx = self.begin().await?;
            let out = insert_batch(&mut tx, &params).await?;
            tx.commit().await?;
            Ok(out)
        };
        let parents = params.jobs.iter().any(|j| !j.depends_on.is_empty());
        insert_written_again(parents, "a batch's insert", write).await
    }

    pub(super) async fn batch_list_page(
        &self,
        before_id: Option<i64>,
        limit: u32,
        only: Option<i64>,
    ) -> Result<Vec<BatchRow>> {
        let rows: Vec<BatchCountRow> = sqlx::query_as(sql!("batch_list"))
            .bind(before_id)
            .bind(i64::from(limit))
            .bind(only)
            .fetch_all(&mut *self.conn().await?)
            .await?;
        fold_batch_rows(rows)
    }
}
