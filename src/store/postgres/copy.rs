//! `porter copy` on PostgreSQL: one end of a copy, on a connection of its own (see
//! [`crate::store::copy`]). Statements are built from the catalog's table and column names,
//! each quoted as an identifier; rows travel as JSON and `json_populate_record(set)` casts
//! each value to its column's type.

use async_trait::async_trait;
use serde_json::Value;
use sqlx::{Executor, PgConnection};

use super::connect;
use crate::error::{Error, Result};
use crate::store::copy::{
    canonical, in_column, insert_only, keep_greater, key_error, row_error, ColumnKind, CopyEnd,
    CopyTable, Page, Row, BATCH_BYTES,
};

/// One end of a copy on a Postgres database (the schema its URL's search_path names).
pub struct PgEnd {
    conn: PgConnection,
}

impl PgEnd {
    /// Connects to the database a `postgres://` URL names (migrated, or to be checked by
    /// [`CopyEnd::is_porter_database`] first).
    pub async fn open(url: &str) -> Result<Self> {
        // As every porter connection (`connect_options`): sqlx is handed only the URL
        // parameters it reads (it logged any other with its value, an sslpassword among them),
        // with porter's settings. The store opened the same URL before (migrated) and said
        // which it ignores.
        let options = super::connect_options(url, false)?;
        Ok(PgEnd {
            conn: connect(&options, url).await?,
        })
    }

    /// The sequences the table's integer columns take their ids from (serial or identity),
    /// with each column's name.
    async fn sequences(&mut self, table: &CopyTable) -> Result<Vec<(String, String)>> {
        let mut found = Vec::new();
        for column in table.columns.iter().filter(|c| c.kind == ColumnKind::Int) {
            let sequence: Option<String> =
                sqlx::query_scalar(include_str!("sql/copy_sequence.sql"))
                    .bind(&table.name)
                    .bind(&column.name)
                    .fetch_one(&mut self.conn)
                    .await?;
            found.extend(sequence.map(|s| (column.name.clone(), s)));
        }
        Ok(found)
    }
}

/// An identifier, quoted.
fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn list(names: &[String]) -> String {
    names
        .iter()
        .map(|n| ident(n))
        .collect::<Vec<_>>()
        .join(", ")
}

fn column_names(table: &CopyTable) -> Vec<String> {
    table.columns.iter().map(|c| c.name.clone()).collect()
}

/// The select list of a read: JSON columns as their text, so that a JSON `null` does not read
/// as SQL NULL (row_to_json spells both `null`).
fn select_list(table: &CopyTable) -> String {
    table
        .columns
        .iter()
        .map(|c| match c.kind {
            ColumnKind::Json => format!("{0}::text AS {0}", ident(&c.name)),
            _ => ident(&c.name),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The kind a Postgres type holds.
fn kind_of(pg_type: &str) -> ColumnKind {
    match pg_type {
        "bigint" | "integer" | "smallint" => ColumnKind::Int,
        "double precision" | "real" | "numeric" => ColumnKind::Float,
        "boolean" => ColumnKind::Bool,
        "jsonb" | "json" => ColumnKind::Json,
        "uuid" => ColumnKind::Uuid,
        t if t.starts_with("timestamp") => ColumnKind::Time,
        _ => ColumnKind::Text,
    }
}

/// The rows of a `SELECT row_to_json(r)::text ...`, in column order and canonical.
fn rows_of(table: &CopyTable, texts: Vec<String>) -> Result<Vec<Row>> {
    texts
        .into_iter()
        .map(|text| {
            let object: serde_json::Map<String, Value> =
                serde_json::from_str(&text).map_err(|e| {
                    // Not read: named by its start (the key columns come first).
                    let mut start: String = text.chars().take(120).collect();
                    if start.len() < text.len() {
                        start.push_str("...");
                    }
                    Error::Database(format!("a row of {} ({start}): {e}", table.name))
                })?;
            table
                .columns
                .iter()
                .map(|c| {
                    canonical(c.kind, object.get(&c.name).cloned().unwrap_or(Value::Null))
                        .map_err(|e| row_error(table, |k| object.get(k), in_column(&c.name, e)))
                })
                .collect()
        })
        .collect()
}

/// Key values as the JSON array of objects `json_populate_recordset` reads.
fn key_objects(table: &CopyTable, keys: &[Vec<Value>]) -> Value {
    Value::Array(keys.iter().map(|k| table.key_object(k)).collect())
}

#[async_trait]
impl CopyEnd for PgEnd {
    async fn identity(&mut self) -> Result<String> {
        Ok(sqlx::query_scalar(include_str!("sql/copy_identity.sql"))
            .fetch_one(&mut self.conn)
            .await?)
    }

    async fn is_porter_database(&mut self) -> Result<bool> {
        let found: i64 = sqlx::query_scalar(include_str!("sql/copy_porter_schema.sql"))
            .fetch_one(&mut self.conn)
            .await?;
        Ok(found > 0)
    }

    async fn tables(&mut self) -> Result<Vec<CopyTable>> {
        let names: Vec<String> = sqlx::query_scalar(include_str!("sql/copy_tables.sql"))
            .fetch_all(&mut self.conn)
            .await?;
        let mut tables = Vec::new();
        for name in names {
            let cols: Vec<(String, String, i32)> =
                sqlx::query_as(include_str!("sql/copy_columns.sql"))
                    .bind(&name)
                    .fetch_all(&mut self.conn)
                    .await?;
            let cols = cols
                .into_iter()
                .map(|(n, t, place)| (n, kind_of(&t), i64::from(place)))
                .collect();
            tables.push(CopyTable::from_catalog(name, cols));
        }
        Ok(tables)
    }

    async fn rows_naming_missing_jobs(&mut self) -> Result<Vec<(String, u64, String)>> {
        let rows: Vec<(String, i64, String)> =
            sqlx::query_as(include_str!("sql/copy_rows_naming_missing_jobs.sql"))
                .fetch_all(&mut self.conn)
                .await?;
        Ok(rows.into_iter().map(|(t, n, m)| (t, n as u64, m)).collect())
    }

    async fn count(&mut self, table: &CopyTable) -> Result<u64> {
        let n: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {}", ident(&table.name)))
            .fetch_one(&mut self.conn)
            .await?;
        Ok(n as u64)
    }

    async fn read(
        &mut self,
        table: &CopyTable,
        after: Option<&[Value]>,
        limit: usize,
    ) -> Result<Page> {
        let key = list(&table.key);
        let filter = match after {
            Some(_) => format!(
                "WHERE ({key}) > (SELECT {key} FROM json_populate_record(NULL::{}, $1::json))",
                ident(&table.name)
            ),
            None => String::new(),
        };
        // Cut at about BATCH_BYTES of rows (as their JSON text): the rows up to the one that
        // reaches it, however many `limit` allows.
        let sql = format!(
            "SELECT t FROM (SELECT t, n, sum(octet_length(t)) OVER (ORDER BY n) - octet_length(t) AS before \
             FROM (SELECT row_to_json(r)::text AS t, row_number() OVER (ORDER BY {key}) AS n \
             FROM (SELECT {} FROM {} {filter} ORDER BY {key} LIMIT {limit}) r) numbered) sized \
             WHERE before < {BATCH_BYTES} ORDER BY n",
            select_list(table),
            ident(&table.name)
        );
        let mut query = sqlx::query_scalar(&sql);
        if let Some(after) = after {
            query = query.bind(table.key_object(after));
        }
        let texts: Vec<String> = query.fetch_all(&mut self.conn).await?;
        let rows = rows_of(table, texts)?;
        // A key as Postgres stores it is its canonical value (uuids compare as uuids).
        let last = rows.last().map(|r| table.key_of(r));
        Ok(Page { rows, last })
    }

    async fn read_keys(&mut self, table: &CopyTable, keys: &[Vec<Value>]) -> Result<Vec<Row>> {
        let key = list(&table.key);
        let sql = format!(
            "SELECT row_to_json(r)::text FROM (SELECT {} FROM {t} WHERE ({key}) IN \
             (SELECT {key} FROM json_populate_recordset(NULL::{t}, $1::json)) ORDER BY {key}) r",
            select_list(table),
            t = ident(&table.name)
        );
        let texts: Vec<String> = sqlx::query_scalar(&sql)
            .bind(key_objects(table, keys))
            .fetch_all(&mut self.conn)
            .await?;
        rows_of(table, texts)
    }

    async fn begin_read(&mut self) -> Result<()> {
        (&mut self.conn)
            .execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await?;
        Ok(())
    }

    async fn begin(&mut self) -> Result<()> {
        (&mut self.conn).execute("BEGIN").await?;
        Ok(())
    }

    async fn write(&mut self, table: &CopyTable, rows: &[Row]) -> Result<()> {
        let t = ident(&table.name);
        // Each row is a JSON object; json_populate_record casts each value to its column's
        // type. JSON columns are taken as they are from the object instead: a JSON `null`
        // is a value there, and a column left out of the object is SQL NULL.
        let exprs: Vec<String> = table
            .columns
            .iter()
            .map(|c| match c.kind {
                ColumnKind::Json => format!("porter_copy_row -> '{}'", c.name.replace('\'', "''")),
                _ => format!("porter_copy_rec.{}", ident(&c.name)),
            })
            .collect();
        // A row whose key is there already keeps the target's values, but for the columns
        // that only move forward; rows of insert-only tables (jobs, workflows, batches, ...) are
        // only inserted: a taken key fails the copy.
        let greater: Vec<String> = keep_greater(&table.name)
            .iter()
            .map(|c| {
                format!(
                    "{0} = GREATEST(porter_copy_target.{0}, EXCLUDED.{0})",
                    ident(c)
                )
            })
            .collect();
        let key = list(&table.key);
        let on_conflict = match (insert_only(&table.name), greater.is_empty()) {
            (true, _) => String::new(),
            (false, true) => format!("ON CONFLICT ({key}) DO NOTHING"),
            (false, false) => format!("ON CONFLICT ({key}) DO UPDATE SET {}", greater.join(", ")),
        };
        // OVERRIDING SYSTEM VALUE: the copied ids are kept, identity columns included.
        let sql = format!(
            "INSERT INTO {t} AS porter_copy_target ({cols}) OVERRIDING SYSTEM VALUE \
             SELECT {exprs} FROM json_array_elements($1::json) AS porter_copy_row, \
             LATERAL json_populate_record(NULL::{t}, porter_copy_row) AS porter_copy_rec \
             {on_conflict}",
            cols = list(&column_names(table)),
            exprs = exprs.join(", "),
        );
        let objects = rows
            .iter()
            .map(|row| {
                let mut object = serde_json::Map::new();
                for (c, v) in table.columns.iter().zip(row) {
                    let value = match (c.kind, v) {
                        (_, Value::Null) => continue,
                        (ColumnKind::Json, Value::String(text)) => serde_json::from_str(text)
                            .map_err(|e| Error::Database(format!("a JSON value: {e}")))?,
                        (_, v) => v.clone(),
                    };
                    object.insert(c.name.clone(), value);
                }
                Ok(Value::Object(object))
            })
            .collect::<Result<Vec<_>>>()?;
        // Under a savepoint, so that a batch that fails can be written again row by row to
        // name the row it failed on (the failure aborts everything after it, up to here).
        (&mut self.conn)
            .execute("SAVEPOINT porter_copy_write")
            .await?;
        let batch = Value::Array(objects);
        let Err(failed) = sqlx::query(&sql).bind(&batch).execute(&mut self.conn).await else {
            (&mut self.conn)
                .execute("RELEASE SAVEPOINT porter_copy_write")
                .await?;
            return Ok(());
        };
        (&mut self.conn)
            .execute("ROLLBACK TO SAVEPOINT porter_copy_write")
            .await?;
        for (row, object) in rows.iter().zip(batch.as_array().into_iter().flatten()) {
            let one = Value::Array(vec![object.clone()]);
            if let Err(e) = sqlx::query(&sql).bind(one).execute(&mut self.conn).await {
                return Err(key_error(table, &table.key_of(row), e.into()));
            }
        }
        Err(failed.into())
    }

    async fn id_counter(&mut self, table: &CopyTable) -> Result<Option<i64>> {
        let mut last = None;
        for (column, sequence) in self.sequences(table).await? {
            // NULL when the sequence never handed out an id and the column holds none. The
            // largest id too: rows another program inserted with ids of their own (a restore
            // of data only) may lie past the sequence (review of 6 Dec).
            let sql = format!(
                "SELECT greatest(pg_sequence_last_value($1::regclass), (SELECT max({c}) FROM {t}))",
                c = ident(&column),
                t = ident(&table.name)
            );
            let value: Option<i64> = sqlx::query_scalar(&sql)
                .bind(sequence)
                .fetch_one(&mut self.conn)
                .await?;
            last = last.max(value);
        }
        Ok(last)
    }

    async fn raise_id_counter(&mut self, table: &CopyTable, last: i64) -> Result<()> {
        for (column, sequence) in self.sequences(table).await? {
            // Past the largest id now in the table and the source's last one, so new rows
            // never take an id given out before, and never back: ids of rows deleted before
            // stay given out.
            let sql = format!(
                "SELECT setval($1::regclass, greatest(m, 1), m > 0) FROM (SELECT greatest(\
                 coalesce(max({c}), 0), coalesce(pg_sequence_last_value($1::regclass), 0), $2) \
                 AS m FROM {t}) q",
                c = ident(&column),
                t = ident(&table.name)
            );
            sqlx::query(&sql)
                .bind(sequence)
                .bind(last)
                .execute(&mut self.conn)
                .await?;
        }
        Ok(())
    }

    async fn commit(&mut self) -> Result<()> {
        (&mut self.conn).execute("COMMIT").await?;
        Ok(())
    }

    async fn rollback(&mut self) -> Result<()> {
        (&mut self.conn).execute("ROLLBACK").await?;
        Ok(())
    }

    /// `ANALYZE` of the table, which counts the rows this transaction wrote: without it the
    /// planner took a table just filled for about empty, and read each page of keys to verify
    /// (`read_keys`) in a nested loop that parsed the page's JSON again for every row of the
    /// table (a copy of 300,000 jobs spent 11-13 s a page verifying; review of 4 Dec).
    async fn written(&mut self, table: &CopyTable) -> Result<()> {
        let sql = format!("ANALYZE {}", ident(&table.name));
        (&mut self.conn).execute(sql.as_str()).await?;
        Ok(())
    }
}
