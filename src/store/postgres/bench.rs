//! `porter bench` on PostgreSQL: the database's own limit with hand-written SQL on
//! [`RAW_CONNECTIONS`] connections claiming with `FOR UPDATE SKIP LOCKED`, and the probes the
//! benchmark reads.

use std::time::Instant;

use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, Executor, PgConnection};

use super::connect;
use crate::error::{Error, Result};
use crate::store::bench::{
    rate, ChainsBaseline, RawBaseline, RAW_BATCH, RAW_QUEUE, RAW_SINGLE_QUEUE,
};

/// Connections the hand-written baseline drains (and single-inserts) with.
pub const RAW_CONNECTIONS: usize = 4;
/// Most rows one hand-written batch insert statement sends.
const RAW_INSERT_CHUNK: usize = 20_000;
/// The worker id the hand-written claims record.
const RAW_WORKER: &str = "bench-raw";

/// A transaction left open on a connection of its own (`porter bench --sustain --hold`):
/// vacuum cannot remove row versions its snapshot may see until it is dropped.
pub struct Holder {
    _conn: PgConnection,
}

/// A connection of its own on the benchmark's database.
pub struct Probe {
    options: PgConnectOptions,
    url: String,
    conn: PgConnection,
}

impl Probe {
    /// Connects to the database a `postgres://` URL names (the store has migrated it).
    pub async fn open(url: &str) -> Result<Self> {
        // As every porter connection (see copy.rs): sqlx logged an sslpassword with its value.
        let options = super::connect_options(url, false)?;
        let conn = connect(&options, url).await?;
        Ok(Probe {
            options,
            url: url.to_string(),
            conn,
        })
    }

    /// Opens a transaction that stays open (its snapshot held) until dropped.
    pub async fn hold_snapshot(&self) -> Result<Holder> {
        let mut conn = connect(&self.options, &self.url).await?;
        (&mut conn)
            .execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
            .await?;
        let _: i64 = sqlx::query_scalar(include_str!("sql/bench_hold.sql"))
            .fetch_one(&mut conn)
            .await?;
        Ok(Holder { _conn: conn })
    }

    /// Dead row versions in porter_jobs, as the statistics collector last counted them.
    pub async fn dead_rows(&mut self) -> Result<Option<i64>> {
        Ok(sqlx::query_scalar(include_str!("sql/bench_dead_rows.sql"))
            .fetch_optional(&mut self.conn)
            .await?)
    }

    /// Makes the dead row versions of porter's job tables reusable (`bench_settle.sql`).
    pub async fn settle(&mut self) -> Result<()> {
        // VACUUM runs outside a transaction: sent as a simple query, not prepared.
        sqlx::raw_sql(include_str!("sql/bench_settle.sql"))
            .execute(&mut self.conn)
            .await?;
        Ok(())
    }

    /// Deletes every job of `queue` (the benchmark's own queues, when it is done).
    pub async fn delete_queue(&mut self, queue: &str) -> Result<u64> {
        Ok(sqlx::query(include_str!("sql/bench_raw_delete.sql"))
            .bind(queue)
            .execute(&mut self.conn)
            .await?
            .rows_affected())
    }

    /// Jobs of `queue` still to do: pending (waiting for parents), available or running.
    pub async fn unfinished(&mut self, queue: &str) -> Result<i64> {
        Ok(sqlx::query_scalar(include_str!("sql/bench_unfinished.sql"))
            .bind(queue)
            .fetch_one(&mut self.conn)
            .await?)
    }

    /// Whether any job of `queue` is still to do (pending, available or running).
    pub async fn any_unfinished(&mut self, queue: &str) -> Result<bool> {
        Ok(
            sqlx::query_scalar(include_str!("sql/bench_any_unfinished.sql"))
                .bind(queue)
                .fetch_one(&mut self.conn)
                .await?,
        )
    }

    /// Jobs of `queue` that started before a parent of theirs ended (`bench_started_early.sql`).
    pub async fn started_early(&mut self, queue: &str) -> Result<i64> {
        Ok(
            sqlx::query_scalar(include_str!("sql/bench_started_early.sql"))
                .bind(queue)
                .fetch_one(&mut self.conn)
                .await?,
        )
    }

    /// `EXPLAIN` of porter's claim (`job_claim.sql`) as the planner sees it now.
    pub async fn explain_claim(&mut self, queue: &str) -> Result<String> {
        let sql = format!("EXPLAIN {}", include_str!("sql/job_claim.sql"));
        let lines: Vec<String> = sqlx::query_scalar(&sql)
            .bind(queue)
            .bind("explain")
            .bind(vec!["noop".to_string()])
            .bind(100i64)
            // A full claim: from the queue's start (see cursor.rs).
            .bind(0i16)
            .bind(chrono::DateTime::<chrono::Utc>::UNIX_EPOCH)
            .bind(0i64)
            .fetch_all(&mut self.conn)
            .await?;
        Ok(lines.join("\n") + "\n")
    }

    /// Inserts `jobs` jobs in one transaction, `single_jobs` more one transaction each over
    /// [`RAW_CONNECTIONS`] connections (then deletes those), and drains the first ones on
    /// [`RAW_CONNECTIONS`] connections: claim [`RAW_BATCH`] with SKIP LOCKED + complete them
    /// per transaction.
    pub async fn raw_drain_baseline(
        &mut self,
        jobs: usize,
        single_jobs: usize,
    ) -> Result<RawBaseline> {
        let started = Instant::now();
        let mut tx = self.conn.begin().await?;
        let mut left = jobs;
        while left > 0 {
            let n = left.min(RAW_INSERT_CHUNK);
            sqlx::query(include_str!("sql/bench_raw_insert.sql"))
                .bind(RAW_QUEUE)
                .bind(vec![serde_json::json!({}); n])
                .execute(&mut *tx)
                .await?;
            left -= n;
        }
        tx.commit().await?;
        let batch_insert_jobs_per_sec = rate(jobs, started.elapsed());

        let conns = self.connections().await?;
        let started = Instant::now();
        let inserters = conns.into_iter().enumerate().map(|(i, mut conn)| {
            let share =
                single_jobs / RAW_CONNECTIONS + usize::from(i < single_jobs % RAW_CONNECTIONS);
            tokio::spawn(async move {
                for _ in 0..share {
                    sqlx::query(include_str!("sql/bench_raw_insert_one.sql"))
                        .bind(RAW_SINGLE_QUEUE)
                        .execute(&mut conn)
                        .await?;
                }
                Ok::<_, Error>(conn)
            })
        });
        let conns = join_all(inserters).await?;
        let single_insert_jobs_per_sec = rate(single_jobs, started.elapsed());
        sqlx::query(include_str!("sql/bench_raw_delete.sql"))
            .bind(RAW_SINGLE_QUEUE)
            .execute(&mut self.conn)
            .await?;

        let started = Instant::now();
        let drained: usize = drain_all(conns, Schema::Porter)
            .await?
            .into_iter()
            .map(|(n, conn)| {
                drop(conn);
                n
            })
            .sum();
        if drained != jobs {
            return Err(Error::Database(format!(
                "baseline: drained {drained} jobs of {jobs}"
            )));
        }
        let drain_jobs_per_sec = rate(jobs, started.elapsed());
        Ok(RawBaseline {
            batch_insert_jobs_per_sec,
            single_insert_jobs_per_sec,
            drain_jobs_per_sec,
        })
    }
}

impl Probe {
    /// The same three figures on the least a job queue can be (one table, one partial index;
    /// `bench_min_create.sql`): a batch insert with UNNEST in one transaction, the drain on
    /// [`RAW_CONNECTIONS`] connections, then single inserts over as many. The table is dropped
    /// again, whatever happened.
    pub async fn minimal_baseline(
        &mut self,
        jobs: usize,
        single_jobs: usize,
    ) -> Result<RawBaseline> {
        self.table_baseline(Schema::Minimal, jobs, single_jobs)
            .await
    }

    /// The same three figures, with porter's own statements (`bench_raw_*.sql`), on the least
    /// a table can hold and still do what they do (`bench_narrow_create.sql`): what a narrower
    /// hot table could gain. The table is dropped again, whatever happened.
    pub async fn narrow_baseline(
        &mut self,
        jobs: usize,
        single_jobs: usize,
    ) -> Result<RawBaseline> {
        self.table_baseline(Schema::Narrow, jobs, single_jobs).await
    }

    /// [`Probe::minimal_baseline`] or [`Probe::narrow_baseline`], on a table of the run's own.
    async fn table_baseline(
        &mut self,
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
        // A plain &str runs several statements (the simple protocol).
        (&mut self.conn).execute(create).await?;
        let measured = self.measure_table(schema, jobs, single_jobs).await;
        let dropped = (&mut self.conn).execute(drop).await;
        // A failed measurement's error is the one worth reporting.
        let measured = measured?;
        dropped?;
        Ok(measured)
    }

    /// `jobs` jobs in `width` chains (each job after the one `width` before it; `width ==
    /// jobs` for none), inserted in one statement and drained by [`RAW_CONNECTIONS`] loops, on
    /// the minimal table with dependencies (`bench_chains_create.sql`). A loop stops at its
    /// first claim that finds nothing, so while no more than [`RAW_BATCH`] jobs are claimable
    /// at once (chains no wider), the first claim takes them all and one loop drains the rest:
    /// as fast as the shape allows, since every later claim waits for the completions before
    /// it. The table is dropped again, whatever happened.
    pub async fn chains_baseline(&mut self, jobs: usize, width: usize) -> Result<ChainsBaseline> {
        (&mut self.conn)
            .execute(include_str!("sql/bench_chains_create.sql"))
            .await?;
        let measured = self.measure_chains(jobs, width).await;
        let dropped = (&mut self.conn)
            .execute(include_str!("sql/bench_chains_drop.sql"))
            .await;
        // A failed measurement's error is the one worth reporting.
        let measured = measured?;
        dropped?;
        Ok(measured)
    }

    async fn measure_chains(&mut self, jobs: usize, width: usize) -> Result<ChainsBaseline> {
        let started = Instant::now();
        sqlx::query(include_str!("sql/bench_chains_insert.sql"))
            .bind(vec![serde_json::json!({}); jobs])
            .bind(width.max(1) as i64)
            .execute(&mut self.conn)
            .await?;
        let insert_secs = started.elapsed().as_secs_f64();

        let conns = self.connections().await?;
        let started = Instant::now();
        let drained = drain_all(conns, Schema::Chains).await?;
        let drain_secs = started.elapsed().as_secs_f64();
        let mut total = 0;
        for (n, conn) in drained {
            total += n;
            let _ = conn.close().await;
        }
        if total != jobs {
            return Err(Error::Database(format!(
                "chains baseline: drained {total} jobs of {jobs}"
            )));
        }
        Ok(ChainsBaseline {
            insert_secs,
            drain_secs,
        })
    }

    /// [`RAW_CONNECTIONS`] new connections, for a drain side by side ([`drain_all`]).
    async fn connections(&self) -> Result<Vec<PgConnection>> {
        let mut conns = Vec::with_capacity(RAW_CONNECTIONS);
        for _ in 0..RAW_CONNECTIONS {
            conns.push(connect(&self.options, &self.url).await?);
        }
        Ok(conns)
    }

    async fn measure_table(
        &mut self,
        schema: Schema,
        jobs: usize,
        single_jobs: usize,
    ) -> Result<RawBaseline> {
        let narrow = matches!(schema, Schema::Narrow);
        let (insert, insert_one) = if narrow {
            (
                include_str!("sql/bench_narrow_insert.sql"),
                include_str!("sql/bench_narrow_insert_one.sql"),
            )
        } else {
            (
                include_str!("sql/bench_min_insert.sql"),
                include_str!("sql/bench_min_insert_one.sql"),
            )
        };
        let started = Instant::now();
        let mut tx = self.conn.begin().await?;
        let mut left = jobs;
        while left > 0 {
            let n = left.min(RAW_INSERT_CHUNK);
            let mut query = sqlx::query(insert);
            if narrow {
                query = query.bind(RAW_QUEUE);
            }
            query
                .bind(vec![serde_json::json!({}); n])
                .execute(&mut *tx)
                .await?;
            left -= n;
        }
        tx.commit().await?;
        let batch_insert_jobs_per_sec = rate(jobs, started.elapsed());

        let conns = self.connections().await?;
        let started = Instant::now();
        let drained = drain_all(conns, schema).await?;
        let total: usize = drained.iter().map(|(n, _)| n).sum();
        if total != jobs {
            return Err(Error::Database(format!(
                "{} baseline: drained {total} jobs of {jobs}",
                if narrow { "narrow" } else { "minimal" }
            )));
        }
        let drain_jobs_per_sec = rate(jobs, started.elapsed());

        let started = Instant::now();
        let inserters = drained.into_iter().enumerate().map(|(i, (_, mut conn))| {
            let share =
                single_jobs / RAW_CONNECTIONS + usize::from(i < single_jobs % RAW_CONNECTIONS);
            tokio::spawn(async move {
                for _ in 0..share {
                    let mut query = sqlx::query(insert_one);
                    if narrow {
                        query = query.bind(RAW_QUEUE);
                    }
                    query.execute(&mut conn).await?;
                }
                let _ = conn.close().await;
                Ok::<_, Error>(())
            })
        });
        join_all(inserters).await?;
        let single_insert_jobs_per_sec = rate(single_jobs, started.elapsed());
        Ok(RawBaseline {
            batch_insert_jobs_per_sec,
            single_insert_jobs_per_sec,
            drain_jobs_per_sec,
        })
    }
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

/// One baseline connection's drain loop: claim [`RAW_BATCH`] with SKIP LOCKED, complete them,
/// commit. Returns how many it completed, and the connection.
async fn drain(mut conn: PgConnection, schema: Schema) -> Result<(usize, PgConnection)> {
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
    // Porter's statements and their narrow copies name the queue and the worker.
    let fenced = matches!(schema, Schema::Porter | Schema::Narrow);
    let mut drained = 0;
    loop {
        let mut tx = conn.begin().await?;
        let mut claim = sqlx::query_as(claim_sql);
        if fenced {
            claim = claim.bind(RAW_QUEUE).bind(RAW_WORKER);
        }
        let claimed: Vec<(i64, i32)> = claim.bind(RAW_BATCH as i64).fetch_all(&mut *tx).await?;
        if claimed.is_empty() {
            tx.commit().await?;
            break;
        }
        let (ids, attempts): (Vec<i64>, Vec<i32>) = claimed.iter().copied().unzip();
        let completed = if let Schema::Chains = schema {
            // Its completions and their next steps are one statement, which counts the former.
            sqlx::query_scalar::<_, i64>(complete_sql)
                .bind(ids)
                .bind(attempts)
                .fetch_one(&mut *tx)
                .await? as u64
        } else {
            let mut complete = sqlx::query(complete_sql).bind(ids).bind(attempts);
            if fenced {
                complete = complete.bind(RAW_WORKER);
            }
            complete.execute(&mut *tx).await?.rows_affected()
        };
        if completed as usize != claimed.len() {
            return Err(Error::Database(
                "baseline: a claimed job was not completed".into(),
            ));
        }
        tx.commit().await?;
        drained += claimed.len();
    }
    Ok((drained, conn))
}

/// [`drain`] on each of `conns` at once. Returns each one's count and connection.
async fn drain_all(conns: Vec<PgConnection>, schema: Schema) -> Result<Vec<(usize, PgConnection)>> {
    join_all(
        conns
            .into_iter()
            .map(|conn| tokio::spawn(drain(conn, schema))),
    )
    .await
}

async fn join_all<T>(
    tasks: impl Iterator<Item = tokio::task::JoinHandle<Result<T>>>,
) -> Result<Vec<T>> {
    let mut out = Vec::new();
    for task in tasks.collect::<Vec<_>>() {
        out.push(task.await.map_err(|e| Error::Database(e.to_string()))??);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::postgres::PgStore;
    use crate::store::{Driver, Store};

    async fn fresh() -> (String, PgStore) {
        let base =
            std::env::var("PORTER_TEST_DATABASE_URL").expect("PORTER_TEST_DATABASE_URL is set");
        let url = PgStore::create_test_schema(&base).await.unwrap();
        let store = PgStore::open(&url).await.unwrap();
        (url, store)
    }

    /// With jobs waiting, the claim reads the fetch index (no sequential scan of porter_jobs).
    #[tokio::test]
    #[cfg_attr(
        not(porter_pg_tests),
        ignore = "set PORTER_TEST_DATABASE_URL (scripts/test does)"
    )]
    async fn claim_plan_uses_the_fetch_index() {
        let (url, store) = fresh().await;
        let job =
            crate::store::JobInsertParams::new("noop", serde_json::json!({}), Default::default())
                .unwrap();
        store.job_insert_many(vec![job; 5000]).await.unwrap();
        let mut probe = Probe::open(&url).await.unwrap();
        sqlx::query("ANALYZE porter_jobs")
            .execute(&mut probe.conn)
            .await
            .unwrap();
        let plan = probe.explain_claim("default").await.unwrap();
        assert!(
            plan.contains("using porter_jobs_fetch on porter_jobs"),
            "{plan}"
        );
        assert!(!plan.contains("Seq Scan on porter_jobs"), "{plan}");
        assert_eq!(probe.unfinished("default").await.unwrap(), 5000);
        assert!(probe.any_unfinished("default").await.unwrap());
    }

    #[tokio::test]
    #[cfg_attr(
        not(porter_pg_tests),
        ignore = "set PORTER_TEST_DATABASE_URL (scripts/test does)"
    )]
    async fn baseline_drains_every_job_it_inserts() {
        let (url, store) = fresh().await;
        let mut probe = Probe::open(&url).await.unwrap();
        let raw = probe.raw_drain_baseline(250, 20).await.unwrap();
        assert!(raw.drain_jobs_per_sec > 0.0 && raw.single_insert_jobs_per_sec > 0.0);
        let counts = Store::new(std::sync::Arc::new(store))
            .job_counts()
            .await
            .unwrap();
        assert_eq!(counts.queues[RAW_QUEUE][&crate::JobState::Completed], 250);
        assert!(!counts.queues.contains_key(RAW_SINGLE_QUEUE));
    }

    #[tokio::test]
    #[cfg_attr(
        not(porter_pg_tests),
        ignore = "set PORTER_TEST_DATABASE_URL (scripts/test does)"
    )]
    async fn minimal_and_narrow_baselines_drain_every_job_and_leave_nothing_behind() {
        let (url, store) = fresh().await;
        let mut probe = Probe::open(&url).await.unwrap();
        // Each drain fails unless it claimed and completed every job it inserted.
        let minimal = probe.minimal_baseline(250, 20).await.unwrap();
        let narrow = probe.narrow_baseline(250, 20).await.unwrap();
        for raw in [minimal, narrow] {
            assert!(raw.drain_jobs_per_sec > 0.0 && raw.single_insert_jobs_per_sec > 0.0);
        }
        for table in ["porter_bench_minimal", "porter_bench_narrow"] {
            let left: Option<String> = sqlx::query_scalar("SELECT to_regclass($1)::text")
                .bind(table)
                .fetch_one(&mut probe.conn)
                .await
                .unwrap();
            assert_eq!(left, None, "{table} is dropped");
        }
        let counts = Store::new(std::sync::Arc::new(store))
            .job_counts()
            .await
            .unwrap();
        assert!(
            counts.queues.is_empty(),
            "porter's own table is left alone: {counts:?}"
        );
    }

    #[tokio::test]
    #[cfg_attr(
        not(porter_pg_tests),
        ignore = "set PORTER_TEST_DATABASE_URL (scripts/test does)"
    )]
    async fn chains_baseline_drains_every_job_and_leaves_nothing_behind() {
        let (url, _store) = fresh().await;
        let mut probe = Probe::open(&url).await.unwrap();
        // Chains narrower than a claim (one loop drains them), none, and chains wider than a
        // claim, whose next steps the loops release to each other. A job left undrained, or
        // drained twice, fails the run.
        for (jobs, width) in [(250, 10), (250, 250), (2_000, 500)] {
            probe.chains_baseline(jobs, width).await.unwrap();
        }
        let left: Option<String> =
            sqlx::query_scalar("SELECT to_regclass('porter_bench_chains')::text")
                .fetch_one(&mut probe.conn)
                .await
                .unwrap();
        assert_eq!(left, None, "the chains' table is dropped");

        // A step is claimable only once the one before it completed.
        let conn = &mut probe.conn;
        conn.execute(include_str!("sql/bench_chains_create.sql"))
            .await
            .unwrap();
        sqlx::query(include_str!("sql/bench_chains_insert.sql"))
            .bind(vec![serde_json::json!({}); 6])
            .bind(2i64)
            .execute(&mut *conn)
            .await
            .unwrap();
        let claim = || sqlx::query_as::<_, (i64, i32)>(include_str!("sql/bench_chains_claim.sql"));
        let mut first = claim().bind(100i64).fetch_all(&mut *conn).await.unwrap();
        first.sort_unstable();
        assert_eq!(first, [(1, 1), (2, 1)], "the chains' first steps");
        assert!(claim()
            .bind(100i64)
            .fetch_all(&mut *conn)
            .await
            .unwrap()
            .is_empty());
        let completed: i64 = sqlx::query_scalar(include_str!("sql/bench_chains_complete.sql"))
            .bind(vec![1i64, 2])
            .bind(vec![1i32, 0])
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        assert_eq!(
            completed, 1,
            "job 2's fence is off: attempt 0 is not its attempt"
        );
        let next = claim().bind(100i64).fetch_all(&mut *conn).await.unwrap();
        assert_eq!(next, [(3, 1)], "1's next step only");
        conn.execute(include_str!("sql/bench_chains_drop.sql"))
            .await
            .unwrap();
    }
}
