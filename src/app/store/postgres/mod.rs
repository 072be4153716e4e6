//! The tablo store on PostgreSQL: the queue's own database, on the queue store's pool
//! ([`PgStore::pool`](crate::store::postgres::PgStore::pool)), whose connections read the same clock (`porter_now()`).

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::PgRow;
use sqlx::{PgPool, Row};

use super::*;
use crate::app::args::OrphanFileCleanup;

use crate::store::{clamp_secs, Database};
use crate::Client;

macro_rules! sql {
    ($name:literal) => {
        include_str!(concat!("sql/", $name, ".sql"))
    };
}

/// The tablo store over a PostgreSQL queue store.
pub struct PgTabloStore {
    core: Arc<Store>,
}

impl std::fmt::Debug for PgTabloStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgTabloStore").finish_non_exhaustive()
    }
}

impl PgTabloStore {
    /// The tablo store over `core`'s database (see [`Store::database`]).
    pub fn new(core: Arc<Store>) -> Self {
        PgTabloStore { core }
    }

    fn pool(&self) -> Result<&PgPool> {
        match self.core.database() {
            Some(Database::Postgres(s)) => Ok(s.pool()),
            _ => Err(no_database(self.core.as_ref())),
        }
    }
}

fn tablo_from_row(r: PgRow) -> sqlx::Result<TabloRow> {
    Ok(TabloRow {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        created_at: r.try_get("created_at")?,
    })
}

fn file_from_row(r: PgRow) -> sqlx::Result<TabloFileRow> {
    Ok(TabloFileRow {
        id: r.try_get("id")?,
        tablo_id: r.try_get("tablo_id")?,
        s3_key: r.try_get("s3_key")?,
        size: r.try_get("size")?,
        created_at: r.try_get("created_at")?,
    })
}

/// A duration as the seconds the SQL multiplies by `interval '1 second'`, clamped to the
/// queue's longest duration (a larger interval would be out of range).
fn secs(d: Duration) -> f64 {
    clamp_secs(d)
}

#[async_trait::async_trait]
impl TabloStore for PgTabloStore {
    fn backend(&self) -> Backend {
        Backend::Postgres
    }

    async fn tablo_insert(&self, name: &str) -> Result<TabloRow> {
        sqlx::query(sql!("tablo_insert"))
            .bind(uuid::Uuid::new_v4())
            .bind(name)
            .try_map(tablo_from_row)
            .fetch_one(self.pool()?)
            .await
            .map_err(Error::from)
    }

    async fn tablo_get(&self, id: uuid::Uuid) -> Result<Option<TabloRow>> {
        sqlx::query(sql!("tablo_get"))
            .bind(id)
            .try_map(tablo_from_row)
            .fetch_optional(self.pool()?)
            .await
            .map_err(Error::from)
    }

    async fn tablo_delete_enqueue(&self, id: uuid::Uuid) -> Result<Option<InsertResult>> {
        let mut tx = self.pool()?.begin().await?;
        let deleted = sqlx::query(sql!("tablo_delete"))
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if deleted.rows_affected() == 0 {
            return Ok(None); // dropping the transaction rolls it back
        }
        // In the same transaction: an error here rolls the delete back with it (the
        // transaction is dropped uncommitted).
        let job = OrphanFileCleanup { tablo_id: Some(id) };
        let inserted = Client::insert_tx_pg(&mut tx, &job, None).await?;
        tx.commit().await?;
        // Committed: the NOTIFY reaches every process; this one's producers are woken now.
        self.core.wakeup().notify(&inserted.job.queue);
        Ok(Some(inserted))
    }

    async fn tablo_file_insert(&self, f: TabloFileRow) -> Result<()> {
        sqlx::query(sql!("tablo_file_insert"))
            .bind(f.id)
            .bind(f.tablo_id)
            .bind(f.s3_key)
            .bind(f.size)
            .execute(self.pool()?)
            .await
            .map(drop)
            .map_err(Error::from)
    }

    async fn tablo_file_list(&self, tablo_id: uuid::Uuid) -> Result<Vec<TabloFileRow>> {
        sqlx::query(sql!("tablo_file_list"))
            .bind(tablo_id)
            .try_map(file_from_row)
            .fetch_all(self.pool()?)
            .await
            .map_err(Error::from)
    }

    async fn tablo_file_page(&self, p: TabloFilePageParams) -> Result<Vec<TabloFileRow>> {
        sqlx::query(sql!("tablo_file_page"))
            .bind(p.tablo_id)
            .bind(p.after)
            .bind(i64::from(p.limit))
            .try_map(file_from_row)
            .fetch_all(self.pool()?)
            .await
            .map_err(Error::from)
    }

    async fn tablo_file_orphans(&self, p: TabloFileOrphansParams) -> Result<Vec<TabloFileRow>> {
        sqlx::query(sql!("tablo_file_orphans"))
            .bind(p.after)
            .bind(p.tablo_id)
            .bind(i64::from(p.limit))
            .try_map(file_from_row)
            .fetch_all(self.pool()?)
            .await
            .map_err(Error::from)
    }

    async fn tablo_file_delete_many(&self, ids: Vec<uuid::Uuid>) -> Result<u64> {
        if ids.is_empty() {
            return Ok(0);
        }
        let done = sqlx::query(sql!("tablo_file_delete"))
            .bind(ids)
            .execute(self.pool()?)
            .await?;
        Ok(done.rows_affected())
    }

    async fn tablo_file_upload_begin(&self, f: TabloFileRow) -> Result<()> {
        sqlx::query(sql!("tablo_file_upload_begin"))
            .bind(f.id)
            .bind(f.tablo_id)
            .bind(f.s3_key)
            .bind(f.size)
            .execute(self.pool()?)
            .await
            .map(drop)
            .map_err(Error::from)
    }

    async fn tablo_file_upload_commit(
        &self,
        p: TabloFileUploadCommitParams,
    ) -> Result<Option<TabloFileRow>> {
        sqlx::query(sql!("tablo_file_upload_commit"))
            .bind(p.id)
            .bind(secs(p.grace))
            .try_map(file_from_row)
            .fetch_optional(self.pool()?)
            .await
            .map_err(Error::from)
    }

    async fn tablo_file_uploads_abandoned(
        &self,
        p: TabloFileUploadsAbandonedParams,
    ) -> Result<Vec<TabloFileRow>> {
        sqlx::query(sql!("tablo_file_uploads_abandoned"))
            .bind(secs(p.older_than))
            .bind(p.after)
            .bind(i64::from(p.limit))
            .try_map(file_from_row)
            .fetch_all(self.pool()?)
            .await
            .map_err(Error::from)
    }

    async fn tablo_file_upload_delete_many(&self, p: TabloFileUploadDeleteParams) -> Result<u64> {
        if p.ids.is_empty() {
            return Ok(0);
        }
        let done = sqlx::query(sql!("tablo_file_upload_delete"))
            .bind(p.ids)
            .bind(secs(p.older_than))
            .execute(self.pool()?)
            .await?;
        Ok(done.rows_affected())
    }

    async fn tablo_file_keys_in_use(
        &self,
        keys: Vec<String>,
        grace: Duration,
    ) -> Result<Vec<String>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        sqlx::query_scalar(sql!("tablo_file_keys_in_use"))
            .bind(keys)
            .bind(secs(grace))
            .fetch_all(self.pool()?)
            .await
            .map_err(Error::from)
    }

    async fn tablo_store_mark(&self) -> Result<uuid::Uuid> {
        let mut tx = self.pool()?.begin().await?;
        sqlx::query(sql!("tablo_store_mark_insert"))
            .bind(uuid::Uuid::new_v4())
            .execute(&mut *tx)
            .await?;
        let mark = sqlx::query_scalar(sql!("tablo_store_mark_get"))
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(mark)
    }

    async fn tablo_store_mark_get(&self) -> Result<Option<uuid::Uuid>> {
        sqlx::query_scalar(sql!("tablo_store_mark_get"))
            .fetch_optional(self.pool()?)
            .await
            .map_err(Error::from)
    }
}
