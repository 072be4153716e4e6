//! The web process (`porter web`, `porter dev`): the application's tablo routes, the admin
//! JSON API, `/healthz`, `/metrics` and the dashboard, as one axum [`Router`].
//!
//! [`router`] builds the whole app from an [`AppState`], so tests drive it with
//! `tower::ServiceExt::oneshot` without a socket; [`serve`] runs it on a listener until a
//! shutdown future resolves.
//!
//! # Routes
//! | route | answer |
//! |---|---|
//! | `GET /healthz` | 200 `{"status":"ok"}` when the database answers, 503 otherwise |
//! | `GET /metrics` | Prometheus text ([`Metrics`]) |
//! | `POST /api/tablos` `{"name"}` | 201 `{"id"}` |
//! | `POST /api/tablos/{id}/files` (body = the file, header `x-file-name`) | 201 `{"id","s3_key","size"}` |
//! | `GET /api/tablos/{id}/files` | 200 `[file, ...]` |
//! | `DELETE /api/tablos/{id}` | 202 `{"job_id"}`: the row delete and its `orphan_file_cleanup` job in one transaction |
//! | `POST /admin/jobs` `{kind,args,queue?,priority?,max_attempts?,scheduled_at?,unique_key?}` | 201 `{"id","inserted"}`, plus `"warning"` when no live worker serves the job's queue and kind |
//! | `GET /admin/jobs?state=&kind=&queue=&limit=&before_id=` | 200 `{"jobs":[..],"next_before_id"}` (`state` repeated or comma-separated; bounded in bytes, see [`listing`]) |
//! | `GET /admin/jobs/{id}`, `POST /admin/jobs/{id}/retry`, `POST /admin/jobs/{id}/cancel` | 200 the job (a cancelled running job is still `running`, with `metadata.cancel_requested_at`, until its worker stops it) |
//! | `GET /admin/jobs/{id}/children?after_id=&limit=`, `.../parents` | 200 `{"children":[..],"next_after_id"}` (or `parents`): the job's links by id, a page at a time |
//! | `GET /admin/failed?limit=&before_id=` | 200 `{"jobs":[..],"next_before_id"}`: discarded jobs, newest first |
//! | `GET /admin/stats` | 200, the shape of `porter stats --json`: `{"total","queues","unserved"}` (at most 1,000 queues named; `queues_left_out` and `unserved_left_out` past that) |
//! | `GET /admin/queues?limit=&after=`, `POST /admin/queues/{name}/pause`, `.../resume` | 200 `{"queues":[..],"next_after"}` by name, `{"queue","paused"}` |
//! | `GET /` | the dashboard's overview ([`dashboard`]) |
//! | `GET /dashboard/jobs`, `/dashboard/jobs/{id}`, `/dashboard/jobs/bulk`, `/dashboard/queues`, `/dashboard/workers`, `/dashboard/periodic` | the dashboard's pages (HTML) |
//! | `POST /dashboard/jobs/{id}/retry\|cancel`, `/dashboard/jobs/bulk`, `/dashboard/queues/{name}/pause\|resume` | the dashboard's buttons: 303 back to their page |
//!
//! # Errors
//! Every error is `{"error": "..."}` with one status, decided in one place ([`AppError`]):
//!
//! * **400** the request cannot be read: malformed JSON, a path id that is not a number or a
//!   UUID, a path segment that is not UTF-8 once decoded, a malformed query string;
//! * **401** `/admin/*`, `/metrics`, the dashboard or one of its actions without the admin
//!   token (when one is set);
//! * **403** a request a foreign browser page sent: a state change from another origin, or a
//!   `Host` that a loopback listener does not serve ([`guard`](self#security));
//! * **404** no such job, tablo or route;
//! * **405** a method the route does not answer (with `Allow`);
//! * **408** a request that took longer than [`HttpConfig::request_timeout`] before it began
//!   a write (one that began a write is answered once the write ended, with what it did);
//! * **409** the job's state forbids it (retrying a running job, cancelling a finished one);
//! * **413** a body over the limit ([`HttpConfig::max_json_bytes`], [`HttpConfig::max_file_bytes`]);
//! * **415** a JSON body without `Content-Type: application/json`;
//! * **422** the request reads fine but a value is refused: an unknown kind, a bad queue name or
//!   kind (`^[a-z0-9_.-]{1,64}$`), a priority outside 1..4, a JSON field of the wrong type or an
//!   unknown field. Every [`crate::Error::Invalid`] is a 422;
//! * **503** the database does not answer; **500** anything else (logged, details withheld).
//!
//! # Security
//! [`check_listen`] refuses a non-loopback address unless an admin token is set. With a token,
//! `/admin/*` and `/metrics` need `Authorization: Bearer TOKEN`, and the dashboard needs it
//! to be read as well as to act (see [`dashboard`] for how a browser supplies it); tokens are
//! compared in constant time. `/healthz` and the login page stay open.
//!
//! Without a token, a browser page of another site can neither act nor read: state-changing
//! requests from a foreign origin are refused (403), JSON bodies need
//! `Content-Type: application/json` (415), and on a loopback address only loopback `Host`
//! names (plus [`HttpConfig::allowed_hosts`]) are served (403), against DNS rebinding. These
//! checks run for every route, token or not.
//!
//! Bodies are limited, requests time out ([`HttpConfig::request_timeout`]), listings are
//! bounded in bytes ([`HttpConfig::max_list_bytes`]), and job args are never logged.

mod admin;
mod auth;

/// Whether `c` is a mark that reorders the text shown around it: the bidirectional embeddings,
/// overrides and isolates (U+202A..U+202E, U+2066..U+2069: `\u{202e}evil.exe` shown as
/// `exe.live`) and the directional marks (U+200E, U+200F, U+061C). The CLI, the dashboard's
/// text and the workflow graph's labels show none of them as they are.
pub fn reorders_text(c: char) -> bool {
    matches!(
        c,
        '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}' | '\u{61c}'
    )
}

/// An invisible character that formats text (Unicode's category Cf, the marks
/// [`reorders_text`] names among them): zero-width spaces and joiners, the byte order mark,
/// the soft hyphen, tag characters. Printed as it is, `default\u{200b}` reads as `default`:
/// the command line writes them out, as it writes control characters.
pub fn invisible(c: char) -> bool {
    use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};
    c.general_category() == GeneralCategory::Format
}

pub mod dashboard;
mod error;
mod guard;
pub mod listing;
mod metrics;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use object_store::ObjectStore;
use tower_http::timeout::TimeoutLayer;

use crate::app::store::TabloStore;
use crate::client::Client;
use crate::error::{Error, Result};
use crate::store::Store;

pub use error::AppError;
pub use metrics::{Metrics, METRICS_PAIRS, METRICS_QUEUES};

/// Default listen address: loopback only.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Default largest JSON body (admin and API requests).
pub const DEFAULT_MAX_JSON_BYTES: usize = 256 * 1024;
/// Default largest uploaded file.
pub const DEFAULT_MAX_FILE_BYTES: usize = 64 * 1024 * 1024;
/// Default memory for upload bodies being read or saved, all requests together: 256 MiB.
pub const DEFAULT_MAX_UPLOAD_BUFFER_BYTES: usize = 256 * 1024 * 1024;
/// Default byte budget of one listing page (`GET /admin/jobs`, `/admin/failed`): 4 MiB.
pub const DEFAULT_MAX_LIST_BYTES: usize = listing::LIST_BYTES_BUDGET;
/// Default time a request may take before it is answered 408.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How the web process behaves.
#[derive(Clone)]
pub struct HttpConfig {
    /// The admin token (`PORTER_ADMIN_TOKEN`): when set, `/admin/*` and the dashboard's actions
    /// need it. Never logged (the `Debug` output hides it).
    pub admin_token: Option<String>,
    /// The kinds `POST /admin/jobs` accepts (the kinds some worker runs); `None` accepts any
    /// well-formed kind. Default: the built-in kinds.
    pub known_kinds: Option<BTreeSet<String>>,
    /// Largest JSON request body (default 256 KiB).
    pub max_json_bytes: usize,
    /// Largest uploaded file (default 64 MiB).
    pub max_file_bytes: usize,
    /// Most bytes of upload bodies held at once, all requests together (default 256 MiB, and
    /// never less than [`HttpConfig::max_file_bytes`]): an upload whose next bytes would go
    /// over it is answered 503 at once. Counted as bytes arrive, so a slow upload holds only
    /// what it has sent.
    pub max_upload_buffer_bytes: usize,
    /// How long one request may take (default 30 s), uploads included.
    pub request_timeout: Duration,
    /// How long a client may take to send a request's headers, and a kept-alive connection may
    /// stay idle before its next request (default 15 s): the connection is closed after that.
    /// The request timeout starts only once the headers are in, so without this a client that
    /// sent a few header bytes now and then held its connection (and file descriptor) forever.
    pub header_read_timeout: Duration,
    /// How often the dashboard reloads itself (default 5 s).
    pub dashboard_refresh: Duration,
    /// Serve only loopback `Host` names (and [`HttpConfig::allowed_hosts`]): on when the
    /// listen address is loopback (the default), against DNS rebinding.
    pub loopback_hosts_only: bool,
    /// More `Host` names to serve on a loopback address (`PORTER_ALLOWED_HOSTS`,
    /// `--allowed-hosts`), for a name that points at this machine; any port.
    pub allowed_hosts: Vec<String>,
    /// Byte budget of one listing page (default 4 MiB, see [`listing`]).
    pub max_list_bytes: usize,
    /// The periodic schedules the workers run, for the dashboard's next slots (schedules live
    /// in the workers' code; the database keeps only their last slot). Default: the built-in
    /// schedules with `porter worker`'s default intervals; `porter dev` gives its own.
    pub periodic: Vec<crate::maintenance::PeriodicJob>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            admin_token: None,
            known_kinds: Some(
                crate::app::builtin::BUILTIN_KINDS
                    .iter()
                    .map(|k| k.to_string())
                    .collect(),
            ),
            max_json_bytes: DEFAULT_MAX_JSON_BYTES,
            max_file_bytes: DEFAULT_MAX_FILE_BYTES,
            max_upload_buffer_bytes: DEFAULT_MAX_UPLOAD_BUFFER_BYTES,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            dashboard_refresh: Duration::from_secs(5),
            loopback_hosts_only: true,
            allowed_hosts: Vec::new(),
            max_list_bytes: DEFAULT_MAX_LIST_BYTES,
            periodic: crate::app::builtin::builtin_periodic(
                Duration::from_secs(60),
                Duration::from_secs(3600),
            ),
        }
    }
}

impl std::fmt::Debug for HttpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpConfig")
            .field("admin_token", &self.admin_token.as_ref().map(|_| "***"))
            .field("known_kinds", &self.known_kinds)
            .field("max_json_bytes", &self.max_json_bytes)
            .field("max_file_bytes", &self.max_file_bytes)
            .field("max_upload_buffer_bytes", &self.max_upload_buffer_bytes)
            .field("request_timeout", &self.request_timeout)
            .field("header_read_timeout", &self.header_read_timeout)
            .field("dashboard_refresh", &self.dashboard_refresh)
            .field("loopback_hosts_only", &self.loopback_hosts_only)
            .field("allowed_hosts", &self.allowed_hosts)
            .field("max_list_bytes", &self.max_list_bytes)
            .field(
                "periodic",
                &self.periodic.iter().map(|p| &p.name).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// What every handler shares. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The tablo app's tables, in the same database.
    pub tablos: Arc<dyn TabloStore>,
    /// The queue's operations, for the admin API, the dashboard and the metrics.
    pub client: Client,
    /// Where tablos' files are stored.
    pub objects: Arc<dyn ObjectStore>,
    /// Settings.
    pub config: Arc<HttpConfig>,
    /// This process's metrics (shared with an in-process worker in `porter dev`).
    pub metrics: Arc<Metrics>,
    /// The queue depth the dashboard sampled, for its chart ([`dashboard::chart`]).
    pub depth: Arc<dashboard::chart::DepthSamples>,
    /// The tablo app's upload memory ([`crate::app::api::Tablos::uploads`]).
    pub uploads: Arc<tokio::sync::Semaphore>,
    /// The words of the dashboard's actions refused lately ([`dashboard::Refusals`]).
    pub refusals: Arc<dashboard::Refusals>,
}

impl AppState {
    /// State with the default [`HttpConfig`] and fresh metrics.
    pub fn new(store: Arc<Store>, objects: Arc<dyn ObjectStore>) -> Self {
        Self::with_config(store, objects, HttpConfig::default())
    }

    /// State with a given config and fresh metrics.
    pub fn with_config(
        store: Arc<Store>,
        objects: Arc<dyn ObjectStore>,
        config: HttpConfig,
    ) -> Self {
        let uploads = crate::app::api::Tablos::upload_memory(
            config.max_upload_buffer_bytes.max(config.max_file_bytes),
        );
        AppState {
            tablos: crate::app::store::from_core(store.clone()),
            client: Client::new(store),
            objects,
            config: Arc::new(config),
            metrics: Arc::new(Metrics::new()),
            depth: Arc::new(dashboard::chart::DepthSamples::default()),
            uploads,
            refusals: Arc::default(),
        }
    }
}

/// The tablo app's routes take their part of the state: its tables, its objects, and this
/// process's metrics for the jobs they insert.
impl axum::extract::FromRef<AppState> for crate::app::api::Tablos {
    fn from_ref(state: &AppState) -> Self {
        let metrics = state.metrics.clone();
        crate::app::api::Tablos {
            store: state.tablos.clone(),
            objects: state.objects.clone(),
            on_insert: Some(Arc::new(move |r: &crate::store::InsertResult| {
                metrics.inserted(&r.job.queue, &r.job.kind, r.inserted)
            })),
            uploads: state.uploads.clone(),
        }
    }
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("backend", &self.client.backend())
            .field("objects", &self.objects.to_string())
            .field("config", &self.config)
            .finish()
    }
}

/// The whole web app: API, admin API, health, metrics and dashboard.
pub fn router(state: AppState) -> Router {
    let config = state.config.clone();
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics::scrape))
        .merge(crate::app::api::routes::<AppState, AppError>(
            config.max_file_bytes,
        ))
        .nest("/admin", admin::routes(state.clone()))
        .merge(dashboard::routes())
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(config.max_json_bytes))
        .layer(axum::middleware::from_fn_with_state(
            error::BodyLimits {
                json: config.max_json_bytes,
                file: config.max_file_bytes,
            },
            error::name_the_body_limit,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            guard::guard,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::count_responses,
        ))
        .layer(axum::middleware::from_fn_with_state(
            config.request_timeout,
            request_timeout,
        ))
        .with_state(state);
    around_everything(app, config.request_timeout)
}

/// Answers 408 to a request still running after `timeout`, unless it has begun a write
/// ([`crate::store::watch`]): cut short then, the write would still land (a PostgreSQL
/// statement runs to its end; SQLite's writer may already hold it) after the client was told
/// the request failed, and a client that sends it again inserts the job twice (review of 6
/// Dec: 408, then the job, then the retry's job). Such a request is answered once its write
/// has ended, with what it did, however long the database made it wait.
async fn request_timeout(
    axum::extract::State(timeout): axum::extract::State<std::time::Duration>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let watch = crate::store::watch::WriteWatch::new();
    let run = crate::store::watch::watch_writes(watch.clone(), next.run(request));
    tokio::pin!(run);
    tokio::select! {
        response = &mut run => response,
        _ = tokio::time::sleep(timeout) => {
            // Settled once with the writes: a task the request spawned begins none after this.
            if watch.time_out() {
                axum::response::IntoResponse::into_response(StatusCode::REQUEST_TIMEOUT)
            } else {
                run.await
            }
        }
    }
}

/// `app` behind [`error::bodiless_errors_as_json`] and [`guard::safe_headers`], as one
/// service: a `Router::layer` wraps each route's handlers one by one, inside the router that
/// adds a 405's `Allow` header, so the 405's message could not name the methods the header
/// names; and outside the timeout, so that its 408 carries the headers every answer does.
fn around_everything(app: Router, timeout: std::time::Duration) -> Router {
    Router::new()
        .fallback_service(app)
        .layer(axum::middleware::from_fn_with_state(
            timeout,
            error::bodiless_errors_as_json,
        ))
        .layer(axum::middleware::map_response(guard::safe_headers))
}

/// A worker's own listener (`porter worker --metrics-listen`): `GET /metrics` and
/// `GET /healthz` only, behind the same host guard and admin token as the web process.
pub fn metrics_router(state: AppState) -> Router {
    let config = state.config.clone();
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics::scrape))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            guard::guard,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::count_responses,
        ))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            config.request_timeout,
        ))
        .with_state(state);
    around_everything(app, config.request_timeout)
}

async fn healthz(
    axum::extract::State(state): axum::extract::State<AppState>,
) -> Result<axum::Json<serde_json::Value>, AppError> {
    state.client.ping().await?;
    Ok(axum::Json(serde_json::json!({"status": "ok"})))
}

async fn not_found() -> AppError {
    AppError::new(StatusCode::NOT_FOUND, "no such route")
}

/// Refuses to listen beyond loopback without an admin token: the admin API would be open to
/// the network.
pub fn check_listen(addr: SocketAddr, admin_token: Option<&str>) -> Result<()> {
    if let Some(token) = admin_token {
        if token.trim() != token || token.is_empty() {
            // The `Authorization` header's value is trimmed: such a token could never be sent.
            return Err(Error::invalid(
                "PORTER_ADMIN_TOKEN",
                "has spaces (or only spaces) around it, which no request can send; remove them",
            ));
        }
        if !token.chars().all(|c| (' '..='~').contains(&c)) {
            // A header value porter reads is visible ASCII and spaces: every request would be
            // refused (until 7 Dec such a token was taken, and /admin/* was 401 for good).
            return Err(Error::invalid(
                "PORTER_ADMIN_TOKEN",
                "holds characters other than visible ASCII and spaces, which no request can send; choose another",
            ));
        }
    }
    if addr.ip().is_loopback() || admin_token.is_some_and(|t| !t.is_empty()) {
        Ok(())
    } else {
        Err(Error::invalid(
            "listen address",
            format!(
                "{addr} is not a loopback address; set PORTER_ADMIN_TOKEN to protect /admin/* and the dashboard's actions, or listen on 127.0.0.1"
            ),
        ))
    }
}

/// Checks the `--allowed-hosts` entries: each names a host (`name`, `name:port`, an IP
/// address, `[v6]`), and none is empty. `:8080` named none and matched a `Host: :8080`, and
/// `app.test,,` read as a list with empty entries. Answers the entries trimmed.
pub fn check_allowed_hosts(entries: &[String]) -> Result<Vec<String>> {
    entries
        .iter()
        .map(|entry| {
            let entry = entry.trim();
            if guard::names_a_host(entry) {
                Ok(entry.to_string())
            } else {
                Err(Error::invalid(
                    "allowed host",
                    format!("{entry:?} names no host (give NAME or NAME:PORT, comma-separated, no empty entries)"),
                ))
            }
        })
        .collect()
}

/// Serves the app on `listener` until `shutdown` resolves, then finishes the requests in
/// flight and returns.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let header_read_timeout = state.config.header_read_timeout;
    let drain = state.config.request_timeout;
    serve_router(
        listener,
        router(state),
        header_read_timeout,
        drain,
        shutdown,
    )
    .await
}

/// Serves a router ([`router`] or [`metrics_router`]) on `listener` until `shutdown` resolves,
/// then waits for the requests under way, at most `drain` (the request timeout): a request
/// whose write waits for a lock held elsewhere is not cut by the request timeout, and held
/// the shutdown for as long (review of 6 Dec). Past `drain` the server returns, and the
/// process exits with such requests cut, their outcome unknown to their clients. A connection
/// whose client does not send a request's headers within `header_read_timeout` (or stays idle
/// that long between requests) is closed
/// (until 6 Dec, served by `axum::serve`, such a connection stayed open for good: a few hundred
/// of them took every file descriptor of the process, and `/healthz` failed, review of 6 Dec).
pub async fn serve_router(
    listener: tokio::net::TcpListener,
    app: Router,
    header_read_timeout: Duration,
    drain: Duration,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use hyper_util::server::conn::auto::Builder;
    use hyper_util::service::TowerToHyperService;

    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                // Out of file descriptors, say: wait a moment rather than spin.
                Err(e) => {
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(app.clone());
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            // A client gone, a header timeout: the connection's own business.
            let _ = connection.await;
        });
    }
    drop(listener);
    if tokio::time::timeout(drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            drain = ?drain,
            "requests still under way at shutdown (writes waiting for the database?) are cut: their clients do not learn whether they took effect"
        );
    }
    Ok(())
}

/// Default of [`HttpConfig::header_read_timeout`].
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(15);
