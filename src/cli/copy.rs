//! `porter copy --from URL --to URL`: every job (ids, states, history), queue, periodic
//! schedule and app row from one database to another, SQLite to Postgres and back, verified
//! before it commits (see [`crate::store::copy`]).

use clap::builder::RangedU64ValueParser;
use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::output;
use crate::store::copy::{CopyOptions, CopyProgress, TableReport};
use crate::store::redact_url;

/// `porter copy`
#[derive(Debug, Args)]
pub struct CopyArgs {
    /// The database to copy from (`sqlite://...` or `postgres://...`). It must exist and hold
    /// a porter database; it is migrated to this porter's version if needed, then only read.
    #[arg(long)]
    from: String,
    /// The database to copy into; created and migrated if needed. It must hold no jobs
    /// unless --append.
    #[arg(long)]
    to: String,
    /// Add to a target that holds jobs already: the copied jobs', workflows', batches' and
    /// queue starts' ids must be free there. (Queues, schedules and app rows the target has
    /// already are kept as they are there, with or without it; a schedule's last slot becomes
    /// the later of the two.)
    #[arg(long)]
    append: bool,
    /// Rows per statement.
    #[arg(long, default_value_t = 1000, value_parser = RangedU64ValueParser::<usize>::new().range(1..=50_000))]
    batch: usize,
    /// Print the per-table report as JSON.
    #[arg(long)]
    json: bool,
}

pub(super) async fn run(g: &super::GlobalArgs, args: CopyArgs) -> anyhow::Result<()> {
    // Both URLs first: a `--to` porter cannot read is a usage error, found before the source
    // is opened (and migrated, as every command does).
    for url in [&args.from, &args.to] {
        super::usage(crate::store::check_url(url))?;
    }
    if args.from.starts_with("sqlite:") {
        let file = crate::store::sqlite::copy::file_of(&args.from)?;
        if !file.exists() {
            anyhow::bail!("no database at {} to copy from", file.display());
        }
    }
    // SIGINT or SIGTERM stops the copy before its next batch, which rolls back: it then goes
    // as every copy that does not go through (until 7 Dec the signal ended the process and
    // left a SQLite target it created behind, migrated and empty).
    let stop = super::Stop::on_signals()?;
    // A source that holds no porter database is refused before anything opens it as a store
    // (which would migrate it in place): it is only ever read.
    let mut from = crate::store::open_copy_end(&args.from).await?;
    if !from.is_porter_database().await? {
        anyhow::bail!(
            "{} holds no porter database (no porter tables): nothing to copy",
            redact_url(&args.from)
        );
    }
    // Both databases at this binary's version, every set: the same tables on both sides (a
    // source of an older porter is migrated first, as every command does). A database newer
    // than this binary is refused here. What the source alone is refused for is asked before
    // the target is opened: a refused copy must not leave a new target behind.
    migrate_end(g, "source", &args.from).await?;
    crate::store::copy::check_source(from.as_mut()).await?;
    // A SQLite file this command creates as the target goes again when the copy does not go
    // through: other refusals need the target open (its tables, its keys) or come from the
    // copy's own snapshot of the source.
    let created = match args.to.starts_with("sqlite:") {
        true => crate::store::sqlite::copy::file_of(&args.to)
            .ok()
            .filter(|f| !f.exists()),
        false => None,
    };
    let copied = copy_into(g, &args, from.as_mut(), &stop).await;
    if let (Err(_), Some(file)) = (&copied, &created) {
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let mut path = file.clone().into_os_string();
            path.push(suffix);
            let _ = std::fs::remove_file(path);
        }
    }
    let reports = copied?;
    if args.json {
        return output::print_json(&serde_json::json!({
            "from": redact_url(&args.from),
            "to": redact_url(&args.to),
            "tables": reports,
        }));
    }
    output::print(&report_text(&args, &reports))
}

/// Migrates the target and copies `from` into it, with a progress bar on a terminal.
async fn copy_into(
    g: &super::GlobalArgs,
    args: &CopyArgs,
    from: &mut dyn crate::store::copy::CopyEnd,
    stop: &super::Stop,
) -> anyhow::Result<Vec<TableReport>> {
    use std::io::IsTerminal;
    // Stopped by the signal (and by nothing else: a refusal meanwhile is told as itself),
    // before the target was opened or between batches.
    let stopped = |signal| anyhow::Error::new(super::Interrupted(signal, "nothing was copied"));
    if let Some(signal) = stop.signal() {
        return Err(stopped(signal));
    }
    migrate_end(g, "target", &args.to).await?;
    let mut to = crate::store::open_copy_end(&args.to).await?;
    let show = !args.json && std::io::stderr().is_terminal();
    let bar = ProgressBar::with_draw_target(
        None,
        if show {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        },
    );
    bar.set_style(
        ProgressStyle::with_template("{prefix:>24} [{bar:30}] {pos}/{len} rows {per_sec}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    let mut progress = |p: CopyProgress<'_>| match p {
        CopyProgress::Copying(table, rows) => {
            bar.reset();
            bar.set_prefix(format!("copy {table}"));
            bar.set_length(rows);
        }
        CopyProgress::Verifying(table, rows) => {
            bar.reset();
            bar.set_prefix(format!("verify {table}"));
            bar.set_length(rows);
        }
        CopyProgress::Rows(n) => bar.set_position(n),
    };
    let options = CopyOptions {
        append: args.append,
        batch: args.batch,
        stop: stop.token.clone(),
    };
    let copied = crate::store::copy::copy(from, to.as_mut(), &options, &mut progress).await;
    let reports = match (copied, stop.signal()) {
        (Err(crate::Error::Closed), Some(signal)) => return Err(stopped(signal)),
        (copied, _) => copied?,
    };
    bar.finish_and_clear();
    Ok(reports)
}

/// Opens `url` as a store and migrates it to this binary's version, every set; a refusal
/// names which end (`which`) it is.
async fn migrate_end(g: &super::GlobalArgs, which: &str, url: &str) -> anyhow::Result<()> {
    use anyhow::Context;
    let migrated = async {
        let store = crate::store::open_with(url, &g.open_options()).await?;
        crate::app::store::migrate(store.as_ref()).await
    };
    migrated
        .await
        .with_context(|| format!("the {which} database {}", redact_url(url)))?;
    Ok(())
}

fn report_text(args: &CopyArgs, reports: &[TableReport]) -> String {
    let mut out = format!(
        "copied {} -> {}, verified before commit:\n{:<24}{:>10}{:>10}{:>8}  sha256 (source = target)\n",
        output::field(&redact_url(&args.from)),
        output::field(&redact_url(&args.to)),
        "table",
        "source",
        "copied",
        "kept"
    );
    for r in reports {
        let same = if r.source_checksum == r.target_checksum {
            "="
        } else {
            "!="
        };
        out.push_str(&format!(
            "{:<24}{:>10}{:>10}{:>8}  {} {same}\n",
            r.table,
            r.source_rows,
            r.target_rows,
            r.kept_rows,
            &r.source_checksum[..16]
        ));
    }
    out
}
