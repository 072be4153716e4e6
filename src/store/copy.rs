//! `porter copy`: every row of porter's tables and the app's, from one database to another
//! (SQLite to Postgres and back), ids, states and history included, then verified row by row.
//!
//! The tables are found in each database's catalog, not listed here: every table named
//! `porter_*` or `tablo*` except `porter_migrations` (each database keeps its own) and
//! `porter_workers` (live processes, which register themselves again). Both databases are
//! migrated to this binary's version first, so both have the same tables and columns. Rows
//! travel as one canonical JSON value per column, so that the two backends' spellings of
//! the same row compare equal:
//! - times are UTC with milliseconds, `2026-01-02T03:04:05.678Z`, SQLite's precision (a time
//!   copied from Postgres loses its microseconds);
//! - JSON columns are their JSON text with object keys sorted (so that a JSON `null` stays
//!   apart from SQL NULL);
//! - uuids are lowercase strings; booleans are `true`/`false`.
//!
//! [`super::open_copy_end`] opens an end on a URL. Everything is written in one transaction on
//! the target: a copy that fails part-way leaves
//! the target as it was.

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// What a column holds, as far as copying is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    /// A 64-bit integer.
    Int,
    /// A floating-point number.
    Float,
    /// A boolean.
    Bool,
    /// Text.
    Text,
    /// A JSON document.
    Json,
    /// A point in time.
    Time,
    /// A uuid.
    Uuid,
}

/// One column of a copied table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyColumn {
    /// Its name.
    pub name: String,
    /// What it holds.
    pub kind: ColumnKind,
}

/// One copied table: its columns in order and its primary key (the copy's order and the
/// verification's match).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyTable {
    /// The table's name.
    pub name: String,
    /// Its columns.
    pub columns: Vec<CopyColumn>,
    /// The names of its primary-key columns, in key order.
    pub key: Vec<String>,
}

impl CopyTable {
    /// A table from its catalog: each column's name, kind and place in the primary key
    /// (counted from 1; 0 when it is not part of it), in column order.
    pub fn from_catalog(name: String, columns: Vec<(String, ColumnKind, i64)>) -> Self {
        let mut key: Vec<(i64, String)> = columns
            .iter()
            .filter(|(_, _, place)| *place > 0)
            .map(|(n, _, place)| (*place, n.clone()))
            .collect();
        key.sort();
        CopyTable {
            name,
            columns: columns
                .into_iter()
                .map(|(name, kind, _)| CopyColumn { name, kind })
                .collect(),
            key: key.into_iter().map(|(_, n)| n).collect(),
        }
    }

    /// Positions of the key columns in a row.
    pub fn key_positions(&self) -> Vec<usize> {
        self.key
            .iter()
            .filter_map(|k| self.columns.iter().position(|c| &c.name == k))
            .collect()
    }

    /// The key of a row.
    pub fn key_of(&self, row: &[Value]) -> Vec<Value> {
        self.key_positions()
            .into_iter()
            .map(|i| row[i].clone())
            .collect()
    }

    /// A row as a JSON object (column name -> value).
    pub fn object(&self, row: &[Value]) -> Value {
        Value::Object(
            self.columns
                .iter()
                .zip(row)
                .map(|(c, v)| (c.name.clone(), v.clone()))
                .collect(),
        )
    }

    /// The key values as a JSON object (key column name -> value).
    pub fn key_object(&self, key: &[Value]) -> Value {
        Value::Object(self.key.iter().cloned().zip(key.iter().cloned()).collect())
    }
}

/// One row: a canonical value per column, in the table's column order.
pub type Row = Vec<Value>;

/// A page of rows read in key order, and where the next page starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    /// The rows, canonical.
    pub rows: Vec<Row>,
    /// The last row's key as the end stores it, to read on after it (`None`: no rows). It may
    /// differ from the canonical key: SQLite may hold a key as a BLOB, which sorts after all
    /// text, or a uuid in upper case, which sorts before its lower case.
    pub last: Option<Vec<Value>>,
}

/// One end of a copy: a database, on a connection of its own.
#[async_trait]
pub trait CopyEnd: Send {
    /// Names this database, to refuse copying a database onto itself.
    async fn identity(&mut self) -> Result<String>;
    /// Whether this database holds porter's tables (of any version): a copy refuses a source
    /// that does not, before anything migrates it.
    async fn is_porter_database(&mut self) -> Result<bool>;
    /// The copied tables, with the column kinds its catalog tells (SQLite's declared types
    /// say less; [`plan`] completes them from the other end).
    async fn tables(&mut self) -> Result<Vec<CopyTable>>;
    /// The number of rows of a table.
    async fn count(&mut self, table: &CopyTable) -> Result<u64>;
    /// Per table that names jobs (edges, outputs, workflow steps), how many of its rows name a
    /// job this database does not have, and per table that names workflows or batches (jobs,
    /// workflow steps), how many name one it does not have: (table, rows, what they name:
    /// `jobs` or `workflows or batches`). Tables without such rows are left out.
    async fn rows_naming_missing_jobs(&mut self) -> Result<Vec<(String, u64, String)>>;
    /// Up to `limit` rows whose key comes after `after` (from the first when `None`), in key
    /// order, and no more than [`BATCH_BYTES`] of them but the row that reaches it; `after` is
    /// the [`Page::last`] of this end's previous page.
    async fn read(
        &mut self,
        table: &CopyTable,
        after: Option<&[Value]>,
        limit: usize,
    ) -> Result<Page>;
    /// The rows whose keys are among `keys`, in key order.
    async fn read_keys(&mut self, table: &CopyTable, keys: &[Vec<Value>]) -> Result<Vec<Row>>;
    /// Starts a read-only transaction: every later read sees one snapshot (the source's).
    async fn begin_read(&mut self) -> Result<()>;
    /// Starts the transaction every write goes into.
    async fn begin(&mut self) -> Result<()>;
    /// Writes rows with their own keys: rows of [`insert_only`] tables are only inserted, a
    /// row of another table whose key is there already keeps the target's values (but for
    /// [`keep_greater`]'s columns). A row that fails is named in the error by its key.
    async fn write(&mut self, table: &CopyTable, rows: &[Row]) -> Result<()>;
    /// The last id the table's id counter handed out (SQLite's AUTOINCREMENT counter, a
    /// Postgres sequence), when it has one that handed out any: rows with ids up to it may
    /// have been deleted since; or the table's largest id where it is past the counter (rows
    /// inserted with ids of their own), or where the table has no counter (SQLite hands out
    /// the next id after it).
    async fn id_counter(&mut self, table: &CopyTable) -> Result<Option<i64>>;
    /// In the write transaction: moves the table's id counter, when it has one, to at least
    /// `last` and past the largest id in the table, never back.
    async fn raise_id_counter(&mut self, table: &CopyTable, last: i64) -> Result<()>;
    /// Commits.
    async fn commit(&mut self) -> Result<()>;
    /// Rolls the transaction back.
    async fn rollback(&mut self) -> Result<()>;
    /// In the write transaction, after a table is written: lets the database plan the reads
    /// of its rows by what it now holds (PostgreSQL's statistics; nothing on SQLite).
    async fn written(&mut self, _table: &CopyTable) -> Result<()> {
        Ok(())
    }
}

/// The tables to copy, in copy order, with each column's kind agreed between the two ends:
/// where one end says more (Postgres' types against SQLite's declared ones), it is believed.
/// Queues and periodic schedules come first, then jobs, then the rest by name (tables that
/// point at jobs come after them).
pub fn plan(from: Vec<CopyTable>, to: Vec<CopyTable>) -> Result<Vec<CopyTable>> {
    let mut out = Vec::new();
    for table in &from {
        let Some(other) = to.iter().find(|t| t.name == table.name) else {
            return Err(Error::invalid(
                "copy target",
                format!("it has no table {}", table.name),
            ));
        };
        let names = |t: &CopyTable| t.columns.iter().map(|c| c.name.clone()).collect::<Vec<_>>();
        let mut theirs = names(other);
        let mut ours = names(table);
        theirs.sort();
        ours.sort();
        if ours != theirs {
            return Err(Error::invalid(
                "copy",
                format!(
                    "table {} has columns {ours:?} here and {theirs:?} there",
                    table.name
                ),
            ));
        }
        if table.key.is_empty() {
            return Err(Error::invalid(
                "copy",
                format!("table {} has no primary key to copy it by", table.name),
            ));
        }
        let columns = table
            .columns
            .iter()
            .map(|c| {
                let there = other.columns.iter().find(|o| o.name == c.name).unwrap();
                let kind = match (c.kind, there.kind) {
                    (a, b) if a == b => a,
                    (ColumnKind::Text, k) | (k, ColumnKind::Text) => k,
                    (ColumnKind::Int, ColumnKind::Bool) | (ColumnKind::Bool, ColumnKind::Int) => {
                        ColumnKind::Bool
                    }
                    (a, b) => {
                        return Err(Error::invalid(
                            "copy",
                            format!(
                                "column {}.{} holds {a:?} here and {b:?} there",
                                table.name, c.name
                            ),
                        ))
                    }
                };
                Ok(CopyColumn {
                    name: c.name.clone(),
                    kind,
                })
            })
            .collect::<Result<_>>()?;
        out.push(CopyTable {
            name: table.name.clone(),
            columns,
            key: table.key.clone(),
        });
    }
    if let Some(extra) = to.iter().find(|t| !from.iter().any(|f| f.name == t.name)) {
        return Err(Error::invalid(
            "copy",
            format!("the source has no table {}", extra.name),
        ));
    }
    let rank = |name: &str| match name {
        "porter_queues" => 0,
        "porter_periodic" => 1,
        "porter_jobs" => 2,
        _ => 3,
    };
    out.sort_by(|a, b| (rank(&a.name), &a.name).cmp(&(rank(&b.name), &b.name)));
    Ok(out)
}

/// The columns of a table whose value in the target is kept when it is the greater one, for
/// rows whose key the target has already: a periodic schedule's last slot only moves forward
/// (or the target would run a slot again). Other columns of such rows keep the target's
/// value.
pub fn keep_greater(table: &str) -> &'static [&'static str] {
    match table {
        "porter_periodic" => &["last_slot"],
        _ => &[],
    }
}

/// Whether rows of this table must be new in the target: every porter table's rows are
/// inserted, never merged, but queues' and periodic schedules' (and the app's rows, see
/// [`keep_greater`]). A job the target has (even one it took since the copy began) is never
/// replaced, and a copied workflow, batch, step or queue start never joins the target's own
/// row of the same id: the copy is refused instead (see `refuse_taken_keys`). A porter table
/// added later is insert-only unless listed here.
pub fn insert_only(table: &str) -> bool {
    table.starts_with("porter_") && !matches!(table, "porter_queues" | "porter_periodic")
}

/// `error` about one row of `table`, named by its key (`value_of` gives a column's value).
pub fn row_error<'a>(
    table: &CopyTable,
    value_of: impl Fn(&str) -> Option<&'a Value>,
    error: Error,
) -> Error {
    let key: Vec<Value> = table
        .key
        .iter()
        .map(|k| value_of(k).cloned().unwrap_or(Value::Null))
        .collect();
    key_error(table, &key, error)
}

/// `error` about the row of `table` with this key.
pub fn key_error(table: &CopyTable, key: &[Value], error: Error) -> Error {
    let said = match error {
        Error::Database(said) => said,
        other => other.to_string(),
    };
    Error::Database(format!(
        "{} row {}: {said}",
        table.name,
        key_said(table, key)
    ))
}

/// A row's key as errors name it: `id = 7`, `workflow_id = 1, name = "first"`.
fn key_said(table: &CopyTable, key: &[Value]) -> String {
    table
        .key
        .iter()
        .zip(key)
        .map(|(k, v)| format!("{k} = {}", shortened(v)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Characters of a value an error shows at most.
const SHOWN_CHARS: usize = 60;

/// A value as an error shows it: its JSON, cut short when long (args may be megabytes).
pub fn shortened(value: &Value) -> String {
    let text = value.to_string();
    match text.char_indices().nth(SHOWN_CHARS) {
        Some((end, _)) => format!("{}... ({} bytes)", &text[..end], text.len()),
        None => text,
    }
}

/// The canonical form of a value read from a database, for a column of `kind`.
pub fn canonical(kind: ColumnKind, value: Value) -> Result<Value> {
    Ok(match (kind, value) {
        (_, Value::Null) => Value::Null,
        (ColumnKind::Json, Value::String(text)) => {
            let mut parsed: Value = serde_json::from_str(&text)
                .map_err(|e| {
                    Error::Database(format!(
                        "a JSON column holds what porter cannot read as JSON ({e}): correct or delete the row, then copy again"
                    ))
                })?;
            positive_zeros(&mut parsed);
            Value::String(parsed.to_string())
        }
        (ColumnKind::Time, Value::String(text)) => Value::String(canonical_time(&text)?),
        (ColumnKind::Uuid, Value::String(text)) => Value::String(text.to_ascii_lowercase()),
        (ColumnKind::Bool, Value::Number(n)) => Value::Bool(n.as_i64() != Some(0)),
        (_, v) => v,
    })
}

/// Turns every `-0.0` of a JSON value into `0.0`: PostgreSQL's jsonb holds no negative zero
/// (it reads `-0.0` as `0.0`), so a SQLite source's `-0.0`, which serde_json writes for an
/// f64 of -0, failed the copy's verification (found by review). The two are the same number.
fn positive_zeros(value: &mut Value) {
    match value {
        Value::Number(n) if n.as_f64() == Some(0.0) && n.is_f64() => {
            *value = Value::from(0.0);
        }
        Value::Array(items) => items.iter_mut().for_each(positive_zeros),
        Value::Object(fields) => fields.values_mut().for_each(positive_zeros),
        _ => {}
    }
}

/// A time as the copy spells it: UTC, milliseconds, `Z`. Read as porter reads a SQLite time
/// outside a job's row: RFC 3339, Postgres' text, or SQLite's own `YYYY-MM-DD HH:MM:SS`
/// (`datetime('now')`, `CURRENT_TIMESTAMP`), which is UTC. (A job's own times are held to
/// porter's format by the SQLite end: see its `canonical_rows`.)
pub fn canonical_time(text: &str) -> Result<String> {
    let parsed = DateTime::parse_from_rfc3339(text)
        .or_else(|_| DateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f%#z"))
        .map(|t| t.with_timezone(&Utc))
        .or_else(|e| {
            let naive = text.strip_suffix('Z').unwrap_or(text);
            ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"]
                .iter()
                .find_map(|f| chrono::NaiveDateTime::parse_from_str(naive, f).ok())
                .map(|t| t.and_utc())
                .ok_or(e)
        })
        .map_err(|e| Error::Database(format!("a time column holds {text:?}: {e}")))?;
    Ok(parsed.to_rfc3339_opts(SecondsFormat::Millis, true))
}

/// `error`, about one column of a row, said with the column's name.
pub fn in_column(column: &str, error: Error) -> Error {
    match error {
        Error::Database(said) => Error::Database(format!("column {column}: {said}")),
        other => other,
    }
}

/// What was copied into one table, and what the verification found.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TableReport {
    /// The table.
    pub table: String,
    /// Rows in the source.
    pub source_rows: u64,
    /// The source's rows found again, equal, in the target.
    pub target_rows: u64,
    /// Rows whose key the target had already, kept as the target had them (see
    /// [`keep_greater`]); not compared.
    pub kept_rows: u64,
    /// SHA-256 over the source's rows (canonical JSON, key order), hex; kept rows left out.
    pub source_checksum: String,
    /// The same over the target's rows with those keys.
    pub target_checksum: String,
}

/// A running checksum over rows in key order.
#[derive(Default)]
pub struct Checksum(Sha256);

impl Checksum {
    /// Adds one row.
    pub fn add(&mut self, row: &[Value]) {
        self.0
            .update(serde_json::to_vec(row).expect("a row serializes"));
        self.0.update(b"\n");
    }

    /// The hex digest.
    pub fn hex(self) -> String {
        self.0
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// How to copy.
#[derive(Debug, Clone)]
pub struct CopyOptions {
    /// Copy into a target that holds jobs already (the copied jobs' ids must be free there).
    pub append: bool,
    /// Most rows read and written per statement (fewer when rows are large).
    pub batch: usize,
    /// Cancelled, the copy stops before its next batch, rolls back and answers
    /// [`Error::Closed`] (`porter copy` cancels it on SIGINT or SIGTERM).
    pub stop: tokio_util::sync::CancellationToken,
}

impl CopyOptions {
    fn stopped(&self) -> Result<()> {
        match self.stop.is_cancelled() {
            true => Err(Error::Closed),
            false => Ok(()),
        }
    }
}

impl Default for CopyOptions {
    fn default() -> Self {
        CopyOptions {
            append: false,
            batch: 1000,
            stop: tokio_util::sync::CancellationToken::new(),
        }
    }
}

/// What the copy is doing, for a progress display.
#[derive(Debug, Clone, Copy)]
pub enum CopyProgress<'a> {
    /// A table's copy starts: its name and the rows to copy.
    Copying(&'a str, u64),
    /// A table's verification starts.
    Verifying(&'a str, u64),
    /// Rows done in the current phase.
    Rows(u64),
}

/// Bytes of rows one statement carries at most, about: a batch of large rows (args and
/// errors may be a MiB each) gets fewer rows. A [`CopyEnd::read`] stops at the row that
/// reaches it.
pub const BATCH_BYTES: usize = 8 << 20;

/// Sizes the next batch from the rows seen so far.
struct Pacer {
    most: usize,
    next: usize,
}

impl Pacer {
    fn new(most: usize) -> Self {
        Pacer {
            most: most.max(1),
            next: most.max(1),
        }
    }

    fn observe(&mut self, rows: &[Row]) {
        let bytes: usize = rows
            .iter()
            .map(|r| Value::from(r.clone()).to_string().len())
            .sum();
        let per_row = (bytes / rows.len().max(1)).max(1);
        self.next = (BATCH_BYTES / per_row).clamp(1, self.most);
    }
}

/// Reads one table of the source page by page, in key order, each row once.
struct Pages<'t> {
    table: &'t CopyTable,
    pacer: Pacer,
    after: Option<Vec<Value>>,
    done: bool,
}

impl<'t> Pages<'t> {
    fn new(table: &'t CopyTable, batch: usize) -> Self {
        Pages {
            table,
            pacer: Pacer::new(batch),
            after: None,
            done: false,
        }
    }

    /// The next page's rows; `None` after the last.
    async fn next(&mut self, from: &mut dyn CopyEnd) -> Result<Option<Vec<Row>>> {
        if self.done {
            return Ok(None);
        }
        let page = from
            .read(self.table, self.after.as_deref(), self.pacer.next)
            .await?;
        let Some(last) = page.last else {
            self.done = true;
            return Ok(None);
        };
        // A page that ends where the previous one did would be read again forever.
        if self.after.as_ref() == Some(&last) {
            return Err(Error::Database(format!(
                "reading {}: the page after key {} does not move on",
                self.table.name,
                Value::from(last)
            )));
        }
        self.pacer.observe(&page.rows);
        self.after = Some(last);
        Ok(Some(page.rows))
    }
}

/// A key as a map key.
fn key_text(key: &[Value]) -> String {
    Value::from(key.to_vec()).to_string()
}

/// Copies every table from `from` to `to` in one transaction on `to`, reading `from` in one
/// snapshot, then verifies in that same transaction that every source row is in the target,
/// equal, before committing: a copy that fails or does not verify changes nothing. Rows of
/// queues, schedules and app tables whose key the target has already are kept as the target
/// has them (see [`keep_greater`]); the rest are only ever inserted (see [`insert_only`]).
pub async fn copy(
    from: &mut dyn CopyEnd,
    to: &mut dyn CopyEnd,
    options: &CopyOptions,
    progress: &mut (dyn FnMut(CopyProgress<'_>) + Send),
) -> Result<Vec<TableReport>> {
    if from.identity().await? == to.identity().await? {
        return Err(Error::invalid(
            "copy target",
            "it is the source database itself",
        ));
    }
    from.begin_read().await?;
    let tables = plan(from.tables().await?, to.tables().await?)?;
    refuse_rows_naming_missing_jobs(from, End::Source).await?;
    if options.append {
        refuse_rows_naming_missing_jobs(to, End::Target).await?;
    } else {
        refuse_a_target_in_use(to, &tables).await?;
    }
    // A quick refusal before anything is written; the inserts themselves refuse a taken key
    // too, whatever the target did meanwhile.
    refuse_taken_keys(from, to, &tables, options.batch).await?;
    options.stopped()?;
    to.begin().await?;
    let copied = async {
        // Ids the source handed out are not handed out again, even those of rows it deleted
        // since. First, before any row is written: the target's own inserts meanwhile (an
        // enqueue, a rate limit's start) take ids past the source's rather than one a copied
        // row is about to take (review of 6 Dec: an enqueue took id 1, waited for the copy's
        // uncommitted job 1 and failed on the duplicate). A Postgres sequence does not roll
        // back: a copy that fails leaves it moved on, which skips ids and changes no row.
        let mut lasts = Vec::new();
        for table in &tables {
            let last = from.id_counter(table).await?.unwrap_or(0);
            to.raise_id_counter(table, last).await?;
            lasts.push(last);
        }
        let mut kept = Vec::new();
        for table in &tables {
            kept.push(copy_table(from, to, table, options, progress).await?);
        }
        let mut reports = Vec::new();
        for (table, kept) in tables.iter().zip(&kept) {
            to.written(table).await?;
            reports.push(verify(from, to, table, kept, options, progress).await?);
        }
        // Again, past the largest id now in each table.
        for (table, last) in tables.iter().zip(lasts) {
            to.raise_id_counter(table, last).await?;
        }
        Ok::<_, Error>(reports)
    }
    .await;
    match copied {
        Ok(reports) => {
            to.commit().await?;
            Ok(reports)
        }
        Err(e) => {
            let _ = to.rollback().await;
            Err(e)
        }
    }
}

/// Copies one table; answers the keys the target had already (kept as they were).
async fn copy_table(
    from: &mut dyn CopyEnd,
    to: &mut dyn CopyEnd,
    table: &CopyTable,
    options: &CopyOptions,
    progress: &mut (dyn FnMut(CopyProgress<'_>) + Send),
) -> Result<std::collections::HashSet<String>> {
    progress(CopyProgress::Copying(&table.name, from.count(table).await?));
    let mut kept = std::collections::HashSet::new();
    // Keys copied so far, as the copy reads them: two source rows whose keys read the same (a
    // uuid in upper and in lower case, text stored once as text and once as a BLOB) would be
    // one row in the target, and the second taken for a row the target had (found by
    // review: a row was lost and both reported kept).
    // Only keys with text (or uuids, or times) can read the same from two rows; integer keys
    // (jobs, edges, outputs: most of a database) are not kept (found by review: a set of
    // every key took about 117 bytes a row).
    let textual = table.columns.iter().any(|c| {
        table.key.contains(&c.name)
            && matches!(
                c.kind,
                ColumnKind::Text | ColumnKind::Uuid | ColumnKind::Time
            )
    });
    let mut copied = std::collections::HashSet::new();
    let mut pages = Pages::new(table, options.batch);
    let mut done = 0u64;
    while let Some(rows) = pages.next(from).await? {
        options.stopped()?;
        for row in rows.iter().filter(|_| textual) {
            if !copied.insert(key_text(&table.key_of(row))) {
                return Err(key_error(
                    table,
                    &table.key_of(row),
                    Error::Conflict(
                        "another row of the source has this key as porter reads it (a uuid \
                         in another case, or text stored as a BLOB): keep one of them, \
                         nothing was copied"
                            .into(),
                    ),
                ));
            }
        }
        if !insert_only(&table.name) {
            let keys: Vec<Vec<Value>> = rows.iter().map(|r| table.key_of(r)).collect();
            for row in to.read_keys(table, &keys).await? {
                kept.insert(key_text(&table.key_of(&row)));
            }
        }
        to.write(table, &rows)
            .await
            .map_err(|e| Error::Database(format!("copying {}: {e}", table.name)))?;
        done += rows.len() as u64;
        progress(CopyProgress::Rows(done));
    }
    Ok(kept)
}

/// Without `--append`: refuses a target that holds jobs, or rows in any other table whose rows
/// are only ever inserted ([`insert_only`]) but a rate-limited queue's starts (they name no
/// job, and only fill a window of the past). A target without jobs may still hold edges,
/// outputs, workflows, steps or batches (a `TRUNCATE porter_jobs CASCADE` fires no delete
/// trigger; another program's `DELETE` on SQLite with foreign keys off keeps the edges): such
/// rows would join the copied jobs of their ids, a leftover edge making a copied job wait for
/// (or run after) a job it was never inserted after, while the copy verifies only the rows it
/// copied.
async fn refuse_a_target_in_use(to: &mut dyn CopyEnd, tables: &[CopyTable]) -> Result<()> {
    let mut held = Vec::new();
    let linked = |t: &&CopyTable| insert_only(&t.name) && t.name != "porter_queue_starts";
    for table in tables.iter().filter(linked) {
        let n = to.count(table).await?;
        if n > 0 {
            held.push((table.name.as_str(), n));
        }
    }
    if let Some((_, jobs)) = held.iter().find(|(t, _)| *t == "porter_jobs") {
        return Err(Error::Conflict(format!(
            "the target holds {jobs} jobs already; give --append to add these to them"
        )));
    }
    if held.is_empty() {
        return Ok(());
    }
    let listed: Vec<String> = held.iter().map(|(t, n)| format!("{t} ({n})")).collect();
    Err(Error::Conflict(format!(
        "the target holds no jobs but rows in {}, left by a TRUNCATE or another program's \
         DELETE: copied jobs would take them as their own; empty those tables first (--append \
         adds to a database in use, and refuses only rows whose keys are taken): nothing was \
         copied",
        listed.join(", ")
    )))
}

/// Which end of a copy [`refuse_rows_naming_missing_jobs`] looks at.
#[derive(Clone, Copy)]
enum End {
    Source,
    Target,
}

/// What can be refused of a source alone, looked at before the target is opened (and so
/// created or migrated): its rows that name jobs it does not have. [`copy`] asks again in its
/// snapshot; this only keeps a refusal from leaving a new target behind.
pub async fn check_source(from: &mut dyn CopyEnd) -> Result<()> {
    refuse_rows_naming_missing_jobs(from, End::Source).await
}

/// Refuses an end whose edges, outputs or workflow steps name jobs it does not have, or whose
/// jobs or steps name workflows or batches it does not have (see
/// [`refuse_a_target_in_use`] for how they stay behind). The source's, always: copied, they
/// would name the target's jobs of those ids, or jobs the target hands those ids to later
/// (found by review: with `--append`, a leftover edge made a target's job wait for another,
/// and a leftover output showed as a target job's output, while the copy verified). The
/// target's, with `--append`: a copied job of such an id would take them as its own, as the
/// free ids `--append` asks for do not show.
async fn refuse_rows_naming_missing_jobs(end: &mut dyn CopyEnd, which: End) -> Result<()> {
    let rows = end.rows_naming_missing_jobs().await?;
    if rows.is_empty() {
        return Ok(());
    }
    // Per kind of what they name, in the order given: "rows in t (n), u (m) that name jobs".
    let mut kinds: Vec<(&str, Vec<String>)> = Vec::new();
    for (t, n, missing) in &rows {
        let listed = format!("{t} ({n})");
        match kinds.iter_mut().find(|(m, _)| m == missing) {
            Some((_, tables)) => tables.push(listed),
            None => kinds.push((missing, vec![listed])),
        }
    }
    let held: Vec<String> = kinds
        .iter()
        .map(|(missing, tables)| {
            format!(
                "rows in {} that name {missing} it does not have",
                tables.join(", ")
            )
        })
        .collect();
    let (whose, what, delete) = match which {
        End::Source => (
            "source",
            "copied, they would name the target's jobs, workflows or batches of those ids",
            "delete those rows (or clear a job's workflow_id or batch_id) in the source first",
        ),
        End::Target => (
            "target",
            "copied rows of those ids would take them as their own",
            "delete those rows (or clear a job's workflow_id or batch_id) first",
        ),
    };
    Err(Error::Conflict(format!(
        "the {whose} holds {}, left by a TRUNCATE or another program's DELETE (with foreign keys \
         off on SQLite): {what}; {delete}: nothing was copied",
        held.join(", and ")
    )))
}

/// Taken keys named in a refusal, per table at most.
const TAKEN_SHOWN: usize = 5;

/// With `--append`: refuses before writing anything when the key of a copied row of an
/// insert-only table ([`insert_only`]: a job's id, a workflow's, a batch's, a step) is taken
/// in the target, naming each such table and its taken keys (the first few).
async fn refuse_taken_keys(
    from: &mut dyn CopyEnd,
    to: &mut dyn CopyEnd,
    tables: &[CopyTable],
    batch: usize,
) -> Result<()> {
    let mut refusals = Vec::new();
    for table in tables.iter().filter(|t| insert_only(&t.name)) {
        if to.count(table).await? == 0 {
            continue;
        }
        let (mut shown, mut taken) = (Vec::new(), 0usize);
        let mut pages = Pages::new(table, batch);
        while let Some(rows) = pages.next(from).await? {
            let keys: Vec<Vec<Value>> = rows.iter().map(|r| table.key_of(r)).collect();
            for row in to.read_keys(table, &keys).await? {
                taken += 1;
                if shown.len() < TAKEN_SHOWN {
                    shown.push(key_words(table, &table.key_of(&row)));
                }
            }
        }
        if taken > 0 {
            let more = match taken - shown.len() {
                0 => String::new(),
                n => format!(" and {n} more"),
            };
            let verb = if taken == 1 { "exists" } else { "exist" };
            refusals.push(format!(
                "{} {}{more} {verb} in the target already",
                table.name,
                shown.join(", ")
            ));
        }
    }
    if refusals.is_empty() {
        return Ok(());
    }
    Err(Error::Conflict(format!(
        "{}; such rows are only ever inserted, never merged: nothing was copied",
        refusals.join("; ")
    )))
}

/// A key as a refusal names it: `id 7`, or `(workflow_id 1, name "first")`.
fn key_words(table: &CopyTable, key: &[Value]) -> String {
    let words: Vec<String> = table
        .key
        .iter()
        .zip(key)
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    match words.len() {
        1 => words.concat(),
        _ => format!("({})", words.join(", ")),
    }
}

/// A failed verification of one source row.
fn verification_failed(table: &CopyTable, row: &[Value], said: &str) -> Error {
    Error::Database(format!(
        "verification failed in {} row {}: {said}; nothing was changed",
        table.name,
        key_said(table, &table.key_of(row))
    ))
}

/// Reads the source's rows again and the target's rows with the same keys: every row not
/// kept must be there and equal. Rows are matched by key, not by position: the two databases
/// may order text keys differently (collations).
async fn verify(
    from: &mut dyn CopyEnd,
    to: &mut dyn CopyEnd,
    table: &CopyTable,
    kept: &std::collections::HashSet<String>,
    options: &CopyOptions,
    progress: &mut (dyn FnMut(CopyProgress<'_>) + Send),
) -> Result<TableReport> {
    let source_rows = from.count(table).await?;
    progress(CopyProgress::Verifying(&table.name, source_rows));
    let (mut ours, mut theirs) = (Checksum::default(), Checksum::default());
    let (mut read, mut found, mut kept_rows) = (0u64, 0u64, 0u64);
    let mut pages = Pages::new(table, options.batch);
    while let Some(rows) = pages.next(from).await? {
        options.stopped()?;
        read += rows.len() as u64;
        let keys: Vec<Vec<Value>> = rows.iter().map(|r| table.key_of(r)).collect();
        let mut copied: std::collections::HashMap<String, Row> = to
            .read_keys(table, &keys)
            .await?
            .into_iter()
            .map(|r| (key_text(&table.key_of(&r)), r))
            .collect();
        for row in &rows {
            let key = key_text(&table.key_of(row));
            if kept.contains(&key) {
                kept_rows += 1;
                continue;
            }
            let Some(there) = copied.remove(&key) else {
                return Err(verification_failed(table, row, "it is not in the target"));
            };
            if &there != row {
                // The columns that differ, their values cut short: rows may be megabytes.
                let differ: Vec<String> = table
                    .columns
                    .iter()
                    .zip(row.iter().zip(&there))
                    .filter(|(_, (ours, theirs))| ours != theirs)
                    .map(|(c, (ours, theirs))| {
                        format!(
                            "{} copied {} but the target holds {}",
                            c.name,
                            shortened(ours),
                            shortened(theirs)
                        )
                    })
                    .collect();
                return Err(verification_failed(table, row, &differ.join("; ")));
            }
            ours.add(row);
            theirs.add(&there);
            found += 1;
        }
        progress(CopyProgress::Rows(read));
    }
    if read != source_rows {
        return Err(Error::Database(format!(
            "verification failed in {}: {read} rows read of {source_rows}; nothing was changed",
            table.name
        )));
    }
    Ok(TableReport {
        table: table.name.clone(),
        source_rows,
        target_rows: found,
        kept_rows,
        source_checksum: ours.hex(),
        target_checksum: theirs.hex(),
    })
}
