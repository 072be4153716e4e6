//! The fault suite's harness: real `porter` processes (started, SIGKILLed, SIGTERMed,
//! restarted), the suite's sizes (small in `scripts/test`, large in `scripts/chaos`), a ledger
//! of what the job rows say after the fact, and the one summary line per scenario that
//! `scripts/chaos` collects.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use porter::store::{JobListParams, Store, MAX_LIST_LIMIT};
use porter::{JobRow, JobState};

/// The `porter` binary under test: PORTER_CHAOS_BIN (a release build, say), else the one
/// cargo built beside these tests.
pub fn porter_bin() -> PathBuf {
    match std::env::var_os("PORTER_CHAOS_BIN").filter(|v| !v.is_empty()) {
        Some(bin) => PathBuf::from(bin),
        None => PathBuf::from(env!("CARGO_BIN_EXE_porter")),
    }
}

/// A size knob: the environment variable when set, else the reduced default of `scripts/test`.
pub fn knob(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
        _ => default,
    }
}

/// How big a soak is. Defaults keep the whole suite to a couple of minutes on 2 cores;
/// `scripts/chaos` raises them.
#[derive(Debug, Clone, Copy)]
pub struct Size {
    /// Jobs inserted (PORTER_CHAOS_JOBS).
    pub jobs: u64,
    /// Faults injected: kills, signals (PORTER_CHAOS_KILLS).
    pub kills: u64,
    /// Worker processes at once (PORTER_CHAOS_WORKERS).
    pub workers: u64,
    /// Concurrency of each worker's queue (PORTER_CHAOS_CONCURRENCY).
    pub concurrency: u64,
    /// How long each `sleep` job sleeps, in ms (PORTER_CHAOS_JOB_MS).
    pub job_ms: u64,
    /// The workers' lease in seconds (PORTER_CHAOS_LEASE_SECS).
    pub lease_secs: u64,
}

impl Size {
    /// The size the environment asks for.
    pub fn from_env() -> Size {
        Size {
            jobs: knob("PORTER_CHAOS_JOBS", 1200),
            kills: knob("PORTER_CHAOS_KILLS", 4).max(1),
            workers: knob("PORTER_CHAOS_WORKERS", 3).max(2),
            concurrency: knob("PORTER_CHAOS_CONCURRENCY", 8).max(1),
            job_ms: knob("PORTER_CHAOS_JOB_MS", 10),
            lease_secs: knob("PORTER_CHAOS_LEASE_SECS", 2).max(1),
        }
    }

    /// The lease as a duration.
    pub fn lease(&self) -> Duration {
        Duration::from_secs(self.lease_secs)
    }
}

/// One line per scenario, the shape `scripts/chaos` collects:
/// `CHAOS scenario=kill_soak backend=sqlite jobs=600 faults=4 lost=0 stuck=0 duplicates=3`.
pub fn report(
    scenario: &str,
    backend: &str,
    jobs: u64,
    faults: u64,
    lost: u64,
    stuck: u64,
    duplicates: u64,
) {
    println!("CHAOS scenario={scenario} backend={backend} jobs={jobs} faults={faults} lost={lost} stuck={stuck} duplicates={duplicates}");
}

/// The scratch directory of one scenario: process logs, and the working directory of every
/// process (so nothing lands in the repository). PORTER_CHAOS_KEEP=1 keeps it (and says where).
pub fn scratch() -> tempfile::TempDir {
    let mut dir = tempfile::Builder::new()
        .prefix("porter-chaos.")
        .tempdir()
        .expect("scratch dir");
    if knob("PORTER_CHAOS_KEEP", 0) == 1 {
        dir.disable_cleanup(true);
        eprintln!("note: keeping the process logs in {}", dir.path().display());
    }
    dir
}

/// How a `porter` process is started: its database and extra environment.
#[derive(Debug, Clone)]
pub struct Launcher {
    /// DATABASE_URL for every process.
    pub url: String,
    /// Where logs go and where processes run.
    pub dir: PathBuf,
    /// Extra environment (RUST_LOG, ...).
    pub env: Vec<(String, String)>,
    started: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Launcher {
    /// Processes on `url`, logging into `dir`, at RUST_LOG=info.
    pub fn new(url: &str, dir: &Path) -> Launcher {
        Launcher {
            url: url.to_string(),
            dir: dir.to_path_buf(),
            env: vec![("RUST_LOG".into(), "info".into())],
            started: Default::default(),
        }
    }

    /// Sets (or replaces) one environment variable for the processes started from now on.
    pub fn with_env(mut self, key: &str, value: &str) -> Launcher {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(porter_bin());
        cmd.args(args)
            .current_dir(&self.dir)
            .env("DATABASE_URL", &self.url)
            .env("OBJECT_STORE_URL", "memory://")
            .env_remove("PORTER_ADMIN_TOKEN")
            .env_remove("PORTER_LISTEN")
            .stdin(Stdio::null());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    /// Starts a long-running `porter` process (`worker ...`, `web ...`), its stdout and stderr
    /// going to files named after it.
    pub fn spawn(&self, name: &str, args: &[&str]) -> Proc {
        let n = self
            .started
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let log = self.dir.join(format!("{n:04}-{name}.log"));
        let file = std::fs::File::create(&log).expect("create the process log");
        let child = self
            .command(args)
            .stdout(Stdio::from(file.try_clone().expect("clone the log file")))
            .stderr(Stdio::from(file))
            .spawn()
            .unwrap_or_else(|e| panic!("start {} {args:?}: {e}", porter_bin().display()));
        Proc {
            name: format!("{name}#{n}"),
            child,
            log,
            exit: None,
        }
    }

    /// `porter worker` with these extra flags.
    pub fn worker(&self, name: &str, flags: &[&str]) -> Proc {
        let mut args = vec!["worker"];
        args.extend_from_slice(flags);
        self.spawn(name, &args)
    }

    /// `n` workers named `w0`, `w1`, ... with these flags, each started and ready.
    pub async fn ready_workers(&self, n: u64, flags: &[&str]) -> Vec<Proc> {
        let mut workers: Vec<Proc> = (0..n)
            .map(|i| self.worker(&format!("w{i}"), flags))
            .collect();
        for w in &mut workers {
            w.ready().await;
        }
        workers
    }

    /// Runs a one-shot `porter` command to the end (bounded), with its output.
    pub async fn run(&self, args: &[&str]) -> Cli {
        let mut cmd = tokio::process::Command::from(self.command(args));
        cmd.stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let out = tokio::time::timeout(Duration::from_secs(120), cmd.output())
            .await
            .unwrap_or_else(|_| panic!("porter {args:?} did not finish within 120 s"))
            .unwrap_or_else(|e| panic!("run porter {args:?}: {e}"));
        Cli {
            args: args.iter().map(|a| a.to_string()).collect(),
            status: out.status,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// A finished one-shot command.
#[derive(Debug, Clone)]
pub struct Cli {
    /// Its arguments.
    pub args: Vec<String>,
    /// How it exited.
    pub status: ExitStatus,
    /// What it printed.
    pub stdout: String,
    /// What it logged.
    pub stderr: String,
}

impl Cli {
    /// The exit code (-1 for a signal).
    pub fn code(&self) -> i32 {
        self.status.code().unwrap_or(-1)
    }

    /// Panics unless it exited 0.
    pub fn ok(&self) -> &Self {
        assert!(
            self.status.success(),
            "porter {:?} failed ({}):\n{}\n{}",
            self.args,
            self.status,
            self.stdout,
            self.stderr
        );
        self
    }

    /// Panics unless it failed the documented way: exit 1 (runtime) or 2 (usage), and for 1,
    /// exactly one `error: ` line on stderr. Returns that message.
    pub fn refused(&self) -> String {
        let code = self.code();
        assert!(
            code == 1 || code == 2,
            "porter {:?}: expected exit 1 or 2, got {}:\n{}\n{}",
            self.args,
            self.status,
            self.stdout,
            self.stderr
        );
        let errors: Vec<&str> = self
            .stderr
            .lines()
            .filter(|l| l.starts_with("error"))
            .collect();
        assert!(
            !errors.is_empty(),
            "porter {:?} exited {code} without an error line:\n{}",
            self.args,
            self.stderr
        );
        if code == 1 {
            assert_eq!(
                errors.len(),
                1,
                "porter {:?}: one error line, got:\n{}",
                self.args,
                self.stderr
            );
        }
        assert!(
            !self.stderr.contains("panicked"),
            "porter {:?} panicked:\n{}",
            self.args,
            self.stderr
        );
        errors.join("\n")
    }
}

/// A long-running `porter` process. Dropping it SIGKILLs whatever is still running, so a
/// failed test leaves no process behind.
pub struct Proc {
    /// Name for messages (`worker#3`).
    pub name: String,
    child: Child,
    /// Its stdout and stderr, interleaved.
    pub log: PathBuf,
    exit: Option<ExitStatus>,
}

impl Proc {
    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything it printed so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether it printed a line containing `needle`.
    pub fn logged(&self, needle: &str) -> bool {
        self.output().contains(needle)
    }

    /// Whether it is still running (reaps it when it is not).
    pub fn alive(&mut self) -> bool {
        if self.exit.is_some() {
            return false;
        }
        match self.child.try_wait().expect("try_wait") {
            Some(status) => {
                self.exit = Some(status);
                false
            }
            None => true,
        }
    }

    /// Waits (bounded) until it logged `needle`; panics with its log if it exits first.
    pub async fn wait_for_log(&mut self, needle: &str, within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if self.logged(needle) {
                return;
            }
            assert!(
                self.alive(),
                "{} exited ({:?}) before logging {needle:?}:\n{}",
                self.name,
                self.exit,
                self.output()
            );
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} did not log {needle:?} within {within:?}:\n{}",
                self.name,
                self.output()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until `worker ready`.
    pub async fn ready(&mut self) {
        self.wait_for_log("worker ready", Duration::from_secs(60))
            .await;
    }

    /// Sends a signal by name (`TERM`, `KILL`, `INT`).
    pub fn signal(&mut self, sig: &str) {
        if !self.alive() {
            return;
        }
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok || !self.alive(), "kill -{sig} {}", self.pid());
    }

    /// SIGKILL, and reap it.
    pub fn kill(&mut self) -> ExitStatus {
        if self.alive() {
            let _ = self.child.kill();
        }
        self.reap()
    }

    fn reap(&mut self) -> ExitStatus {
        if let Some(status) = self.exit {
            return status;
        }
        let status = self.child.wait().expect("wait");
        self.exit = Some(status);
        status
    }

    /// Waits (bounded) for it to exit by itself; panics with its log otherwise.
    pub async fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let deadline = tokio::time::Instant::now() + within;
        while self.alive() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} did not exit within {within:?}:\n{}",
                self.name,
                self.output()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.reap()
    }

    /// SIGTERM, then waits (bounded) for the exit.
    pub async fn term(&mut self, within: Duration) -> ExitStatus {
        self.signal("TERM");
        self.wait_exit(within).await
    }

    /// Panics if its log shows a panic or a database lock error reaching it.
    pub fn assert_clean_log(&self) {
        let out = self.output();
        assert!(!out.contains("panicked"), "{} panicked:\n{out}", self.name);
        for line in out.lines() {
            let l = line.to_ascii_lowercase();
            assert!(
                !(l.contains("database is locked")
                    || l.contains("database is busy")
                    || l.contains("sqlite_busy")),
                "{}: a lock error reached the log: {line}",
                self.name
            );
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.exit.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Every job of some kinds, read in pages (newest first).
pub async fn all_jobs(store: &Store, kind: Option<&str>) -> Vec<JobRow> {
    let mut out = Vec::new();
    let mut before_id = None;
    loop {
        let page = store
            .job_list(JobListParams {
                kind: kind.map(str::to_string),
                before_id,
                limit: Some(MAX_LIST_LIMIT),
                ..Default::default()
            })
            .await
            .expect("list jobs");
        let full = page.len() == MAX_LIST_LIMIT as usize;
        before_id = page.last().map(|j| j.id);
        out.extend(page);
        if !full {
            return out;
        }
    }
}

/// What the job rows say about a set of jobs after the fact.
#[derive(Debug, Default, Clone)]
pub struct Ledger {
    /// Jobs expected.
    pub expected: u64,
    /// Rows by state.
    pub states: BTreeMap<JobState, u64>,
    /// Expected jobs with no row, or finished other than completed (never to run again).
    pub lost: u64,
    /// Expected jobs not finished (available, scheduled, running, retryable).
    pub stuck: u64,
    /// Runs beyond the first: the sum of (attempt - 1), less the attempts put back before
    /// their handler ran (entries marked `unstarted`: a job claimed ahead of a free slot and
    /// given back, or a late claim's job the reconcile put back).
    pub duplicates: u64,
    /// Error entries ("worker lost", "worker shut down", ...), by message.
    pub errors: BTreeMap<String, u64>,
    /// Jobs whose history does not add up: completed with attempt - 1 != errors recorded.
    pub inconsistent: Vec<i64>,
}

impl Ledger {
    /// Reads the rows of `ids` (all of `kind`).
    pub async fn read(store: &Store, kind: &str, ids: &BTreeSet<i64>) -> Ledger {
        let rows = all_jobs(store, Some(kind)).await;
        let mut l = Ledger {
            expected: ids.len() as u64,
            ..Default::default()
        };
        let mut seen = 0u64;
        for row in rows.iter().filter(|r| ids.contains(&r.id)) {
            seen += 1;
            *l.states.entry(row.state).or_default() += 1;
            match row.state {
                JobState::Completed => {}
                JobState::Cancelled | JobState::Discarded => l.lost += 1,
                _ => l.stuck += 1,
            }
            let unstarted = row.errors.iter().filter(|e| e.unstarted).count() as u64;
            l.duplicates += (row.attempt.saturating_sub(1) as u64).saturating_sub(unstarted);
            for e in &row.errors {
                *l.errors.entry(e.error.clone()).or_default() += 1;
            }
            if row.state == JobState::Completed && row.attempt as usize != row.errors.len() + 1 {
                l.inconsistent.push(row.id);
            }
        }
        l.lost += l.expected - seen;
        l
    }

    /// Panics unless every job completed, each re-run is explained by an error entry, and the
    /// re-runs stay within `max_duplicates`.
    pub fn assert_all_completed(&self, what: &str, max_duplicates: u64) {
        assert_eq!(
            (self.lost, self.stuck),
            (0, 0),
            "{what}: lost/stuck jobs: {self:?}"
        );
        assert_eq!(
            self.states.get(&JobState::Completed).copied().unwrap_or(0),
            self.expected,
            "{what}: {self:?}"
        );
        assert!(
            self.inconsistent.is_empty(),
            "{what}: runs without an error entry explaining them: {self:?}"
        );
        assert!(
            self.duplicates <= max_duplicates,
            "{what}: {} duplicate runs, bound {max_duplicates}: {self:?}",
            self.duplicates
        );
    }
}

/// Inserts `n` `sleep` jobs of `ms` each, in batches, through the store; returns their ids.
pub async fn insert_sleeps(store: &Store, n: u64, ms: u64) -> BTreeSet<i64> {
    insert_sleeps_with(store, n, ms, None).await
}

/// [`insert_sleeps`] with `max_attempts` (the default when `None`).
pub async fn insert_sleeps_with(
    store: &Store,
    n: u64,
    ms: u64,
    max_attempts: Option<i32>,
) -> BTreeSet<i64> {
    let mut ids = BTreeSet::new();
    let mut left = n;
    while left > 0 {
        let batch = left.min(1000);
        let params = (0..batch)
            .map(|_| {
                porter::store::JobInsertParams::new(
                    "sleep",
                    serde_json::json!({ "ms": ms }),
                    porter::InsertOpts {
                        max_attempts,
                        ..Default::default()
                    },
                )
                .unwrap()
            })
            .collect();
        for r in store
            .job_insert_many(params)
            .await
            .expect("insert sleep jobs")
        {
            ids.insert(r.job.id);
        }
        left -= batch;
    }
    ids
}

/// Job counts in total, with zeroes.
pub async fn totals(store: &Store) -> BTreeMap<JobState, i64> {
    store.job_counts().await.expect("job counts").total
}

/// Waits (bounded by `within`) until `done` holds for the totals; panics with them otherwise.
pub async fn wait_totals(
    store: &Store,
    what: &str,
    within: Duration,
    done: impl Fn(&BTreeMap<JobState, i64>) -> bool,
) {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let t = totals(store).await;
        if done(&t) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "gave up waiting for {what} after {within:?}: {t:?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// `PRAGMA integrity_check` on a SQLite file, from a connection of its own.
pub fn sqlite_integrity(path: &Path) -> String {
    let conn =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("open for integrity_check");
    conn.busy_timeout(Duration::from_secs(30)).unwrap();
    let rows: Vec<String> = conn
        .prepare("PRAGMA integrity_check")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    rows.join("; ")
}

/// One execution, from its process's log.
#[derive(Debug, Clone)]
pub struct Execution {
    pub job_id: i64,
    pub attempt: i64,
    pub key: String,
    /// Claim time on the database clock (µs).
    pub claimed_us: i64,
    /// Start and end on the process's clock (µs); the end is the kill time when cut short.
    pub start_us: i64,
    pub end_us: i64,
    /// Cut short by its process's SIGKILL.
    pub cut_short: bool,
}

/// The executions of `queue`'s jobs one process logged (the `sleep` built-in's `sleep started` /
/// `sleep ended` debug events, at RUST_LOG=porter::jobs=debug with `--log-format json`); those
/// without an end ended by `killed_at_us`.
pub fn executions_of(queue: &str, log: &str, killed_at_us: Option<i64>) -> Vec<Execution> {
    let mut open: BTreeMap<(i64, i64), Execution> = BTreeMap::new();
    let mut done = Vec::new();
    for line in log.lines().filter(|l| l.starts_with('{')) {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let f = &v["fields"];
        let what = f["message"].as_str().unwrap_or("");
        // Only the handler's two events name a job; other events of the queue (a late claim's
        // give-back, under load) do not.
        if f["queue"].as_str() != Some(queue) || !matches!(what, "sleep started" | "sleep ended") {
            continue;
        }
        let id = (
            f["job_id"].as_i64().unwrap(),
            f["attempt"].as_i64().unwrap(),
        );
        match what {
            "sleep started" => {
                open.insert(
                    id,
                    Execution {
                        job_id: id.0,
                        attempt: id.1,
                        key: f["concurrency_key"].as_str().unwrap_or("").to_string(),
                        claimed_us: f["attempted_at_us"].as_i64().unwrap(),
                        start_us: f["at_us"].as_i64().unwrap(),
                        end_us: i64::MAX,
                        cut_short: false,
                    },
                );
            }
            "sleep ended" => {
                let mut e = open.remove(&id).expect("an end after its start");
                e.end_us = f["at_us"].as_i64().unwrap();
                done.push(e);
            }
            _ => {}
        }
    }
    for (_, mut e) in open {
        e.end_us =
            killed_at_us.expect("an execution without an end in a process that was not killed");
        e.cut_short = true;
        done.push(e);
    }
    done
}

/// Checks the runs the rows count against the runs the handlers logged (every process's
/// `sleep started` events of `queue`, at RUST_LOG=porter::jobs=debug with `--log-format
/// json`): no attempt of a job started twice, and no job started more attempts than its row
/// counts as started (its attempts less those its history marks `unstarted`). The ledger's
/// duplicates come from the rows alone, which porter writes: a run mislabelled `unstarted`, or
/// an attempt started twice in one process, would pass them unseen (review of 6 Dec). A
/// SIGKILL may cut a start's line short of the log: the logs may count fewer, never more.
pub async fn assert_logged_runs_match_rows(
    store: &Store,
    queue: &str,
    ids: &BTreeSet<i64>,
    logs: &[String],
) {
    let mut started: BTreeMap<i64, BTreeSet<i64>> = BTreeMap::new();
    let mut twice = Vec::new();
    for log in logs {
        for e in executions_of(queue, log, Some(i64::MAX)) {
            if !started.entry(e.job_id).or_default().insert(e.attempt) {
                twice.push((e.job_id, e.attempt));
            }
        }
    }
    assert!(twice.is_empty(), "attempts started twice: {twice:?}");
    let rows: BTreeMap<i64, JobRow> = all_jobs(store, None)
        .await
        .into_iter()
        .filter(|r| ids.contains(&r.id))
        .map(|r| (r.id, r))
        .collect();
    let mut over = Vec::new();
    for (id, attempts) in &started {
        let Some(row) = rows.get(id) else { continue };
        let unstarted = row.errors.iter().filter(|e| e.unstarted).count() as i64;
        let counted = i64::from(row.attempt) - unstarted;
        if attempts.len() as i64 > counted {
            over.push((*id, attempts.clone(), row.attempt, unstarted));
        }
    }
    assert!(
        over.is_empty(),
        "jobs whose handler started more attempts than their row counts as started (id, attempts logged, attempt, unstarted): {over:?}"
    );
    assert!(
        !started.is_empty() || ids.is_empty(),
        "no start logged: the check would pass vacuously"
    );
}

/// The most executions that overlapped at one moment (an end before a start at the same µs).
pub fn max_overlap<'a>(execs: impl Iterator<Item = &'a Execution>) -> usize {
    let mut points: Vec<(i64, i32)> = Vec::new();
    for e in execs {
        points.push((e.start_us, 1));
        points.push((e.end_us, -1));
    }
    points.sort();
    let (mut now, mut most) = (0i32, 0i32);
    for (_, d) in points {
        now += d;
        most = most.max(now);
    }
    most as usize
}

/// The arguments of kill-soak worker `i`: JSON logs (the execution log the checks read),
/// `slots` slots of `queue`, no periodic jobs, and mixed leases (`lease_secs`, or one second
/// more), so that each worker is judged by its own.
pub fn soak_worker_args(queue: &str, slots: u64, lease_secs: u64, i: u64) -> Vec<String> {
    vec![
        "--log-format".to_string(),
        "json".into(),
        "worker".into(),
        "--queues".into(),
        format!("{queue}={slots}"),
        "--lease".into(),
        format!("{}s", lease_secs + i % 2),
        "--no-periodic".into(),
    ]
}

/// Starts kill-soak workers 0 to `n - 1` with `spawn` and waits until each is ready.
pub async fn start_soak_workers(n: u64, spawn: &impl Fn(u64) -> Proc) -> Vec<(u64, Proc)> {
    let mut workers: Vec<(u64, Proc)> = (0..n).map(|i| (i, spawn(i))).collect();
    for (_, w) in &mut workers {
        w.ready().await;
    }
    workers
}

/// SIGKILLs a random worker every 1.5 to 2.5 s, `kills` times, each replaced by a fresh one
/// (numbered from `first`); answers the killed processes with the time each was killed.
pub async fn kill_every_few_seconds(
    db: &crate::common::TestDb,
    workers: &mut [(u64, Proc)],
    first: u64,
    kills: u64,
    spawn: &impl Fn(u64) -> Proc,
) -> Vec<(Proc, i64)> {
    let mut retired = Vec::new();
    for next in first..first + kills {
        tokio::time::sleep(Duration::from_millis(1500 + fastrand::u64(0..1000))).await;
        let i = busy_worker(db, workers)
            .await
            .unwrap_or_else(|| fastrand::usize(..workers.len()));
        let (_, mut victim) = std::mem::replace(&mut workers[i], (next, spawn(next)));
        victim.kill();
        retired.push((victim, now_us()));
        if let Some(path) = db.sqlite_path() {
            assert_eq!(sqlite_integrity(&path), "ok");
        }
    }
    retired
}

/// The index of a worker that runs a job right now (chosen at random among those), if any: a
/// kill of a worker that runs nothing proves nothing (a soak once saw every kill land on an
/// idle worker). A worker's id is `{host}-{pid}-{random}`.
async fn busy_worker(db: &crate::common::TestDb, workers: &[(u64, Proc)]) -> Option<usize> {
    let running = db
        .store
        .job_list(JobListParams {
            states: vec![JobState::Running],
            limit: Some(MAX_LIST_LIMIT),
            ..Default::default()
        })
        .await
        .ok()?;
    let pids: BTreeSet<u32> = running
        .iter()
        .filter_map(|j| j.attempted_by.as_deref()?.rsplit('-').nth(1)?.parse().ok())
        .collect();
    let busy: Vec<usize> = (0..workers.len())
        .filter(|&i| pids.contains(&workers[i].1.pid()))
        .collect();
    (!busy.is_empty()).then(|| busy[fastrand::usize(..busy.len())])
}

pub fn now_us() -> i64 {
    chrono::Utc::now().timestamp_micros()
}
