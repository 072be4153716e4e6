//! `porter copy` on PostgreSQL: one end of a copy, on a connection of its own (see
//! [`crate::store::copy`]). Statements are built from the catalog's table and column names,
//! each quoted as an identifier; rows travel as JSON and `json_populate_record(set)` casts
//! each value to its column's type.

use async_trait::async_trait;
use serde_json::Value;
use sqlx::postgres::PgConnectOptions;
use sqlx::{Executor, PgConnection};

use super::connect;
use crate::error::{Error, Result};
use crate::store::copy::{canonical, ColumnKind, CopyColumn, CopyEnd, CopyTable, Row};
use crate::store::redact_url;

/// One end of a copy on a Postgres database (the schema its URL's search_path names).
pub struct PgEnd {
    conn: PgConnection,
    /// Tables written in the open transaction (their id sequences move at commit).
    written: Vec<CopyTable>,
}

impl PgEnd {
    /// Connects to the database a `postgres://` URL names (already migrated).
    pub async fn open(url: &str) -> Result<Self> {
        let options: PgConnectOptions = url
            .parse()
            .map_err(|e| Error::invalid("database url", format!("{}: {e}", redact_url(url))))?;
        Ok(PgEnd {
            conn: connect(&options, url).await?,
            written: Vec::new(),
        })
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
            let mut object: serde_json::Map<String, Value> = serde_json::from_str(&text)
                .map_err(|e| Error::Database(format!("a row of {}: {e}", table.name)))?;
            table
                .columns
                .iter()
                .map(|c| {
                    let value = object.remove(&c.name).unwrap_or(Value::Null);
                    // row_to_json nests jsonb already; canonical() parses only strings.
                    match (c.kind, value) {
                        (ColumnKind::Json, v) => Ok(v),
                        (kind, v) => canonical(kind, v),
                    }
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

    async fn tables(&mut self) -> Result<Vec<CopyTable>> {
        let names: Vec<String> = sqlx::query_scalar(include_str!("sql/copy_tables.sql"))
            .fetch_all(&mut self.conn)
            .await?;
        let mut tables = Vec::new();
        for name in names {
            let mut cols: Vec<(String, String, i32)> =
                sqlx::query_as(include_str!("sql/copy_columns.sql"))
                    .bind(&name)
                    .fetch_all(&mut self.conn)
                    .await?;
            let columns = cols
                .iter()
                .map(|(n, t, _)| CopyColumn {
                    name: n.clone(),
                    kind: kind_of(t),
                })
                .collect();
            cols.retain(|(_, _, pk)| *pk > 0);
            cols.sort_by_key(|(_, _, pk)| *pk);
            tables.push(CopyTable {
                name,
                columns,
                key: cols.into_iter().map(|(n, _, _)| n).collect(),
            });
        }
        Ok(tables)
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
    ) -> Result<Vec<Row>> {
        let key = list(&table.key);
        let filter = match after {
            Some(_) => format!(
                "WHERE ({key}) > (SELECT {key} FROM json_populate_record(NULL::{}, $1::json))",
                ident(&table.name)
            ),
            None => String::new(),
        };
        let sql = format!(
            "SELECT row_to_json(r)::text FROM (SELECT {} FROM {} {filter} ORDER BY {key} LIMIT {limit}) r",
            list(&column_names(table)),
            ident(&table.name)
        );
        let mut query = sqlx::query_scalar(&sql);
        if let Some(after) = after {
            query = query.bind(table.key_object(after));
        }
        let texts: Vec<String> = query.fetch_all(&mut self.conn).await?;
        rows_of(table, texts)
    }

    async fn read_keys(&mut self, table: &CopyTable, keys: &[Vec<Value>]) -> Result<Vec<Row>> {
        let key = list(&table.key);
        let sql = format!(
            "SELECT row_to_json(r)::text FROM (SELECT {} FROM {t} WHERE ({key}) IN \
             (SELECT {key} FROM json_populate_recordset(NULL::{t}, $1::json)) ORDER BY {key}) r",
            list(&column_names(table)),
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
        self.written.clear();
        Ok(())
    }

    async fn write(&mut self, table: &CopyTable, rows: &[Row]) -> Result<()> {
        let names = column_names(table);
        let updates: Vec<String> = table
            .columns
            .iter()
            .filter(|c| !table.key.contains(&c.name))
            .map(|c| format!("{0} = EXCLUDED.{0}", ident(&c.name)))
            .collect();
        let on_conflict = match updates.is_empty() {
            true => "DO NOTHING".to_string(),
            false => format!("DO UPDATE SET {}", updates.join(", ")),
        };
        // OVERRIDING SYSTEM VALUE: the copied ids are kept, identity columns included.
        let sql = format!(
            "INSERT INTO {t} ({cols}) OVERRIDING SYSTEM VALUE \
             SELECT {cols} FROM json_populate_recordset(NULL::{t}, $1::json) \
             ON CONFLICT ({key}) {on_conflict}",
            t = ident(&table.name),
            cols = list(&names),
            key = list(&table.key),
        );
        let objects = Value::Array(rows.iter().map(|r| table.object(r)).collect());
        sqlx::query(&sql)
            .bind(objects)
            .execute(&mut self.conn)
            .await?;
        if !self.written.iter().any(|t| t.name == table.name) {
            self.written.push(table.clone());
        }
        Ok(())
    }

    async fn commit(&mut self) -> Result<()> {
        for table in std::mem::take(&mut self.written) {
            for column in table.columns.iter().filter(|c| c.kind == ColumnKind::Int) {
                let sequence: Option<String> =
                    sqlx::query_scalar(include_str!("sql/copy_sequence.sql"))
                        .bind(&table.name)
                        .bind(&column.name)
                        .fetch_one(&mut self.conn)
                        .await?;
                let Some(sequence) = sequence else { continue };
                // Past the largest id now in the table, so new rows never take a copied id.
                let sql = format!(
                    "SELECT setval($1::regclass, greatest(coalesce(max({c}), 0), 1), max({c}) IS NOT NULL) FROM {t}",
                    c = ident(&column.name),
                    t = ident(&table.name)
                );
                sqlx::query(&sql)
                    .bind(sequence)
                    .execute(&mut self.conn)
                    .await?;
            }
        }
        (&mut self.conn).execute("COMMIT").await?;
        Ok(())
    }

    async fn rollback(&mut self) -> Result<()> {
        self.written.clear();
        (&mut self.conn).execute("ROLLBACK").await?;
        Ok(())
    }
}
