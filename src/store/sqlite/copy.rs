//! `porter copy` on SQLite: one end of a copy, on a connection of its own (see
//! [`crate::store::copy`]). Statements are built from the catalog's table and column names,
//! each quoted as an identifier; values are always bound.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rusqlite::types::Value as SqlValue;
use rusqlite::Connection;
use serde_json::Value;

use super::parse_url;
use crate::error::{Error, Result};
use crate::store::copy::{
    canonical, in_column, insert_only, keep_greater, key_error, row_error, shortened, ColumnKind,
    CopyColumn, CopyEnd, CopyTable, Page, Row, BATCH_BYTES,
};

/// The file a `sqlite:` URL names, to refuse copying from one that is not there (opening it
/// would create it).
pub fn file_of(url: &str) -> Result<std::path::PathBuf> {
    Ok(parse_url(url)?.0)
}

/// One end of a copy on a SQLite file.
pub struct SqliteEnd {
    conn: Arc<Mutex<Connection>>,
    path: std::path::PathBuf,
}

impl SqliteEnd {
    /// Opens the file a `sqlite:` URL names (migrated, or to be checked by
    /// [`CopyEnd::is_porter_database`] first); it is never created here.
    pub async fn open(url: &str) -> Result<Self> {
        let (path, _) = parse_url(url)?;
        let at = path.clone();
        let conn = blocking(move || {
            let conn = Connection::open_with_flags(
                &at,
                rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE
                    | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?;
            conn.busy_timeout(std::time::Duration::from_secs(30))?;
            Ok(conn)
        })
        .await?;
        Ok(SqliteEnd {
            conn: Arc::new(Mutex::new(conn)),
            path,
        })
    }

    async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let conn = self.conn.clone();
        blocking(move || f(&conn.lock().unwrap_or_else(|p| p.into_inner()))).await
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Database(e.to_string()))?
}

/// An identifier, quoted.
fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn list(names: impl IntoIterator<Item = String>) -> String {
    names
        .into_iter()
        .map(|n| ident(&n))
        .collect::<Vec<_>>()
        .join(", ")
}

fn columns(table: &CopyTable) -> String {
    list(table.columns.iter().map(|c| c.name.clone()))
}

/// The kind SQLite's declared type tells (its affinity); the other end may know better.
fn declared_kind(declared: &str) -> ColumnKind {
    let t = declared.to_ascii_uppercase();
    if t.contains("INT") {
        ColumnKind::Int
    } else if t.contains("REAL") || t.contains("FLOA") || t.contains("DOUB") {
        ColumnKind::Float
    } else if t.contains("BOOL") {
        ColumnKind::Bool
    } else {
        ColumnKind::Text
    }
}

/// A value the copy cannot carry unchanged.
#[derive(Debug, Clone, Copy)]
enum Uncopiable {
    /// Text that is not UTF-8 (read with U+FFFD in place of the bytes that are not, to name
    /// the row by).
    NotUtf8,
    /// A number that is not finite: JSON has no such number, so it would travel as NULL.
    NotFinite(f64),
}

/// A row's values as SQLite stores them, and the first column whose value cannot be copied
/// unchanged.
type StoredRow = (Vec<SqlValue>, Option<(usize, Uncopiable)>);

fn read_row(table: &CopyTable, r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredRow> {
    use rusqlite::types::ValueRef;
    let mut refused = None;
    let values = (0..table.columns.len())
        .map(|i| {
            // Text is read as its bytes: another program may have stored some that are not
            // UTF-8, which rusqlite's own conversion panics on.
            Ok(match r.get_ref(i)? {
                ValueRef::Text(bytes) => match std::str::from_utf8(bytes) {
                    Ok(text) => SqlValue::Text(text.to_owned()),
                    Err(_) => {
                        refused = refused.or(Some((i, Uncopiable::NotUtf8)));
                        SqlValue::Text(String::from_utf8_lossy(bytes).into_owned())
                    }
                },
                // Text another program bound as a BLOB is read as its text (see `value_of`):
                // bytes that are not UTF-8 are refused as such text is, not replaced with
                // U+FFFD (found by review).
                ValueRef::Blob(bytes) => {
                    if std::str::from_utf8(bytes).is_err() {
                        refused = refused.or(Some((i, Uncopiable::NotUtf8)));
                    }
                    SqlValue::Blob(bytes.to_vec())
                }
                // SQLite keeps `9e999` as infinity, in an INTEGER column too, and CHECKs
                // such as `concurrency >= 1` take it. It was copied as NULL, and verified as
                // such (a queue's limit lifted in the copy; review of 7 Dec).
                ValueRef::Real(f) if !f.is_finite() => {
                    refused = refused.or(Some((i, Uncopiable::NotFinite(f))));
                    SqlValue::Real(f)
                }
                other => SqlValue::from(other),
            })
        })
        .collect::<rusqlite::Result<_>>()?;
    Ok((values, refused))
}

/// A stored value as the copy reads it.
fn value_of(stored: SqlValue) -> Value {
    match stored {
        SqlValue::Null => Value::Null,
        SqlValue::Integer(n) => Value::from(n),
        SqlValue::Real(f) => Value::from(f),
        SqlValue::Text(t) => Value::String(t),
        // Text another program bound as a BLOB: its text, as porter's reads take it (no
        // porter table holds bytes).
        SqlValue::Blob(b) => Value::String(String::from_utf8_lossy(&b).into_owned()),
    }
}

/// A key value as stored, for [`Page::last`]: a BLOB stays bytes (`{"blob": [..]}`), text
/// stays as it is spelled, so the next page starts right after it in SQLite's order.
fn stored_key(stored: &SqlValue) -> Value {
    match stored {
        SqlValue::Blob(b) => serde_json::json!({ "blob": b }),
        other => value_of(other.clone()),
    }
}

/// The inverse of [`stored_key`].
fn stored_key_to_sql(key: &Value) -> SqlValue {
    match key {
        Value::Object(o) => SqlValue::Blob(
            o.get("blob")
                .and_then(Value::as_array)
                .map(|b| {
                    b.iter()
                        .filter_map(|x| x.as_u64())
                        .map(|x| x as u8)
                        .collect()
                })
                .unwrap_or_default(),
        ),
        Value::Number(n) => match n.as_i64() {
            Some(i) => SqlValue::Integer(i),
            None => SqlValue::Real(n.as_f64().unwrap_or_default()),
        },
        Value::String(t) => SqlValue::Text(t.clone()),
        _ => SqlValue::Null,
    }
}

/// Rows as the copy reads them; text that is not UTF-8 and numbers that are not finite are
/// refused, naming their row and column (copied, they would change).
fn canonical_rows(table: &CopyTable, rows: Vec<StoredRow>) -> Result<Vec<Row>> {
    rows.into_iter()
        .map(|(row, refused)| {
            let row: Vec<Value> = row.into_iter().map(value_of).collect();
            let value_of = |name: &str| {
                let i = table.columns.iter().position(|c| c.name == name)?;
                row.get(i)
            };
            if let Some((i, why)) = refused {
                let column = &table.columns[i].name;
                let said = match why {
                    Uncopiable::NotUtf8 => format!(
                        "column {column} holds text that is not UTF-8 ({}); correct the row and copy again",
                        shortened(&row[i])
                    ),
                    Uncopiable::NotFinite(f) => format!(
                        "column {column} holds a number that is not finite ({f}); correct the row and copy again"
                    ),
                };
                return Err(row_error(table, value_of, Error::Database(said)));
            }
            table
                .columns
                .iter()
                .zip(&row)
                .map(|(c, v)| {
                    job_time_porter_reads(table, c, v)
                        .and_then(|()| canonical(c.kind, v.clone()))
                        .map_err(|e| row_error(table, value_of, in_column(&c.name, e)))
                })
                .collect()
        })
        .collect()
}

/// A job's time in another format than porter's own: porter reads such a job as unreadable
/// and discards it unrun (see the README's plain INSERT table); copied in the copy's one
/// format, it would run. Refused instead, for its row to be corrected or deleted first.
fn job_time_porter_reads(table: &CopyTable, column: &CopyColumn, value: &Value) -> Result<()> {
    match value {
        Value::String(text)
            if table.name == "porter_jobs"
                && column.kind == ColumnKind::Time
                && super::parse_time(text).is_err() =>
        {
            Err(Error::Database(format!(
                "holds {text:?}, a time porter does not read in a job's row (only \
                 YYYY-MM-DDTHH:MM:SS.mmmZ): porter discards this job unrun here, and copied it \
                 would run; correct or delete the row and copy again"
            )))
        }
        _ => Ok(()),
    }
}

/// A canonical value as SQLite stores it for a column of `kind`.
fn to_sql(kind: ColumnKind, value: &Value) -> SqlValue {
    match (kind, value) {
        (_, Value::Null) => SqlValue::Null,
        // The canonical JSON text (see `canonical`).
        (ColumnKind::Json, Value::String(text)) => SqlValue::Text(text.clone()),
        (ColumnKind::Json, v) => SqlValue::Text(v.to_string()),
        (_, Value::Bool(b)) => SqlValue::Integer(i64::from(*b)),
        (_, Value::Number(n)) => match n.as_i64() {
            Some(i) => SqlValue::Integer(i),
            None => SqlValue::Real(n.as_f64().unwrap_or_default()),
        },
        (_, Value::String(s)) => SqlValue::Text(s.clone()),
        (_, v) => SqlValue::Text(v.to_string()),
    }
}

/// About what a stored value takes as JSON text, for the size of a page.
fn stored_size(value: &SqlValue) -> usize {
    match value {
        SqlValue::Text(text) => text.len() + 2,
        SqlValue::Blob(bytes) => bytes.len() + 2,
        _ => 8,
    }
}

/// The last id a table's AUTOINCREMENT counter handed out (none for a table without one, or
/// one that never had a row).
fn id_counter(c: &Connection, table: &str) -> rusqlite::Result<Option<i64>> {
    use rusqlite::OptionalExtension;
    c.query_row(
        "SELECT seq FROM sqlite_sequence WHERE name = ?1",
        [table],
        |r| r.get(0),
    )
    .optional()
}

#[async_trait]
impl CopyEnd for SqliteEnd {
    async fn identity(&mut self) -> Result<String> {
        let path = std::fs::canonicalize(&self.path).unwrap_or_else(|_| self.path.clone());
        Ok(format!("sqlite:{}", path.display()))
    }

    async fn is_porter_database(&mut self) -> Result<bool> {
        self.with(|c| {
            let found: i64 =
                c.query_row(include_str!("sql/copy_porter_schema.sql"), [], |r| r.get(0))?;
            Ok(found > 0)
        })
        .await
    }

    async fn tables(&mut self) -> Result<Vec<CopyTable>> {
        self.with(|c| {
            let names: Vec<String> = c
                .prepare(include_str!("sql/copy_tables.sql"))?
                .query_map([], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            let mut tables = Vec::new();
            for name in names {
                // pk is the column's place in the key (0: not in it).
                let cols: Vec<(String, ColumnKind, i64)> = c
                    .prepare("SELECT name, type, pk FROM pragma_table_info(?1)")?
                    .query_map([&name], |r| {
                        Ok((r.get(0)?, declared_kind(&r.get::<_, String>(1)?), r.get(2)?))
                    })?
                    .collect::<rusqlite::Result<_>>()?;
                tables.push(CopyTable::from_catalog(name, cols));
            }
            Ok(tables)
        })
        .await
    }

    async fn rows_naming_missing_jobs(&mut self) -> Result<Vec<(String, u64, String)>> {
        self.with(|c| {
            let mut stmt = c.prepare(include_str!("sql/copy_rows_naming_missing_jobs.sql"))?;
            let rows = stmt
                .query_map([], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, i64>(1)? as u64,
                        r.get::<_, String>(2)?,
                    ))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
        .await
    }

    async fn count(&mut self, table: &CopyTable) -> Result<u64> {
        let sql = format!("SELECT count(*) FROM {}", ident(&table.name));
        self.with(move |c| Ok(c.query_row(&sql, [], |r| r.get::<_, i64>(0))? as u64))
            .await
    }

    async fn read(
        &mut self,
        table: &CopyTable,
        after: Option<&[Value]>,
        limit: usize,
    ) -> Result<Page> {
        let key = list(table.key.clone());
        let marks = vec!["?"; table.key.len()].join(", ");
        let filter = match after {
            Some(_) => format!("WHERE ({key}) > ({marks})"),
            None => String::new(),
        };
        let sql = format!(
            "SELECT {} FROM {} {filter} ORDER BY {key} LIMIT {limit}",
            columns(table),
            ident(&table.name)
        );
        let params: Vec<SqlValue> = after
            .unwrap_or_default()
            .iter()
            .map(stored_key_to_sql)
            .collect();
        let t = table.clone();
        // Cut at about BATCH_BYTES of rows: the rows up to the one that reaches it, however
        // many `limit` allows (the rest are not read).
        let rows = self
            .with(move |c| {
                let mut stmt = c.prepare(&sql)?;
                let mut read =
                    stmt.query_map(rusqlite::params_from_iter(params), |r| read_row(&t, r))?;
                let (mut rows, mut bytes) = (Vec::new(), 0);
                while bytes < BATCH_BYTES {
                    let Some(row) = read.next() else { break };
                    let row = row?;
                    bytes += row.0.iter().map(stored_size).sum::<usize>();
                    rows.push(row);
                }
                Ok(rows)
            })
            .await?;
        let last = rows.last().map(|(r, _)| {
            table
                .key_positions()
                .iter()
                .map(|&i| stored_key(&r[i]))
                .collect()
        });
        Ok(Page {
            rows: canonical_rows(table, rows)?,
            last,
        })
    }

    async fn read_keys(&mut self, table: &CopyTable, keys: &[Vec<Value>]) -> Result<Vec<Row>> {
        let key = list(table.key.clone());
        let picks = (0..table.key.len())
            .map(|i| format!("json_extract(value, '$[{i}]')"))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT {} FROM {} WHERE ({key}) IN (SELECT {picks} FROM json_each(?1)) ORDER BY {key}",
            columns(table),
            ident(&table.name)
        );
        let kinds: Vec<ColumnKind> = table
            .key_positions()
            .into_iter()
            .map(|i| table.columns[i].kind)
            .collect();
        // Keys as SQLite stores them (a boolean as 0/1), one JSON array per key.
        let as_stored: Vec<Value> = keys
            .iter()
            .map(|k| {
                Value::Array(
                    k.iter()
                        .zip(&kinds)
                        .map(|(v, kind)| match to_sql(*kind, v) {
                            SqlValue::Integer(i) => Value::from(i),
                            SqlValue::Real(f) => Value::from(f),
                            SqlValue::Text(t) => Value::String(t),
                            _ => Value::Null,
                        })
                        .collect(),
                )
            })
            .collect();
        let arg = Value::Array(as_stored).to_string();
        let t = table.clone();
        let rows = self
            .with(move |c| {
                Ok(c.prepare(&sql)?
                    .query_map([arg], |r| read_row(&t, r))?
                    .collect::<rusqlite::Result<Vec<_>>>()?)
            })
            .await?;
        canonical_rows(table, rows)
    }

    async fn begin_read(&mut self) -> Result<()> {
        // A deferred transaction's snapshot starts at its first read.
        self.with(|c| {
            c.execute_batch("BEGIN")?;
            c.query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(()))?;
            Ok(())
        })
        .await
    }

    async fn begin(&mut self) -> Result<()> {
        self.with(|c| {
            c.execute_batch("BEGIN IMMEDIATE; PRAGMA defer_foreign_keys = ON;")?;
            Ok(())
        })
        .await
    }

    async fn write(&mut self, table: &CopyTable, rows: &[Row]) -> Result<()> {
        let key = list(table.key.clone());
        let marks = vec!["?"; table.columns.len()].join(", ");
        // A row whose key is there already keeps the target's values, but for the columns
        // that only move forward; rows of insert-only tables (jobs, workflows, batches, ...) are
        // only inserted: a taken key fails the copy.
        let greater: Vec<String> = keep_greater(&table.name)
            .iter()
            .map(|c| format!("{0} = max({0}, excluded.{0})", ident(c)))
            .collect();
        let on_conflict = match (insert_only(&table.name), greater.is_empty()) {
            (true, _) => String::new(),
            (false, true) => format!("ON CONFLICT ({key}) DO NOTHING"),
            (false, false) => format!("ON CONFLICT ({key}) DO UPDATE SET {}", greater.join(", ")),
        };
        let sql = format!(
            "INSERT INTO {} ({}) VALUES ({marks}) {on_conflict}",
            ident(&table.name),
            columns(table)
        );
        let values: Vec<Vec<SqlValue>> = rows
            .iter()
            .map(|row| {
                table
                    .columns
                    .iter()
                    .zip(row)
                    .map(|(c, v)| to_sql(c.kind, v))
                    .collect()
            })
            .collect();
        let keys: Vec<Vec<Value>> = rows.iter().map(|r| table.key_of(r)).collect();
        let t = table.clone();
        self.with(move |c| {
            let mut stmt = c.prepare_cached(&sql)?;
            for (row, key) in values.into_iter().zip(&keys) {
                stmt.execute(rusqlite::params_from_iter(row))
                    .map_err(|e| key_error(&t, key, e.into()))?;
            }
            Ok(())
        })
        .await
    }

    async fn id_counter(&mut self, table: &CopyTable) -> Result<Option<i64>> {
        let name = table.name.clone();
        // Without AUTOINCREMENT, an integer key's next id is one past its largest.
        let key = match table.key.as_slice() {
            [key] => table
                .columns
                .iter()
                .find(|c| c.name == *key && c.kind == ColumnKind::Int)
                .map(|c| c.name.clone()),
            _ => None,
        };
        // And the largest id where it is past the counter (a counter another program wrote).
        self.with(move |c| {
            let counter = id_counter(c, &name)?;
            let Some(key) = key else {
                return Ok(counter);
            };
            let sql = format!(
                "SELECT max({k}) FROM {t} WHERE typeof({k}) = 'integer'",
                k = ident(&key),
                t = ident(&name)
            );
            let largest = c.query_row(&sql, [], |r| r.get::<_, Option<i64>>(0))?;
            Ok(counter.max(largest))
        })
        .await
    }

    async fn raise_id_counter(&mut self, table: &CopyTable, last: i64) -> Result<()> {
        // AUTOINCREMENT's counter follows the ids inserted by itself; it is moved on to the
        // source's last id here (a table without AUTOINCREMENT has no counter to move).
        let name = table.name.clone();
        self.with(move |c| {
            match id_counter(c, &name)? {
                Some(seq) if seq < last => {
                    c.execute(
                        "UPDATE sqlite_sequence SET seq = ?2 WHERE name = ?1",
                        (&name, last),
                    )?;
                }
                Some(_) => {}
                // No row yet: the table never had one inserted.
                None if last > 0 => {
                    c.execute(
                        "INSERT INTO sqlite_sequence (name, seq) SELECT name, ?2 \
                         FROM sqlite_master WHERE type = 'table' AND name = ?1 \
                         AND sql LIKE '%AUTOINCREMENT%'",
                        (&name, last),
                    )?;
                }
                None => {}
            }
            Ok(())
        })
        .await
    }

    async fn commit(&mut self) -> Result<()> {
        self.with(|c| Ok(c.execute_batch("COMMIT")?)).await
    }

    async fn rollback(&mut self) -> Result<()> {
        self.with(|c| {
            if !c.is_autocommit() {
                c.execute_batch("ROLLBACK")?;
            }
            Ok(())
        })
        .await
    }
}
