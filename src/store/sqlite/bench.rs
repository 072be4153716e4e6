//! `porter bench` on SQLite: the database's own limit with hand-written SQL on one connection
//! in WAL mode (the same pragmas as the store), and the probes the benchmark reads.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rusqlite::{params, Connection};

use super::{parse_url, prepare_connection};
use crate::error::{Error, Result};
use crate::store::bench::{
    rate, ChainsBaseline, RawBaseline, RAW_BATCH, RAW_QUEUE, RAW_SINGLE_QUEUE,
};

/// The worker id the hand-written claims record.
const RAW_WORKER: &str = "bench-raw";

/// One connection of its own on the benchmark's file.
pub struct Probe {
    conn: Arc<Mutex<Connection>>,
    path: std::path::PathBuf,
    synchronous: &'static str,
}

/// A long reader on a connection of its own (`porter bench --sustain --hold`): the WAL cannot
/// be checkpointed past its snapshot until it is dropped.
pub struct Holder {
    _conn: Mutex<Connection>,
}

impl Probe {
    /// Opens the file a `sqlite:` URL names (the store has created and migrated it).
    pub async fn open(url: &str) -> Result<Self> {
        let (path, synchronous) = parse_url(url)?;
        let at = path.clone();
        let conn = blocking(move || open(&at, synchronous)).await?;
        Ok(Probe {
            conn: Arc::new(Mutex::new(conn)),
            path,
            synchronous,
        })
    }

    /// Opens a reader whose transaction stays open (and its snapshot held) until dropped.
    pub async fn hold_snapshot(&self) -> Result<Holder> {
        let (path, synchronous) = (self.path.clone(), self.synchronous);
        blocking(move || {
            let conn = open(&path, synchronous)?;
            conn.execute_batch("BEGIN")?;
            conn.query_row(include_str!("sql/bench_hold.sql"), [], |r| {
                r.get::<_, i64>(0)
            })?;
            Ok(Holder {
                _conn: Mutex::new(conn),
            })
        })
        .await
    }

    /// Size of the write-ahead log file now, in bytes.
    pub fn wal_bytes(&self) -> Option<u64> {
        let mut wal = self.path.as_os_str().to_owned();
        wal.push("-wal");
        std::fs::metadata(wal).ok().map(|m| m.len())
    }

    /// Empties the WAL into the database (`bench_settle.sql`).
    pub async fn settle(&self) -> Result<()> {
        self.with(|c| {
            c.query_row(include_str!("sql/bench_settle.sql"), [], |_| Ok(()))?;
            Ok(())
        })
        .await
    }

    /// Deletes every job of `queue` (the benchmark's own queues, when it is done).
    pub async fn delete_queue(&self, queue: &str) -> Result<u64> {
        let queue = queue.to_string();
        self.with(move |c| Ok(c.execute(include_str!("sql/bench_raw_delete.sql"), [queue])? as u64))
            .await
    }

    async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let conn = self.conn.clone();
        blocking(move || f(&mut conn.lock().expect("probe connection"))).await
    }

    /// Jobs of `queue` still to do: pending (waiting for parents), available or running.
    pub async fn unfinished(&self, queue: &str) -> Result<i64> {
        let queue = queue.to_string();
        self.with(move |c| {
            Ok(c.prepare_cached(include_str!("sql/bench_unfinished.sql"))
                .and_then(|mut s| s.query_row([queue], |r| r.get(0)))?)
        })
        .await
    }

    /// Whether any job of `queue` is still to do (pending, available or running).
    pub async fn any_unfinished(&self, queue: &str) -> Result<bool> {
        let queue = queue.to_string();
        self.with(move |c| {
            Ok(
                c.prepare_cached(include_str!("sql/bench_any_unfinished.sql"))
                    .and_then(|mut s| s.query_row([queue], |r| r.get(0)))?,
            )
        })
        .await
    }

    /// Jobs of `queue` that started before a parent of theirs ended (`bench_started_early.sql`).
    pub async fn started_early(&self, queue: &str) -> Result<i64> {
        let queue = queue.to_string();
        self.with(move |c| {
            Ok(
                c.query_row(include_str!("sql/bench_started_early.sql"), [queue], |r| {
                    r.get(0)
                })?,
            )
        })
        .await
    }

    /// `EXPLAIN QUERY PLAN` of porter's claim (`job_claim.sql`), one line per step.
    pub async fn explain_claim(&self, queue: &str) -> Result<String> {
        let queue = queue.to_string();
        self.with(move |c| {
            let sql = format!("EXPLAIN QUERY PLAN {}", include_str!("sql/job_claim.sql"));
            let mut stmt = c.prepare(&sql)?;
            let rows = stmt
                .query_map(params![queue, "explain", r#"["noop"]"#, 100], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, String>(3)?,
                    ))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            // Indent each step under its parent, as the sqlite3 shell does.
            let mut depth: Vec<(i64, usize)> = Vec::new();
            let mut out = String::new();
            for (id, parent, detail) in rows {
                let level = depth
                    .iter()
                    .find(|(i, _)| *i == parent)
                    .map_or(0, |(_, d)| d + 1);
                depth.push((id, level));
                out.push_str(&format!("{}{}\n", "  ".repeat(level), detail));
            }
            Ok(out)
        })
        .await
    }

    /// Inserts `jobs` jobs in one transaction, `single_jobs` more one transaction each (then
    /// deletes those), and drains the first ones: claim [`RAW_BATCH`] + complete them per
    /// `BEGIN IMMEDIATE` transaction, all on this one connection.
    pub async fn raw_drain_baseline(&self, jobs: usize, single_jobs: usize) -> Result<RawBaseline> {
        self.with(move |c| raw_drain_baseline(c, jobs, single_jobs))
            .await
    }

    /// `jobs` jobs in `width` chains (each job after the one `width` before it; `width ==
    /// jobs` for none) on the minimal table with dependencies (`bench_chains_create.sql`),
    /// inserted in one transaction and drained as [`Probe::minimal_baseline`] drains, each
    /// completion making the job that waited for it claimable. The table is dropped again,
    /// whatever happened.
    pub async fn chains_baseline(&self, jobs: usize, width: usize) -> Result<ChainsBaseline> {
        self.with(move |c| {
            c.execute_batch(include_str!("sql/bench_chains_create.sql"))?;
            let measured = chains_baseline(c, jobs, width);
            let dropped = c.execute_batch(include_str!("sql/bench_chains_drop.sql"));
            // A failed measurement's error is the one worth reporting.
            let measured = measured?;
            dropped?;
            Ok(measured)
        })
        .await
    }

    /// The same three figures on the least a job queue can be (one table, one partial index;
    /// `bench_min_create.sql`), on this one connection: the database's limit for any queue.
    /// The table is dropped again, whatever happened.
    pub async fn minimal_baseline(&self, jobs: usize, single_jobs: usize) -> Result<RawBaseline> {
        self.with(move |c| table_baseline(c, Schema::Minimal, jobs, single_jobs))
            .await
    }

    /// The same three figures, with porter's own statements (`bench_raw_*.sql`), on the least
    /// a table can hold and still do what they do (`bench_narrow_create.sql`): what a narrower
    /// hot table could gain. The table is dropped again, whatever happened.
    pub async fn narrow_baseline(&self, jobs: usize, single_jobs: usize) -> Result<RawBaseline> {
        self.with(move |c| table_baseline(c, Schema::Narrow, jobs, single_jobs))
            .await
    }
}

/// [`Probe::minimal_baseline`] or [`Probe::narrow_baseline`]: creates the table, measures,
/// drops it.
fn table_baseline(
    c: &mut Connection,
    schema: Schema,
    jobs: usize,
    single_jobs: usize,
) -> Result<RawBaseline> {
    let (create, drop) = match schema {
        Schema::Narrow => (
            include_str!("sql/bench_narrow_create.sql"),
            include_str!("sql/bench_narrow_drop.sql"),
        ),
        _ => (
            include_str!("sql/bench_min_create.sql"),
            include_str!("sql/bench_min_drop.sql"),
        ),
    };
    c.execute_batch(create)?;
    let measured = table_measure(c, schema, jobs, single_jobs);
    let dropped = c.execute_batch(drop);
    // A failed measurement's error is the one worth reporting.
    let measured = measured?;
    dropped?;
    Ok(measured)
}

/// `jobs` jobs in `width` chains, inserted in one transaction and drained on this connection
/// (see [`Probe::chains_baseline`]).
fn chains_baseline(c: &mut Connection, jobs: usize, width: usize) -> Result<ChainsBaseline> {
    let started = Instant::now();
    let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    {
        let mut insert = tx.prepare_cached(include_str!("sql/bench_chains_insert.sql"))?;
        for id in 1..=jobs as i64 {
            insert.execute(params![id, width.max(1) as i64])?;
        }
    }
    tx.commit()?;
    let insert_secs = started.elapsed().as_secs_f64();

    let started = Instant::now();
    drain(c, Schema::Chains, jobs)?;
    Ok(ChainsBaseline {
        insert_secs,
        drain_secs: started.elapsed().as_secs_f64(),
    })
}

/// Batch insert, drain, then single inserts (into the drained table, so nothing needs
/// deleting before the drain).
fn table_measure(
    c: &mut Connection,
    schema: Schema,
    jobs: usize,
    single_jobs: usize,
) -> Result<RawBaseline> {
    let narrow = matches!(schema, Schema::Narrow);
    let sql = if narrow {
        include_str!("sql/bench_narrow_insert.sql")
    } else {
        include_str!("sql/bench_min_insert.sql")
    };
    let insert = |stmt: &mut rusqlite::CachedStatement<'_>| {
        if narrow {
            stmt.execute([RAW_QUEUE])
        } else {
            stmt.execute([])
        }
    };
    let started = Instant::now();
    let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    {
        let mut stmt = tx.prepare_cached(sql)?;
        for _ in 0..jobs {
            insert(&mut stmt)?;
        }
    }
    tx.commit()?;
    let batch_insert_jobs_per_sec = rate(jobs, started.elapsed());

    let started = Instant::now();
    drain(c, schema, jobs)?;
    let drain_jobs_per_sec = rate(jobs, started.elapsed());

    let started = Instant::now();
    {
        let mut stmt = c.prepare_cached(sql)?;
        for _ in 0..single_jobs {
            insert(&mut stmt)?;
        }
    }
    let single_insert_jobs_per_sec = rate(single_jobs, started.elapsed());
    Ok(RawBaseline {
        batch_insert_jobs_per_sec,
        single_insert_jobs_per_sec,
        drain_jobs_per_sec,
    })
}

fn raw_drain_baseline(c: &mut Connection, jobs: usize, single_jobs: usize) -> Result<RawBaseline> {
    let started = Instant::now();
    let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    {
        let mut insert = tx.prepare_cached(include_str!("sql/bench_raw_insert.sql"))?;
        for _ in 0..jobs {
            insert.execute([RAW_QUEUE])?;
        }
    }
    tx.commit()?;
    let batch_insert_jobs_per_sec = rate(jobs, started.elapsed());

    let started = Instant::now();
    {
        let mut insert = c.prepare_cached(include_str!("sql/bench_raw_insert.sql"))?;
        for _ in 0..single_jobs {
            insert.execute([RAW_SINGLE_QUEUE])?;
        }
    }
    let single_insert_jobs_per_sec = rate(single_jobs, started.elapsed());
    c.execute(include_str!("sql/bench_raw_delete.sql"), [RAW_SINGLE_QUEUE])?;

    let started = Instant::now();
    drain(c, Schema::Porter, jobs)?;
    let drain_jobs_per_sec = rate(jobs, started.elapsed());
    Ok(RawBaseline {
        batch_insert_jobs_per_sec,
        single_insert_jobs_per_sec,
        drain_jobs_per_sec,
    })
}

/// Which hand-written queue a baseline drains.
#[derive(Clone, Copy)]
enum Schema {
    /// porter's own table, queue [`RAW_QUEUE`], claims recorded as [`RAW_WORKER`].
    Porter,
    /// `porter_bench_minimal`: one table, one partial index.
    Minimal,
    /// `porter_bench_chains`: the minimal table with the job each job waits for.
    Chains,
    /// `porter_bench_narrow`: the least a table can hold for porter's own statements.
    Narrow,
}

/// Drains `jobs` jobs on this one connection: claim [`RAW_BATCH`] + complete them per
/// `BEGIN IMMEDIATE` transaction, until a claim finds none.
fn drain(c: &mut Connection, schema: Schema, jobs: usize) -> Result<()> {
    let (claim_sql, complete_sql) = match schema {
        Schema::Porter => (
            include_str!("sql/bench_raw_claim.sql"),
            include_str!("sql/bench_raw_complete.sql"),
        ),
        Schema::Minimal => (
            include_str!("sql/bench_min_claim.sql"),
            include_str!("sql/bench_min_complete.sql"),
        ),
        Schema::Chains => (
            include_str!("sql/bench_chains_claim.sql"),
            include_str!("sql/bench_chains_complete.sql"),
        ),
        Schema::Narrow => (
            include_str!("sql/bench_narrow_claim.sql"),
            include_str!("sql/bench_narrow_complete.sql"),
        ),
    };
    let mut drained = 0usize;
    loop {
        let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let claimed = {
            let mut claim = tx.prepare_cached(claim_sql)?;
            let mut complete = tx.prepare_cached(complete_sql)?;
            let mut release = match schema {
                Schema::Chains => {
                    Some(tx.prepare_cached(include_str!("sql/bench_chains_release.sql"))?)
                }
                _ => None,
            };
            let read = |r: &rusqlite::Row<'_>| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?));
            let rows = match schema {
                Schema::Porter | Schema::Narrow => {
                    claim.query_map(params![RAW_QUEUE, RAW_WORKER, RAW_BATCH], read)?
                }
                Schema::Minimal | Schema::Chains => claim.query_map([RAW_BATCH], read)?,
            }
            .collect::<rusqlite::Result<Vec<_>>>()?;
            for (id, attempt) in &rows {
                let done = match schema {
                    Schema::Porter | Schema::Narrow => {
                        complete.execute(params![id, attempt, RAW_WORKER])?
                    }
                    Schema::Minimal | Schema::Chains => complete.execute(params![id, attempt])?,
                };
                if done != 1 {
                    return Err(Error::Database(format!(
                        "baseline: job {id} was not completed"
                    )));
                }
                if let Some(release) = &mut release {
                    release.execute([id])?;
                }
            }
            rows.len()
        };
        tx.commit()?;
        drained += claimed;
        if claimed == 0 {
            break;
        }
    }
    if drained != jobs {
        return Err(Error::Database(format!(
            "baseline: drained {drained} jobs of {jobs}"
        )));
    }
    Ok(())
}

fn open(path: &Path, synchronous: &'static str) -> Result<Connection> {
    let conn = Connection::open(path)?;
    // With porter_now(): the probe explains and runs porter's own statements too.
    prepare_connection(&conn, synchronous, &crate::store::clock::Clock::new())?;
    Ok(conn)
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Database(e.to_string()))?
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    /// A fresh file, its store (which migrates it) and a probe beside it.
    async fn fresh() -> (tempfile::TempDir, std::sync::Arc<Store>, Probe) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/porter.db", dir.path().display());
        let store = crate::store::open(&url).await.unwrap();
        let probe = Probe::open(&url).await.unwrap();
        (dir, store, probe)
    }

    /// The claim walks the fetch index: no full scan of porter_jobs, whatever the table holds.
    #[tokio::test]
    async fn claim_plan_uses_the_fetch_index() {
        let (_dir, _store, probe) = fresh().await;
        let plan = probe.explain_claim("default").await.unwrap();
        assert!(plan.contains("USING INDEX porter_jobs_fetch"), "{plan}");
        assert!(
            !plan.lines().any(|l| l.trim() == "SCAN porter_jobs"),
            "{plan}"
        );
        assert_eq!(probe.unfinished("default").await.unwrap(), 0);
        assert!(!probe.any_unfinished("default").await.unwrap());
    }

    /// A batch of completions finds each row by primary key, whatever else is running.
    #[tokio::test]
    async fn completion_plan_uses_the_primary_key() {
        let (_dir, _store, probe) = fresh().await;
        let plan = probe
            .with(|c| {
                let sql = format!(
                    "EXPLAIN QUERY PLAN {}",
                    include_str!("sql/job_complete.sql")
                );
                let mut stmt = c.prepare(&sql)?;
                let rows = stmt.query_map([r#"[[1,1,"w"]]"#], |r| r.get::<_, String>(3))?;
                Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
            })
            .await
            .unwrap();
        assert_eq!(plan[0], "SCAN json_each VIRTUAL TABLE INDEX 1:", "{plan:?}");
        assert!(
            plan[1].starts_with("SEARCH porter_jobs USING INTEGER PRIMARY KEY"),
            "{plan:?}"
        );
    }

    #[tokio::test]
    async fn baseline_drains_every_job_it_inserts() {
        let (_dir, store, probe) = fresh().await;
        let raw = probe.raw_drain_baseline(250, 20).await.unwrap();
        assert!(raw.drain_jobs_per_sec > 0.0 && raw.single_insert_jobs_per_sec > 0.0);
        let counts = store.job_counts().await.unwrap();
        assert_eq!(counts.queues[RAW_QUEUE][&crate::JobState::Completed], 250);
        assert!(!counts.queues.contains_key(RAW_SINGLE_QUEUE));
    }

    #[tokio::test]
    async fn minimal_and_narrow_baselines_drain_every_job_and_leave_nothing_behind() {
        let (_dir, store, probe) = fresh().await;
        // Each drain fails unless it claimed and completed every job it inserted.
        let minimal = probe.minimal_baseline(250, 20).await.unwrap();
        let narrow = probe.narrow_baseline(250, 20).await.unwrap();
        for raw in [minimal, narrow] {
            assert!(raw.drain_jobs_per_sec > 0.0 && raw.single_insert_jobs_per_sec > 0.0);
        }
        let tables: i64 = probe
            .with(|c| {
                Ok(c.query_row(
                    "SELECT count(*) FROM sqlite_master
                     WHERE name LIKE 'porter_bench_minimal%' OR name LIKE 'porter_bench_narrow%'",
                    [],
                    |r| r.get(0),
                )?)
            })
            .await
            .unwrap();
        assert_eq!(tables, 0, "both tables and their indexes are dropped");
        let counts = store.job_counts().await.unwrap();
        assert!(
            counts.queues.is_empty(),
            "porter's own table is left alone: {counts:?}"
        );
    }

    #[tokio::test]
    async fn chains_baseline_drains_every_job_and_leaves_nothing_behind() {
        let (_dir, _store, probe) = fresh().await;
        // 250 jobs in 10 chains: 25 links, each claimable only after the one before it.
        // A job left undrained, or drained twice, fails the run.
        for width in [10, 250] {
            probe.chains_baseline(250, width).await.unwrap();
        }
        let tables: i64 = probe
            .with(|c| {
                Ok(c.query_row(
                    "SELECT count(*) FROM sqlite_master WHERE name LIKE 'porter_bench_chains%'",
                    [],
                    |r| r.get(0),
                )?)
            })
            .await
            .unwrap();
        assert_eq!(tables, 0, "the chains' table and its indexes are dropped");
    }

    #[test]
    fn a_chains_step_is_claimable_only_once_the_step_before_it_completed() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = open(&dir.path().join("chains.db"), "NORMAL").unwrap();
        c.execute_batch(include_str!("sql/bench_chains_create.sql"))
            .unwrap();
        for id in 1..=6i64 {
            c.execute(include_str!("sql/bench_chains_insert.sql"), params![id, 2])
                .unwrap();
        }
        let claim = |c: &mut Connection| -> Vec<i64> {
            let mut stmt = c
                .prepare(include_str!("sql/bench_chains_claim.sql"))
                .unwrap();
            let mut ids: Vec<i64> = stmt
                .query_map([RAW_BATCH], |r| r.get(0))
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap();
            ids.sort_unstable();
            ids
        };
        assert_eq!(claim(&mut c), [1, 2], "the chains' first steps");
        assert_eq!(claim(&mut c), Vec::<i64>::new(), "3 and 4 wait");
        c.execute(include_str!("sql/bench_chains_complete.sql"), params![1, 1])
            .unwrap();
        c.execute(include_str!("sql/bench_chains_release.sql"), [1])
            .unwrap();
        assert_eq!(claim(&mut c), [3], "1's next step only");
    }
}
