//! The change watcher (`PRAGMA data_version`): a commit by another connection wakes this
//! process's subscribers, whenever it lands after they subscribed.

use std::time::Duration;

use futures::FutureExt;
use rusqlite::Connection;

use super::ChangeWatcher;
use crate::store::wake::Wakeup;

/// A WAL database in a fresh directory (kept alive by the returned guard), its watcher opened.
fn opened() -> (tempfile::TempDir, std::path::PathBuf, ChangeWatcher) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("watch.db");
    Connection::open(&path)
        .unwrap()
        .execute_batch("PRAGMA journal_mode = WAL;")
        .unwrap();
    let watcher = ChangeWatcher::open(&path, "NORMAL").unwrap();
    (dir, path, watcher)
}

fn commit_elsewhere(path: &std::path::Path) {
    let other = Connection::open(path).unwrap();
    other
        .execute_batch("CREATE TABLE IF NOT EXISTS t (x); INSERT INTO t VALUES (1);")
        .unwrap();
}

/// CI failure of `insert_wakes_subscribers::sqlite`: the watcher thread took its first sample
/// only once it ran, so a commit that landed between opening the store and that first sample
/// became the baseline and woke nobody. The baseline is now read before the store is returned.
#[test]
fn a_commit_right_after_open_wakes_a_subscriber() {
    let (_dir, path, mut watcher) = opened();
    let wakeup = Wakeup::default();
    let sub = wakeup.subscribe("default");
    commit_elsewhere(&path);
    watcher.look(&wakeup);
    assert!(
        sub.notified().now_or_never().is_some(),
        "the first look after a commit wakes the subscriber"
    );
}

/// A commit seen by a look wakes whoever subscribed before the commit, even if the look began
/// while nobody listened (the old watcher read "nobody listens" first, then the new version,
/// and dropped the change).
#[test]
fn a_look_that_sees_a_commit_always_wakes() {
    let (_dir, path, mut watcher) = opened();
    let wakeup = Wakeup::default();
    watcher.look(&wakeup);
    let sub = wakeup.subscribe("default");
    commit_elsewhere(&path);
    watcher.look(&wakeup);
    assert!(sub.notified().now_or_never().is_some());
    // No commit since: no wake.
    watcher.look(&wakeup);
    let quiet = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
        .block_on(async { tokio::time::timeout(Duration::from_millis(50), sub.notified()).await });
    assert!(quiet.is_err(), "no wake without a commit");
}

/// Issue 14: a commit by another connection ends the watcher's wait (a write to the WAL
/// file), so the look that sees it comes at once, not at the next poll. The wait's timeout
/// here is far longer than any test runs: only the write can end it.
#[cfg(target_os = "linux")]
#[test]
fn a_commit_elsewhere_ends_the_watchers_wait() {
    let (_dir, path, mut watcher) = opened();
    let wakeup = Wakeup::default();
    let sub = wakeup.subscribe("default");
    let writer = std::thread::spawn(move || commit_elsewhere(&path));
    assert!(
        watcher.wait(Duration::from_secs(3600)),
        "a write to the WAL ends the wait"
    );
    writer.join().unwrap();
    // The write may be seen before its commit is published: look until it is (the watcher
    // thread looks again after each write event the same way).
    common_eventually(|| {
        watcher.look(&wakeup);
        sub.notified().now_or_never().is_some()
    });
}

/// Looks until `seen` holds, at most 5 s (the watcher's own recheck is bounded too; this is
/// only a test's patience).
fn common_eventually(mut seen: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !seen() {
        assert!(std::time::Instant::now() < deadline, "no wake-up came");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Without writes the wait ends at its timeout and says so.
#[cfg(target_os = "linux")]
#[test]
fn a_wait_without_writes_ends_at_its_timeout() {
    let (_dir, _path, mut watcher) = opened();
    assert!(!watcher.wait(Duration::from_millis(20)));
}

/// A watcher whose baseline could not be read (its first `PRAGMA data_version` failed, as
/// it can while another connection recovers the WAL) took its next successful read for the
/// baseline and woke nobody: a commit that landed in between was not seen until the next
/// one. A read after a failed one now wakes, since nothing says nothing changed.
#[test]
fn the_first_read_after_a_failed_baseline_wakes() {
    let (_dir, path, mut watcher) = opened();
    // What a failed first read leaves.
    watcher.last = None;
    let wakeup = Wakeup::default();
    let sub = wakeup.subscribe("default");
    commit_elsewhere(&path);
    watcher.look(&wakeup);
    assert!(
        sub.notified().now_or_never().is_some(),
        "the commit after the failed baseline wakes the subscriber"
    );
}

/// A row another program wrote into porter_workers or porter_queues that porter cannot read
/// (a NULL id or name) is passed over. The watcher's read of the counts failed on it, and
/// every commit of any process then counted as news for every worker and every queue: each
/// job's start read its cancel request, each producer read its queue's limits again (review
/// of 6 Dec).
#[tokio::test]
async fn an_unreadable_worker_or_queue_row_is_passed_over() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("porter.db");
    let _store = super::SqliteStore::open(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    Connection::open(&path)
        .unwrap()
        .execute_batch(
            "INSERT INTO porter_workers (id, host, pid) VALUES (NULL, 'elsewhere', 1), ('w', 'here', 2);
             INSERT INTO porter_queues (name) VALUES (NULL), ('q');",
        )
        .unwrap();
    let mut watcher = ChangeWatcher::open(&path, "NORMAL").unwrap();
    let wakeup = Wakeup::default();
    let _cancels = wakeup.subscribe_cancel("w");
    let control = wakeup.subscribe_control("q");
    watcher.look(&wakeup);
    let before = wakeup.cancel_wakeups("w");
    let _ = control.notified().now_or_never();
    for _ in 0..3 {
        commit_elsewhere(&path);
        watcher.look(&wakeup);
    }
    assert_eq!(wakeup.cancel_wakeups("w"), before, "no news for w");
    assert!(
        control.notified().now_or_never().is_none(),
        "no news for queue q"
    );
    Connection::open(&path)
        .unwrap()
        .execute_batch("UPDATE porter_workers SET cancels = cancels + 1 WHERE id = 'w'")
        .unwrap();
    watcher.look(&wakeup);
    assert_eq!(
        wakeup.cancel_wakeups("w"),
        before + 1,
        "the request for w is news"
    );
}
