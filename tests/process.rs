//! Real `porter worker` processes, sent real signals, on both backends: graceful shutdown on
//! SIGTERM, wake-ups across processes, periodic slots shared by three processes, and rescue
//! after SIGKILL.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use porter::store::{JobListParams, Store};
use porter::{Client, InsertOpts, JobState};

use crate::common::eventually;

/// A `porter worker` child whose output is collected line by line.
pub struct Worker {
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
}

impl Worker {
    pub fn start(url: &str, args: &[&str]) -> Worker {
        let mut child = Command::new(env!("CARGO_BIN_EXE_porter"))
            .arg("worker")
            .args(args)
            .env("DATABASE_URL", url)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start porter worker");
        let log = Arc::new(Mutex::new(Vec::new()));
        for out in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    log.lock().unwrap().push(line);
                }
            });
        }
        Worker { child, log }
    }

    pub fn logged(&self, needle: &str) -> bool {
        self.log.lock().unwrap().iter().any(|l| l.contains(needle))
    }

    pub async fn ready(&self) {
        eventually("worker ready", || async { self.logged("worker ready") }).await;
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{sig}");
    }

    pub async fn wait(mut self) -> (std::process::ExitStatus, Vec<String>) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                tokio::time::sleep(Duration::from_millis(50)).await; // let the readers drain
                return (status, self.log.lock().unwrap().clone());
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "worker did not exit"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn sleep_job(client: &Client, ms: u64) -> i64 {
    client
        .insert(&porter::jobs::Sleep { ms }, None)
        .await
        .unwrap()
        .job
        .id
}

async fn state(store: &Store, id: i64) -> porter::JobRow {
    store.job_get(id).await.unwrap().unwrap()
}

backend_case! {
    async fn sigterm_lets_short_jobs_finish_and_retries_long_ones(db: TestDb) {
        let client = Client::new(db.store.clone());
        let w = Worker::start(
            &db.url,
            &[
                "--queues",
                "default=10",
                "--shutdown-timeout",
                "1500ms",
                "--no-periodic",
            ],
        );
        w.ready().await;
        let short: Vec<i64> = futures_ids(&client, 3, 700).await;
        let long: Vec<i64> = futures_ids(&client, 2, 120_000).await;
        eventually("all five running", || async {
            db.store.job_counts().await.unwrap().total[&JobState::Running] == 5
        })
        .await;
        w.signal("TERM");
        let (status, log) = w.wait().await;
        assert!(
            status.success(),
            "exit 0 after SIGTERM: {status:?}\n{}",
            log.join("\n")
        );
        let text = log.join("\n");
        for line in ["worker ready", "shutting down", "shutdown complete"] {
            assert!(text.contains(line), "log has {line:?}:\n{text}");
        }
        for id in short {
            assert_eq!(state(&db.store, id).await.state, JobState::Completed);
        }
        for id in long {
            let row = state(&db.store, id).await;
            assert_eq!((row.state, row.attempt), (JobState::Available, 1));
            assert_eq!(row.errors.last().unwrap().error, "worker shut down");
        }
        assert_eq!(
            db.store.job_counts().await.unwrap().total[&JobState::Running],
            0
        );
        assert!(
            db.store.worker_list().await.unwrap().is_empty(),
            "the worker deregistered"
        );
    }
}

async fn futures_ids(client: &Client, n: usize, ms: u64) -> Vec<i64> {
    let mut ids = Vec::new();
    for _ in 0..n {
        ids.push(sleep_job(client, ms).await);
    }
    ids
}

backend_case! {
    async fn job_inserted_by_another_process_wakes_the_worker(db: TestDb) {
        // With a one-hour poll, only a wake-up (LISTEN/NOTIFY, or data_version on SQLite)
        // gets the job run before the test gives up.
        let w = Worker::start(&db.url, &["--no-periodic", "--poll-interval", "1h"]);
        w.ready().await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let out = Command::new(env!("CARGO_BIN_EXE_porter"))
            .args(["enqueue", "noop", "{}"])
            .env("DATABASE_URL", &db.url)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let id: i64 = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("enqueue prints the id");
        eventually("the job runs", || async {
            state(&db.store, id).await.state == JobState::Completed
        })
        .await;
        w.signal("TERM");
        assert!(w.wait().await.0.success());
    }
}

async fn heartbeat_slots(store: &Store) -> BTreeMap<i64, usize> {
    let mut slots = BTreeMap::new();
    let jobs = store
        .job_list(JobListParams {
            kind: Some("heartbeat".into()),
            limit: Some(10_000),
            ..Default::default()
        })
        .await
        .unwrap();
    for j in jobs {
        if let Some(slot) = j.metadata["slot"].as_i64() {
            *slots.entry(slot).or_insert(0) += 1;
        }
    }
    slots
}

backend_case! {
    async fn three_workers_share_periodic_slots(db: TestDb) {
        let args = ["--heartbeat-every", "1s", "--queues", "default=5"];
        let workers: Vec<Worker> = (0..3).map(|_| Worker::start(&db.url, &args)).collect();
        for w in &workers {
            w.ready().await;
        }
        eventually("five heartbeat slots", || async {
            heartbeat_slots(&db.store).await.len() >= 5
        })
        .await;
        for w in &workers {
            w.signal("TERM");
        }
        let mut beats = 0;
        for w in workers {
            let (status, log) = w.wait().await;
            assert!(status.success());
            beats += log
                .iter()
                .filter(|l| l.contains("worker heartbeat"))
                .count();
        }
        let slots = heartbeat_slots(&db.store).await;
        assert!(
            slots.values().all(|n| *n == 1),
            "exactly one job per slot: {slots:?}"
        );
        let keys: Vec<i64> = slots.keys().copied().collect();
        assert!(
            keys.windows(2).all(|w| w[1] - w[0] == 1000),
            "no slot missing: {keys:?}"
        );
        assert!(
            beats >= 3,
            "heartbeats were logged (3 on start plus the slots'): {beats}"
        );
        let c = db.store.job_counts().await.unwrap().total;
        assert_eq!(c[&JobState::Running], 0);
    }
}

backend_case! {
    async fn sigkill_jobs_are_rescued_by_another_worker(db: TestDb) {
        let client = Client::new(db.store.clone());
        let lease = ["--lease", "2s", "--no-periodic", "--queues", "default=10"];
        let victim = Worker::start(&db.url, &lease);
        victim.ready().await;
        let mut ids = Vec::new();
        for _ in 0..6 {
            let opts = InsertOpts {
                max_attempts: Some(3),
                ..Default::default()
            };
            ids.push(
                client
                    .insert(&porter::jobs::Sleep { ms: 1500 }, Some(opts))
                    .await
                    .unwrap()
                    .job
                    .id,
            );
        }
        eventually("the victim runs all six", || async {
            db.store.job_counts().await.unwrap().total[&JobState::Running] == 6
        })
        .await;
        victim.signal("KILL");
        let killed_at = db.store.now().await.unwrap();
        let (status, _) = victim.wait().await;
        assert!(!status.success(), "killed");
        let rescuer = Worker::start(&db.url, &lease);
        rescuer.ready().await;
        eventually("all six completed by the other worker", || async {
            db.store.job_counts().await.unwrap().total[&JobState::Completed] == 6
        })
        .await;
        for id in &ids {
            let row = state(&db.store, *id).await;
            assert_eq!(row.attempt, 2, "run once more, no more");
            assert_eq!(
                row.errors
                    .iter()
                    .map(|e| e.error.as_str())
                    .collect::<Vec<_>>(),
                vec!["worker lost"]
            );
            // Rescue time on the database clock: about the lease, far below River's hour.
            let rescued_after = (row.errors[0].at - killed_at).num_milliseconds();
            assert!(
                rescued_after < 2_000 * 4,
                "rescued {rescued_after} ms after the kill, lease 2 s"
            );
        }
        let c = db.store.job_counts().await.unwrap().total;
        assert_eq!(
            (
                c[&JobState::Running],
                c[&JobState::Available],
                c[&JobState::Retryable]
            ),
            (0, 0, 0)
        );
        rescuer.signal("TERM");
        assert!(rescuer.wait().await.0.success());
    }
}

backend_case! {
    /// Issue 11.1: a deploy must never discard a job. A job on its last attempt, stopped by
    /// the shutdown timeout or by a second signal, goes back to be run again; its history
    /// records the shutdown.
    async fn shutdown_never_uses_up_the_last_attempt(db: TestDb) {
        let client = Client::new(db.store.clone());
        for second_signal in [false, true] {
            let opts = InsertOpts {
                max_attempts: Some(1),
                ..Default::default()
            };
            let id = client
                .insert(&porter::jobs::Sleep { ms: 60_000 }, Some(opts))
                .await
                .unwrap()
                .job
                .id;
            let timeout = if second_signal { "1h" } else { "1s" };
            let w = Worker::start(&db.url, &["--shutdown-timeout", timeout, "--no-periodic"]);
            w.ready().await;
            eventually("the job runs", || async {
                state(&db.store, id).await.state == JobState::Running
            })
            .await;
            w.signal("TERM");
            if second_signal {
                eventually("shutting down", || async { w.logged("shutting down") }).await;
                w.signal("TERM");
            }
            let (status, log) = w.wait().await;
            assert!(status.success(), "exit 0: {status:?}\n{}", log.join("\n"));
            let row = state(&db.store, id).await;
            assert_eq!(
                row.state,
                JobState::Available,
                "second signal {second_signal}: back to run again, not discarded: {row:?}"
            );
            assert_eq!(row.errors.last().unwrap().error, "worker shut down");
            assert!(
                row.attempt < row.max_attempts,
                "an attempt is left: {row:?}"
            );
            // Cancel it so the next round's worker does not pick it up.
            db.store.job_cancel(id).await.unwrap();
        }
    }
}

backend_case! {
    async fn jobs_cancel_stops_the_running_job_and_holds_its_key_until_it_stopped(db: TestDb) {
        // A lease of an hour puts the fallback check 20 minutes away: only the wake-up
        // (NOTIFY, or data_version on SQLite) stops the job before the test gives up.
        let w = Worker::start(
            &db.url,
            &["--no-periodic", "--lease", "1h", "--queues", "default=5"],
        );
        w.ready().await;
        let client = Client::new(db.store.clone());
        let keyed = || {
            Some(InsertOpts {
                unique_key: Some("nightly-report".into()),
                ..Default::default()
            })
        };
        let id = client
            .insert(&porter::jobs::Sleep { ms: 60_000 }, keyed())
            .await
            .unwrap()
            .job
            .id;
        eventually("the job runs", || async {
            state(&db.store, id).await.state == JobState::Running
        })
        .await;
        // Freeze the worker (between writes) so that it cannot act on the request yet.
        tokio::time::sleep(Duration::from_millis(300)).await;
        w.signal("STOP");
        let out = Command::new(env!("CARGO_BIN_EXE_porter"))
            .args(["jobs", "cancel", &id.to_string()])
            .env("DATABASE_URL", &db.url)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout.contains("cancel requested"),
            "the answer says the cancel was requested: {stdout}"
        );
        let row = state(&db.store, id).await;
        assert_eq!(
            row.state,
            JobState::Running,
            "running until its worker stops it"
        );
        let dup = client
            .insert(&porter::jobs::Sleep { ms: 10 }, keyed())
            .await
            .unwrap();
        assert!(
            !dup.inserted && dup.job.id == id,
            "the key stays held while the job has not stopped: {dup:?}"
        );

        w.signal("CONT");
        eventually("the job ends cancelled", || async {
            state(&db.store, id).await.state == JobState::Cancelled
        })
        .await;
        let row = state(&db.store, id).await;
        assert_eq!(
            (row.attempt, row.errors.last().map(|e| e.error.as_str())),
            (1, Some("cancelled by user"))
        );
        eventually("the worker logged the stop", || async {
            w.logged("job cancelled by user")
        })
        .await;
        let next = client
            .insert(&porter::jobs::Sleep { ms: 10 }, keyed())
            .await
            .unwrap();
        assert!(next.inserted, "the key is free once the job stopped");
        eventually("the worker runs the next one", || async {
            state(&db.store, next.job.id).await.state == JobState::Completed
        })
        .await;
        w.signal("TERM");
        let (status, log) = w.wait().await;
        assert!(status.success(), "{}", log.join("\n"));
    }
}
