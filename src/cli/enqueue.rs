//! `porter enqueue`.

use std::io::Read;
use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use clap::Args;

use super::{open_client, output, usage, GlobalArgs};
use crate::app::builtin::BUILTIN_KINDS;
use crate::error::Error;
use crate::job::{validate_name, InsertOpts};
use crate::store::{json_size, JobInsertParams, MAX_ARGS_BYTES};

/// Args of `--count` jobs sent per transaction: when all the jobs' args fit, one transaction
/// inserts them all (all or nothing); beyond it, each 16 MiB goes in its own transaction, so
/// memory does not grow with the count.
pub const ENQUEUE_CHUNK_BYTES: usize = 16 * 1024 * 1024;
/// Largest args file (or stdin) read: 16 MiB of text (the args themselves must come to at
/// most 1 MiB as compact JSON).
pub const MAX_ARGS_INPUT_BYTES: u64 = 16 * 1024 * 1024;

/// `porter enqueue KIND [ARGS_JSON] ...`
#[derive(Debug, Args)]
#[command(after_help = "\
KIND must be a kind some worker runs: the built-in kinds are heartbeat, orphan_file_cleanup, \
noop, sleep and fail. Jobs of other kinds (run by your own workers) need --allow-unknown-kind.

Examples:
  porter enqueue noop
  porter enqueue sleep '{\"ms\": 2000}' --queue default --count 10
  porter enqueue fail '{\"message\": \"boom\"}' --max-attempts 1
  porter enqueue heartbeat --in 30s --unique-key hb-once
  porter enqueue noop --sequence account-42            one at a time, in insertion order
  porter enqueue noop --after 17,18                    once jobs 17 and 18 completed
  porter enqueue my_kind @args.json --allow-unknown-kind     args from a file
  produce-args | porter enqueue my_kind - --allow-unknown-kind   args from stdin

Args are at most 1 MiB as compact JSON (larger ones are refused: pass a reference to the data).
--count N inserts all N jobs in one transaction when their args come to at most 16 MiB in all;
beyond that, in transactions of 16 MiB each, committed in turn (memory stays bounded): if one
fails, the ids printed so far are in the database, and the error line says how many.")]
pub struct EnqueueArgs {
    /// The job kind (^[a-z0-9_.-]{1,64}$).
    kind: String,
    /// The job's args as a JSON value (default {}); `@PATH` reads them from a file, `-` from
    /// stdin (for args longer than a command line holds). At most 1 MiB as JSON.
    #[arg(value_name = "ARGS_JSON", value_parser = parse_args_source)]
    args: Option<ArgsSource>,
    /// Queue (default "default").
    #[arg(long)]
    queue: Option<String>,
    /// Priority, 1 (highest) to 4 (default 1).
    #[arg(long, value_parser = clap::value_parser!(i16).range(1..=4))]
    priority: Option<i16>,
    /// Attempts before the job is discarded (default 25).
    #[arg(long, value_parser = clap::value_parser!(i32).range(1..))]
    max_attempts: Option<i32>,
    /// Run after this delay (500ms, 30s, 5m, 1h), on the database clock.
    #[arg(long = "in", value_name = "DURATION", value_parser = parse_delay, conflicts_with = "at")]
    delay: Option<Duration>,
    /// Run at this time (RFC 3339, e.g. 2030-01-01T09:00:00Z).
    #[arg(long, value_name = "RFC3339", value_parser = parse_time)]
    at: Option<DateTime<Utc>>,
    /// Deduplicate: no new job while an unfinished job holds this key (its id is printed, and
    /// a warning says nothing was inserted).
    #[arg(long, conflicts_with = "count")]
    unique_key: Option<String>,
    /// The concurrency key the queue's per-key limits count the job under (1 to 255 bytes).
    #[arg(long, value_name = "KEY", value_parser = parse_concurrency_key)]
    concurrency_key: Option<String>,
    /// Run in this sequence: jobs with one sequence key run one at a time, in insertion order
    /// (1 to 255 bytes).
    #[arg(long = "sequence", value_name = "KEY")]
    sequence_key: Option<String>,
    /// Wait for these jobs (ids, comma-separated; they must exist): run once all completed;
    /// cancelled if one ends discarded or cancelled (unless --after-any).
    #[arg(
        long = "after",
        value_name = "ID[,ID...]",
        value_delimiter = ',',
        conflicts_with = "sequence_key"
    )]
    after: Vec<i64>,
    /// With --after: run once every parent ended, however it ended.
    #[arg(long, requires = "after")]
    after_any: bool,
    /// Insert this many identical jobs: in one transaction when their args come to at most
    /// 16 MiB in all, else in 16 MiB transactions committed in turn (see below).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    count: u32,
    /// Print the job rows as JSON, one per line, instead of the ids, each with `"inserted"`:
    /// false for a unique key's holder.
    #[arg(long)]
    json: bool,
    /// Accept a kind that no built-in worker runs (for jobs your own workers run).
    #[arg(long)]
    allow_unknown_kind: bool,
}

/// Most dependency edges one `porter enqueue` writes (--count times the parents of --after).
pub const MAX_ENQUEUE_EDGES: u64 = 1_000_000;

/// Where the args come from.
#[derive(Debug, Clone)]
enum ArgsSource {
    /// Given on the command line.
    Inline(serde_json::Value),
    /// `-`: read from stdin.
    Stdin,
    /// `@PATH`: read from a file.
    File(PathBuf),
}

fn parse_args_source(text: &str) -> Result<ArgsSource, String> {
    if text == "-" {
        return Ok(ArgsSource::Stdin);
    }
    if let Some(path) = text.strip_prefix('@') {
        if path.is_empty() {
            return Err("@ needs a file name: @args.json".to_string());
        }
        return Ok(ArgsSource::File(PathBuf::from(path)));
    }
    parse_json(text).map(ArgsSource::Inline)
}

impl ArgsSource {
    /// The args, read and parsed (at most [`MAX_ARGS_INPUT_BYTES`] of input). Each refusal is
    /// the user's input, as for args given inline: a usage error (until 6 Dec these exited 1
    /// where the same args inline exit 2).
    fn read(self) -> crate::Result<serde_json::Value> {
        let refused = |why: String| Error::invalid("args", why);
        let (what, reader): (String, Box<dyn Read>) = match self {
            ArgsSource::Inline(value) => return Ok(value),
            ArgsSource::Stdin => ("stdin".to_string(), Box::new(std::io::stdin())),
            ArgsSource::File(path) => {
                let file = std::fs::File::open(&path).map_err(|e| {
                    refused(format!("cannot read args from {}: {e}", path.display()))
                })?;
                (path.display().to_string(), Box::new(file))
            }
        };
        let mut text = Vec::new();
        reader
            .take(MAX_ARGS_INPUT_BYTES + 1)
            .read_to_end(&mut text)
            .map_err(|e| refused(format!("cannot read args from {what}: {e}")))?;
        if text.len() as u64 > MAX_ARGS_INPUT_BYTES {
            return Err(refused(format!(
                "the args in {what} are over {MAX_ARGS_INPUT_BYTES} bytes; a job's args are at most {MAX_ARGS_BYTES} bytes as JSON"
            )));
        }
        let args = serde_json::from_slice(&text)
            .map_err(|e| refused(format!("the args in {what} are not valid JSON: {e}")))?;
        crate::store::refuse_wide_integers("args", &text)?;
        Ok(args)
    }
}

fn parse_json(text: &str) -> Result<serde_json::Value, String> {
    let args = serde_json::from_str(text)
        .map_err(|e| format!("not valid JSON ({e}); quote it for the shell: '{{\"ms\": 100}}'"))?;
    crate::store::refuse_wide_integers("args", text.as_bytes()).map_err(|e| e.to_string())?;
    Ok(args)
}

/// `--at`: an RFC 3339 time inside the range porter stores (a usage error otherwise).
fn parse_time(text: &str) -> Result<DateTime<Utc>, String> {
    let at = DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("{text:?} is not an RFC 3339 time like 2030-01-01T09:00:00Z ({e})"))?;
    crate::store::check_scheduled_at(Some(at)).map_err(|e| e.to_string())?;
    Ok(at)
}

/// `--in`: a duration no longer than the longest delay (a usage error otherwise).
fn parse_delay(text: &str) -> Result<Duration, String> {
    let delay = super::parse_duration(text)?;
    crate::store::check_schedule_in(Some(delay)).map_err(|e| e.to_string())?;
    Ok(delay)
}

/// Refuses kinds no built-in worker runs, unless allowed.
fn check_kind(kind: &str, allow_unknown: bool) -> Result<(), Error> {
    validate_name("kind", kind)?;
    if allow_unknown || BUILTIN_KINDS.contains(&kind) {
        return Ok(());
    }
    Err(Error::invalid(
        "kind",
        format!(
            "no built-in worker runs {kind:?} (built-in kinds: {}); pass --allow-unknown-kind if your own workers run it",
            BUILTIN_KINDS.join(", ")
        ),
    ))
}

pub(super) async fn run(g: &GlobalArgs, a: EnqueueArgs) -> anyhow::Result<()> {
    usage(check_kind(&a.kind, a.allow_unknown_kind))?;
    let opts = InsertOpts {
        queue: a.queue,
        priority: a.priority,
        max_attempts: a.max_attempts,
        scheduled_at: a.at,
        schedule_in: a.delay,
        unique_key: a.unique_key.clone(),
        metadata: None,
        concurrency_key: a.concurrency_key.clone(),
        sequence_key: a.sequence_key.clone(),
        depends_on: a.after.clone(),
        after_any: a.after_any,
    };
    let args = match a.args {
        Some(source) => usage(source.read())?,
        None => serde_json::json!({}),
    };
    usage(crate::app::builtin::check_builtin_args(&a.kind, &args))?;
    let params = usage(JobInsertParams::new(&a.kind, args, opts))?;
    // Each of --count jobs gets an edge per parent: within each one's limits, the product
    // could reach a billion edges (hours of writes, tens of GB).
    let edges = params.depends_on.len() as u64 * u64::from(a.count);
    if edges > MAX_ENQUEUE_EDGES {
        return usage(Err(crate::Error::invalid(
            "enqueue",
            format!(
                "--count {} jobs after {} parents would write {edges} dependency edges; at most \
                 {MAX_ENQUEUE_EDGES} in one command (enqueue them in several)",
                a.count,
                params.depends_on.len()
            ),
        )));
    }
    let client = open_client(g).await?;
    // A job's share of a transaction: its args alone (the CLI sets no metadata), so that jobs
    // whose args come to at most 16 MiB go in one transaction, as the help says; the rest of a
    // job's row is bounded by --count's own limit. Until 6 Dec the metadata and 256 bytes were
    // added per job: 14,000 jobs of 1 KB went in two transactions, and when the second failed
    // the first's stayed.
    let job_bytes = json_size(&params.args, usize::MAX).max(1);
    let per_transaction = (ENQUEUE_CHUNK_BYTES / job_bytes).max(1);
    let count = a.count as usize;
    let mut done = 0;
    // Jobs inserted already cancelled (a parent ended cancelled or discarded): how many, the
    // first, and why.
    let mut cancelled: Option<(usize, i64, String)> = None;
    // How many jobs were inserted so far, the lowest and highest id, for an error after they
    // were committed.
    let mut inserted = 0;
    let mut ids: Option<(i64, i64)> = None;
    while done < count {
        let n = per_transaction.min(count - done);
        let results = match client.insert_many_params(vec![params.clone(); n]).await {
            Ok(results) => results,
            Err(e) if done > 0 => {
                anyhow::bail!("{e} (after {done} of {count} jobs were inserted, in earlier transactions: their ids are printed)")
            }
            Err(e) => return Err(e.into()),
        };
        let mut text = String::new();
        for r in &results {
            if r.inserted {
                let id = r.job.id;
                inserted += 1;
                ids = Some(ids.map_or((id, id), |(lo, hi)| (lo.min(id), hi.max(id))));
            }
            if let Some(warning) = r.held_by_a_cancelled_job() {
                warn(g.log_format, &warning);
            } else if !r.inserted {
                // A warning line, as the others: as a log event, RUST_LOG could drop it, and a
                // script could not tell the holder's id from a new one (review of 7 Dec).
                warn(
                    g.log_format,
                    &format!(
                        "job {} already holds this unique key: nothing was inserted",
                        r.job.id
                    ),
                );
            }
            if r.inserted && r.job.state == crate::job::JobState::Cancelled {
                let why = r
                    .job
                    .errors
                    .last()
                    .map(|e| e.error.clone())
                    .unwrap_or_default();
                match &mut cancelled {
                    Some((n, _, _)) => *n += 1,
                    None => cancelled = Some((1, r.job.id, why)),
                }
            }
            if a.json {
                // The job's row, and whether this command inserted it (`POST /admin/jobs`
                // says so too).
                let mut row = serde_json::to_value(&r.job)?;
                row["inserted"] = serde_json::Value::Bool(r.inserted);
                text.push_str(&output::json_printable(&serde_json::to_string(&row)?));
            } else {
                text.push_str(&r.job.id.to_string());
            }
            text.push('\n');
        }
        done += n;
        // The jobs are in: an error here must say so, or a caller that retries on exit 1
        // enqueues them again (until 7 Dec: "writing output: No space left on device").
        if let Err(e) = output::print(&text) {
            match ids {
                Some((first, last)) => anyhow::bail!(
                    "{e}: the {inserted} jobs this command inserted are in (ids {first} to \
                     {last}){}; do not enqueue them again",
                    if done < count {
                        format!(", the other {} of --count {count} were not", count - done)
                    } else {
                        String::new()
                    }
                ),
                None => return Err(e),
            }
        }
    }
    match cancelled {
        // Nothing will run: whether a worker serves them does not matter.
        Some((n, first, why)) => {
            let jobs = if n == 1 {
                format!("job {first} was")
            } else {
                format!("{n} jobs (the first {first}) were")
            };
            let why = output::printable(&why);
            warn(
                g.log_format,
                &format!("{jobs} inserted cancelled and will not run: {why}"),
            );
        }
        None => warn_if_unserved(&client, g.log_format, &params.queue, &params.kind, count).await,
    }
    Ok(())
}

/// One warning: a plain line on stderr, like the `error: ...` line of a failed command, or a
/// log event when the log is JSON.
fn warn(format: super::LogFormat, warning: &str) {
    match format {
        super::LogFormat::Pretty => super::output::eprint_line(&format!("warning: {warning}")),
        super::LogFormat::Json => tracing::warn!("{warning}"),
    }
}

/// One line on stderr when no live worker serves the jobs' queue and kind (issue 17.7): a
/// developer who has not started `porter worker` learns why nothing runs. The jobs are in
/// either way, so the exit code stays 0, and a failed check is only logged at debug.
async fn warn_if_unserved(
    client: &crate::Client,
    format: super::LogFormat,
    queue: &str,
    kind: &str,
    jobs: usize,
) {
    match client.served(queue, kind).await {
        Ok(true) => {}
        Ok(false) => {
            let warning = crate::store::UnservedRow::warning(queue, kind, jobs as u64);
            match format {
                // One plain line, like the `error: ...` line of a failed command.
                super::LogFormat::Pretty => {
                    super::output::eprint_line(&format!("warning: {warning}"))
                }
                // A JSON log stays JSON.
                super::LogFormat::Json => tracing::warn!(queue, kind, "{warning}"),
            }
        }
        Err(e) => tracing::debug!(error = %e, "could not ask whether a live worker serves the job"),
    }
}

fn parse_concurrency_key(text: &str) -> Result<String, String> {
    crate::store::check_concurrency_key(text)
        .map(|()| text.to_string())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_kinds_are_refused_unless_allowed() {
        assert!(check_kind("noop", false).is_ok());
        assert!(check_kind("send_email", false).is_err());
        assert!(check_kind("send_email", true).is_ok());
        assert!(check_kind("Bad Kind", true).is_err());
    }
}
