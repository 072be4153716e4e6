//! The tablo store on SQLite: the queue's own file, written through the queue store's one
//! writer ([`SqliteStore::write_tx`]) so that the app's writes join the process's group commit
//! instead of contending with it for the file's write lock, and read on its read pool
//! ([`SqliteStore::read`]). Times are stored as the queue stores them: RFC 3339 text in UTC,
//! from `porter_now()`.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension, Row};

use super::*;
use crate::app::args::OrphanFileCleanup;
use crate::store::sqlite::SqliteStore;
use crate::store::{clamp_secs, Database};
use crate::Client;

macro_rules! sql {
    ($name:literal) => {
        include_str!(concat!("sql/", $name, ".sql"))
    };
}

/// The tablo store over a SQLite queue store.
pub struct SqliteTabloStore {
    core: Arc<Store>,
}

impl std::fmt::Debug for SqliteTabloStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteTabloStore").finish_non_exhaustive()
    }
}

impl SqliteTabloStore {
    /// The tablo store over `core`'s file (see [`Store::database`]).
    pub fn new(core: Arc<Store>) -> Self {
        SqliteTabloStore { core }
    }

    fn db(&self) -> Result<&SqliteStore> {
        match self.core.database() {
            Some(Database::Sqlite(s)) => Ok(s),
            _ => Err(no_database(self.core.as_ref())),
        }
    }
}

fn parse_time(s: &str) -> rusqlite::Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
        })
}

fn uuid_col(s: String) -> rusqlite::Result<uuid::Uuid> {
    uuid::Uuid::parse_str(&s).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    })
}

fn tablo_from_row(r: &Row<'_>) -> rusqlite::Result<TabloRow> {
    Ok(TabloRow {
        id: uuid_col(r.get(0)?)?,
        name: r.get(1)?,
        created_at: parse_time(&r.get::<_, String>(2)?)?,
    })
}

/// A file or upload row. Its ids must read as UUIDs (the pages that clean rows take only
/// those), but its size and time are read leniently, as another program may have written them
/// on SQLite (PostgreSQL's typed columns refuse such rows): a size that is not an integer as
/// the integer it holds (a REAL cut, text 0), a time as the queue's other tables read theirs
/// (porter's format, RFC 3339 or SQLite's own, anything else as 1970). Until 6 Dec
/// such a row failed the page that read it: the file listing of its tablo, and every pass of
/// the orphan cleanup, which ended there.
fn file_from_row(r: &Row<'_>) -> rusqlite::Result<TabloFileRow> {
    use rusqlite::types::ValueRef;
    let size = match r.get_ref(3)? {
        ValueRef::Integer(n) => n,
        ValueRef::Real(x) => x as i64,
        _ => 0,
    };
    Ok(TabloFileRow {
        id: uuid_col(r.get(0)?)?,
        tablo_id: uuid_col(r.get(1)?)?,
        s3_key: r.get(2)?,
        size,
        created_at: crate::store::sqlite::time_outside_jobs_or_epoch(r.get_ref(4)?),
    })
}

/// An SQLite date modifier for a time `d` before now, e.g. `-15.000 seconds`, clamped to the
/// queue's longest duration (before year 0 SQLite's date functions give NULL).
fn ago(d: Duration) -> String {
    format!("{:+.3} seconds", -clamp_secs(d))
}

#[async_trait::async_trait]
impl TabloStore for SqliteTabloStore {
    fn backend(&self) -> Backend {
        Backend::Sqlite
    }

    async fn tablo_insert(&self, name: &str) -> Result<TabloRow> {
        let name = name.to_string();
        let id = uuid::Uuid::new_v4();
        self.db()?
            .write_tx(move |c| {
                c.query_row(
                    sql!("tablo_insert"),
                    params![id.to_string(), name],
                    tablo_from_row,
                )
                .map_err(Error::from)
            })
            .await
    }

    async fn tablo_get(&self, id: uuid::Uuid) -> Result<Option<TabloRow>> {
        self.db()?
            .read(move |c| {
                c.query_row(sql!("tablo_get"), [id.to_string()], tablo_from_row)
                    .optional()
                    .map_err(Error::from)
            })
            .await
    }

    async fn tablo_delete_enqueue(&self, id: uuid::Uuid) -> Result<Option<InsertResult>> {
        let out = self
            .db()?
            .write_tx(move |c| {
                let n = c.execute(sql!("tablo_delete"), [id.to_string()])?;
                if n == 0 {
                    return Ok(None);
                }
                // On the writer's connection, inside its transaction: an error here rolls the
                // delete back with it.
                let job = OrphanFileCleanup { tablo_id: Some(id) };
                Client::insert_tx_sqlite(c, &job, None).map(Some)
            })
            .await?;
        if let Some(inserted) = &out {
            // Committed: wake this process's producers now rather than at their next poll.
            self.core.wakeup().notify(&inserted.job.queue);
        }
        Ok(out)
    }

    async fn tablo_file_insert(&self, f: TabloFileRow) -> Result<()> {
        self.db()?
            .write_tx(move |c| {
                c.execute(
                    sql!("tablo_file_insert"),
                    params![f.id.to_string(), f.tablo_id.to_string(), f.s3_key, f.size],
                )
                .map(drop)
                .map_err(Error::from)
            })
            .await
    }

    async fn tablo_file_list(&self, tablo_id: uuid::Uuid) -> Result<Vec<TabloFileRow>> {
        self.db()?
            .read(move |c| {
                let mut stmt = c.prepare_cached(sql!("tablo_file_list"))?;
                let rows = stmt.query_map([tablo_id.to_string()], file_from_row)?;
                rows.collect::<rusqlite::Result<Vec<_>>>()
                    .map_err(Error::from)
            })
            .await
    }

    async fn tablo_file_page(&self, p: TabloFilePageParams) -> Result<Vec<TabloFileRow>> {
        self.db()?
            .read(move |c| {
                let mut stmt = c.prepare_cached(sql!("tablo_file_page"))?;
                let rows = stmt.query_map(
                    params![
                        p.tablo_id.to_string(),
                        p.after.map(|u| u.to_string()),
                        p.limit
                    ],
                    file_from_row,
                )?;
                rows.collect::<rusqlite::Result<Vec<_>>>()
                    .map_err(Error::from)
            })
            .await
    }

    async fn tablo_file_orphans(&self, p: TabloFileOrphansParams) -> Result<Vec<TabloFileRow>> {
        self.db()?
            .read(move |c| {
                let mut stmt = c.prepare_cached(sql!("tablo_file_orphans"))?;
                let rows = stmt.query_map(
                    params![
                        p.after.map(|u| u.to_string()),
                        p.tablo_id.map(|u| u.to_string()),
                        p.limit
                    ],
                    file_from_row,
                )?;
                rows.collect::<rusqlite::Result<Vec<_>>>()
                    .map_err(Error::from)
            })
            .await
    }

    async fn tablo_file_delete_many(&self, ids: Vec<uuid::Uuid>) -> Result<u64> {
        self.db()?
            .write_tx(move |c| {
                let mut stmt = c.prepare_cached(sql!("tablo_file_delete"))?;
                let mut n = 0u64;
                for id in ids {
                    n += stmt.execute([id.to_string()])? as u64;
                }
                Ok(n)
            })
            .await
    }

    async fn tablo_file_upload_begin(&self, f: TabloFileRow) -> Result<()> {
        self.db()?
            .write_tx(move |c| {
                c.execute(
                    sql!("tablo_file_upload_begin"),
                    params![f.id.to_string(), f.tablo_id.to_string(), f.s3_key, f.size],
                )
                .map(drop)
                .map_err(Error::from)
            })
            .await
    }

    async fn tablo_file_upload_commit(
        &self,
        p: TabloFileUploadCommitParams,
    ) -> Result<Option<TabloFileRow>> {
        self.db()?
            .write_tx(move |c| {
                let id = p.id.to_string();
                let file = c
                    .query_row(
                        sql!("tablo_file_upload_commit"),
                        params![id, ago(p.grace)],
                        file_from_row,
                    )
                    .optional()?;
                if file.is_some() {
                    c.execute(sql!("tablo_file_upload_forget"), [&id])?;
                }
                Ok(file)
            })
            .await
    }

    async fn tablo_file_uploads_abandoned(
        &self,
        p: TabloFileUploadsAbandonedParams,
    ) -> Result<Vec<TabloFileRow>> {
        self.db()?
            .read(move |c| {
                let mut stmt = c.prepare_cached(sql!("tablo_file_uploads_abandoned"))?;
                let rows = stmt.query_map(
                    params![ago(p.older_than), p.after.map(|u| u.to_string()), p.limit],
                    file_from_row,
                )?;
                rows.collect::<rusqlite::Result<Vec<_>>>()
                    .map_err(Error::from)
            })
            .await
    }

    async fn tablo_file_upload_delete_many(&self, p: TabloFileUploadDeleteParams) -> Result<u64> {
        self.db()?
            .write_tx(move |c| {
                let mut stmt = c.prepare_cached(sql!("tablo_file_upload_delete"))?;
                let older = ago(p.older_than);
                let mut n = 0u64;
                for id in p.ids {
                    n += stmt.execute(params![id.to_string(), older])? as u64;
                }
                Ok(n)
            })
            .await
    }
    async fn tablo_file_keys_in_use(
        &self,
        keys: Vec<String>,
        grace: Duration,
    ) -> Result<Vec<String>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let keys = serde_json::to_string(&keys).map_err(|e| Error::Database(e.to_string()))?;
        self.db()?
            .read(move |c| {
                let mut stmt = c.prepare_cached(sql!("tablo_file_keys_in_use"))?;
                let rows = stmt.query_map(params![keys, ago(grace)], |r| r.get(0))?;
                rows.collect::<rusqlite::Result<Vec<String>>>()
                    .map_err(Error::from)
            })
            .await
    }

    async fn tablo_store_mark(&self) -> Result<uuid::Uuid> {
        let fresh = uuid::Uuid::new_v4().to_string();
        self.db()?
            .write_tx(move |c| {
                c.execute(sql!("tablo_store_mark_insert"), [fresh])?;
                let mark: String = c.query_row(sql!("tablo_store_mark_get"), [], |r| r.get(0))?;
                Ok(uuid_col(mark)?)
            })
            .await
    }

    async fn tablo_store_mark_get(&self) -> Result<Option<uuid::Uuid>> {
        self.db()?
            .read(move |c| {
                let mark: Option<String> = c
                    .query_row(sql!("tablo_store_mark_get"), [], |r| r.get(0))
                    .optional()?;
                Ok(mark.map(uuid_col).transpose()?)
            })
            .await
    }
}
