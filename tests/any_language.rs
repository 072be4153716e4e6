//! Enqueue from any language (issue 16.4): the README's own examples, run by the tools a user
//! has (Python's standard `sqlite3` module, `psql`), insert jobs that a running `porter worker`
//! picks up through its wake-up (its poll interval is an hour); and `porter_enqueue` on
//! PostgreSQL checks, dedupes and inserts as the library does.
//!
//! python3 and psql must be on the machine. Under CI a missing one fails these tests; elsewhere
//! the case says so and passes.

#[path = "common/binary.rs"]
mod binary;
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use porter::store::{Backend, BulkAction, JobFilter, Store};
use porter::JobState;

use crate::binary::{porter_cmd, run, Running};
use crate::common::{eventually, TestDb};

/// The README's "Enqueue from any language" section.
fn readme_section() -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("read README.md");
    let start = readme
        .find("## Enqueue from any language\n")
        .expect("README has the section \"Enqueue from any language\"");
    let rest = &readme[start + 3..];
    let end = rest.find("\n## ").unwrap_or(rest.len());
    rest[..end].to_string()
}

/// Every fenced block of the section whose info string is `info`, in order.
fn blocks(info: &str) -> Vec<String> {
    let section = readme_section();
    let mut out = Vec::new();
    let mut lines = section.lines();
    while let Some(line) = lines.next() {
        if line.trim_end() == format!("```{info}") {
            let body: Vec<&str> = lines.by_ref().take_while(|l| l.trim() != "```").collect();
            out.push(body.join("\n") + "\n");
        }
    }
    assert!(!out.is_empty(), "the README section has a ```{info} block");
    out
}

/// A tool the test needs: its path, or `None` (with a note) when it is missing outside the
/// test script (which sets PORTER_TEST_DATABASE_URL, and installs the tools) and CI.
fn tool(name: &str, also: &[&str]) -> Option<PathBuf> {
    let found = std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(name))
        .chain(also.iter().map(PathBuf::from))
        .find(|p| p.is_file());
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none()
                && std::env::var_os("PORTER_TEST_DATABASE_URL").is_none(),
            "{name} is not installed, and CI or PORTER_TEST_DATABASE_URL is set: these tests must \
             run (install {name}; scripts/setup does)"
        );
        eprintln!("note: {name} is not installed: this case did not run");
    }
    found
}

fn python() -> Option<PathBuf> {
    tool("python3", &["/usr/bin/python3"])
}

fn psql() -> Option<PathBuf> {
    // Debian keeps psql beside the server's binaries (where scripts/test finds initdb), and
    // puts it on PATH only with the postgresql-client-common wrapper.
    let mut beside_server: Vec<String> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|major| major.path().join("bin/psql").display().to_string())
        .collect();
    beside_server.sort();
    beside_server.reverse();
    let beside_server: Vec<&str> = beside_server.iter().map(String::as_str).collect();
    tool("psql", &beside_server)
}

/// The server's URL without the test schema, and the libpq options that select the schema:
/// psql reads the search path from PGOPTIONS (the `options` of porter's test URLs is
/// form-encoded, which libpq does not decode).
fn psql_target(db: &TestDb) -> (String, String) {
    let mut url = url::Url::parse(&db.url).unwrap();
    let options = url
        .query_pairs()
        .find(|(k, _)| k == "options")
        .map(|(_, v)| v.into_owned())
        .expect("a test schema URL names its search path");
    url.set_query(None);
    (url.to_string(), options)
}

/// Runs a command to its end; its stdout, or a panic with everything it printed.
fn stdout(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert_eq!(out.code, 0, "{cmd:?} failed: {out:#?}");
    out.stdout
}

/// A shell script of the README, run as a user's shell runs it, with `DATABASE_URL` the test
/// database (and PGOPTIONS its schema).
fn run_script(psql: &Path, db: &TestDb, script: &str) -> String {
    let (base, options) = psql_target(db);
    let path = format!(
        "{}:{}",
        psql.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    stdout(
        Command::new("sh")
            .args(["-ec", script])
            .env("PATH", path)
            .env("DATABASE_URL", base)
            .env("PGOPTIONS", options),
    )
}

/// Runs SQL through `psql` on the test schema, stopping at the first error.
fn run_psql(psql: &Path, db: &TestDb, sql: &str) -> String {
    let (base, options) = psql_target(db);
    stdout(
        Command::new(psql)
            .args([
                base.as_str(),
                "-X",
                "-At",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                sql,
            ])
            .env("PGOPTIONS", options),
    )
}

/// Runs SQL statements (separated by `;` at a line's end) on the SQLite file through Python's
/// sqlite3, in one committed transaction; each statement's rows, as JSON.
fn run_python_sql(python: &Path, db: &TestDb, sql: &str) -> Vec<serde_json::Value> {
    let program = r#"
import json, sqlite3, sys
db = sqlite3.connect(sys.argv[1], timeout=5)
with db:
    for stmt in [s for s in sys.argv[2].split(";\n") if s.strip()]:
        print(json.dumps(db.execute(stmt).fetchall()))
"#;
    let out = stdout(
        Command::new(python)
            .args(["-c", program])
            .arg(db.sqlite_path().unwrap())
            .arg(sql),
    );
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Records a failure ("boom") of a claimed job, to retry at once.
async fn fail_boom(store: &Store, job: &porter::JobRow) -> porter::JobRow {
    store
        .job_fail(porter::store::JobFailParams {
            fence: job.fence(),
            error: "boom".into(),
            trace: None,
            retry_in: Duration::ZERO,
            discard: false,
        })
        .await
        .expect("a failure is recorded")
}

async fn job(store: &Store, id: i64) -> porter::JobRow {
    store.job_get(id).await.unwrap().expect("the job exists")
}

async fn count(store: &Store) -> i64 {
    store
        .job_counts()
        .await
        .unwrap()
        .total
        .values()
        .copied()
        .sum()
}

/// A `porter worker` on the test database that only a wake-up gets to claim in time.
async fn start_worker(db: &TestDb, dir: &Path) -> Running {
    let mut worker = Running::spawn(porter_cmd(dir).args([
        "--database-url",
        &db.url,
        "worker",
        "--no-periodic",
        "--poll-interval",
        "1h",
    ]));
    worker.wait_for_line("worker ready");
    // Its producer has made its first claims and sleeps for an hour now.
    crate::common::probe_job_runs(db).await;
    worker
}

backend_case! {
    /// The README's first example on each backend (Python's sqlite3 running the plain INSERT;
    /// psql calling porter_enqueue) inserts a job that a running worker, polling only hourly,
    /// runs at once: the insert woke it (data_version on SQLite, NOTIFY on PostgreSQL).
    async fn a_job_enqueued_from_another_language_is_run_through_the_wake_up(db: TestDb) {
        let (client, example) = match db.store.backend() {
            Backend::Sqlite => (python(), blocks("python").remove(0)),
            Backend::Postgres => (psql(), blocks("sh").remove(0)),
        };
        let Some(client) = client else { return };
        let workdir = tempfile::tempdir().unwrap();
        let _worker = start_worker(&db, workdir.path()).await;
        let out = match db.store.backend() {
            // Run where the README runs it: the directory of sqlite://porter.db.
            Backend::Sqlite => stdout(
                Command::new(&client)
                    .args(["-c", &example])
                    .current_dir(db.dir.as_ref().unwrap().path()),
            ),
            Backend::Postgres => run_script(&client, &db, &example),
        };
        let id: i64 = out.trim().parse().expect("the example prints the new id");
        eventually("the worker runs the job enqueued from another language", || async {
            job(&db.store, id).await.state == JobState::Completed
        })
        .await;
        let row = job(&db.store, id).await;
        assert_eq!(
            (row.kind.as_str(), row.queue.as_str(), &row.args, row.priority, row.max_attempts, row.attempt),
            ("noop", "default", &serde_json::json!({"n": 1}), 1, 25, 1)
        );
        assert_eq!(count(&db.store).await, 1);
    }

    /// The README's example with every option (porter_enqueue's named parameters on
    /// PostgreSQL; a scheduled INSERT with a unique key on SQLite) inserts a scheduled job
    /// with what it names; run again, it inserts nothing and answers the job that holds the
    /// key, as the library does.
    async fn the_readme_example_with_options_inserts_once_and_then_answers_the_holder(db: TestDb) {
        let run_example = |sql: &str| -> Option<Vec<String>> {
            match db.store.backend() {
                Backend::Sqlite => {
                    let python = python()?;
                    // Each statement's rows: the insert's id (or none), then the holder's.
                    Some(
                        run_python_sql(&python, &db, sql)
                            .into_iter()
                            .map(|rows| rows.to_string())
                            .collect(),
                    )
                }
                Backend::Postgres => {
                    let psql = psql()?;
                    Some(run_psql(&psql, &db, sql).lines().map(str::to_string).collect())
                }
            }
        };
        let example = match db.store.backend() {
            Backend::Sqlite => blocks("sql sqlite").remove(0),
            Backend::Postgres => blocks("sql postgres").remove(0),
        };
        let Some(first) = run_example(&example) else { return };
        let Some(second) = run_example(&example) else { return };
        let ids = porter::store::JobListParams::default();
        let jobs = db.store.job_list(ids).await.unwrap();
        assert_eq!(jobs.len(), 1, "one job, however often the example runs: {jobs:#?}");
        let row = &jobs[0];
        assert_eq!(row.state, JobState::Scheduled);
        assert!(row.scheduled_at > row.created_at, "due later: {row:#?}");
        match db.store.backend() {
            Backend::Sqlite => {
                assert_eq!(first, [format!("[[{}]]", row.id), format!("[[{}]]", row.id)]);
                assert_eq!(second, ["[]".to_string(), format!("[[{}]]", row.id)]);
                assert_eq!(row.unique_key.as_deref(), Some("report:2026-11-30"));
            }
            Backend::Postgres => {
                assert_eq!(first, [format!("{}|t", row.id)]);
                assert_eq!(second, [format!("{}|f", row.id)]);
                assert_eq!(
                    (
                        row.kind.as_str(),
                        &row.args,
                        row.priority,
                        row.max_attempts,
                        row.unique_key.as_deref(),
                        row.concurrency_key.as_deref(),
                        &row.metadata,
                    ),
                    (
                        "noop",
                        &serde_json::json!({"to": "ada@example.com"}),
                        2,
                        5,
                        Some("welcome:ada"),
                        Some("ada"),
                        &serde_json::json!({"source": "signup"}),
                    )
                );
            }
        }
    }
}

backend_case! {
    /// The README's sequence example, run twice from another language, inserts the second job
    /// `pending`; a running worker runs the first, and porter starts the second only once the
    /// first is finalized: one at a time, in order.
    async fn a_sequence_enqueued_from_another_language_runs_one_at_a_time(db: TestDb) {
        let example = match db.store.backend() {
            Backend::Sqlite => blocks("sql sqlite").remove(1),
            Backend::Postgres => blocks("sql postgres").remove(1),
        };
        let mut ids = Vec::new();
        for _ in 0..2 {
            let out = match db.store.backend() {
                Backend::Sqlite => {
                    let Some(python) = python() else { return };
                    run_python_sql(&python, &db, &example)[0][0][0].to_string()
                }
                Backend::Postgres => {
                    let Some(psql) = psql() else { return };
                    run_psql(&psql, &db, &example)
                }
            };
            ids.push(out.trim().parse::<i64>().expect("the example answers the id"));
        }
        let (first, second) = (job(&db.store, ids[0]).await, job(&db.store, ids[1]).await);
        assert_eq!((first.state, second.state), (JobState::Available, JobState::Pending));
        assert_eq!(second.sequence_key.as_deref(), Some("account:42"));
        let workdir = tempfile::tempdir().unwrap();
        let _worker = start_worker(&db, workdir.path()).await;
        eventually("the worker runs both jobs of the sequence", || async {
            job(&db.store, ids[1]).await.state == JobState::Completed
        })
        .await;
        let (first, second) = (job(&db.store, ids[0]).await, job(&db.store, ids[1]).await);
        assert_eq!((first.state, first.attempt, second.attempt), (JobState::Completed, 1, 1));
        assert!(
            second.attempted_at.unwrap() >= first.finalized_at.unwrap(),
            "the second started after the first ended: {first:#?} {second:#?}"
        );
    }
}

/// porter_enqueue on PostgreSQL (SQLite has no stored functions: its side is the documented
/// INSERT, above). Called through sqlx here, as any client library calls it.
mod postgres_only {
    use porter::store::JobInsertParams;
    use porter::{Client, InsertOpts, JobState};
    use serde_json::{json, Value};
    use sqlx::Row;

    use crate::common::{self, TestDb};

    /// One call's inputs: what the library would be given, as porter_enqueue's parameters.
    #[derive(Clone, Default)]
    struct Call {
        kind: Option<String>,
        args: Option<Value>,
        queue: Option<String>,
        priority: Option<i32>,
        max_attempts: Option<i32>,
        scheduled_at: Option<String>,
        unique_key: Option<String>,
        concurrency_key: Option<String>,
        sequence_key: Option<String>,
        depends_on: Option<Vec<i64>>,
        after_any: Option<bool>,
        metadata: Option<Value>,
    }

    impl Call {
        fn kind(kind: &str) -> Call {
            Call {
                kind: Some(kind.to_string()),
                args: Some(json!({})),
                ..Call::default()
            }
        }

        /// The same input through the library's checks (what Client::insert_raw runs first).
        fn library(&self) -> porter::Result<JobInsertParams> {
            let opts = InsertOpts {
                queue: self.queue.clone(),
                priority: self.priority.map(|p| p.clamp(-32768, 32767) as i16),
                max_attempts: self.max_attempts,
                scheduled_at: self
                    .scheduled_at
                    .as_ref()
                    .map(|t| t.parse().expect("an RFC 3339 time")),
                unique_key: self.unique_key.clone(),
                concurrency_key: self.concurrency_key.clone(),
                sequence_key: self.sequence_key.clone(),
                depends_on: self.depends_on.clone().unwrap_or_default(),
                after_any: self.after_any.unwrap_or_default(),
                metadata: self.metadata.clone(),
                ..InsertOpts::default()
            };
            JobInsertParams::new(
                self.kind.as_deref().unwrap_or_default(),
                self.args.clone().unwrap_or(Value::Null),
                opts,
            )
        }

        /// porter_enqueue with these inputs (NULL for the unset ones): (id, inserted), or the
        /// database's error message.
        async fn call(&self, pool: &sqlx::PgPool) -> Result<(i64, bool), String> {
            sqlx::query(
                "SELECT id, inserted FROM porter_enqueue($1, $2::jsonb, queue => $3, priority => $4,
                     max_attempts => $5, scheduled_at => $6::timestamptz, unique_key => $7,
                     concurrency_key => $8, sequence_key => $9, depends_on => $10,
                     after_any => $11, metadata => $12::jsonb)",
            )
            .bind(&self.kind)
            .bind(self.args.as_ref().map(Value::to_string))
            .bind(&self.queue)
            .bind(self.priority)
            .bind(self.max_attempts)
            .bind(&self.scheduled_at)
            .bind(&self.unique_key)
            .bind(&self.concurrency_key)
            .bind(&self.sequence_key)
            .bind(&self.depends_on)
            .bind(self.after_any)
            .bind(self.metadata.as_ref().map(Value::to_string))
            .fetch_one(pool)
            .await
            .map(|r| (r.get(0), r.get(1)))
            .map_err(|e| match e {
                sqlx::Error::Database(db) => {
                    assert_eq!(db.code().as_deref(), Some("22023"), "{}", db.message());
                    db.message().to_string()
                }
                other => panic!("{other}"),
            })
        }
    }

    async fn pool(db: &TestDb) -> sqlx::PgPool {
        sqlx::PgPool::connect(&db.url).await.unwrap()
    }

    async fn jobs_in_table(pool: &sqlx::PgPool) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM porter_jobs")
            .fetch_one(pool)
            .await
            .unwrap()
    }

    /// `porter_enqueue('noop')` on `conn`: the new job's id.
    async fn enqueue_noop(conn: &mut sqlx::PgConnection) -> i64 {
        let (id, inserted): (i64, bool) =
            sqlx::query_as("SELECT id, inserted FROM porter_enqueue('noop')")
                .fetch_one(conn)
                .await
                .unwrap();
        assert!(inserted);
        id
    }

    fn over_cap(bytes: usize) -> Value {
        // {"s":"..."} is 8 bytes of compact JSON around the string.
        json!({ "s": "x".repeat(bytes - 8) })
    }

    /// `levels` arrays around a number.
    fn nested(levels: usize) -> Value {
        (0..levels).fold(json!(1), |v, _| json!([v]))
    }

    /// Bad input the library refuses, refused by porter_enqueue with the library's own message,
    /// and nothing inserted.
    fn refused() -> Vec<(&'static str, Call)> {
        let k = |c: Call| c;
        vec![
            ("empty kind", Call::kind("")),
            ("upper-case kind", Call::kind("SendEmail")),
            ("kind of 65 bytes", Call::kind(&"k".repeat(65))),
            (
                "SQL in the kind",
                Call::kind("x'); DROP TABLE porter_jobs; --"),
            ),
            ("control character in the kind", Call::kind("noop\n")),
            ("tab in the kind", Call::kind("no\top")),
            ("non-ASCII kind", Call::kind("nöop")),
            ("quote and backslash in the kind", Call::kind("a\"b\\c")),
            (
                "DEL and C1 controls in the kind",
                Call::kind("a\u{7f}\u{85}\r"),
            ),
            (
                "bad queue",
                k(Call {
                    queue: Some("Mail Queue".into()),
                    ..Call::kind("noop")
                }),
            ),
            (
                "empty queue",
                k(Call {
                    queue: Some(String::new()),
                    ..Call::kind("noop")
                }),
            ),
            (
                "SQL in the queue",
                k(Call {
                    queue: Some("q'; DELETE FROM porter_jobs; --".into()),
                    ..Call::kind("noop")
                }),
            ),
            (
                "control character in the queue",
                k(Call {
                    queue: Some("q\u{7}".into()),
                    ..Call::kind("noop")
                }),
            ),
            (
                "priority 0",
                k(Call {
                    priority: Some(0),
                    ..Call::kind("noop")
                }),
            ),
            (
                "priority 5",
                k(Call {
                    priority: Some(5),
                    ..Call::kind("noop")
                }),
            ),
            (
                "priority -1",
                k(Call {
                    priority: Some(-1),
                    ..Call::kind("noop")
                }),
            ),
            (
                "max_attempts 0",
                k(Call {
                    max_attempts: Some(0),
                    ..Call::kind("noop")
                }),
            ),
            (
                "max_attempts over the most",
                k(Call {
                    max_attempts: Some(1_000_001),
                    ..Call::kind("noop")
                }),
            ),
            (
                "empty unique key",
                k(Call {
                    unique_key: Some(String::new()),
                    ..Call::kind("noop")
                }),
            ),
            (
                "unique key of 256 bytes",
                k(Call {
                    unique_key: Some("u".repeat(256)),
                    ..Call::kind("noop")
                }),
            ),
            (
                "empty concurrency key",
                k(Call {
                    concurrency_key: Some(String::new()),
                    ..Call::kind("noop")
                }),
            ),
            (
                "concurrency key of 256 bytes",
                k(Call {
                    concurrency_key: Some("ü".repeat(128)),
                    ..Call::kind("noop")
                }),
            ),
            (
                "empty sequence key",
                k(Call {
                    sequence_key: Some(String::new()),
                    ..Call::kind("noop")
                }),
            ),
            (
                "sequence key of 256 bytes",
                k(Call {
                    sequence_key: Some("s".repeat(256)),
                    ..Call::kind("noop")
                }),
            ),
            (
                "too many parents",
                k(Call {
                    depends_on: Some((1..=10_001).collect()),
                    ..Call::kind("noop")
                }),
            ),
            (
                "after_any without parents",
                k(Call {
                    after_any: Some(true),
                    ..Call::kind("noop")
                }),
            ),
            (
                "a sequence and parents",
                k(Call {
                    sequence_key: Some("s".into()),
                    depends_on: Some(vec![1]),
                    ..Call::kind("noop")
                }),
            ),
            (
                "metadata not an object",
                k(Call {
                    metadata: Some(json!([1])),
                    ..Call::kind("noop")
                }),
            ),
            (
                "reserved metadata",
                k(Call {
                    metadata: Some(json!({"cancel_requested_at": "x"})),
                    ..Call::kind("noop")
                }),
            ),
            (
                "args over 1 MiB",
                k(Call {
                    args: Some(over_cap(1024 * 1024 + 1)),
                    ..Call::kind("noop")
                }),
            ),
            (
                "metadata over 1 MiB",
                k(Call {
                    metadata: Some(over_cap(1024 * 1024 + 1)),
                    ..Call::kind("noop")
                }),
            ),
            (
                "queue of 65 bytes",
                k(Call {
                    queue: Some("q".repeat(65)),
                    ..Call::kind("noop")
                }),
            ),
            (
                "metadata JSON null",
                k(Call {
                    metadata: Some(Value::Null),
                    ..Call::kind("noop")
                }),
            ),
            (
                "metadata a number",
                k(Call {
                    metadata: Some(json!(5)),
                    ..Call::kind("noop")
                }),
            ),
            (
                "metadata a string",
                k(Call {
                    metadata: Some(json!("m")),
                    ..Call::kind("noop")
                }),
            ),
            (
                "after_any with an empty list of parents",
                k(Call {
                    depends_on: Some(vec![]),
                    after_any: Some(true),
                    ..Call::kind("noop")
                }),
            ),
            (
                "args nested 128 levels deep",
                k(Call {
                    args: Some(nested(128)),
                    ..Call::kind("noop")
                }),
            ),
            (
                "metadata nested 128 levels deep",
                k(Call {
                    metadata: Some(json!({ "m": nested(127) })),
                    ..Call::kind("noop")
                }),
            ),
            (
                "due before 1970",
                k(Call {
                    scheduled_at: Some("1969-12-31T23:59:59Z".into()),
                    ..Call::kind("noop")
                }),
            ),
            (
                "due after 9999",
                k(Call {
                    scheduled_at: Some("9999-12-31T23:59:59.9995Z".into()),
                    ..Call::kind("noop")
                }),
            ),
            // Several faults: the library's order of checks names the same one. (Until 4 Dec
            // the function judged the due time before the JSON's depth, and each document's
            // size before the other's depth.)
            (
                "due before 1970 and args nested 128 levels deep",
                k(Call {
                    args: Some(nested(128)),
                    scheduled_at: Some("1969-12-31T23:59:59Z".into()),
                    ..Call::kind("noop")
                }),
            ),
            (
                "args over 1 MiB and metadata nested 128 levels deep",
                k(Call {
                    args: Some(over_cap(1024 * 1024 + 1)),
                    metadata: Some(json!({ "m": nested(127) })),
                    ..Call::kind("noop")
                }),
            ),
            (
                "args over 1 MiB and due before 1970",
                k(Call {
                    args: Some(over_cap(1024 * 1024 + 1)),
                    scheduled_at: Some("1969-12-31T23:59:59Z".into()),
                    ..Call::kind("noop")
                }),
            ),
        ]
    }

    /// Numbers at the top of a 64-bit float's range, as JSON text: the function takes exactly
    /// those porter's reader takes (serde_json, correctly rounded: below half a step past the
    /// largest float it reads the largest float), and porter reads back what it took. Until 4
    /// Dec it refused everything above the largest float's shortest text, 1.7976931348623158e308
    /// among them, which the library and the CLI take.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[cfg_attr(
        not(porter_pg_tests),
        ignore = "PORTER_TEST_DATABASE_URL not set: Postgres half skipped"
    )]
    async fn porter_enqueue_takes_the_numbers_porter_reads_and_no_others() {
        let db = common::postgres().await;
        let pool = pool(&db).await;
        // Half a step past the largest float: 2^1024 - 2^970, the first number that rounds up.
        let half = "179769313486231580793728971405303415079934132710037826936173778980444968292764750946649017977587207096330286416692887910946555547851940402630657488671505820681908902000708383676273854845817711531764475730270069855571366959622842914819860834936475292719074168444365510704342711559699508093042880177904174497792";
        // Just below it: still the largest float.
        let below = format!("{}1.99", &half[..half.len() - 1]);
        let mut cases: Vec<String> = [
            "1.7976931348623157e308",
            "1.7976931348623158e308",
            "1.797693134862315807937289714053e308",
            "1.7976931348623158079372897140530342e308",
            "1.7976931348623159e308",
            "1e309",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        cases.push(half.to_string());
        cases.push(below);
        let negative: Vec<String> = cases.iter().map(|c| format!("-{c}")).collect();
        cases.extend(negative);
        for number in cases {
            let text = format!("{{\"n\": {number}}}");
            let library = serde_json::from_str::<Value>(&text).is_ok();
            let function: Result<i64, sqlx::Error> =
                sqlx::query_scalar("SELECT id FROM porter_enqueue('noop', $1::jsonb)")
                    .bind(&text)
                    .fetch_one(&pool)
                    .await;
            match function {
                Ok(id) => {
                    assert!(
                        library,
                        "{number}: the function took what porter cannot read"
                    );
                    let row = db.store.job_get(id).await.unwrap().unwrap();
                    assert!(row.unreadable.is_none(), "{number}: {row:?}");
                }
                Err(e) => {
                    assert!(
                        !library,
                        "{number}: the function refused what the library takes: {e}"
                    );
                    assert!(
                        e.to_string().contains("past the range porter reads"),
                        "{number}: {e}"
                    );
                }
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[cfg_attr(
        not(porter_pg_tests),
        ignore = "PORTER_TEST_DATABASE_URL not set: Postgres half skipped"
    )]
    async fn porter_enqueue_refuses_what_the_library_refuses_with_its_words_and_inserts_nothing() {
        let db = common::postgres().await;
        let pool = pool(&db).await;
        for (what, call) in refused() {
            let library = call.library().expect_err(what).to_string();
            let function = call.call(&pool).await.expect_err(what);
            assert_eq!(
                function, library,
                "{what}: the function says what the library says"
            );
            assert_eq!(jobs_in_table(&pool).await, 0, "{what}: nothing inserted");
        }
        // Input the library cannot even be given: refused by PostgreSQL before the function
        // runs (text and jsonb hold no NUL), SQL NULL for the kind or the args.
        for (what, sql, needle) in [
            (
                "NUL in the kind",
                "SELECT porter_enqueue(E'no\\x00op')",
                "0x00",
            ),
            (
                "NUL in the args",
                r#"SELECT porter_enqueue('noop', '{"a": "\u0000"}')"#,
                "unsupported Unicode escape sequence",
            ),
            (
                "NULL kind",
                "SELECT porter_enqueue(NULL)",
                "invalid kind: NULL must match",
            ),
            (
                "NULL args",
                "SELECT porter_enqueue('noop', NULL)",
                "invalid args: must be JSON, not SQL NULL",
            ),
            (
                "args not JSON",
                "SELECT porter_enqueue('noop', 'nope')",
                "invalid input syntax for type json",
            ),
            (
                "a number past an f64 in the args",
                r#"SELECT porter_enqueue('noop', '{"n": [1, -1e400]}')"#,
                "invalid args: hold a number past the range porter reads",
            ),
            (
                "a number past an f64 in the metadata",
                r#"SELECT porter_enqueue('noop', metadata => '{"n": 1e309}')"#,
                "invalid metadata: hold a number past the range porter reads",
            ),
            (
                "due at infinity",
                "SELECT porter_enqueue('noop', scheduled_at => 'infinity')",
                "invalid scheduled_at: infinity is outside the times porter stores",
            ),
            (
                "due at -infinity",
                "SELECT porter_enqueue('noop', scheduled_at => '-infinity')",
                "invalid scheduled_at: -infinity is outside the times porter stores",
            ),
            (
                "NULL among the parents",
                "SELECT porter_enqueue('noop', depends_on => ARRAY[NULL]::bigint[])",
                "invalid depends_on: NULL is not a job id",
            ),
            (
                "the parents as an array of arrays",
                "SELECT porter_enqueue('noop', depends_on => ARRAY[[1, 2], [1, 2]]::bigint[])",
                "invalid depends_on: a list of job ids, not an array of arrays",
            ),
            (
                "priority not a number",
                "SELECT porter_enqueue('noop', priority => 'high')",
                "invalid input syntax for type integer",
            ),
        ] {
            let err = sqlx::query(sql)
                .execute(&pool)
                .await
                .expect_err(what)
                .to_string();
            assert!(err.contains(needle), "{what}: {err:?} says {needle:?}");
            assert_eq!(jobs_in_table(&pool).await, 0, "{what}: nothing inserted");
        }
        // A parent that does not exist: the library's words, nothing inserted, and the parent
        // that does exist is left unmarked.
        let client = Client::new(db.store.clone());
        let parent = client
            .insert_raw("noop", json!({}), InsertOpts::default())
            .await
            .unwrap()
            .job
            .id;
        let missing = Call {
            depends_on: Some(vec![parent, parent + 1000]),
            ..Call::kind("noop")
        };
        let library = client
            .insert_raw(
                "noop",
                json!({}),
                InsertOpts {
                    depends_on: vec![parent, parent + 1000],
                    ..Default::default()
                },
            )
            .await
            .expect_err("a missing parent")
            .to_string();
        assert_eq!(
            missing.call(&pool).await.expect_err("a missing parent"),
            library
        );
        assert_eq!(jobs_in_table(&pool).await, 1);
        let marked: bool =
            sqlx::query_scalar("SELECT has_dependents FROM porter_jobs WHERE id = $1")
                .bind(parent)
                .fetch_one(&pool)
                .await
                .unwrap();
        assert!(!marked, "the refused call's marks were rolled back");
        client.cancel(parent).await.unwrap();
        sqlx::query("DELETE FROM porter_jobs")
            .execute(&pool)
            .await
            .unwrap();
        // A bad call inside a transaction leaves the transaction to the caller: a rollback
        // undoes the good calls before it.
        let mut tx = pool.begin().await.unwrap();
        sqlx::query("SELECT porter_enqueue('noop')")
            .execute(&mut *tx)
            .await
            .unwrap();
        assert!(sqlx::query("SELECT porter_enqueue('Bad')")
            .execute(&mut *tx)
            .await
            .is_err());
        tx.rollback().await.unwrap();
        assert_eq!(jobs_in_table(&pool).await, 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[cfg_attr(
        not(porter_pg_tests),
        ignore = "PORTER_TEST_DATABASE_URL not set: Postgres half skipped"
    )]
    async fn porter_enqueue_inserts_the_row_the_library_inserts() {
        let db = common::postgres().await;
        let pool = pool(&db).await;
        let client = Client::new(db.store.clone());
        let calls = [
            Call::kind("noop"),
            // Args are any JSON value in the library too (objects by convention).
            Call {
                args: Some(json!([1, "two", null])),
                ..Call::kind("noop")
            },
            Call {
                args: Some(json!(null)),
                ..Call::kind("noop")
            },
            // Exactly at the cap, counted as compact JSON (jsonb prints more).
            Call {
                args: Some(over_cap(1024 * 1024)),
                ..Call::kind("noop")
            },
            Call {
                args: Some(json!({"to": "ada@example.com", "n": [1, 2, {"deep": true}]})),
                queue: Some("mail.out-1_x".into()),
                priority: Some(4),
                max_attempts: Some(1_000_000),
                scheduled_at: Some("2999-01-02T03:04:05.678Z".into()),
                unique_key: Some("ключ\u{1}".into()),
                concurrency_key: Some("k".repeat(255)),
                metadata: Some(json!({"source": "signup"})),
                ..Call::kind(&"a.b-c_d".repeat(10)[..64])
            },
            Call {
                scheduled_at: Some("1970-01-01T00:00:00Z".into()),
                ..Call::kind("noop")
            },
        ];
        for call in calls {
            let params = call.library().expect("the library takes it");
            let (id, inserted) = call.call(&pool).await.expect("the function takes it");
            assert!(inserted);
            let by_library = client
                .insert_raw(
                    &params.kind,
                    params.args.clone(),
                    InsertOpts {
                        queue: Some(params.queue.clone()),
                        priority: Some(params.priority),
                        max_attempts: Some(params.max_attempts),
                        scheduled_at: params.scheduled_at,
                        // The library's copy must not collide with the function's.
                        unique_key: params.unique_key.as_ref().map(|k| format!("{k}-lib")),
                        concurrency_key: params.concurrency_key.clone(),
                        metadata: Some(params.metadata.clone()),
                        ..InsertOpts::default()
                    },
                )
                .await
                .unwrap()
                .job;
            let by_function = db.store.job_get(id).await.unwrap().unwrap();
            let comparable = |j: &porter::JobRow, due: bool| {
                (
                    j.kind.clone(),
                    j.queue.clone(),
                    j.args.clone(),
                    j.state,
                    j.priority,
                    j.attempt,
                    j.max_attempts,
                    j.errors.clone(),
                    due.then_some(j.scheduled_at),
                    j.unique_key
                        .as_ref()
                        .map(|k| k.trim_end_matches("-lib").to_string()),
                    j.metadata.clone(),
                    j.concurrency_key.clone(),
                )
            };
            let given_due = call.scheduled_at.is_some();
            assert_eq!(
                comparable(&by_function, given_due),
                comparable(&by_library, given_due)
            );
            if !given_due {
                assert_eq!(
                    by_function.scheduled_at, by_function.created_at,
                    "due at once"
                );
            }
        }
        let future = db.store.job_list(Default::default()).await.unwrap();
        assert!(future.iter().any(|j| j.state == JobState::Scheduled));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[cfg_attr(
        not(porter_pg_tests),
        ignore = "PORTER_TEST_DATABASE_URL not set: Postgres half skipped"
    )]
    async fn porter_enqueue_waits_in_a_sequence_and_for_parents_as_the_library_does() {
        let db = common::postgres().await;
        let pool = pool(&db).await;
        let client = Client::new(db.store.clone());
        let new_parent = || async {
            client
                .insert_raw("noop", json!({}), InsertOpts::default())
                .await
                .unwrap()
                .job
                .id
        };
        let (waiting, done, cancelled) =
            (new_parent().await, new_parent().await, new_parent().await);
        // Ended parents, as a worker and a user end them (the finalize trigger runs).
        sqlx::query(
            "UPDATE porter_jobs SET state = 'completed', finalized_at = now() WHERE id = $1",
        )
        .bind(done)
        .execute(&pool)
        .await
        .unwrap();
        client.cancel(cancelled).await.unwrap();
        let after = |parents: &[i64], any: bool| Call {
            depends_on: Some(parents.to_vec()),
            after_any: any.then_some(true),
            ..Call::kind("noop")
        };
        let seq = |key: &str| Call {
            sequence_key: Some(key.into()),
            ..Call::kind("noop")
        };
        // (the call, the state both start in); a sequence's key gets "-lib" for the library's
        // copy, so that each inserts into a sequence of its own.
        let cases = [
            (seq("s"), JobState::Available),
            (seq("s"), JobState::Pending),
            (after(&[waiting], false), JobState::Pending),
            (after(&[done], false), JobState::Available),
            (after(&[waiting, done, waiting], false), JobState::Pending),
            (after(&[cancelled], false), JobState::Cancelled),
            (
                after(&[done, cancelled, waiting], false),
                JobState::Cancelled,
            ),
            (after(&[cancelled], true), JobState::Available),
            (after(&[cancelled, waiting], true), JobState::Pending),
        ];
        for (call, state) in cases {
            let (id, inserted) = call.call(&pool).await.expect("the function takes it");
            assert!(inserted);
            let mut lib_call = call.clone();
            lib_call.sequence_key = call.sequence_key.as_ref().map(|k| format!("{k}-lib"));
            let params = lib_call.library().unwrap();
            let lib = client
                .insert_raw(
                    &params.kind,
                    params.args.clone(),
                    InsertOpts {
                        sequence_key: params.sequence_key.clone(),
                        depends_on: params.depends_on.clone(),
                        after_any: params.after_any,
                        ..InsertOpts::default()
                    },
                )
                .await
                .unwrap()
                .job;
            let mine = db.store.job_get(id).await.unwrap().unwrap();
            let shape = |j: &porter::JobRow| {
                (
                    j.state,
                    j.finalized_at.is_some(),
                    j.errors
                        .iter()
                        .map(|e| (e.attempt, e.error.clone()))
                        .collect::<Vec<_>>(),
                    j.sequence_key
                        .as_ref()
                        .map(|k| k.trim_end_matches("-lib").to_string()),
                )
            };
            assert_eq!(shape(&mine), shape(&lib), "{:?}", call.depends_on);
            assert_eq!(mine.state, state, "{:?}", call.depends_on);
            let edges = |deps: porter::store::JobDeps| {
                deps.parents
                    .iter()
                    .map(|p| (p.id, p.after_any))
                    .collect::<Vec<_>>()
            };
            assert_eq!(
                edges(db.store.job_deps(id).await.unwrap()),
                edges(db.store.job_deps(lib.id).await.unwrap()),
            );
            // The edges are written alike too: resolved only for a job that starts cancelled
            // (a waiting job's edge to an ended parent stays open for that parent's retry).
            let resolved = |child: i64| {
                let pool = pool.clone();
                async move {
                    sqlx::query_scalar::<_, bool>(
                        "SELECT resolved FROM porter_job_deps WHERE child_id = $1 ORDER BY parent_id",
                    )
                    .bind(child)
                    .fetch_all(&pool)
                    .await
                    .unwrap()
                }
            };
            let (mine_resolved, lib_resolved) = (resolved(id).await, resolved(lib.id).await);
            assert_eq!(mine_resolved, lib_resolved, "{:?}", call.depends_on);
            assert!(
                mine_resolved
                    .iter()
                    .all(|r| *r == (state == JobState::Cancelled)),
                "{:?}: {mine_resolved:?}",
                call.depends_on
            );
        }
        // The parents' ends reach the function's jobs as the library's: completing `waiting`
        // promotes every job that waited for it alone or after any.
        sqlx::query(
            "UPDATE porter_jobs SET state = 'completed', finalized_at = now() WHERE id = $1",
        )
        .bind(waiting)
        .execute(&pool)
        .await
        .unwrap();
        let pending: i64 =
            sqlx::query_scalar("SELECT count(*) FROM porter_jobs WHERE state = 'pending'")
                .fetch_one(&pool)
                .await
                .unwrap();
        assert_eq!(pending, 2, "only the sequences' second jobs still wait");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[cfg_attr(
        not(porter_pg_tests),
        ignore = "PORTER_TEST_DATABASE_URL not set: Postgres half skipped"
    )]
    async fn porter_enqueue_answers_the_unfinished_holder_of_a_unique_key_as_the_library_does() {
        let db = common::postgres().await;
        let pool = pool(&db).await;
        let client = Client::new(db.store.clone());
        let keyed = |key: &str| Call {
            unique_key: Some(key.into()),
            ..Call::kind("noop")
        };
        // Held by a job the library inserted: its id, inserted = false, nothing new.
        let held = client
            .insert_raw(
                "noop",
                json!({}),
                InsertOpts {
                    unique_key: Some("a".into()),
                    ..Default::default()
                },
            )
            .await
            .unwrap()
            .job
            .id;
        assert_eq!(keyed("a").call(&pool).await.unwrap(), (held, false));
        // Held by a job the function inserted, and then the library answers it too.
        let (mine, inserted) = keyed("b").call(&pool).await.unwrap();
        assert!(inserted);
        assert_eq!(keyed("b").call(&pool).await.unwrap(), (mine, false));
        let lib = client
            .insert_raw(
                "noop",
                json!({}),
                InsertOpts {
                    unique_key: Some("b".into()),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!((lib.job.id, lib.inserted), (mine, false));
        assert_eq!(super::count(&db.store).await, 2);
        // A finished holder frees the key, as in the library.
        client.cancel(held).await.unwrap();
        let (again, inserted) = keyed("a").call(&pool).await.unwrap();
        assert!(
            inserted && again > mine,
            "a new job once the holder finished"
        );
        assert_eq!(super::count(&db.store).await, 3);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[cfg_attr(
        not(porter_pg_tests),
        ignore = "PORTER_TEST_DATABASE_URL not set: Postgres half skipped"
    )]
    async fn concurrent_calls_for_one_unique_key_or_sequence_take_turns() {
        let db = common::postgres().await;
        let pool = pool(&db).await;
        for (what, sql) in [
            (
                "unique key",
                "SELECT id, inserted FROM porter_enqueue('noop', unique_key => 'k')",
            ),
            (
                "sequence",
                "SELECT id, inserted FROM porter_enqueue('noop', sequence_key => 's')",
            ),
        ] {
            // The first call's transaction stays open while the second call runs.
            let mut first = pool.begin().await.unwrap();
            let (id, inserted): (i64, bool) =
                sqlx::query_as(sql).fetch_one(&mut *first).await.unwrap();
            assert!(inserted, "{what}");
            let second = {
                let pool = pool.clone();
                tokio::spawn(
                    async move { sqlx::query_as::<_, (i64, bool)>(sql).fetch_one(&pool).await },
                )
            };
            // It waits for the first (on the key's index entry, or the sequence's lock).
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            assert!(
                !second.is_finished(),
                "{what}: the second call waits for the first"
            );
            first.commit().await.unwrap();
            let (second_id, second_inserted) = second.await.unwrap().unwrap();
            let state = |id: i64| {
                let pool = pool.clone();
                async move {
                    sqlx::query_scalar::<_, String>("SELECT state FROM porter_jobs WHERE id = $1")
                        .bind(id)
                        .fetch_one(&pool)
                        .await
                        .unwrap()
                }
            };
            match what {
                // The holder is the answer; nothing new.
                "unique key" => assert_eq!((second_id, second_inserted), (id, false)),
                // The second of the sequence waits its turn.
                _ => {
                    assert!(second_inserted && second_id > id);
                    assert_eq!(
                        (state(id).await, state(second_id).await),
                        ("available".into(), "pending".into())
                    );
                }
            }
        }
        assert_eq!(jobs_in_table(&pool).await, 3);
    }

    /// A call in a transaction at REPEATABLE READ or SERIALIZABLE whose snapshot predates the
    /// end of its sequence's active job is refused (40001, the caller's to retry), not left
    /// waiting: the sequence's busy check read the snapshot, the new job waited `pending`
    /// behind a job that had ended, and nothing ever started it or the sequence's later jobs
    /// (review of 7 Dec). Under READ COMMITTED the next job is available at once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[cfg_attr(
        not(porter_pg_tests),
        ignore = "PORTER_TEST_DATABASE_URL not set: Postgres half skipped"
    )]
    async fn porter_enqueue_on_a_stale_snapshot_is_refused_not_stranded_in_its_sequence() {
        let db = common::postgres().await;
        let pool = pool(&db).await;
        let call = "SELECT id, inserted FROM porter_enqueue('noop', sequence_key => 'acct')";
        let (mut active, _): (i64, bool) = sqlx::query_as(call).fetch_one(&pool).await.unwrap();
        for level in ["REPEATABLE READ", "SERIALIZABLE"] {
            let claimed = db
                .store
                .job_claim(porter::store::JobClaimParams {
                    queue: "default".into(),
                    kinds: vec!["noop".into()],
                    limit: 1,
                    worker_id: "w".into(),
                })
                .await
                .unwrap();
            assert_eq!(claimed[0].id, active, "{level}");
            let mut tx = pool.begin().await.unwrap();
            sqlx::query(&format!("SET TRANSACTION ISOLATION LEVEL {level}"))
                .execute(&mut *tx)
                .await
                .unwrap();
            let seen: String = sqlx::query_scalar("SELECT state FROM porter_jobs WHERE id = $1")
                .bind(active)
                .fetch_one(&mut *tx)
                .await
                .unwrap();
            assert_eq!(seen, "running");
            db.store
                .job_complete_many(vec![claimed[0].fence()])
                .await
                .unwrap();
            let stale = sqlx::query_as::<_, (i64, bool)>(call)
                .fetch_one(&mut *tx)
                .await;
            let err = stale.expect_err(level).to_string();
            assert!(err.contains("could not serialize access"), "{level}: {err}");
            tx.rollback().await.unwrap();
            let (next, inserted): (i64, bool) =
                sqlx::query_as(call).fetch_one(&pool).await.unwrap();
            assert!(inserted);
            let state: String = sqlx::query_scalar("SELECT state FROM porter_jobs WHERE id = $1")
                .bind(next)
                .fetch_one(&pool)
                .await
                .unwrap();
            assert_eq!(state, "available", "{level}: the sequence goes on");
            active = next;
        }
        // The check's row lock is let go at once: a claim meanwhile takes the sequence's
        // available job (review of 7 Dec: held to the commit, claims passed it over).
        let other = "SELECT id, inserted FROM porter_enqueue('noop', sequence_key => 'other')";
        let (first, _): (i64, bool) = sqlx::query_as(other).fetch_one(&pool).await.unwrap();
        let mut tx = pool.begin().await.unwrap();
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            .execute(&mut *tx)
            .await
            .unwrap();
        let (second, _): (i64, bool) = sqlx::query_as(other).fetch_one(&mut *tx).await.unwrap();
        let claimed = db
            .store
            .job_claim(porter::store::JobClaimParams {
                queue: "default".into(),
                kinds: vec!["noop".into()],
                limit: 10,
                worker_id: "w".into(),
            })
            .await
            .unwrap();
        let ids: Vec<i64> = claimed.iter().map(|j| j.id).collect();
        assert!(
            ids.contains(&first),
            "claimed while the call's transaction is open: {ids:?}"
        );
        tx.commit().await.unwrap();
        let state: String = sqlx::query_scalar("SELECT state FROM porter_jobs WHERE id = $1")
            .bind(second)
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(state, "pending");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[cfg_attr(
        not(porter_pg_tests),
        ignore = "PORTER_TEST_DATABASE_URL not set: Postgres half skipped"
    )]
    async fn porter_enqueue_inserts_into_its_own_schema_whatever_the_callers_search_path() {
        let db = common::postgres().await;
        let (_, options) = super::psql_target(&db);
        let schema = options.trim_start_matches("-c search_path=").to_string();
        // A connection whose search path does not name porter's schema at all.
        let other = sqlx::PgPool::connect(&common::postgres_base_url().unwrap())
            .await
            .unwrap();
        let (id, inserted): (i64, bool) = sqlx::query_as(&format!(
            "SELECT id, inserted FROM {schema}.porter_enqueue('noop')"
        ))
        .fetch_one(&other)
        .await
        .unwrap();
        assert!(inserted);
        let row = db
            .store
            .job_get(id)
            .await
            .unwrap()
            .expect("in the schema porter runs in");
        assert_eq!(
            (row.kind.as_str(), row.state),
            ("noop", JobState::Available)
        );
    }

    /// A caller whose session turns `standard_conforming_strings` off (an old driver's or an
    /// old application's setting) calls porter_enqueue as any other: its body is compiled
    /// under the function's own setting, not the caller's. Before 0050 PL/pgSQL compiled the
    /// body under the caller's, where the name check's `'\'` opens a string that never ends:
    /// every call failed, valid ones too, with the function's text in the error (review of
    /// 5 Dec).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[cfg_attr(
        not(porter_pg_tests),
        ignore = "PORTER_TEST_DATABASE_URL not set: Postgres half skipped"
    )]
    async fn porter_enqueue_runs_in_a_session_without_standard_conforming_strings() {
        let db = common::postgres().await;
        let pool = pool(&db).await;
        let mut conn = pool.acquire().await.unwrap();
        sqlx::query("SET standard_conforming_strings = off")
            .execute(&mut *conn)
            .await
            .unwrap();
        let id = enqueue_noop(&mut conn).await;
        assert_eq!(
            db.store.job_get(id).await.unwrap().map(|j| j.state),
            Some(JobState::Available)
        );
        // The check that quotes a bad name, backslashes and all, says what the library says.
        let kind = "bad\\kind\"\n";
        let library = Call::kind(kind).library().unwrap_err().to_string();
        let function = sqlx::query("SELECT porter_enqueue($1)")
            .bind(kind)
            .execute(&mut *conn)
            .await
            .unwrap_err();
        let sqlx::Error::Database(function) = function else {
            panic!("{function}")
        };
        assert_eq!(function.message(), library);
        assert_eq!(
            jobs_in_table(&pool).await,
            1,
            "the bad name inserted nothing"
        );
    }

    /// A database, role or URL that turns `standard_conforming_strings` off does not stop
    /// porter: its connections turn it on, so its migrations (whose function bodies hold
    /// backslashes in strings) apply and its statements read as written. Before, migration
    /// 0008 failed (`unterminated quoted identifier`) and no store opened (review of 5 Dec).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[cfg_attr(
        not(porter_pg_tests),
        ignore = "PORTER_TEST_DATABASE_URL not set: Postgres half skipped"
    )]
    async fn a_store_opens_over_a_url_that_turns_standard_conforming_strings_off() {
        let base = common::server("PORTER_TEST_DATABASE_URL", "PostgreSQL");
        let schema_url = porter::store::postgres::PgStore::create_test_schema(&base)
            .await
            .unwrap();
        let mut url = url::Url::parse(&schema_url).unwrap();
        let options: String = url
            .query_pairs()
            .find(|(k, _)| k == "options")
            .map(|(_, v)| v.into_owned())
            .unwrap();
        let rest: Vec<(String, String)> = url
            .query_pairs()
            .filter(|(k, _)| k != "options")
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        url.query_pairs_mut()
            .clear()
            .extend_pairs(rest)
            .append_pair(
                "options",
                &format!("{options} -c standard_conforming_strings=off"),
            );
        let store = porter::store::open(url.as_str())
            .await
            .expect("migrated and opened");
        let id = Client::new(store.clone())
            .insert_raw("noop", json!({"path": "C:\\temp"}), InsertOpts::default())
            .await
            .unwrap()
            .job
            .id;
        let job = store.job_get(id).await.unwrap().unwrap();
        assert_eq!(job.args, json!({"path": "C:\\temp"}));
    }

    /// A temporary table of the caller's named like porter's does not take the job: the
    /// function's search path names porter's schema and then `pg_temp`, which PostgreSQL
    /// otherwise searches first (review of 4 Dec: the job went into the caller's temporary
    /// `porter_jobs`, answered as inserted, and no worker ever saw it).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[cfg_attr(
        not(porter_pg_tests),
        ignore = "PORTER_TEST_DATABASE_URL not set: Postgres half skipped"
    )]
    async fn porter_enqueue_inserts_into_porters_table_beside_a_temporary_one_of_its_name() {
        let db = common::postgres().await;
        let pool = pool(&db).await;
        let mut conn = pool.acquire().await.unwrap();
        for table in ["porter_jobs", "porter_job_deps", "porter_queues"] {
            sqlx::query(&format!(
                "CREATE TEMP TABLE {table} (LIKE {table} INCLUDING ALL)"
            ))
            .execute(&mut *conn)
            .await
            .unwrap();
        }
        let id = enqueue_noop(&mut conn).await;
        let temporary: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_temp.porter_jobs")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        assert_eq!(temporary, 0, "nothing in the caller's temporary table");
        let row = db
            .store
            .job_get(id)
            .await
            .unwrap()
            .expect("in porter's table");
        assert_eq!(
            (row.kind.as_str(), row.state),
            ("noop", JobState::Available)
        );
    }
}

/// A plain INSERT through psql whose `errors` is not a JSON array is refused by the database
/// (migration 0033), with an error naming the rule, and inserts nothing. Such a row used to go
/// in, and then every claim of its queue failed ("claiming jobs failed; retrying", for good) and
/// so did `porter jobs list`, until someone found and deleted it. (PostgreSQL only: its times
/// are typed; on SQLite the same rule, and the times' format, are the inserting program's to
/// keep, as the README says, since a trigger checking them cost 17% of the batch insert.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(porter_pg_tests),
    ignore = "PORTER_TEST_DATABASE_URL not set: Postgres half skipped"
)]
async fn a_plain_insert_whose_errors_porter_could_not_read_is_refused() {
    let db = common::postgres().await;
    let Some(psql) = psql() else { return };
    let (base, options) = psql_target(&db);
    for errors in ["'{}'", "'\"nonsense\"'", "'1'"] {
        let sql = format!(
            "INSERT INTO porter_jobs (kind, args, errors) VALUES ('noop', '{{}}', {errors})"
        );
        let out = run(Command::new(&psql)
            .args([
                base.as_str(),
                "-X",
                "-At",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                &sql,
            ])
            .env("PGOPTIONS", &options));
        assert_ne!(out.code, 0, "refused: {sql}\n{out:#?}");
        assert!(
            out.stderr.contains("porter_jobs_errors_array"),
            "the error names the rule: {sql}\n{}",
            out.stderr
        );
    }
    let ok = run_psql(
        &psql,
        &db,
        "INSERT INTO porter_jobs (kind, args) VALUES ('noop', '{}') RETURNING id",
    );
    let id: i64 = ok
        .lines()
        .next()
        .unwrap_or_default()
        .trim()
        .parse()
        .expect("an id");
    assert_eq!(count(&db.store).await, 1, "only the good row went in");
    assert!(job(&db.store, id).await.errors.is_empty());
}

backend_case! {
    /// A job whose `errors` another program wrote as porter cannot read (on SQLite anything;
    /// on PostgreSQL, which refuses a non-array, an array of something else) no longer stops
    /// its queue: the unreadable part reads as one entry saying so, the job is claimed, and a
    /// failure, a lost worker's rescue and a parent's cancel are recorded on it. Before, every
    /// claim of the queue failed, for good, and so did `porter jobs list`; on SQLite a failure
    /// could not be recorded on invalid JSON, a rescue pass failed whole on a history holding a
    /// string, and a parent could not end while a waiting child's history was invalid JSON.
    async fn a_job_whose_errors_porter_cannot_read_does_not_stop_its_queue(db: TestDb) {
        use porter::store::{JobClaimParams, JobRescueParams};
        let broken: &[&str] = match db.store.backend() {
            Backend::Sqlite => &["'{}'", "'nonsense'", "'[1]'", "'[\"x\"]'", "'{\"a\":\"x\"}'", "x'00ff'"],
            Backend::Postgres => &["'[1]'", "'[\"x\"]'", "'[{\"error\": 2}]'"],
        };
        let mut sql = String::new();
        for errors in broken {
            sql.push_str(&format!(
                "INSERT INTO porter_jobs (kind, args, errors) VALUES ('noop', '{{}}', {errors});\n"
            ));
        }
        // A parent and a waiting child whose history is broken too.
        let child_errors = broken[1];
        sql.push_str(&format!(
            "INSERT INTO porter_jobs (kind, queue, args, has_dependents) VALUES ('noop', 'parents', '{{}}', true);
INSERT INTO porter_jobs (kind, queue, args, state, waiting_for, errors) VALUES ('noop', 'parents', '{{}}', 'pending', 1, {child_errors});
INSERT INTO porter_job_deps (child_id, parent_id, after_any, resolved) SELECT max(id), max(id) - 1, false, false FROM porter_jobs;
SELECT count(*) FROM porter_jobs WHERE queue = 'default'"
        ));
        let n = match db.store.backend() {
            Backend::Sqlite => {
                let Some(python) = python() else { return };
                run_python_sql(&python, &db, &sql).last().unwrap()[0][0].as_i64().unwrap()
            }
            Backend::Postgres => {
                let Some(psql) = psql() else { return };
                run_psql(&psql, &db, &sql).lines().last().unwrap().trim().parse().unwrap()
            }
        };
        assert_eq!(n, broken.len() as i64);
        let listed = db.store.job_list(Default::default()).await.expect("the list reads");
        let unreadable = |job: &porter::JobRow| {
            job.errors.iter().any(|e| e.error.contains("could not read"))
        };
        assert_eq!(listed.iter().filter(|j| unreadable(j)).count() as i64, n + 1, "{listed:?}");
        let claim = |worker: &'static str| {
            db.store.job_claim(JobClaimParams {
                queue: "default".into(),
                kinds: vec!["noop".into()],
                limit: 100,
                worker_id: worker.into(),
            })
        };
        let claimed = claim("w").await.expect("the queue claims");
        assert_eq!(claimed.len() as i64, n);
        for job in claimed {
            let failed = fail_boom(&db.store, &job).await;
            assert_eq!(failed.errors.last().unwrap().error, "boom", "{failed:?}");
        }
        // Claimed again by a worker that never registered (lost at once), and rescued.
        let again = claim("gone").await.expect("the queue claims again");
        assert_eq!(again.len() as i64, n);
        let rescued = db
            .store
            .job_rescue(JobRescueParams { ending: Vec::new(),
                lease: Duration::from_secs(15),
                stuck_after: Vec::new(),
                limit: 100,
                by: None,
            })
            .await
            .expect("the rescue pass goes through");
        assert_eq!(rescued.retried as i64, n);
        // The parent ends cancelled, and cancels its child.
        let parent = listed.iter().find(|j| j.queue == "parents" && j.state == JobState::Available).unwrap();
        db.store.job_cancel(parent.id).await.expect("the parent is cancelled");
        let child = listed.iter().find(|j| j.queue == "parents" && j.state == JobState::Pending).unwrap();
        let child = job(&db.store, child.id).await;
        assert_eq!(child.state, JobState::Cancelled, "{child:?}");
        assert!(child.errors.last().unwrap().error.contains("was cancelled"), "{child:?}");
    }
}

/// What becomes of a row another program inserted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// It runs and completes.
    Runs,
    /// A worker discards it without running it, naming what it could not read.
    Discarded,
    /// No claim takes it: it waits, and its queue runs on.
    Waits,
    /// Inserted ended; it reads.
    Ended,
}

backend_case! {
    /// Rows another program inserted with values porter cannot read back (a number past an
    /// f64's range, JSON nested deeper than porter's reader goes, an escape of half a UTF-16
    /// pair, a REAL priority, a max_attempts past 32 bits) do not stop their queue: a worker
    /// discards each without running it, naming what it could not read, and runs the other jobs
    /// beside them; listings read them. Text stored as a BLOB reads as its text, and runs. Before,
    /// every claim of the queue failed, for good, and so did `porter jobs list`; on PostgreSQL
    /// the claim had committed first, so the good jobs it took stayed `running` under a live
    /// worker and never ran. So do times SQLite holds in another format than porter's, which
    /// failed every claim of the queue and every listing until 2 Dec. An attempt count porter
    /// could not count on from (not a whole number below a billion) is never claimed: the job
    /// waits, listed, and the queue runs on (on SQLite, until 2 Dec, it failed every claim of the
    /// queue; a claim's `attempt + 1` and the fences need the count).
    async fn a_job_porter_cannot_read_is_discarded_and_its_queue_runs(db: TestDb) {
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        // Five hours ahead, written with an offset: its text sorts before now's.
        let ahead = (chrono::Utc::now() - chrono::Duration::hours(1)).format("%Y-%m-%dT%H:%M:%S%.3f-06:00");
        // (the row's columns and values, what becomes of it)
        let rows: Vec<(String, Outcome)> = match db.store.backend() {
            Backend::Sqlite => vec![
                ("(kind, args, attempt) VALUES ('noop', '{}', 1.5)".into(), Outcome::Waits),
                ("(kind, args, attempt) VALUES ('noop', '{}', 1099511627776)".into(), Outcome::Waits),
                ("(kind, args, attempt) VALUES ('noop', '{}', 'three')".into(), Outcome::Waits),
                ("(kind, args, scheduled_at) VALUES ('noop', '{}', datetime('now'))".into(), Outcome::Discarded),
                ("(kind, args, created_at) VALUES ('noop', '{}', 'yesterday')".into(), Outcome::Discarded),
                // Due, on a queue no worker serves: it waits, and the queue's lag still reads.
                ("(kind, queue, args, scheduled_at) VALUES ('noop', 'unserved', '{}', datetime('now'))".into(), Outcome::Waits),
                ("(kind, queue, args, scheduled_at) VALUES ('noop', 'unserved', '{}', CAST('2026-01-01T00:00:00.000Z' AS BLOB))".into(), Outcome::Waits),
                ("(kind, args, attempt) VALUES ('noop', '{}', -3000000000)".into(), Outcome::Waits),
                ("(kind, args, state, finalized_at) VALUES ('noop', '{}', 'completed', 'yesterday')".into(), Outcome::Ended),
                // A queue or kind bound as a BLOB (Python's `bytes`): no claim matches it, and the
                // counts, queues and unserved jobs read it as its text.
                ("(kind, queue, args) VALUES ('noop', x'626c6f62', '{}')".into(), Outcome::Waits),
                ("(kind, queue, args) VALUES (x'6e6f6f70', 'unserved', '{}')".into(), Outcome::Waits),
                ("(kind, args, attempted_by) VALUES ('noop', '{}', 7)".into(), Outcome::Runs),
                ("(kind, args) VALUES ('noop', '{\"n\": 1e400}')".into(), Outcome::Discarded),
                (format!("(kind, args) VALUES ('noop', '{deep}')"), Outcome::Discarded),
                ("(kind, args) VALUES ('noop', '{\"p\": \"caf\\udce9\"}')".into(), Outcome::Discarded),
                ("(kind, args, metadata) VALUES ('noop', '{}', '{\"x\": 1e400}')".into(), Outcome::Discarded),
                ("(kind, args, priority) VALUES ('noop', '{}', 1.5)".into(), Outcome::Discarded),
                ("(kind, args, max_attempts) VALUES ('noop', '{}', 2.5)".into(), Outcome::Discarded),
                ("(kind, args, max_attempts) VALUES ('noop', '{}', 1000000000000)".into(), Outcome::Discarded),
                ("(kind, args) VALUES ('noop', x'7b7d')".into(), Outcome::Runs),
                // Args or metadata that are not UTF-8 (`{"s":"a\xffb"}`), as text or as a BLOB:
                // discarded unrun, naming it (until 6 Dec read with U+FFFD in place of the byte,
                // and run on altered args; review of 6 Dec).
                ("(kind, args) VALUES ('noop', CAST(x'7b2273223a2261ff62227d' AS TEXT))".into(), Outcome::Discarded),
                ("(kind, args) VALUES ('noop', x'7b2273223a2261ff62227d')".into(), Outcome::Discarded),
                ("(kind, args, metadata) VALUES ('noop', '{}', CAST(x'7b2273223a2261ff62227d' AS TEXT))".into(), Outcome::Discarded),
                ("(kind, args, unique_key) VALUES ('noop', '{}', x'6b6579')".into(), Outcome::Runs),
                // Times in RFC 3339's other spellings: due by their text, and discarded unrun
                // (until 3 Dec porter read them, and ran a job five hours early).
                (format!("(kind, args, scheduled_at) VALUES ('noop', '{{}}', '{ahead}')"), Outcome::Discarded),
                ("(kind, args, scheduled_at) VALUES ('noop', '{}', '2026-01-01T00:00:00Z')".into(), Outcome::Discarded),
                // porter's shape, no time: the queue's lag still reads (until 3 Dec it failed).
                ("(kind, queue, args, scheduled_at) VALUES ('noop', 'unserved', '{}', '2026-02-30T00:00:00.000Z')".into(), Outcome::Waits),
                // Not a boolean: its completion is written with the others' (until 3 Dec the
                // whole batch failed, and its jobs ran again).
                ("(kind, args, has_dependents) VALUES ('noop', '{}', 'yes')".into(), Outcome::Runs),
                ("(kind, args) VALUES ('noop', '{\"good\": 1}')".into(), Outcome::Runs),
            ],
            Backend::Postgres => vec![
                ("(kind, args, attempt) VALUES ('noop', '{}', 2000000000)".into(), Outcome::Waits),
                ("(kind, args) VALUES ('noop', '{\"n\": 1e400}')".into(), Outcome::Discarded),
                (format!("(kind, args) VALUES ('noop', '{deep}')"), Outcome::Discarded),
                ("(kind, args, metadata) VALUES ('noop', '{}', '{\"x\": 1e400}')".into(), Outcome::Discarded),
                ("(kind, args) VALUES ('noop', '{\"good\": 1}')".into(), Outcome::Runs),
            ],
        };
        let mut sql: String = rows
            .iter()
            .map(|(values, _)| format!("INSERT INTO porter_jobs {values};\n"))
            .collect();
        sql.push_str("SELECT count(*) FROM porter_jobs");
        let workdir = tempfile::tempdir().unwrap();
        let _worker = start_worker(&db, workdir.path()).await;
        match db.store.backend() {
            Backend::Sqlite => {
                let Some(python) = python() else { return };
                run_python_sql(&python, &db, &sql);
            }
            Backend::Postgres => {
                let Some(psql) = psql() else { return };
                // A plain INSERT does not wake the worker; its NOTIFY does.
                sql.push_str(";\nSELECT pg_notify('porter_insert', 'default')");
                run_psql(&psql, &db, &sql);
            }
        }
        let listed = db.store.job_list(Default::default()).await.expect("the list reads");
        assert_eq!(listed.len(), rows.len(), "{listed:?}");
        db.store.queue_lag().await.expect("the queues' lag reads");
        db.store.job_counts().await.expect("the counts read");
        db.store.queue_list().await.expect("the queues read");
        db.store.job_unserved().await.expect("the unserved jobs read");
        let hour_ago = chrono::Utc::now() - chrono::Duration::hours(1);
        db.store.job_throughput(hour_ago).await.expect("the throughput chart reads");
        let waiting = rows.iter().filter(|(_, o)| *o == Outcome::Waits).count();
        eventually("the worker ends every job it can count the attempts of", || async {
            let jobs = db.store.job_list(Default::default()).await.unwrap();
            jobs.iter().filter(|j| j.state.is_final()).count() == jobs.len() - waiting
        })
        .await;
        let mut jobs = db.store.job_list(Default::default()).await.unwrap();
        jobs.sort_by_key(|j| j.id);
        for (job, (values, outcome)) in jobs.iter().zip(&rows) {
            match outcome {
                Outcome::Runs => {
                    assert_eq!(job.state, JobState::Completed, "{values}: {job:?}");
                    assert_eq!(job.unreadable, None, "{values}: {job:?}");
                }
                Outcome::Discarded => {
                    assert_eq!(job.state, JobState::Discarded, "{values}: {job:?}");
                    assert_eq!(job.attempt, 1, "{values}: {job:?}");
                    let error = &job.errors.last().unwrap().error;
                    assert!(error.contains("porter could not read"), "{values}: {job:?}");
                    assert!(job.unreadable.is_some(), "{values}: {job:?}");
                }
                Outcome::Ended => assert!(job.state.is_final(), "{values}: {job:?}"),
                // Passed over by every claim (the jobs after it ran), and listed.
                Outcome::Waits => {
                    assert_eq!(job.state, JobState::Available, "{values}: {job:?}");
                    assert_eq!(job.attempted_at, None, "{values}: {job:?}");
                }
            }
        }
        let with_key = jobs.iter().find(|j| j.unique_key.is_some()).map(|j| j.unique_key.clone());
        if db.store.backend() == Backend::Sqlite {
            assert_eq!(with_key, Some(Some("key".into())));
            // The job whose kind is a BLOB as a parent: its child's page reads it.
            let at = rows.iter().position(|(v, _)| v.contains("x'6e6f6f70'")).unwrap();
            let client = porter::Client::new(db.store.clone());
            let opts = porter::InsertOpts { queue: Some("later".into()), depends_on: vec![jobs[at].id], ..Default::default() };
            let child = client.insert_raw("noop", serde_json::json!({}), opts).await.unwrap();
            let detail = client.get_detail(child.job.id).await.expect("the child's page reads");
            assert_eq!(detail.unwrap().parents[0].kind, "noop");
            // A bulk cancel of what waits (the BLOB queue's job among them) reads the rows it
            // changed.
            let filter = JobFilter { states: vec![JobState::Available], ..Default::default() };
            let out = db.store.job_bulk(BulkAction::Cancel, filter, i64::MAX).await.expect("the bulk cancel");
            assert!(out.changed >= waiting as u64, "{out:?}");
        }
    }
}

backend_case! {
    /// Metadata another program wrote as a JSON value that is no object (a number, a string,
    /// `null`, an array) is retried, and fails, as any job's: nothing in it is a cancel request.
    /// On PostgreSQL (review of 6 Dec), a retry removed the request with `metadata - 'key'`,
    /// which fails on a scalar: `porter jobs retry` of such a job failed, and so did a bulk retry
    /// (the dashboard's "Retry all") of every job listed beside it; and `metadata ? 'key'`, true
    /// for an array holding that string or for that string itself, took either for a request: a
    /// failure of such a job cancelled it, where SQLite (and porter's own reading of the row)
    /// found no request and retried it.
    async fn metadata_that_is_no_object_is_retried_and_fails_as_any_jobs(db: TestDb) {
        use porter::store::JobClaimParams;
        let values = ["5", "\"x\"", "null", "true", "[\"cancel_requested_at\"]", "\"cancel_requested_at\""];
        let mut sql = String::new();
        for (queue, value) in [("alone", values[0])].into_iter().chain(values.iter().map(|v| ("bulk", *v))) {
            sql.push_str(&format!(
                "INSERT INTO porter_jobs (kind, queue, args, metadata, state, attempt, max_attempts, finalized_at) \
                 VALUES ('noop', '{queue}', '{{}}', '{value}', 'discarded', 1, 5, '2026-01-01T00:00:00.000Z');\n"
            ));
        }
        // An ordinary discarded job listed beside them.
        sql.push_str(
            "INSERT INTO porter_jobs (kind, queue, args, state, attempt, max_attempts, finalized_at) \
             VALUES ('noop', 'bulk', '{}', 'discarded', 1, 5, '2026-01-01T00:00:00.000Z');",
        );
        common::raw_exec(&db, &sql).await;
        let jobs = db.store.job_list(Default::default()).await.unwrap();
        assert_eq!(jobs.len(), values.len() + 2);
        let alone = jobs.iter().find(|j| j.queue == "alone").unwrap();
        let retried = db.store.job_retry(alone.id).await.expect("a retry of one");
        assert_eq!(retried.state, JobState::Available, "{retried:?}");
        let filter = JobFilter { queue: Some("bulk".into()), ..Default::default() };
        let out = db.store.job_bulk(BulkAction::Retry, filter, i64::MAX).await.expect("a bulk retry");
        assert_eq!(out.changed, values.len() as u64 + 1, "{out:?}");
        // Each kept its metadata, and fails into a retry: none holds a cancel request.
        for queue in ["alone", "bulk"] {
            let claimed = db
                .store
                .job_claim(JobClaimParams {
                    queue: queue.into(),
                    kinds: vec!["noop".into()],
                    limit: 100,
                    worker_id: "w".into(),
                })
                .await
                .expect("the queue claims");
            for job in claimed {
                let before = jobs.iter().find(|j| j.id == job.id).unwrap();
                assert_eq!(job.metadata, before.metadata, "{job:?}");
                assert!(!job.cancel_requested(), "{job:?}");
                let failed = fail_boom(&db.store, &job).await;
                assert_eq!(failed.state, JobState::Retryable, "{failed:?}");
            }
        }
        let left = db.store.job_list(Default::default()).await.unwrap();
        assert!(left.iter().all(|j| j.state == JobState::Retryable), "{left:?}");
        // A request key whose value is JSON `null` is no request either (SQLite's json_extract
        // reads it as SQL NULL; PostgreSQL's `->` as a JSON null, which is not NULL: a failure
        // cancelled the job there until the review of 6 Dec found it again).
        common::raw_exec(
            &db,
            "INSERT INTO porter_jobs (kind, queue, args, metadata) VALUES ('noop', 'nulled', '{}', '{\"cancel_requested_at\": null}')",
        )
        .await;
        let claimed = db
            .store
            .job_claim(JobClaimParams { queue: "nulled".into(), kinds: vec!["noop".into()], limit: 1, worker_id: "w".into() })
            .await
            .unwrap();
        assert!(!claimed[0].cancel_requested(), "{:?}", claimed[0]);
        let failed = fail_boom(&db.store, &claimed[0]).await;
        assert_eq!(failed.state, JobState::Retryable, "{failed:?}");
    }

    /// A concurrency key longer than porter's 255 bytes, written by a plain INSERT, does not stop
    /// its queue. On PostgreSQL (review of 6 Dec) the key of a running job goes into an index
    /// (`porter_jobs_running_key`) whose entries hold at most about 2.7 kB: a row with an
    /// incompressible key of 6 kB went in `available`, and then every claim that reached it failed
    /// as a whole ("index row requires ... bytes"), for good, and no job of its queue ran. The
    /// database refuses such a key now (`porter_jobs_concurrency_key_bytes`, migration 0054), as
    /// the library and `porter_enqueue` do; SQLite, which has no such bound, runs the job.
    async fn a_concurrency_key_too_long_for_an_index_does_not_stop_its_queue(db: TestDb) {
        use porter::store::JobClaimParams;
        // Hex of a simple generator: compresses too little to fit the index's entries.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let key: String = (0..6000)
            .map(|_| {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                char::from_digit(((x >> 60) & 0xf) as u32, 16).unwrap()
            })
            .collect();
        let long = common::raw_try(
            &db,
            &format!("INSERT INTO porter_jobs (kind, args, concurrency_key) VALUES ('noop', '{{}}', '{key}')"),
        )
        .await;
        common::raw_exec(&db, "INSERT INTO porter_jobs (kind, args) VALUES ('noop', '{}')").await;
        let ran = match db.store.backend() {
            Backend::Sqlite => {
                long.expect("SQLite takes the row");
                2
            }
            Backend::Postgres => {
                let refused = long.expect_err("PostgreSQL refuses the row");
                assert!(refused.contains("porter_jobs_concurrency_key_bytes"), "{refused}");
                1
            }
        };
        let claimed = db
            .store
            .job_claim(JobClaimParams {
                queue: "default".into(),
                kinds: vec!["noop".into()],
                limit: 100,
                worker_id: "w".into(),
            })
            .await
            .expect("the queue claims");
        assert_eq!(claimed.len(), ran, "{claimed:?}");
    }
}

/// Metadata that an SQLite older than 3.45 (Debian 12's Python `sqlite3`, say) took as a BLOB
/// holding JSON text (Python's `bytes`): porter's SQLite reads a BLOB as binary JSON when its
/// first bytes look like a header, so such a job could not be retried ("malformed JSON"), a
/// bulk retry that matched it failed whole, and a cancel of it while it ran replaced its
/// metadata with the request alone (review of 7 Dec). Read as the text it holds, as the
/// listings read it. (PostgreSQL's jsonb cannot hold it. Porter's own SQLite refuses it by the
/// column's CHECK: the older writer is stood in for by `ignore_check_constraints`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_an_older_sqlite_took_as_a_blob_reads_as_its_text() {
    let db = common::sqlite().await;
    let path = db.sqlite_path().unwrap();
    let now = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')";
    let mut ids = Vec::new();
    {
        let c = rusqlite::Connection::open(&path).unwrap();
        c.busy_timeout(Duration::from_secs(10)).unwrap();
        c.execute_batch("PRAGMA ignore_check_constraints = ON")
            .unwrap();
        let blob: &[u8] = br#"{"a": 1}"#;
        for (columns, values) in [
            ("state, finalized_at", format!("'discarded', {now}")),
            ("state, finalized_at", format!("'discarded', {now}")),
            (
                "state, attempt, attempted_by, attempted_at",
                format!("'running', 1, 'w1', {now}"),
            ),
        ] {
            c.execute(
                &format!("INSERT INTO porter_jobs (kind, args, metadata, {columns}) VALUES ('noop', '{{}}', ?1, {values})"),
                [blob],
            )
            .unwrap();
            ids.push(c.last_insert_rowid());
        }
        c.execute(
            &format!("INSERT INTO porter_jobs (kind, args, state, finalized_at) VALUES ('noop', '{{}}', 'discarded', {now})"),
            [],
        )
        .unwrap();
    }
    let s = &db.store;
    let retried = s.job_retry(ids[0]).await.expect("the retry");
    assert_eq!(retried.state, JobState::Available);
    assert_eq!(retried.metadata, serde_json::json!({"a": 1}));
    let filter = JobFilter {
        states: vec![JobState::Discarded],
        ..Default::default()
    };
    let out = s
        .job_bulk(BulkAction::Retry, filter, i64::MAX)
        .await
        .expect("the bulk retry");
    assert_eq!((out.matched, out.changed), (2, 2), "{out:?}");
    let cancelled = s.job_cancel(ids[2]).await.expect("the cancel");
    assert_eq!(cancelled.metadata["a"], 1, "{:?}", cancelled.metadata);
    assert!(
        cancelled.metadata.get("cancel_requested_at").is_some(),
        "{:?}",
        cancelled.metadata
    );
    // Its worker's failure then reads the request: cancelled, not retried.
    let ended = s
        .job_fail(porter::store::JobFailParams {
            fence: cancelled.fence(),
            error: "stopped".into(),
            trace: None,
            retry_in: Duration::ZERO,
            discard: false,
        })
        .await
        .expect("the failure");
    assert_eq!(ended.state, JobState::Cancelled);
}
