//! The `porter` command line: clap parses, this module turns flags into library calls.
//!
//! Exit codes: 0 on success (and after a clean shutdown of `worker`, `web` and `dev` on
//! SIGINT/SIGTERM); 2 on a usage error (clap's own: unknown flag, bad number, bad duration,
//! malformed JSON argument); 1 on any other error, printed as exactly one `error: ...` line on
//! stderr. Logs go to stderr, command output to stdout. The database URL's password is never
//! printed; job args are never logged.

mod batches;
mod bench;
mod copy;
mod enqueue;
mod jobs;
mod output;
mod queues;
mod serve;
mod workflows;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::store::{redact_url, Store};

const ABOUT: &str = "A background-job queue and worker on one SQLite file or PostgreSQL";

const AFTER_HELP: &str = "\
Getting started:
  porter dev                          web + worker on ./porter.db, dashboard at http://127.0.0.1:8080/
  porter enqueue noop                 insert a job (prints its id)
  porter enqueue fail '{\"message\":\"boom\"}' --max-attempts 1
  porter list-failed-jobs             discarded jobs with their last error
  porter jobs retry ID                run a job again

Built-in kinds: heartbeat, orphan_file_cleanup, noop, sleep {\"ms\":N}, fail {\"message\":\"...\",\"panic\":false}.
Durations are written 500ms, 10s, 2m, 1h, 1d (or combined: 1h30m).
Exit codes: 0 ok, 1 runtime error (one `error: ...` line on stderr), 2 usage error.";

/// `porter`: every command, with the global flags.
#[derive(Debug, Parser)]
#[command(name = "porter", version, about = ABOUT, after_help = AFTER_HELP, propagate_version = true)]
pub struct Cli {
    /// Flags every command takes.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// The database a command uses when neither `--database-url` nor `DATABASE_URL` names one.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://porter.db";

/// Flags every command takes.
#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// Database: sqlite://FILE (relative to the working directory), sqlite:///ABS/PATH, or
    /// postgres://USER:PASSWORD@HOST/DB. Migrated on first use.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = DEFAULT_DATABASE_URL,
        global = true,
        hide_env_values = true
    )]
    pub database_url: String,
    /// Where tablos' files are stored: file://DIR, s3://BUCKET (AWS_* and S3_* variables), memory://.
    /// Default file://./porter-objects, or s3://$S3_BUCKET when S3_BUCKET is set.
    #[arg(long, env = "OBJECT_STORE_URL", global = true, hide_env_values = true)]
    pub object_store_url: Option<String>,
    /// Most connections to PostgreSQL this process opens (at least 2: one listens for
    /// wake-ups). Raise it for many concurrent requests or jobs; keep the sum over all
    /// processes under the server's max_connections. SQLite ignores it.
    #[arg(
        long,
        env = "PORTER_DB_POOL_SIZE",
        default_value_t = crate::store::DEFAULT_POOL_SIZE,
        value_name = "N",
        value_parser = clap::value_parser!(u32).range(2..=10_000),
        global = true
    )]
    pub db_pool_size: u32,
    /// Log format (on stderr); filter with RUST_LOG (default info,sqlx=warn).
    #[arg(long, value_enum, default_value_t = LogFormat::Pretty, global = true)]
    pub log_format: LogFormat,
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Pretty,
    /// One JSON object per line.
    Json,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create or upgrade the database schema (every command does this first; this one does
    /// only that).
    Migrate,
    /// Run jobs until SIGINT/SIGTERM (a second signal stops running jobs at once).
    Worker(serve::WorkerArgs),
    /// Serve the API, the admin API, /metrics and the dashboard.
    #[command(after_help = serve::WEB_AFTER_HELP)]
    Web(serve::WebArgs),
    /// Web and worker in one process: the zero-setup local run.
    #[command(after_help = serve::WEB_AFTER_HELP)]
    Dev(serve::DevArgs),
    /// Insert jobs; prints each new job id on its own line (and warns on stderr when no live
    /// worker serves their queue and kind).
    Enqueue(enqueue::EnqueueArgs),
    /// List, show, retry and cancel jobs.
    #[command(subcommand)]
    Jobs(jobs::JobsCommand),
    /// Discarded jobs, newest first, with kind, queue, attempts and last error.
    ListFailedJobs(jobs::FailedArgs),
    /// List, pause and resume queues.
    #[command(subcommand)]
    Queues(queues::QueuesCommand),
    /// List, show and cancel workflows (graphs of jobs inserted by the library).
    #[command(subcommand)]
    Workflows(workflows::WorkflowsCommand),
    /// List and show batches (jobs with a callback, inserted by the library).
    #[command(subcommand)]
    Batches(batches::BatchesCommand),
    /// Job counts by state, in total and per queue, and the jobs due to run that no live
    /// worker serves.
    Stats(queues::StatsArgs),
    /// Delete the stored files (objects, then rows) whose tablo is gone.
    CleanupOrphans(serve::CleanupArgs),
    /// Measure insert and drain rates, latency and memory on a fresh database, next to what
    /// the database does with hand-written SQL.
    Bench(bench::BenchArgs),
    /// Copy every job (ids, states, history), queue, periodic schedule and app row from one
    /// database to another (SQLite <-> Postgres), verified by counts and checksums.
    Copy(copy::CopyArgs),
}

/// Runs the command line: parses `std::env::args`, runs the command, and turns the outcome
/// into the exit code. `main.rs` is only this call.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.global.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(anyhow::anyhow!("cannot start the async runtime: {e}")),
    };
    let result = runtime.block_on(run(cli));
    // Background tasks (pool reapers, LISTEN) must not hold the exit up.
    runtime.shutdown_timeout(Duration::from_secs(1));
    // Jobs left running because they block their threads run until porter exits, and must be
    // gone before its lease passes and rescuers start them elsewhere: no wait for the SQLite
    // connections, which those jobs hold (review of 320feb9).
    let still_running = result.as_ref().is_err_and(|e| {
        e.chain()
            .any(|c| matches!(c.downcast_ref(), Some(crate::Error::StillRunning(_))))
    });
    // The SQLite file is whole on its own once porter exited: the last connection to close
    // merges the write-ahead log back (see `wait_closed`).
    if !still_running && !crate::store::sqlite::wait_closed(Duration::from_secs(5)) {
        tracing::warn!(
            "exited before every SQLite connection closed: the database's -wal file holds its latest writes until the next connection reads it"
        );
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e),
    }
}

/// Prints the one error line and picks the exit code: 2 for a usage error ([`Usage`]), 1
/// for any other. An error may quote what another program wrote in the database (a table's
/// name, a row's key): its control characters and the marks that reorder text are written
/// out ([`output::printable`]), as on stdout.
fn fail(e: anyhow::Error) -> ExitCode {
    let message = output::printable(&format!("{e:#}").replace(['\r', '\n'], " "));
    output::eprint_line(&format!("error: {message}"));
    ExitCode::from(if e.downcast_ref::<Usage>().is_some() {
        2
    } else if let Some(Interrupted(signal, _)) = e.downcast_ref::<Interrupted>() {
        128 + signal.number()
    } else {
        1
    })
}

/// A one-shot command stopped by a signal before it went through (and what that left
/// undone): exit 128 + the signal's number, as a shell reports a process the signal ended.
#[derive(Debug)]
pub struct Interrupted(pub StopSignal, pub &'static str);

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "stopped by {}: {}", self.0.name(), self.1)
    }
}

impl std::error::Error for Interrupted {}

/// The signals a one-shot command stops for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopSignal {
    /// SIGINT (Ctrl-C).
    Int,
    /// SIGTERM (a supervisor's stop).
    Term,
}

impl StopSignal {
    fn number(self) -> u8 {
        match self {
            StopSignal::Int => 2,
            StopSignal::Term => 15,
        }
    }

    fn name(self) -> &'static str {
        match self {
            StopSignal::Int => "SIGINT",
            StopSignal::Term => "SIGTERM",
        }
    }
}

/// SIGINT and SIGTERM, heard for a one-shot command that must stop cleanly (roll back, remove
/// what it created): the first cancels `token` and is remembered; a second ends the process at
/// once.
struct Stop {
    token: tokio_util::sync::CancellationToken,
    heard: std::sync::Arc<std::sync::OnceLock<StopSignal>>,
}

impl Stop {
    fn on_signals() -> anyhow::Result<Stop> {
        use tokio::signal::unix::{signal, SignalKind};
        let mut int = signal(SignalKind::interrupt())?;
        let mut term = signal(SignalKind::terminate())?;
        let token = tokio_util::sync::CancellationToken::new();
        let heard = std::sync::Arc::new(std::sync::OnceLock::new());
        let (cancel, first) = (token.clone(), heard.clone());
        async fn next(
            int: &mut tokio::signal::unix::Signal,
            term: &mut tokio::signal::unix::Signal,
        ) -> StopSignal {
            tokio::select! {
                _ = int.recv() => StopSignal::Int,
                _ = term.recv() => StopSignal::Term,
            }
        }
        tokio::spawn(async move {
            let signal = next(&mut int, &mut term).await;
            let _ = first.set(signal);
            cancel.cancel();
            let again = next(&mut int, &mut term).await;
            std::process::exit(128 + i32::from(again.number()));
        });
        Ok(Stop { token, heard })
    }

    /// The signal heard, if one was.
    fn signal(&self) -> Option<StopSignal> {
        self.heard.get().copied()
    }
}

/// A usage error found after clap parsed the line (an invalid kind, queue name, duration,
/// args of a built-in kind, a listen address without its token): exit 2, as clap's own.
#[derive(Debug)]
pub struct Usage(pub crate::Error);

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for Usage {}

/// Marks a failed check of the command line as a usage error.
fn usage<T>(checked: crate::Result<T>) -> anyhow::Result<T> {
    checked.map_err(|e| anyhow::Error::new(Usage(e)))
}

fn init_logging(format: LogFormat) {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    // sqlx reports the server's NOTICEs (`relation ... already exists, skipping` on every
    // migration check) at info; they say nothing to a user.
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    // A line the log cannot write (its reader went away: a closed pipe, a journald stream
    // gone) is dropped. By default the logger reported the failure with `eprintln!`, which
    // panicked on the same closed stderr: the task logging a job's failure died before writing
    // it, and the job stayed `running` until the stuck rescue (review of 6 Dec).
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .log_internal_errors(false);
    let _ = match format {
        LogFormat::Pretty => builder
            .with_ansi(std::io::stderr().is_terminal())
            .fmt_fields(PrintableFields)
            .try_init(),
        LogFormat::Json => builder
            .json()
            .with_writer(|| output::JsonLogWriter)
            .try_init(),
    };
    if format == LogFormat::Json {
        // A panic outside a job (a job's own is logged by the runtime) is one JSON event too,
        // not the default hook's lines on stderr.
        std::panic::set_hook(Box::new(|info| {
            let message = info
                .payload()
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| info.payload().downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "panic with a non-string payload".to_string());
            let location = info.location().map(|l| l.to_string()).unwrap_or_default();
            tracing::error!(panic = %message, %location, "panicked");
        }));
    }
}

/// The text log's fields, each written as [`output::field`] writes a table cell: a job's
/// error, a panic's message or a database's error may quote whatever a job read, and the log
/// is shown on a terminal and read by scripts line by line. Escape sequences (which would
/// drive the terminal) and newlines (which would forge a line, `worker ready` say) are written
/// out (`\u{1b}`, `\u{a}`). The message comes first and bare, the others as `name=value`, as
/// tracing's own format does (JSON logs by [`output::json_printable`]).
/// The `log.*` fields that events from the `log` crate carry (their
/// target, file and line) are left out, as tracing's own format leaves them out.
struct PrintableFields;

impl<'w> tracing_subscriber::fmt::FormatFields<'w> for PrintableFields {
    fn format_fields<R: tracing_subscriber::field::RecordFields>(
        &self,
        mut writer: tracing_subscriber::fmt::format::Writer<'w>,
        fields: R,
    ) -> std::fmt::Result {
        let mut visitor = PrintableVisitor {
            writer: &mut writer,
            first: true,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result
    }
}

struct PrintableVisitor<'a, 'w> {
    writer: &'a mut tracing_subscriber::fmt::format::Writer<'w>,
    first: bool,
    result: std::fmt::Result,
}

impl tracing::field::Visit for PrintableVisitor<'_, '_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if self.result.is_err() || field.name().starts_with("log.") {
            return;
        }
        let text = output::field(&format!("{value:?}"));
        let space = if self.first { "" } else { " " };
        self.first = false;
        self.result = if field.name() == "message" {
            write!(self.writer, "{space}{text}")
        } else {
            write!(self.writer, "{space}{}={text}", field.name())
        };
    }
}

/// Runs one parsed command.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let g = cli.global;
    match cli.command {
        Command::Migrate => {
            let client = open_client(&g).await?;
            // The URL as a field: it may hold an escape or a newline (from a DATABASE_URL
            // set elsewhere), written out here as the error line writes it (until 6 Dec raw).
            output::print(&format!(
                "database {} ({}) is migrated\n",
                output::field(&redact_url(&g.database_url)),
                client.backend()
            ))
        }
        Command::Worker(args) => serve::worker(&g, args).await,
        Command::Web(args) => serve::web(&g, args).await,
        Command::Dev(args) => serve::dev(&g, args).await,
        Command::Enqueue(args) => enqueue::run(&g, args).await,
        Command::Jobs(cmd) => jobs::run(&g, cmd).await,
        Command::ListFailedJobs(args) => jobs::failed(&g, args).await,
        Command::Queues(cmd) => queues::run(&g, cmd).await,
        Command::Workflows(cmd) => workflows::run(&g, cmd).await,
        Command::Batches(cmd) => batches::run(&g, cmd).await,
        Command::Stats(args) => queues::stats(&g, args).await,
        Command::CleanupOrphans(args) => serve::cleanup_orphans(&g, args).await,
        Command::Bench(args) => bench::run(&g, args).await,
        Command::Copy(args) => copy::run(&g, args).await,
    }
}

/// Opens (and migrates) the database, for the commands that act on the queue: through the
/// client, as an application does.
async fn open_client(g: &GlobalArgs) -> anyhow::Result<crate::Client> {
    Ok(crate::Client::new(open_store(g).await?))
}

/// Opens (and migrates) the database.
async fn open_store(g: &GlobalArgs) -> anyhow::Result<Arc<Store>> {
    g.check_url()?;
    // The library's errors name the database with its password redacted.
    let created = new_sqlite_file(&g.database_url);
    let store = crate::store::open_with(&g.database_url, &g.open_options()).await?;
    say_created(created);
    // The tablo app's tables too: the binary serves the app.
    crate::app::store::migrate(store.as_ref()).await?;
    Ok(store)
}

/// The SQLite file a URL names when it does not exist yet (opening will create it), made
/// absolute: a command run from the wrong directory then says where its new database went.
pub(crate) fn new_sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    let path = crate::store::sqlite_file(url).filter(|p| !p.exists())?;
    Some(std::path::absolute(&path).unwrap_or(path))
}

/// Logs that a new SQLite database was created, and where.
pub(crate) fn say_created(created: Option<std::path::PathBuf>) {
    if let Some(path) = created.filter(|p| p.exists()) {
        tracing::info!(path = %path.display(), "created a new SQLite database at {}", path.display());
    }
}

impl GlobalArgs {
    /// A `--database-url` porter cannot read is a usage error (exit 2), found before anything
    /// opens.
    fn check_url(&self) -> anyhow::Result<()> {
        usage(crate::store::check_url(&self.database_url))
    }

    /// How the database is opened: the pool size.
    pub fn open_options(&self) -> crate::store::OpenOptions {
        crate::store::OpenOptions {
            pool_size: Some(self.db_pool_size),
            ..Default::default()
        }
    }
}

/// The object store's URL: `--object-store-url` (`OBJECT_STORE_URL`); without it, the bucket
/// `S3_BUCKET` names when it is set, else local files.
fn object_store_url(g: &GlobalArgs) -> String {
    match &g.object_store_url {
        Some(url) => url.clone(),
        None => match std::env::var("S3_BUCKET").ok().filter(|b| !b.is_empty()) {
            Some(bucket) => format!("s3://{bucket}"),
            None => crate::app::files::DEFAULT_OBJECT_STORE_URL.to_string(),
        },
    }
}

/// Opens the object store: `--object-store-url` (`OBJECT_STORE_URL`); without it, the bucket
/// `S3_BUCKET` names when it is set (the web backend's configuration), else local files. Logs
/// which one is in use.
fn open_objects(g: &GlobalArgs) -> anyhow::Result<Arc<dyn object_store::ObjectStore>> {
    let url = object_store_url(g);
    // A URL porter cannot read is a usage error (exit 2); the commands open the object store
    // before the database, so that such a URL changes nothing.
    let objects = match crate::app::files::object_store_from_url(&url) {
        Err(e @ crate::Error::Invalid { .. }) => return Err(anyhow::Error::new(Usage(e))),
        other => other.context("opening the object store")?,
    };
    tracing::info!(object_store = %redact_url(&url), "object store in use");
    Ok(objects)
}

/// `--listen` and `--metrics-listen`: an IP address and port, or a host name that resolves
/// (`localhost:8080`; IPv4 first, as 127.0.0.1 is what people mean by localhost).
pub fn parse_listen(text: &str) -> Result<std::net::SocketAddr, String> {
    use std::net::ToSocketAddrs;
    if let Ok(addr) = text.parse() {
        return Ok(addr);
    }
    let addrs: Vec<std::net::SocketAddr> = text
        .to_socket_addrs()
        .map_err(|e| {
            format!("{text:?} is not an address like 127.0.0.1:8080 or localhost:8080 ({e})")
        })?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| format!("{text:?} resolves to no address"))
}

/// Durations on the command line are spelled as everywhere in porter (rate periods too).
pub use crate::store::limits::parse_duration;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86_400)));
        for bad in ["", "10", "s", "10x", "1.5s", "-1s", "10 s"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn the_command_line_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    /// The text log writes fields as table cells (control characters written out), and leaves
    /// out the `log.*` fields of events from the `log` crate, as tracing's own format does
    /// (review of 6 Dec: they were written after the escaping came).
    #[test]
    fn the_text_log_escapes_fields_and_leaves_out_the_log_crates_own() {
        use std::sync::{Arc, Mutex};
        #[derive(Clone, Default)]
        struct Buffer(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Buffer {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buffer = Buffer::default();
        let out = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || out.clone())
            .with_ansi(false)
            .fmt_fields(PrintableFields)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(log.target = "reqwest::connect", log.line = 929, "starting");
            tracing::info!(error = %"boom\u{1b}[2J\nFAKE", job_id = 7, "job failed");
        });
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(lines[0].ends_with(" starting"), "{text}");
        assert!(!text.contains("log.") && !text.contains('\u{1b}'), "{text}");
        assert!(
            lines[1].ends_with("job failed error=boom\\u{1b}[2J\\u{a}FAKE job_id=7"),
            "{text}"
        );
    }
}
