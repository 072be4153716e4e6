//! The writer's checkpoints, and what it does while a reader pins the WAL (issue 14's
//! sustained load with a long reader).
//!
//! SQLite checkpoints on its own after a commit that leaves at least 1,000 pages in the WAL
//! (`wal_autocheckpoint`). A checkpoint first lists and sorts every frame it has not copied
//! back yet, then copies those no reader still needs. A reader that keeps one snapshot open
//! (a long report, a forgotten transaction in another program) keeps every frame after its
//! snapshot in the WAL: each commit then checkpoints again, sorting a WAL that grows with every
//! write, and copies nothing. Measured with a reader held open for 10 minutes at 3,000 jobs a
//! second, porter's writes slowed with the WAL until nothing started in minute 10 (1.9 GiB of
//! WAL); a plain write loop with the same reader fell from 2,100 to 530 commits a second in
//! 35 seconds, and held 7,000-9,000 with the automatic checkpoint off.
//!
//! So the writer looks, at most once per [`PROBE`], at how much of the WAL a checkpoint of its
//! own could copy back (`PRAGMA wal_checkpoint(PASSIVE)`: it waits for nobody). When more than
//! [`PINNED_FRAMES`] stay behind, a reader pins them: the automatic checkpoint is turned off
//! and the writer tries again after [`PROBE`], then twice as long after each try that copied
//! nothing more, up to [`MAX_BACKOFF`]. Once a try leaves less behind than the automatic
//! checkpoint would (the reader is gone, or holds a recent snapshot), it is on again. Nothing can shrink the WAL while the reader
//! stays: it grows with the writes, as before, but the writes keep their pace.

use std::time::{Duration, Instant};

use rusqlite::Connection;

/// How often the writer looks at the WAL while nobody pins it, at most (after a commit).
pub(super) const PROBE: Duration = Duration::from_secs(1);
/// The longest wait between two checkpoints while a reader pins the WAL.
pub(super) const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Frames (pages) a checkpoint could not copy back past which a reader is taken to pin the
/// WAL: ten times what SQLite's automatic checkpoint lets accumulate (40 MiB of 4 KiB pages).
pub(super) const PINNED_FRAMES: i64 = 10_000;
/// `wal_autocheckpoint` while nobody pins the WAL (SQLite's default).
const AUTO_PAGES: i64 = 1_000;

/// Where the writer's checkpoints stand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    /// SQLite checkpoints after commits; the writer looks once per [`PROBE`].
    Automatic,
    /// A reader pins the WAL: the writer checkpoints itself every `wait`.
    Pinned {
        /// The wait before the next try.
        wait: Duration,
        /// The frames copied back by the last try (a try that copies no more waits longer).
        copied: i64,
    },
}

/// The writer's checkpoint policy; [`Checkpoints::after_commit`] runs after each commit.
#[derive(Debug)]
pub(super) struct Checkpoints {
    mode: Mode,
    last: Instant,
}

impl Checkpoints {
    pub(super) fn new(now: Instant) -> Self {
        Checkpoints {
            mode: Mode::Automatic,
            last: now,
        }
    }

    #[cfg(test)]
    pub(super) fn mode(&self) -> Mode {
        self.mode
    }

    /// After a commit: checkpoints if it is time to (see the module's doc). An error is
    /// logged and leaves the mode as it was; the commit it follows stands.
    pub(super) fn after_commit(&mut self, conn: &Connection, now: Instant) {
        let wait = match self.mode {
            Mode::Automatic => PROBE,
            Mode::Pinned { wait, .. } => wait,
        };
        if now.duration_since(self.last) < wait {
            return;
        }
        self.last = now;
        if let Err(e) = self.checkpoint(conn) {
            tracing::warn!(error = %e, "SQLite writer: checkpoint failed");
        }
    }

    fn checkpoint(&mut self, conn: &Connection) -> rusqlite::Result<()> {
        // (busy, frames in the WAL, frames copied back); -1, -1 when it could not run.
        let (_, log, copied): (i64, i64, i64) =
            conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })?;
        if log < 0 {
            // It could not run (another connection was checkpointing, or no WAL): nothing
            // learnt, so nothing changes.
            return Ok(());
        }
        let behind = log - copied;
        self.mode = match self.mode {
            Mode::Automatic if behind > PINNED_FRAMES => {
                set_auto(conn, 0)?;
                tracing::warn!(
                    frames = behind,
                    "a reader holds the SQLite WAL: it cannot be checkpointed past the reader's \
                     snapshot and grows until that reader ends its transaction"
                );
                Mode::Pinned {
                    wait: PROBE,
                    copied,
                }
            }
            Mode::Automatic => Mode::Automatic,
            Mode::Pinned { .. } if behind < AUTO_PAGES => {
                set_auto(conn, AUTO_PAGES)?;
                tracing::info!("the SQLite WAL was checkpointed again");
                Mode::Automatic
            }
            Mode::Pinned {
                wait,
                copied: before,
            } => Mode::Pinned {
                wait: if copied > before {
                    PROBE
                } else {
                    (wait * 2).min(MAX_BACKOFF)
                },
                copied,
            },
        };
        Ok(())
    }
}

fn set_auto(conn: &Connection, pages: i64) -> rusqlite::Result<()> {
    conn.query_row(&format!("PRAGMA wal_autocheckpoint = {pages}"), [], |_| {
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    //! A reader held open on its own connection, a writer's commits, and the policy fed its
    //! times by the test (no sleeping): what is asserted is the mode, the automatic
    //! checkpoint's setting, and what a checkpoint copied back, never a duration.

    use super::*;

    fn open(path: &std::path::Path) -> Connection {
        let conn = Connection::open(path).unwrap();
        conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))
            .unwrap();
        conn
    }

    /// `n` commits of `pages` pages each (rows of 4,000 bytes, one a page), each followed by
    /// the policy at a time `step` after the one before.
    fn commits(
        conn: &Connection,
        policy: &mut Checkpoints,
        now: &mut Instant,
        n: usize,
        pages: usize,
        step: Duration,
    ) {
        for _ in 0..n {
            conn.execute_batch("BEGIN").unwrap();
            for _ in 0..pages {
                conn.execute("INSERT INTO t VALUES (randomblob(4000))", [])
                    .unwrap();
            }
            conn.execute_batch("COMMIT").unwrap();
            *now += step;
            policy.after_commit(conn, *now);
        }
    }

    /// A reader on a connection of its own whose snapshot stays open until it commits.
    fn pin(path: &std::path::Path) -> Connection {
        let reader = open(path);
        reader.execute_batch("BEGIN").unwrap();
        reader
            .query_row("SELECT count(*) FROM t", [], |r| r.get::<_, i64>(0))
            .unwrap();
        reader
    }

    fn auto_pages(conn: &Connection) -> i64 {
        conn.query_row("PRAGMA wal_autocheckpoint", [], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn a_pinned_wal_turns_the_automatic_checkpoint_off_until_the_reader_ends() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        let writer = open(&path);
        writer.execute_batch("CREATE TABLE t (b BLOB)").unwrap();
        let mut now = Instant::now();
        let mut policy = Checkpoints::new(now);

        // Nobody pins: the probes find the WAL copied back, and nothing changes.
        commits(&writer, &mut policy, &mut now, 50, 100, PROBE / 4);
        assert_eq!(policy.mode(), Mode::Automatic);
        assert_eq!(auto_pages(&writer), AUTO_PAGES);

        // A reader opens a snapshot and keeps it.
        let reader = pin(&path);
        commits(&writer, &mut policy, &mut now, 120, 100, PROBE / 4);
        let Mode::Pinned { wait, .. } = policy.mode() else {
            panic!("{:?}", policy.mode());
        };
        assert_eq!(auto_pages(&writer), 0, "the automatic checkpoint is off");
        assert!(
            wait > PROBE,
            "tries that copied nothing wait longer: {wait:?}"
        );

        // The waits grow to the cap and stay there.
        commits(&writer, &mut policy, &mut now, 400, 1, MAX_BACKOFF / 8);
        assert_eq!(
            policy.mode(),
            Mode::Pinned {
                wait: MAX_BACKOFF,
                copied: match policy.mode() {
                    Mode::Pinned { copied, .. } => copied,
                    Mode::Automatic => unreachable!(),
                },
            }
        );

        // The reader ends: the next try copies the whole WAL back, and SQLite checkpoints on
        // its own again.
        reader.execute_batch("COMMIT").unwrap();
        commits(&writer, &mut policy, &mut now, 1, 1, MAX_BACKOFF);
        assert_eq!(policy.mode(), Mode::Automatic);
        assert_eq!(auto_pages(&writer), AUTO_PAGES);
        let (log, copied): (i64, i64) = writer
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                Ok((r.get(1)?, r.get(2)?))
            })
            .unwrap();
        assert_eq!(log, copied, "the WAL is copied back whole");
    }

    #[test]
    fn a_reader_that_moves_on_keeps_the_waits_short() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        let writer = open(&path);
        writer.execute_batch("CREATE TABLE t (b BLOB)").unwrap();
        let mut now = Instant::now();
        let mut policy = Checkpoints::new(now);
        let reader = pin(&path);
        commits(&writer, &mut policy, &mut now, 12, 1_000, PROBE);
        assert!(
            matches!(policy.mode(), Mode::Pinned { .. }),
            "{:?}",
            policy.mode()
        );
        // A new snapshot, and more commits after it before the next try: the frames before the
        // snapshot are copied back, so the try copies more, and the wait goes back to the
        // shortest; those after it stay.
        reader.execute_batch("COMMIT; BEGIN").unwrap();
        reader
            .query_row("SELECT count(*) FROM t", [], |r| r.get::<_, i64>(0))
            .unwrap();
        commits(&writer, &mut policy, &mut now, 2, 1_000, Duration::ZERO);
        commits(&writer, &mut policy, &mut now, 1, 1, MAX_BACKOFF);
        let Mode::Pinned { wait, .. } = policy.mode() else {
            panic!(
                "2,000 pages after the reader's new snapshot: {:?}",
                policy.mode()
            );
        };
        assert_eq!(wait, PROBE);
    }
}
