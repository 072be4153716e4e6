//! Where a queue's plain claim starts its walk of `porter_jobs_fetch` (issue 14's sustained
//! load).
//!
//! Every state change of a job leaves its old entry in `porter_jobs_fetch` (state is part of
//! the key) pointing at a row version that is dead once the change commits. Postgres marks
//! such entries as skippable only when no snapshot can still see the old version; while a
//! transaction stays open anywhere in the database (an idle-in-transaction session, a long
//! report, a replica's feedback), none can be, and each claim that walks the queue from its
//! start visits every job claimed since that transaction began, each with a heap fetch. The
//! claim then costs more with every job, until the worker does nothing but claim: measured,
//! throughput fell to zero within 3 to 9 minutes at 500 to 1,500 jobs/s.
//!
//! So the claim starts after a position, `(priority, scheduled_at, id)` in the index's own
//! order: a *cursor* just behind the newest job the queue's claims took. A job can sort before
//! the cursor and still be available: a job promoted from scheduled or retryable with a due
//! time before the cursor's, one inserted by a transaction that committed long after it began
//! (its due time is that beginning), or one inserted with a due time in the past. (A job given
//! back or rescued is due again at once, after the cursor.) Such jobs are found by a *full* claim, one from the
//! queue's start, which runs
//! * every [`FULL_EVERY`];
//! * sooner when this process promoted due jobs of the queue ([`Cursors::rewind`]): with no
//!   transaction held, a full claim costs about what a cursor claim does, and such jobs are
//!   claimed at once, in order;
//! * but never more often than keeps full claims within 1 / [`FULL_COST_SHARE`] of the time:
//!   while a held transaction makes a full claim walk dead entries for 1 s, it comes at most
//!   every 20 s, and jobs behind the cursor wait that long.
//!
//! The cursor trails the newest job taken by one to two [`LAG`]s, so that a job whose insert
//! committed up to a `LAG` after its due time (the time its transaction began) is not passed
//! by; and it is kept only while the claims take jobs of the first priority (1): a job of a
//! higher priority sorts before any cursor of a later one, so a queue whose claims reach
//! priority 2 walks from its start, as before. A claim taking jobs behind the cursor (a full
//! claim that found some) moves the cursor back to the newest of them.
//!
//! A cursor is a hint kept per queue in this process: a wrong one delays a job by at most the
//! full-claim interval, and never loses or doubles one (the claim's row locks and fencing are
//! unchanged). Queues with limits are claimed by `job_claim_limited.sql`, which walks from the
//! start as before.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use crate::job::JobRow;

/// How far the cursor trails the newest job the queue's claims took (between one and two of
/// these).
pub(crate) const LAG: Duration = Duration::from_secs(1);
/// A full claim at least this often.
pub(crate) const FULL_EVERY: Duration = Duration::from_secs(1);
/// At most this share of the time goes to full claims: the next comes no sooner than their
/// last cost divided by it.
pub(crate) const FULL_COST_SHARE: u32 = 20;

/// A job's place in `porter_jobs_fetch`'s order within its queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Position {
    pub priority: i16,
    pub scheduled_at: DateTime<Utc>,
    pub id: i64,
}

impl Position {
    /// Before every job: priorities start at 1 (the time is then never compared).
    pub(crate) fn start() -> Self {
        Position {
            priority: 0,
            scheduled_at: DateTime::<Utc>::UNIX_EPOCH,
            id: 0,
        }
    }

    pub(crate) fn of(job: &JobRow) -> Self {
        Position {
            priority: job.priority,
            scheduled_at: job.scheduled_at,
            id: job.id,
        }
    }
}

/// One queue's cursor.
#[derive(Debug)]
struct Cursor {
    /// Where cursor claims start; `None`: from the start.
    at: Option<Position>,
    /// The newest position taken since `since`, which becomes `at` once a [`LAG`] old.
    newest: Option<(Instant, Position)>,
    /// When the last full claim ran, and what it cost.
    last_full: Option<(Instant, Duration)>,
    /// Jobs may be available behind the cursor: a full claim as soon as its cost allows.
    rewound: bool,
}

/// The cursors of this process's queues.
#[derive(Debug, Default)]
pub(crate) struct Cursors {
    queues: Mutex<HashMap<String, Cursor>>,
}

/// What a claim is about to do: start at `from`; `full` when that is the queue's start.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Walk {
    pub from: Position,
    pub full: bool,
    started: Instant,
}

impl Cursors {
    /// Where the next claim of `queue` starts, at `now`.
    pub(crate) fn walk(&self, queue: &str, now: Instant) -> Walk {
        let queues = self.queues.lock().expect("cursor lock");
        let cursor = queues.get(queue);
        let at = cursor.and_then(|c| c.at);
        let full_due = match cursor {
            None
            | Some(Cursor {
                last_full: None, ..
            }) => true,
            Some(Cursor {
                last_full: Some((ran, cost)),
                rewound,
                ..
            }) => {
                let every = if *rewound { Duration::ZERO } else { FULL_EVERY };
                now.duration_since(*ran) >= every.max(*cost * FULL_COST_SHARE)
            }
        };
        match at {
            Some(from) if !full_due => Walk {
                from,
                full: false,
                started: now,
            },
            _ => Walk {
                from: Position::start(),
                full: true,
                started: now,
            },
        }
    }

    /// Records what a claim that walked as `walk` took (the newest of its jobs), at `now`.
    pub(crate) fn taken(&self, queue: &str, walk: Walk, newest: Option<Position>, now: Instant) {
        let mut queues = self.queues.lock().expect("cursor lock");
        let cursor = queues.entry(queue.to_string()).or_insert(Cursor {
            at: None,
            newest: None,
            last_full: None,
            rewound: false,
        });
        if walk.full {
            cursor.last_full = Some((now, now.duration_since(walk.started)));
            cursor.rewound = false;
        }
        let Some(newest) = newest else {
            return;
        };
        if newest.priority > 1 {
            // Jobs of a higher priority would sort before this: walk from the start.
            cursor.at = None;
            cursor.newest = None;
            return;
        }
        if cursor.at.is_some_and(|at| newest <= at) {
            // Jobs behind the cursor, not all of them perhaps: take them in order from here.
            cursor.at = Some(newest);
            cursor.newest = None;
            return;
        }
        cursor.newest = match cursor.newest {
            None => Some((now, newest)),
            Some((since, _)) if now.duration_since(since) >= LAG => {
                // `newest` was the newest taken a LAG ago: the cursor moves up to it, and
                // this claim's newest starts the next LAG.
                cursor.at = cursor.newest.map(|(_, p)| p).max(cursor.at);
                Some((now, newest))
            }
            Some((since, p)) => Some((since, p.max(newest))),
        };
    }

    /// Jobs of `queue` may have become available behind its cursor (this process promoted
    /// some): a full claim as soon as its cost allows.
    pub(crate) fn rewind(&self, queue: &str) {
        let mut queues = self.queues.lock().expect("cursor lock");
        if let Some(cursor) = queues.get_mut(queue) {
            cursor.rewound = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn pos(priority: i16, secs: i64, id: i64) -> Position {
        Position {
            priority,
            scheduled_at: Utc.timestamp_opt(1_764_547_200 + secs, 0).unwrap(),
            id,
        }
    }

    /// A claim at `t` ms after `t0` that took jobs at `taken`, at once; returns whether it was
    /// full and where it started.
    fn claim(c: &Cursors, t0: Instant, t: u64, taken: &[Position]) -> (bool, Position) {
        let now = t0 + Duration::from_millis(t);
        let walk = c.walk("q", now);
        c.taken("q", walk, taken.iter().copied().max(), now);
        (walk.full, walk.from)
    }

    #[test]
    fn the_cursor_trails_the_newest_job_taken_by_a_lag() {
        let (c, t0) = (Cursors::default(), Instant::now());
        assert!(
            claim(&c, t0, 0, &[pos(1, 0, 1), pos(1, 0, 2)]).0,
            "the first claim is full"
        );
        // Within the first LAG there is no cursor yet: every claim is full.
        assert!(claim(&c, t0, 500, &[pos(1, 1, 3)]).0);
        assert!(claim(&c, t0, 1_100, &[pos(1, 2, 4)]).0);
        // The newest position of the first LAG (job 3) became the cursor at 1,100 ms.
        let (full, from) = claim(&c, t0, 1_200, &[pos(1, 3, 5)]);
        assert!(!full);
        assert_eq!(from, pos(1, 1, 3));
        // A full claim comes back FULL_EVERY after the last (at 1,100 ms).
        assert!(!claim(&c, t0, 2_000, &[]).0);
        assert!(claim(&c, t0, 2_100, &[]).0);
    }

    #[test]
    fn full_claims_that_cost_much_come_less_often() {
        let (c, t0) = (Cursors::default(), Instant::now());
        claim(&c, t0, 0, &[pos(1, 0, 1)]);
        claim(&c, t0, 1_000, &[pos(1, 1, 2)]);
        // A full claim at 2,000 ms that takes 500 ms: the next is due 10 s after it ended,
        // even when asked for.
        let walk = c.walk("q", t0 + Duration::from_millis(2_000));
        assert!(walk.full);
        c.taken(
            "q",
            walk,
            Some(pos(1, 2, 3)),
            t0 + Duration::from_millis(2_500),
        );
        c.rewind("q");
        assert!(!claim(&c, t0, 12_000, &[]).0);
        assert!(claim(&c, t0, 12_500, &[]).0);
    }

    #[test]
    fn a_rewind_asks_for_a_full_claim_and_jobs_behind_move_the_cursor_back() {
        let (c, t0) = (Cursors::default(), Instant::now());
        claim(&c, t0, 0, &[pos(1, 10, 10)]);
        claim(&c, t0, 1_000, &[pos(1, 11, 11)]);
        assert_eq!(claim(&c, t0, 1_100, &[]), (false, pos(1, 10, 10)));
        // A job promoted behind the cursor: the next claim is full and finds it.
        c.rewind("q");
        assert!(claim(&c, t0, 1_200, &[pos(1, 5, 3)]).0);
        // More may wait behind it: cursor claims go on from there.
        assert_eq!(claim(&c, t0, 1_300, &[]), (false, pos(1, 5, 3)));
    }

    #[test]
    fn a_claim_reaching_a_later_priority_drops_the_cursor() {
        let (c, t0) = (Cursors::default(), Instant::now());
        claim(&c, t0, 0, &[pos(1, 0, 1)]);
        claim(&c, t0, 1_000, &[pos(1, 1, 2)]);
        assert!(!claim(&c, t0, 1_100, &[pos(2, 0, 7)]).0);
        assert_eq!(
            claim(&c, t0, 1_200, &[]),
            (true, Position::start()),
            "priority 2 taken: from the start"
        );
    }
}
