//! `/metrics` in the Prometheus (OpenMetrics) text format, with the `prometheus-client` crate.
//! With `PORTER_ADMIN_TOKEN` set, a scrape needs `Authorization: Bearer TOKEN` (Prometheus:
//! `authorization: { credentials: ... }`), since the labels name the kinds and queues in use.
//!
//! | metric | type | labels | what |
//! |---|---|---|---|
//! | `porter_jobs` | gauge | `queue`, `state` | jobs in the database, read at each scrape |
//! | `porter_jobs_inserted_total` | counter | `queue`, `kind` | jobs inserted through this process's web API |
//! | `porter_job_errors_total` | counter | `queue`, `kind` | failed attempts (errors, panics, timeouts) of jobs run by this process (`porter dev`) |
//! | `porter_http_errors_total` | counter | `status` | error answers (4xx, 5xx) of this process |
//! | `porter_queue_depth` | gauge | `queue` | jobs due to run (available, or scheduled/retryable and due), read at each scrape |
//! | `porter_queue_lag_seconds` | gauge | `queue` | how long the oldest due job has waited (0 when none), read at each scrape |
//! | `porter_jobs_completed_total` | counter | `queue`, `kind` | attempts of this process's runtime that completed |
//! | `porter_jobs_failed_total` | counter | `queue`, `kind` | attempts that failed and will be retried (`retryable`) |
//! | `porter_jobs_discarded_total` | counter | `queue`, `kind` | attempts that failed for good (`discarded`) |
//! | `porter_jobs_cancelled_total` | counter | `queue`, `kind` | attempts cancelled (by the job, or by a user while it ran; also when this process's rescuer ends a job a user asked to cancel) |
//! | `porter_jobs_rescued_total` | counter | `queue`, `kind` | jobs this process's rescuer took back from lost workers or as stuck |
//! | `porter_job_duration_seconds` | histogram | `queue`, `kind` | how long attempts ran, from start to outcome (every outcome) |
//! | `porter_jobs_unserved` | gauge | `queue`, `kind` | jobs due to run (available, or scheduled/retryable and due) that no live worker serves: none registered that queue and kind, or those that did stopped heartbeating within their lease; read at each scrape; only pairs that have any |
//! | `porter_database_up` | gauge | | 1 when the scrape's reads of the database answered; 0 when they failed, and the gauges read at each scrape are then left out (this process's counters are still answered) |
//! | `porter_jobs_waiting_for_limit` | gauge | `queue` | available due jobs of a queue with limits that a claim would not take now because of a limit (`porter queues limit`), read at each scrape; only queues with limits that are not paused |
//! | `porter_metrics_queues_left_out` | gauge | | queues past the first [`METRICS_QUEUES`] by name, which the gauges read at each scrape leave out |
//!
//! Any caller of `POST /admin/jobs` can name a new queue with each job, so the series are
//! bounded: the gauges read from the database name the first [`METRICS_QUEUES`] queues by name
//! (as `GET /admin/stats` does), and the counters and the histogram keep the first
//! [`METRICS_PAIRS`] queue and kind pairs this process saw and add up the others under
//! `queue="(other)",kind="(other)"` (a name porter never gives a queue or a kind). Until 7 Dec
//! every name made series of its own, for good in the counters: 55,000 queues made a 60 MB
//! scrape of 400,000 series.
//!
//! The job counters and the histogram count what the runtime *in this process* did: they are
//! served by `porter dev`, and by `porter worker --metrics-listen` in the split setup (`porter
//! web` runs no jobs, so there they stay absent). The gauges read the database, so any process
//! reports them alike. Counters start at zero with each process: alert on `rate()`/`increase()`.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use super::{AppError, AppState};
use crate::events::{AttemptEnd, AttemptEnded, JobEvents};
use crate::job::JobRow;
use crate::runtime::{ErrorHandler, LogErrors};
use crate::store::RescuedJob;

/// A label value as Prometheus's text format needs it: backslash, double quote and newline
/// escaped. The encoder writes values as they are, and queue and kind names come from the
/// database, where another program's plain INSERT may put anything: unescaped, a name could
/// end its label and forge series, or make the whole scrape unparsable.
fn label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    queue: String,
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueueLabels {
    queue: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    queue: String,
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    status: String,
}

/// Queues the gauges read at each scrape name, the first by name (see the module docs).
pub const METRICS_QUEUES: usize = super::admin::STATS_QUEUES;

/// Queue and kind pairs the counters and the histogram name (see the module docs).
pub const METRICS_PAIRS: usize = 1000;

/// The labels the pairs past [`METRICS_PAIRS`] are counted under.
fn other_pair() -> KindLabels {
    KindLabels {
        queue: "(other)".to_string(),
        kind: "(other)".to_string(),
    }
}

/// This process's metrics. See the module docs for the list.
pub struct Metrics {
    registry: Registry,
    jobs: Family<StateLabels, Gauge>,
    inserted: Family<KindLabels, Counter>,
    job_errors: Family<KindLabels, Counter>,
    http_errors: Family<StatusLabels, Counter>,
    depth: Family<QueueLabels, Gauge>,
    lag: Family<QueueLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    completed: Family<KindLabels, Counter>,
    failed: Family<KindLabels, Counter>,
    discarded: Family<KindLabels, Counter>,
    cancelled: Family<KindLabels, Counter>,
    rescued: Family<KindLabels, Counter>,
    duration: Family<KindLabels, Histogram>,
    waiting_for_limit: Family<QueueLabels, Gauge>,
    unserved: Family<KindLabels, Gauge>,
    database_up: Gauge,
    queues_left_out: Gauge,
    /// The queue and kind pairs the counters name, at most [`METRICS_PAIRS`].
    pairs: std::sync::Mutex<std::collections::HashSet<KindLabels>>,
    /// One scrape at a time: a scrape clears and refills the job gauges.
    scrape: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Fresh metrics, every counter at zero.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let jobs = Family::<StateLabels, Gauge>::default();
        let inserted = Family::<KindLabels, Counter>::default();
        let job_errors = Family::<KindLabels, Counter>::default();
        let http_errors = Family::<StatusLabels, Counter>::default();
        let waiting_for_limit = Family::<QueueLabels, Gauge>::default();
        registry.register(
            "porter_jobs",
            "Jobs in the database by queue and state, read at scrape",
            jobs.clone(),
        );
        registry.register(
            "porter_jobs_inserted",
            "Jobs inserted through this process's web API",
            inserted.clone(),
        );
        registry.register(
            "porter_job_errors",
            "Failed attempts of jobs run by this process",
            job_errors.clone(),
        );
        registry.register(
            "porter_http_errors",
            "Error answers of this process's web server",
            http_errors.clone(),
        );
        let depth = Family::<QueueLabels, Gauge>::default();
        registry.register(
            "porter_queue_depth",
            "Jobs due to run per queue (available, or scheduled/retryable and due), read at scrape",
            depth.clone(),
        );
        let lag = Family::<QueueLabels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
        registry.register(
            "porter_queue_lag_seconds",
            "Age of the oldest job due to run per queue (0 when none), read at scrape",
            lag.clone(),
        );
        let mut counter = |name: &str, help: &str| {
            let family = Family::<KindLabels, Counter>::default();
            registry.register(name, help, family.clone());
            family
        };
        let completed = counter(
            "porter_jobs_completed",
            "Attempts run by this process that completed",
        );
        let failed = counter(
            "porter_jobs_failed",
            "Attempts run by this process that failed and will be retried",
        );
        let discarded = counter(
            "porter_jobs_discarded",
            "Attempts run by this process that failed for good (discarded)",
        );
        let cancelled = counter(
            "porter_jobs_cancelled",
            "Attempts run by this process that were cancelled",
        );
        let rescued = counter(
            "porter_jobs_rescued",
            "Jobs this process's rescuer took back from lost workers or as stuck",
        );
        // 5 ms .. ~87 min (5 ms x 2^20), doubling.
        let duration = Family::<KindLabels, Histogram>::new_with_constructor(
            (|| Histogram::new(exponential_buckets(0.005, 2.0, 21))) as fn() -> Histogram,
        );
        registry.register(
            "porter_job_duration_seconds",
            "How long attempts run by this process took, start to outcome",
            duration.clone(),
        );
        registry.register(
            "porter_jobs_waiting_for_limit",
            "Available due jobs a queue limit holds back, per queue with limits, read at scrape",
            waiting_for_limit.clone(),
        );
        let unserved = Family::<KindLabels, Gauge>::default();
        registry.register(
            "porter_jobs_unserved",
            "Jobs due to run that no live worker serves, per queue and kind, read at scrape",
            unserved.clone(),
        );
        let database_up = Gauge::default();
        registry.register(
            "porter_database_up",
            "1 when this scrape's reads of the database answered, 0 when they failed (the gauges read at scrape are then left out)",
            database_up.clone(),
        );
        let queues_left_out = Gauge::default();
        registry.register(
            "porter_metrics_queues_left_out",
            "Queues past the first 1000 by name, which the gauges read at scrape leave out",
            queues_left_out.clone(),
        );
        Metrics {
            registry,
            database_up,
            queues_left_out,
            pairs: Default::default(),
            waiting_for_limit,
            unserved,
            jobs,
            inserted,
            job_errors,
            http_errors,
            depth,
            lag,
            completed,
            failed,
            discarded,
            cancelled,
            rescued,
            duration,
            scrape: tokio::sync::Mutex::new(()),
        }
    }

    /// The labels a counter names this queue and kind by: their own among the first
    /// [`METRICS_PAIRS`] pairs, else [`other_pair`].
    fn pair(&self, queue: &str, kind: &str) -> KindLabels {
        let labels = KindLabels {
            queue: label(queue),
            kind: label(kind),
        };
        let mut pairs = self.pairs.lock().unwrap_or_else(|e| e.into_inner());
        if pairs.contains(&labels) {
            labels
        } else if pairs.len() < METRICS_PAIRS {
            pairs.insert(labels.clone());
            labels
        } else {
            other_pair()
        }
    }

    /// Counts an insert (when it inserted: a unique-key hit is not a new job).
    pub fn inserted(&self, queue: &str, kind: &str, inserted: bool) {
        if inserted {
            self.inserted.get_or_create(&self.pair(queue, kind)).inc();
        }
    }

    fn job_error(&self, job: &JobRow) {
        self.job_errors
            .get_or_create(&self.pair(&job.queue, &job.kind))
            .inc();
    }

    /// An [`ErrorHandler`] for a runtime in this process: counts each failed attempt, then logs
    /// it like [`LogErrors`].
    pub fn error_handler(self: &Arc<Self>) -> Arc<dyn ErrorHandler> {
        Arc::new(CountErrors(self.clone()))
    }

    /// Reads the job counts and renders every metric. When the database does not answer, the
    /// gauges read from it are left out and `porter_database_up` is 0: this process's own
    /// counters are still answered (a scrape during an outage was a 5xx that hid them).
    pub async fn render(&self, client: &crate::Client) -> crate::Result<String> {
        let _one_at_a_time = self.scrape.lock().await;
        match self.read_database(client).await {
            Ok(()) => {
                self.database_up.set(1);
            }
            Err(e) => {
                tracing::warn!(error = %e, "metrics: reading the database failed; answering this process's counters only");
                self.database_up.set(0);
                self.queues_left_out.set(0);
                self.depth.clear();
                self.lag.clear();
                self.jobs.clear();
                self.waiting_for_limit.clear();
                self.unserved.clear();
            }
        }
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .map_err(|e| crate::Error::Database(format!("encoding metrics: {e}")))?;
        Ok(out)
    }

    /// Sets the gauges read from the database.
    async fn read_database(&self, client: &crate::Client) -> crate::Result<()> {
        let mut counts = client.counts().await?;
        // The first queues with jobs by name: the queues named before the first one left out.
        // Below the cap every queue is named, a limited queue without jobs too.
        let cut = counts.queues.keys().nth(METRICS_QUEUES).cloned();
        let left_out = match &cut {
            Some(cut) => counts.queues.split_off(cut).len(),
            None => 0,
        };
        self.queues_left_out.set(left_out as i64);
        let kept = |queue: &str| cut.as_deref().is_none_or(|cut| queue < cut);
        let due = client.queue_lag().await?;
        self.depth.clear();
        self.lag.clear();
        // Every queue with jobs reports depth and lag, 0 when nothing is due: an alert rule sees
        // the queue recover instead of its series vanishing.
        for queue in counts.queues.keys() {
            let labels = QueueLabels {
                queue: label(queue),
            };
            self.depth.get_or_create(&labels).set(0);
            self.lag.get_or_create(&labels).set(0.0);
        }
        // Two rows may make one series (on SQLite, names whose bytes are not UTF-8 read the
        // same with U+FFFD): their depths add up and the larger lag is the queue's, as
        // `porter_jobs` counts them. Each row used to set the series, the last read winning.
        for q in &due {
            if !kept(&q.queue) {
                continue;
            }
            let labels = QueueLabels {
                queue: label(&q.queue),
            };
            self.depth.get_or_create(&labels).inc_by(q.depth);
            let lag = self.lag.get_or_create(&labels);
            if q.lag.as_secs_f64() > lag.get() {
                lag.set(q.lag.as_secs_f64());
            }
        }
        self.jobs.clear();
        for (queue, states) in &counts.queues {
            for (state, n) in states {
                self.jobs
                    .get_or_create(&StateLabels {
                        queue: label(queue),
                        state: state.to_string(),
                    })
                    .set(*n);
            }
        }
        self.waiting_for_limit.clear();
        // Limited queues, by name: any caller can limit a queue of any name, so at most as
        // many as there are queues named.
        let waiting = client.queue_limit_waiting().await?;
        for (queue, n) in waiting.iter().filter(|(q, _)| kept(q)).take(METRICS_QUEUES) {
            self.waiting_for_limit
                .get_or_create(&QueueLabels {
                    queue: label(queue),
                })
                .set(*n);
        }
        self.unserved.clear();
        let mut pairs = 0;
        for u in client.unserved().await? {
            if !kept(&u.queue) {
                continue;
            }
            let mut labels = KindLabels {
                queue: label(&u.queue),
                kind: label(&u.kind),
            };
            // Kinds are callers' names too: past the first pairs, added up as the counters do.
            if pairs >= METRICS_PAIRS && self.unserved.get(&labels).is_none() {
                labels = other_pair();
            } else if self.unserved.get(&labels).is_none() {
                pairs += 1;
            }
            self.unserved.get_or_create(&labels).inc_by(u.count);
        }
        Ok(())
    }
}

impl JobEvents for Metrics {
    fn started(&self, queues: &[String], kinds: &[String]) {
        for queue in queues {
            for kind in kinds {
                let labels = self.pair(queue, kind);
                for counter in [
                    &self.completed,
                    &self.failed,
                    &self.discarded,
                    &self.cancelled,
                    &self.rescued,
                ] {
                    drop(counter.get_or_create(&labels));
                }
            }
        }
    }

    fn attempt_ended(&self, ended: &AttemptEnded) {
        let labels = self.pair(&ended.queue, &ended.kind);
        let counter = match ended.end {
            AttemptEnd::Completed => Some(&self.completed),
            AttemptEnd::Retryable => Some(&self.failed),
            AttemptEnd::Discarded => Some(&self.discarded),
            AttemptEnd::Cancelled => Some(&self.cancelled),
            // Not a run that succeeded or failed: put back without using an attempt.
            AttemptEnd::Snoozed | AttemptEnd::Released => None,
        };
        if let Some(counter) = counter {
            counter.get_or_create(&labels).inc();
        }
        self.duration
            .get_or_create(&labels)
            .observe(ended.ran_for.as_secs_f64());
    }

    fn rescued(&self, job: &RescuedJob) {
        let labels = self.pair(&job.queue, &job.kind);
        self.rescued.get_or_create(&labels).inc();
        // A rescue that used the last attempt, or found a cancel asked for, ends the job: it
        // counts where every end does.
        let ended = match job.state {
            crate::JobState::Discarded => Some(&self.discarded),
            crate::JobState::Cancelled => Some(&self.cancelled),
            _ => None,
        };
        if let Some(counter) = ended {
            counter.get_or_create(&labels).inc();
        }
    }
}

struct CountErrors(Arc<Metrics>);

impl ErrorHandler for CountErrors {
    fn handle_error(&self, job: &JobRow, error: &str) {
        self.0.job_error(job);
        LogErrors.handle_error(job, error);
    }
    fn handle_panic(&self, job: &JobRow, message: &str, trace: Option<&str>) {
        self.0.job_error(job);
        LogErrors.handle_panic(job, message, trace);
    }
}

/// `GET /metrics`. With an admin token set it needs the token too (bearer, or the
/// dashboard's cookie): its labels name the kinds and queues in use.
pub(super) async fn scrape(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
) -> Result<Response, AppError> {
    let cookie = super::dashboard::cookie_token(&headers);
    if !super::auth::allowed(
        state.config.admin_token.as_deref(),
        [super::auth::bearer(&headers), cookie.as_deref()],
    ) {
        return Err(AppError::unauthorized());
    }
    let body = state.metrics.render(&state.client).await?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
    )
        .into_response())
}

/// Counts error answers by status, and logs each request at debug: method, path and status,
/// never the query string or the body.
pub(super) async fn count_responses(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    let status = response.status();
    tracing::debug!(%method, %path, status = status.as_u16(), elapsed_ms = started.elapsed().as_millis() as u64, "request");
    if status.is_client_error() || status.is_server_error() {
        state
            .metrics
            .http_errors
            .get_or_create(&StatusLabels {
                status: status.as_u16().to_string(),
            })
            .inc();
    }
    response
}
