//! The jobs the `porter` binary runs, registered here and nowhere else: the queue's own
//! `heartbeat` and diagnostics (`noop`, `sleep`, `fail`, from [`crate::jobs`]) and this app's
//! `orphan_file_cleanup`, with their periodic schedules. The surfaces (command line, web
//! process) take the set from here.

use std::sync::Arc;
use std::time::Duration;

use object_store::ObjectStore;

use crate::app::files::CleanupConfig;
use crate::app::orphan_file_cleanup::{OrphanFileCleanup, OrphanFileCleanupWorker};
use crate::job::JobArgs;
use crate::jobs::{
    Fail, FailWorker, Heartbeat, HeartbeatWorker, Noop, NoopWorker, Sleep, SleepWorker,
};
use crate::maintenance::{PeriodicJob, Schedule};
use crate::store::Store;
use crate::worker::Workers;

/// The kinds [`builtin_workers`] runs: what `porter enqueue` and `POST /admin/jobs` accept
/// unless told otherwise (a list the web process has without a worker at hand).
pub const BUILTIN_KINDS: [&str; 5] = [
    Heartbeat::KIND,
    Noop::KIND,
    Sleep::KIND,
    Fail::KIND,
    OrphanFileCleanup::KIND,
];

/// Checks a built-in kind's args as its worker will decode them, so that bad ones are refused
/// at enqueue instead of failing every attempt (`sleep` needs `{"ms": N}`). Other kinds pass.
pub fn check_builtin_args(kind: &str, args: &serde_json::Value) -> crate::Result<()> {
    use crate::worker::decode_args;
    let checked = match kind {
        Heartbeat::KIND => decode_args::<Heartbeat>(args).map(drop),
        Noop::KIND => decode_args::<Noop>(args).map(drop),
        Sleep::KIND => decode_args::<Sleep>(args).map(drop),
        Fail::KIND => decode_args::<Fail>(args).map(drop),
        OrphanFileCleanup::KIND => decode_args::<OrphanFileCleanup>(args).map(drop),
        _ => Ok(()),
    };
    checked.map_err(|e| crate::Error::invalid("args", e))
}

/// The built-in workers (heartbeat, noop, sleep, fail, orphan_file_cleanup), the last one on
/// this database and object store, retrying a failed run at most `orphan_cleanup_every`
/// later (the interval given [`builtin_periodic`]).
pub fn builtin_workers(
    store: Arc<Store>,
    objects: Arc<dyn ObjectStore>,
    orphan_cleanup_every: Duration,
) -> crate::Result<Workers> {
    let mut workers = Workers::new();
    workers.add(HeartbeatWorker)?;
    workers.add(NoopWorker)?;
    workers.add(SleepWorker)?;
    workers.add(FailWorker)?;
    workers.add(OrphanFileCleanupWorker {
        store: crate::app::store::from_core(store),
        objects,
        config: CleanupConfig::default(),
        retry_at_most: orphan_cleanup_every,
    })?;
    Ok(workers)
}

/// The unique key of the periodic `orphan_file_cleanup` jobs: one at a time. While one that
/// failed waits to retry, the slots that come add no other (until 7 Dec each did: with a
/// failure no pass mends, about 490 retried at once, 25 passes an hour).
pub const PERIODIC_CLEANUP_KEY: &str = "porter:periodic:orphan_file_cleanup";

/// The built-in periodic jobs: `heartbeat` (run on start, then every `heartbeat_every`) and
/// `orphan_file_cleanup` (every `orphan_cleanup_every`, on slots aligned to the epoch).
pub fn builtin_periodic(
    heartbeat_every: Duration,
    orphan_cleanup_every: Duration,
) -> Vec<PeriodicJob> {
    vec![
        PeriodicJob::new(Heartbeat::KIND, Schedule::Every(heartbeat_every)).run_on_start(true),
        PeriodicJob {
            opts: crate::InsertOpts {
                unique_key: Some(PERIODIC_CLEANUP_KEY.to_string()),
                ..Default::default()
            },
            ..PeriodicJob::new(
                OrphanFileCleanup::KIND,
                Schedule::Every(orphan_cleanup_every),
            )
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn builtin_kinds_are_the_builtin_workers_kinds() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::open(&format!("sqlite://{}/p.db", dir.path().display()))
            .await
            .unwrap();
        let objects: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
        let workers = builtin_workers(store, objects, Duration::from_secs(3600)).unwrap();
        let mut kinds: Vec<String> = BUILTIN_KINDS.iter().map(|k| k.to_string()).collect();
        kinds.sort();
        assert_eq!(workers.kinds(), kinds);
    }
}
