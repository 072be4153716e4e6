//! The long-running commands (`worker`, `web`, `dev`), their signals, and
//! `cleanup-orphans`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use tokio::signal::unix::{signal, SignalKind};
use tracing::{info, warn};

use super::{
    object_store_url, open_objects, open_store, output, parse_duration, parse_listen, usage,
    GlobalArgs,
};
use crate::app::builtin::{builtin_periodic, builtin_workers};
use crate::app::files::{cleanup_orphans as run_cleanup, CleanupConfig};
use crate::error::Error;
use crate::http::{self, AppState, HttpConfig};
use crate::runtime::{parse_queues, Runtime, RuntimeConfig, Shutdown};
use crate::store::{redact_url, Store};

pub(super) const WEB_AFTER_HELP: &str = "\
Environment:
  PORTER_LISTEN        the listen address (like --listen)
  PORTER_ADMIN_TOKEN   when set, /admin/* and /metrics need `Authorization: Bearer TOKEN`, and the
                       dashboard needs the token to be read and used (log in at /dashboard/login).
                       Required to listen on anything but a loopback address.
  PORTER_ALLOWED_HOSTS like --allowed-hosts

On a loopback address only loopback Host names (localhost, *.localhost, 127.0.0.1, [::1]) and
the allowed hosts are served (a guard against DNS rebinding). State-changing requests from
another origin's browser page are refused (403); JSON bodies need Content-Type: application/json.";

/// Where `porter worker --metrics-listen` listens when given no address: loopback only.
pub const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:9091";

/// The queue list `--queues` takes.
#[derive(Debug, Clone)]
pub struct QueueSpec(Vec<(String, usize)>);

fn parse_queue_spec(text: &str) -> Result<QueueSpec, String> {
    parse_queues(text).map(QueueSpec).map_err(|e| e.to_string())
}

/// `porter worker` flags.
#[derive(Debug, Clone, Args)]
pub struct WorkerArgs {
    /// Queues to work and how many jobs of each run at once: name=concurrency, comma-separated.
    #[arg(long, default_value = "default=100", value_parser = parse_queue_spec)]
    queues: QueueSpec,
    /// After a signal, how long running jobs may finish before they are cancelled (and retried).
    #[arg(long, default_value = "10s", value_name = "DURATION", value_parser = parse_duration)]
    shutdown_timeout: Duration,
    /// A worker silent for this long is presumed dead and its jobs are rescued (heartbeats
    /// every third of it). At least 1s.
    #[arg(long, default_value = "15s", value_name = "DURATION", value_parser = parse_duration)]
    lease: Duration,
    /// Interval of the periodic `heartbeat` job.
    #[arg(long, default_value = "60s", value_name = "DURATION", value_parser = parse_duration)]
    heartbeat_every: Duration,
    /// Interval of the periodic `orphan_file_cleanup` job.
    #[arg(long, default_value = "1h", value_name = "DURATION", value_parser = parse_duration)]
    orphan_cleanup_every: Duration,
    /// Do not schedule the built-in periodic jobs (heartbeat, orphan_file_cleanup).
    #[arg(long)]
    no_periodic: bool,
    /// Serve GET /metrics (this worker's job counters and duration histogram, and the queue
    /// gauges) and GET /healthz on this address. Off unless given; `--metrics-listen` alone
    /// listens on 127.0.0.1:9091. Anything but loopback needs PORTER_ADMIN_TOKEN, and then a
    /// scrape needs `Authorization: Bearer TOKEN`.
    #[arg(
        long,
        value_name = "ADDR",
        num_args = 0..=1,
        default_missing_value = DEFAULT_METRICS_LISTEN,
        value_parser = parse_listen
    )]
    metrics_listen: Option<SocketAddr>,
    /// Fallback poll interval when no wake-up comes (tests set it long to prove wake-ups).
    #[arg(long, default_value = "1s", value_name = "DURATION", value_parser = parse_duration, hide = true)]
    poll_interval: Duration,
}

impl WorkerArgs {
    fn runtime_config(&self) -> crate::Result<RuntimeConfig> {
        for (what, every) in [
            ("heartbeat-every", self.heartbeat_every),
            ("orphan-cleanup-every", self.orphan_cleanup_every),
        ] {
            if every < Duration::from_secs(1) {
                return Err(Error::invalid(what, "must be at least 1s"));
            }
            // Longer is "never" to porter, which uses no duration past 1,000 years.
            if every > crate::store::MAX_DURATION {
                return Err(Error::invalid(what, "must be at most 1000 years"));
            }
        }
        let periodic = if self.no_periodic {
            Vec::new()
        } else {
            builtin_periodic(self.heartbeat_every, self.orphan_cleanup_every)
        };
        let config = RuntimeConfig {
            queues: self.queues.0.clone(),
            shutdown_timeout: self.shutdown_timeout,
            lease: self.lease,
            poll_interval: self.poll_interval,
            periodic,
            ..RuntimeConfig::default()
        };
        // What Runtime::run refuses (the lease, the poll interval), refused before anything opens.
        config.check()?;
        Ok(config)
    }
}

/// `porter web` flags.
#[derive(Debug, Clone, Args)]
pub struct WebArgs {
    /// Address to listen on. Anything but loopback needs PORTER_ADMIN_TOKEN.
    #[arg(long, env = "PORTER_LISTEN", default_value = http::DEFAULT_LISTEN, value_parser = parse_listen)]
    listen: SocketAddr,
    /// Accept POST /admin/jobs for kinds no built-in worker runs (your own workers' kinds).
    #[arg(long)]
    allow_unknown_kind: bool,
    /// More Host names to serve on a loopback address, comma-separated (a name of your own
    /// that points at this machine); any port.
    #[arg(
        long,
        env = "PORTER_ALLOWED_HOSTS",
        value_name = "HOST[,HOST]",
        value_delimiter = ','
    )]
    allowed_hosts: Vec<String>,
}

/// `porter dev` flags: the web's and the worker's.
#[derive(Debug, Clone, Args)]
pub struct DevArgs {
    #[command(flatten)]
    web: WebArgs,
    #[command(flatten)]
    worker: WorkerArgs,
}

/// `porter cleanup-orphans` flags.
#[derive(Debug, Clone, Args)]
pub struct CleanupArgs {
    /// Count what would be deleted; delete nothing.
    #[arg(long)]
    dry_run: bool,
    /// Print the counts as JSON: {"dry_run","orphans_seen","objects_deleted","rows_deleted","failures"}.
    #[arg(long)]
    json: bool,
}

/// Turns SIGINT/SIGTERM into the two-stage shutdown: the first signal cancels `soft`, a
/// second one `hard`. The handlers are installed before this returns, so a signal that comes
/// right after is not lost.
fn on_signals(shutdown: Shutdown) -> anyhow::Result<()> {
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    tokio::spawn(async move {
        tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
        shutdown.soft.cancel();
        tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
        info!("second signal: cancelling running jobs now");
        shutdown.hard.cancel();
    });
    Ok(())
}

/// The admin token, if set. One that is not UTF-8 is a usage error: read as no token (until 7
/// Dec), it left the admin API open on loopback while the operator had set one.
fn admin_token() -> anyhow::Result<Option<String>> {
    match std::env::var("PORTER_ADMIN_TOKEN") {
        Ok(token) => Ok(Some(token).filter(|t| !t.is_empty())),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => usage(Err(Error::invalid(
            "PORTER_ADMIN_TOKEN",
            "is not valid UTF-8, which no request can send; choose another",
        ))),
    }
}

/// Checks the address and token, binds, and returns the listener.
async fn bind(args: &WebArgs) -> anyhow::Result<(tokio::net::TcpListener, HttpConfig)> {
    let token = admin_token()?;
    usage(http::check_listen(args.listen, token.as_deref()))?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let mut config = HttpConfig {
        admin_token: token,
        loopback_hosts_only: args.listen.ip().is_loopback(),
        allowed_hosts: usage(http::check_allowed_hosts(&args.allowed_hosts))?,
        ..HttpConfig::default()
    };
    if args.allow_unknown_kind {
        config.known_kinds = None;
    }
    Ok((listener, config))
}

fn log_listening(listener: &tokio::net::TcpListener, config: &HttpConfig) {
    let address = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    info!(%address, admin_token = config.admin_token.is_some(), "web listening on http://{address}/");
}

/// Opens the database for a long-running command: while a database server does not answer
/// (not up yet, restarting), logs why and keeps trying (see [`crate::store::open_retrying`])
/// instead of exiting, so that a worker started before its database, or beside it, starts by
/// itself. `None` when a signal came first. Other errors (a bad URL, a database newer than
/// this binary, any SQLite error) end the command at once, as for every other command.
async fn open_store_waiting(
    g: &GlobalArgs,
    shutdown: &Shutdown,
) -> anyhow::Result<Option<Arc<Store>>> {
    g.check_url()?;
    let stop = shutdown.soft.clone();
    // Long-running: a SQLite write lock held by a stopped process is waited out, like a server.
    let options = crate::store::OpenOptions {
        wait_for_locks: true,
        ..g.open_options()
    };
    let created = super::new_sqlite_file(&g.database_url);
    let store = crate::store::open_retrying_with(&g.database_url, &options, async move {
        stop.cancelled().await
    })
    .await?;
    super::say_created(created);
    let store = match store {
        // The tablo app's tables too: the binary serves the app. That write may wait for the
        // database (SQLite's write lock held elsewhere): a signal meanwhile stops the process.
        Some(store) => tokio::select! {
            migrated = crate::app::store::migrate(store.as_ref()) => {
                migrated?;
                Some(store)
            }
            _ = shutdown.soft.cancelled() => None,
        },
        None => None,
    };
    if store.is_none() {
        info!("shutting down before the database answered");
        info!("shutdown complete");
    }
    Ok(store)
}

/// Watches for the database file being deleted or replaced under this process
/// ([`Store::file_replaced`]): then logs it loudly and shuts the process down, and the command
/// exits 1, for a supervisor to start it again on the file that is there now. Ends with the
/// shutdown; answers why it stopped the process, if it did.
fn watch_database_file(
    store: Arc<Store>,
    shutdown: Shutdown,
) -> tokio::task::JoinHandle<Option<String>> {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = shutdown.soft.cancelled() => return None,
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            if let Some(why) = store.file_replaced().await {
                tracing::error!("{why}; exiting");
                shutdown.soft.cancel();
                shutdown.hard.cancel();
                return Some(why);
            }
        }
    })
}

/// The command's end: an error when the database file was replaced under it.
async fn file_verdict(watch: tokio::task::JoinHandle<Option<String>>) -> anyhow::Result<()> {
    match watch.await {
        Ok(Some(why)) => anyhow::bail!("{why}"),
        _ => Ok(()),
    }
}

/// Binds the worker's metrics listener, when `--metrics-listen` asks for one.
async fn bind_metrics(
    args: &WorkerArgs,
) -> anyhow::Result<Option<(tokio::net::TcpListener, HttpConfig)>> {
    let Some(addr) = args.metrics_listen else {
        return Ok(None);
    };
    let token = admin_token()?;
    usage(http::check_listen(addr, token.as_deref()))?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen for metrics on {addr}"))?;
    let config = HttpConfig {
        admin_token: token,
        loopback_hosts_only: addr.ip().is_loopback(),
        ..HttpConfig::default()
    };
    Ok(Some((listener, config)))
}

/// Marks the web's object store as this database's, as it starts (see
/// [`crate::app::files::mark_object_store`]): the orphan cleanup, wherever it runs, deletes
/// nothing in a store without the mark. A store that cannot be marked now is marked by the
/// first upload.
/// Waits no longer than `shutdown`: the mark's write may wait for the database (SQLite's write
/// lock held elsewhere), and a signal meanwhile must still stop the process (review of 6 Dec).
async fn mark_object_store(state: &AppState, shutdown: &Shutdown) {
    let mark = crate::app::files::mark_object_store(state.tablos.as_ref(), state.objects.as_ref());
    tokio::select! {
        marked = mark => if let Err(e) = marked {
            warn!(error = %e, "could not mark the object store as this database's; the first upload tries again");
        },
        _ = shutdown.soft.cancelled() => {}
    }
}

pub(super) async fn worker(g: &GlobalArgs, args: WorkerArgs) -> anyhow::Result<()> {
    let config = usage(args.runtime_config())?;
    let metrics_listener = bind_metrics(&args).await?;
    let shutdown = Shutdown::new();
    on_signals(shutdown.clone())?;
    // Both URLs are read before anything is created (the objects directory, a SQLite file).
    g.check_url()?;
    let objects = open_objects(g)?;
    let Some(store) = open_store_waiting(g, &shutdown).await? else {
        return Ok(());
    };
    info!(database = %redact_url(&g.database_url), backend = %store.backend(), "starting worker");
    let workers = builtin_workers(store.clone(), objects.clone(), args.orphan_cleanup_every)?;
    let watch = watch_database_file(store.clone(), shutdown.clone());
    let mut runtime = Runtime::new(store.clone(), workers, config);
    let mut metrics_server = None;
    if let Some((listener, http_config)) = metrics_listener {
        let state = AppState::with_config(store, objects, http_config);
        runtime = runtime
            .with_events(state.metrics.clone())
            .with_error_handler(state.metrics.error_handler());
        let address = listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        info!(%address, "metrics listening on http://{address}/metrics");
        let stop = shutdown.soft.clone();
        let header_read_timeout = state.config.header_read_timeout;
        let drain = state.config.request_timeout;
        metrics_server = Some(tokio::spawn(http::serve_router(
            listener,
            http::metrics_router(state),
            header_read_timeout,
            drain,
            async move { stop.cancelled().await },
        )));
    }
    let ran = runtime.run(shutdown.clone()).await;
    shutdown.soft.cancel();
    if let Some(server) = metrics_server {
        server.await.context("the metrics server failed")??;
    }
    file_verdict(watch).await?;
    ran?;
    Ok(())
}

pub(super) async fn web(g: &GlobalArgs, args: WebArgs) -> anyhow::Result<()> {
    let (listener, config) = bind(&args).await?;
    let shutdown = Shutdown::new();
    on_signals(shutdown.clone())?;
    // Both URLs are read before anything is created (the objects directory, a SQLite file).
    g.check_url()?;
    let objects = open_objects(g)?;
    let Some(store) = open_store_waiting(g, &shutdown).await? else {
        return Ok(());
    };
    info!(database = %redact_url(&g.database_url), backend = %store.backend(), "starting web");
    log_listening(&listener, &config);
    let watch = watch_database_file(store.clone(), shutdown.clone());
    let state = AppState::with_config(store, objects, config);
    mark_object_store(&state, &shutdown).await;
    let stop = shutdown.soft.clone();
    let served = http::serve(listener, state, async move { stop.cancelled().await }).await;
    shutdown.soft.cancel();
    file_verdict(watch).await?;
    served?;
    info!("web stopped");
    Ok(())
}

pub(super) async fn dev(g: &GlobalArgs, args: DevArgs) -> anyhow::Result<()> {
    if args.worker.metrics_listen.is_some() {
        return usage(Err(Error::invalid(
            "metrics-listen",
            "porter dev serves /metrics on its web address (--listen); --metrics-listen is for porter worker",
        )));
    }
    let runtime_config = usage(args.worker.runtime_config())?;
    let (listener, mut config) = bind(&args.web).await?;
    // The dashboard's periodic page shows the next slot of the schedules this process runs.
    config.periodic = runtime_config.periodic.clone();
    let shutdown = Shutdown::new();
    on_signals(shutdown.clone())?;
    // Both URLs are read before anything is created (the objects directory, a SQLite file).
    g.check_url()?;
    let objects = open_objects(g)?;
    let Some(store) = open_store_waiting(g, &shutdown).await? else {
        return Ok(());
    };
    info!(database = %redact_url(&g.database_url), backend = %store.backend(), "starting dev: web and worker in one process");
    let workers = builtin_workers(
        store.clone(),
        objects.clone(),
        args.worker.orphan_cleanup_every,
    )?;
    let state = AppState::with_config(store.clone(), objects, config);
    mark_object_store(&state, &shutdown).await;
    let watch = watch_database_file(store.clone(), shutdown.clone());
    let runtime = Runtime::new(store, workers, runtime_config)
        .with_events(state.metrics.clone())
        .with_error_handler(state.metrics.error_handler());
    let (worker_shutdown, web_stop) = (shutdown.clone(), shutdown.soft.clone());
    let worker = tokio::spawn(async move {
        let ran = runtime.run(worker_shutdown).await;
        // A worker that stopped on its own (one of its tasks panicked) stops the web server
        // too: the process exits with its error rather than serve on without a worker.
        web_stop.cancel();
        ran
    });
    log_listening(&listener, &state.config);
    let stop = shutdown.soft.clone();
    let served = http::serve(listener, state, async move { stop.cancelled().await }).await;
    // If the web server failed on its own, the worker must stop too.
    shutdown.soft.cancel();
    let worked = worker.await.context("the worker task failed")?;
    file_verdict(watch).await?;
    served?;
    worked?;
    Ok(())
}

pub(super) async fn cleanup_orphans(g: &GlobalArgs, args: CleanupArgs) -> anyhow::Result<()> {
    // Both URLs are read before anything is created (the objects directory, a SQLite file).
    g.check_url()?;
    // A store in this process's memory is empty: every orphan's object would count as gone,
    // and its row would go while the object stays wherever the web keeps it, named by nothing.
    if object_store_url(g).starts_with("memory:") {
        usage(Err(Error::invalid(
            "object store url",
            "cleanup-orphans cannot use memory://, which is empty in its own process; name the store the web uses (file://DIR or s3://BUCKET)",
        )))?;
    }
    let objects = open_objects(g)?;
    let store = open_store(g).await?;
    let config = CleanupConfig {
        dry_run: args.dry_run,
        ..CleanupConfig::default()
    };
    let tablos = crate::app::store::from_core(store);
    let counts = run_cleanup(tablos.as_ref(), objects.as_ref(), &config).await?;
    if args.json {
        output::print_json(&serde_json::json!({
            "dry_run": args.dry_run,
            "orphans_seen": counts.orphans_seen,
            "objects_deleted": counts.objects_deleted,
            "rows_deleted": counts.rows_deleted,
            "failures": counts.failures,
        }))?;
    } else if args.dry_run {
        output::print(&format!(
            "dry run: {} orphan files; would delete {} objects and {} rows; {} keys refused\n",
            counts.orphans_seen, counts.objects_deleted, counts.rows_deleted, counts.failures
        ))?;
    } else {
        output::print(&format!("{counts}\n"))?;
    }
    if counts.failures > 0 {
        anyhow::bail!(
            "{} orphan files could not be cleaned up (see the log); run again to retry them",
            counts.failures
        );
    }
    Ok(())
}
