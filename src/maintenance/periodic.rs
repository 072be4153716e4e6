//! Durable periodic jobs with no leader. Each schedule has a row in `porter_periodic` holding
//! the last slot enqueued; a process that sees a newer slot due moves the row forward and
//! inserts the slot's job in one transaction, so one slot yields exactly one job however many
//! processes race for it. A slot missed while everything was down runs once at the next start
//! (the row only remembers the latest slot), and restarts never skip a long interval, since
//! the schedule lives in the database rather than in a process's memory.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::error::{Error, Result};
use crate::job::InsertOpts;
use crate::store::{JobInsertParams, PeriodicEnqueueParams, Store};

/// When a periodic job is due.
#[derive(Debug, Clone)]
pub enum Schedule {
    /// Every fixed interval, on slots aligned to the Unix epoch (every 1 h runs on the hour).
    Every(Duration),
    /// A cron expression (five fields, or six with seconds), in UTC.
    Cron(Box<croner::Cron>),
}

impl Schedule {
    /// Parses a cron expression.
    pub fn cron(expr: &str) -> Result<Self> {
        let cron = croner::Cron::new(expr)
            .with_seconds_optional()
            .parse()
            .map_err(|e| Error::invalid("cron expression", format!("{expr:?}: {e}")))?;
        // A day that never comes (30 February, 31 April) parses, but has no slot: such a
        // schedule never ran, and every look searched years ahead for one (65 ms each, four
        // times a second: review of 6 Dec).
        if cron.find_next_occurrence(&Utc::now(), false).is_err() {
            return Err(Error::invalid(
                "cron expression",
                format!("{expr:?} names no time that comes (a 30 February, say)"),
            ));
        }
        Ok(Schedule::Cron(Box::new(cron)))
    }

    /// The latest slot (Unix ms) at or before `now`, given the last slot enqueued. `None` when
    /// no slot after `last` has come yet. A `last` more than
    /// [`PERIODIC_CLOCK_SLACK_MS`](crate::store::PERIODIC_CLOCK_SLACK_MS) after `now` is a
    /// clock's that ran ahead: the slot is due (the store replaces such a mark).
    fn due_slot(&self, now: DateTime<Utc>, last: Option<i64>) -> Option<i64> {
        let now_ms = now.timestamp_millis();
        let slot = match self {
            Schedule::Every(every) => {
                let step = step_ms(*every);
                now_ms.div_euclid(step) * step
            }
            Schedule::Cron(cron) => latest_cron_time(cron, now)?.timestamp_millis(),
        };
        let ahead = |l: i64| l > now_ms.saturating_add(crate::store::PERIODIC_CLOCK_SLACK_MS);
        (last.is_none_or(|l| l < slot || ahead(l))).then_some(slot)
    }

    /// Refuses a schedule with no slot to come: an interval of zero, or a cron expression
    /// naming no time that comes (one built without [`Schedule::cron`], which refuses it).
    fn check(&self) -> Result<()> {
        match self {
            Schedule::Every(every) if every.is_zero() => Err(Error::invalid(
                "schedule",
                "an interval must be more than 0",
            )),
            Schedule::Cron(cron) if cron.find_next_occurrence(&Utc::now(), false).is_err() => {
                Err(Error::invalid(
                    "schedule",
                    format!(
                        "cron expression {:?} names no time that comes",
                        cron.pattern.to_string()
                    ),
                ))
            }
            _ => Ok(()),
        }
    }

    /// The first slot after `slot` (Unix ms): when the next job is due.
    pub fn next_slot(&self, slot: i64) -> Option<DateTime<Utc>> {
        match self {
            Schedule::Every(every) => {
                let step = step_ms(*every);
                DateTime::from_timestamp_millis((slot.div_euclid(step) + 1) * step)
            }
            Schedule::Cron(cron) => {
                let after = DateTime::from_timestamp_millis(slot)?;
                cron.find_next_occurrence(&after, false).ok()
            }
        }
    }

    /// The shortest gap between two slots, to pick how often to look.
    fn min_gap(&self) -> Duration {
        match self {
            Schedule::Every(d) => *d,
            Schedule::Cron(_) => Duration::from_secs(1),
        }
    }
}

/// An interval's slots apart, in milliseconds: at least 1, and at most
/// [`MAX_DURATION`](crate::store::MAX_DURATION), the longest duration porter puts into time
/// arithmetic (1,000 years: "never" in practice). A longer one wrapped to a negative number,
/// taken for 1 ms: a slot every tick.
fn step_ms(every: Duration) -> i64 {
    let ms = every.min(crate::store::MAX_DURATION).as_millis();
    i64::try_from(ms).unwrap_or(i64::MAX).max(1)
}

/// The latest time at or before `now` that the cron expression names. The windows grow
/// backwards until one holds a slot (a minutely and a yearly schedule both cost a few looks);
/// then the window is halved, keeping a slot after its start, down to the second (cron's
/// finest step), about 30 looks however many slots it holds.
fn latest_cron_time(cron: &croner::Cron, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    const WINDOWS_SECS: [i64; 6] = [120, 7_200, 172_800, 3_456_000, 34_560_000, 345_600_000];
    // The first slot strictly after `t`, when it is not after `now`.
    let slot_after = |t: DateTime<Utc>| {
        cron.find_next_occurrence(&t, false)
            .ok()
            .filter(|s| *s <= now)
    };
    let second = chrono::Duration::seconds(1);
    let mut lo = WINDOWS_SECS
        .iter()
        .map(|secs| now - chrono::Duration::seconds(*secs))
        .find(|start| slot_after(*start).is_some())?;
    // A slot lies after `lo`; none after `hi`, or `hi` is `now`.
    let mut hi = now;
    while hi - lo > second {
        let mid = lo + (hi - lo) / 2;
        if slot_after(mid).is_some() {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    let mut latest = slot_after(lo)?;
    while let Some(later) = slot_after(latest) {
        latest = later;
    }
    Some(latest)
}

/// A job enqueued on a schedule.
#[derive(Debug, Clone)]
pub struct PeriodicJob {
    /// Unique name of the schedule (the kind, usually).
    pub name: String,
    /// When it is due.
    pub schedule: Schedule,
    /// Job kind.
    pub kind: String,
    /// Job args.
    pub args: serde_json::Value,
    /// Insert options (queue, priority, ...).
    pub opts: InsertOpts,
    /// Also insert one job each time a process starts, outside the slots.
    pub run_on_start: bool,
}

impl PeriodicJob {
    /// A periodic job of `kind` with `{}` args, named after the kind.
    pub fn new(kind: &str, schedule: Schedule) -> Self {
        PeriodicJob {
            name: kind.to_string(),
            schedule,
            kind: kind.to_string(),
            args: serde_json::json!({}),
            opts: InsertOpts::default(),
            run_on_start: false,
        }
    }

    /// Sets run-on-start.
    pub fn run_on_start(mut self, yes: bool) -> Self {
        self.run_on_start = yes;
        self
    }

    /// The job of one slot (or start): its own metadata with porter's keys (`periodic`,
    /// `slot`, ...) over it. (Until 6 Dec porter's keys replaced the job's metadata whole.)
    fn params(&self, porter_keys: serde_json::Value) -> Result<JobInsertParams> {
        let mut opts = self.opts.clone();
        let metadata = match (opts.metadata.take(), porter_keys) {
            (Some(serde_json::Value::Object(mut own)), serde_json::Value::Object(ours)) => {
                own.extend(ours);
                serde_json::Value::Object(own)
            }
            // Not an object: refused below, as any insert's.
            (Some(other), _) => other,
            (None, ours) => ours,
        };
        opts.metadata = Some(metadata);
        JobInsertParams::new(&self.kind, self.args.clone(), opts)
    }

    /// Refuses, naming the periodic job, what would fail at every slot: a schedule with no
    /// slot to come, a bad kind or queue, options or args an insert refuses. A runtime checks
    /// its periodic jobs before it starts (`RuntimeConfig`); until 6 Dec such a job failed at
    /// each look, and the looks' other periodic jobs after it were never enqueued.
    pub(crate) fn check(&self) -> Result<()> {
        let named = |e: Error| Error::invalid("periodic job", format!("{:?}: {e}", self.name));
        // The name is the key of its row in porter_periodic: PostgreSQL's index takes at most
        // about 2.7 kB of it, so a longer name failed at every slot there (review of 6 Dec);
        // bounded as the other keys are.
        if self.name.is_empty() || self.name.len() > 255 {
            return Err(Error::invalid(
                "periodic job",
                format!(
                    "its name is {} bytes; a name must be 1 to 255 bytes",
                    self.name.len()
                ),
            ));
        }
        self.schedule.check().map_err(named)?;
        // Porter's keys at their widest (a slot's digits, a worker's id), so that metadata near
        // the size limit is refused here rather than at every slot.
        let widest = serde_json::json!({
            "periodic": self.name,
            "slot": i64::MIN,
            "run_on_start": true,
            "worker_id": "x".repeat(255),
        });
        self.params(widest).map(|_| ()).map_err(named)
    }
}

/// The periodic enqueuer service.
pub struct PeriodicEnqueuer {
    store: Arc<Store>,
    jobs: Vec<PeriodicJob>,
    worker_id: String,
    /// Last slot this process saw enqueued (by anyone), per name: saves needless writes.
    seen: HashMap<String, i64>,
}

impl PeriodicEnqueuer {
    /// An enqueuer for these schedules.
    pub fn new(store: Arc<Store>, jobs: Vec<PeriodicJob>, worker_id: String) -> Self {
        PeriodicEnqueuer {
            store,
            jobs,
            worker_id,
            seen: HashMap::new(),
        }
    }

    /// How often to look: a quarter of the shortest interval, between 50 ms and 1 s.
    pub fn tick(&self) -> Duration {
        let min = self
            .jobs
            .iter()
            .map(|j| j.schedule.min_gap())
            .min()
            .unwrap_or(Duration::from_secs(1));
        (min / 4).clamp(Duration::from_millis(50), Duration::from_secs(1))
    }

    /// Inserts the run-on-start jobs; returns how many. One that fails does not hold back the
    /// others; the first failure is returned after them.
    pub async fn run_start_jobs(&self) -> Result<u64> {
        first_failure(self.start_pass().await)
    }

    /// Enqueues every slot that has come due; returns how many jobs this call inserted. A
    /// periodic job whose slot fails does not hold back the others: one failing at every look
    /// (a parent gone, say) held back each one after it (review of 6 Dec). The first failure
    /// is returned after them.
    pub async fn run_once(&mut self) -> Result<u64> {
        first_failure(self.pass().await?)
    }

    /// The run-on-start jobs inserted, and each periodic job that failed, with why.
    async fn start_pass(&self) -> (u64, Vec<(String, Error)>) {
        let mut n = 0;
        let mut failed = Vec::new();
        for job in self.jobs.iter().filter(|j| j.run_on_start) {
            let meta = serde_json::json!({"periodic": job.name, "run_on_start": true, "worker_id": self.worker_id});
            let insert = async { self.store.job_insert_many(vec![job.params(meta)?]).await };
            match insert.await {
                Ok(_) => n += 1,
                Err(e) => failed.push((job.name.clone(), e)),
            }
        }
        (n, failed)
    }

    /// One look: the jobs inserted, and each periodic job whose slot failed, with why. Fails
    /// whole only when it cannot read the time.
    async fn pass(&mut self) -> Result<(u64, Vec<(String, Error)>)> {
        let now = self.store.now().await?;
        let mut inserted = 0;
        let mut failed = Vec::new();
        for job in &self.jobs {
            let seen = self.seen.get(&job.name).copied();
            let Some(slot) = job.schedule.due_slot(now, seen) else {
                continue;
            };
            if seen.is_some_and(|l| l > slot) {
                warn!(periodic = %job.name, recorded_slot = seen, slot, "the slot recorded lies ahead of the clock (a clock that ran ahead, or was set back): enqueuing the slot due now");
            }
            let meta = serde_json::json!({"periodic": job.name, "slot": slot});
            let enqueue = async {
                self.store
                    .periodic_enqueue(PeriodicEnqueueParams {
                        name: job.name.clone(),
                        slot,
                        job: job.params(meta)?,
                    })
                    .await
            };
            match enqueue.await {
                Ok(result) => {
                    match result {
                        Some(r) if r.inserted => {
                            inserted += 1;
                            debug!(periodic = %job.name, slot, job_id = r.job.id, "enqueued periodic job");
                        }
                        // The slot is taken; its job was not inserted, since an unfinished
                        // one holds its unique key (the periodic cleanup's, say): not counted
                        // (until 7 Dec each such slot was logged as inserted).
                        Some(r) => {
                            debug!(periodic = %job.name, slot, job_id = r.job.id, "a periodic slot's job holds its unique key already; nothing inserted");
                        }
                        None => {}
                    }
                    // Whoever moved it, the row now holds this slot, or a later one.
                    self.seen.insert(job.name.clone(), slot);
                }
                Err(e) => failed.push((job.name.clone(), e)),
            }
        }
        Ok((inserted, failed))
    }

    /// Inserts run-on-start jobs, then enqueues due slots every tick until `stop`. Each
    /// failure is logged once, naming its periodic job.
    pub async fn run(mut self, stop: CancellationToken) {
        let (_, failed) = self.start_pass().await;
        for (name, e) in failed {
            warn!(periodic = %name, error = %e, "could not insert a run-on-start periodic job");
        }
        let tick = self.tick();
        loop {
            match self.pass().await {
                Ok((n, failed)) => {
                    if n > 0 {
                        info!(inserted = n, "enqueued periodic jobs");
                    }
                    for (name, e) in failed {
                        warn!(periodic = %name, error = %e, "could not enqueue a periodic job's slot");
                    }
                }
                Err(e) => warn!(error = %e, "periodic enqueuer pass failed"),
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(tick) => {}
            }
        }
    }
}

/// A pass's count, or its first failure once every job was tried.
fn first_failure((n, failed): (u64, Vec<(String, Error)>)) -> Result<u64> {
    match failed.into_iter().next() {
        Some((_, e)) => Err(e),
        None => Ok(n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    /// The latest slot is the latest time the expression names, however many slots lie
    /// between it and the start of the window it falls in. The search stopped after 200,000
    /// slots of a window: every second in May, looked at in December, found 3 May (review of
    /// 6 Dec), and a process starting then enqueued that slot.
    #[test]
    fn the_latest_cron_slot_is_the_latest_however_dense_the_schedule() {
        let cases = [
            (
                "* * * * 5 *",
                "2026-12-06T07:30:00.250Z",
                "2026-05-31T23:59:59Z",
            ),
            (
                "* * * * *",
                "2026-12-06T07:30:10.250Z",
                "2026-12-06T07:30:00Z",
            ),
            (
                "* * * * * *",
                "2026-12-06T07:30:10.250Z",
                "2026-12-06T07:30:10Z",
            ),
            (
                "* * * * * *",
                "2026-12-06T07:30:10Z",
                "2026-12-06T07:30:10Z",
            ),
            ("0 * * * *", "2026-12-06T07:00:00Z", "2026-12-06T07:00:00Z"),
            (
                "0 * * * *",
                "2026-12-06T06:59:59.999Z",
                "2026-12-06T06:00:00Z",
            ),
            ("0 0 29 2 *", "2026-12-06T07:30:00Z", "2024-02-29T00:00:00Z"),
            (
                "*/10 * 1 1 *",
                "2026-12-06T07:30:00Z",
                "2026-01-01T23:50:00Z",
            ),
            (
                "*/10 * * 1 1 *",
                "2026-12-06T07:30:00Z",
                "2026-01-01T23:59:50Z",
            ),
        ];
        for (expr, now, latest) in cases {
            let Schedule::Cron(cron) = Schedule::cron(expr).unwrap() else {
                unreachable!()
            };
            assert_eq!(
                latest_cron_time(&cron, at(now)),
                Some(at(latest)),
                "{expr:?} at {now}"
            );
        }
    }

    /// An interval longer than i64 milliseconds wrapped to a negative step, taken for 1 ms:
    /// `--heartbeat-every 300000000000000d` inserted a heartbeat every second (found by
    /// review). It is the longest duration porter uses, 1,000 years, as everywhere.
    #[test]
    fn an_interval_past_the_longest_duration_is_the_longest_not_a_millisecond() {
        let now = Utc::now();
        for every in [Duration::MAX, Duration::from_secs(200_000_000_000 * 86_400)] {
            let s = Schedule::Every(every);
            let first = s.due_slot(now, None).expect("a first slot");
            assert!(first <= now.timestamp_millis(), "{every:?}");
            let later = now + chrono::Duration::seconds(1);
            assert_eq!(s.due_slot(later, Some(first)), None, "{every:?}");
            let next = s.next_slot(first).expect("a next slot");
            assert!(
                next > now + chrono::Duration::days(365 * 900),
                "{every:?}: {next}"
            );
        }
    }
}
