//! Where a queue's plain claim starts its walk of `porter_jobs_fetch` (issue 14's sustained
//! load).
//!
//! A claim leaves the claimed job's entry in `porter_jobs_fetch` (which since migration 0041
//! holds available jobs only: the new row version, running, gets none) pointing at a row
//! version that is dead once the claim commits. Postgres marks
//! such entries as skippable only when no snapshot can still see the old version; while a
//! transaction stays open anywhere in the database (an idle-in-transaction session, a long
//! report, a replica's feedback), none can be, and each claim that walks the queue from its
//! start visits every job claimed since that transaction began, each with a heap fetch. The
//! claim then costs more with every job, until the worker does nothing but claim: measured,
//! throughput fell to zero within 3 to 9 minutes at 500 to 1,500 jobs/s.
//!
//! So the claim starts after a position, `(priority, scheduled_at, id)` in the index's own
//! order: a *cursor* just behind the newest job the queue's claims took. A job can sort before
//! the cursor and still be available: a workflow's, sequence's or batch's job made available
//! when the jobs it waited for ended (it keeps its due time, usually its insert's), a job
//! promoted from scheduled or retryable with a due time before the cursor's, one inserted by a
//! transaction that committed long after the insert (its due time is the insert's), or one
//! inserted with a due time in the past. (A job given back or rescued is due again at once,
//! after the cursor.) Such jobs are found by a *full* claim, one from the queue's start, which
//! runs
//! * every [`FULL_EVERY`];
//! * sooner after a wake-up for the queue (every insert, a parent's or a sequence's end that
//!   made jobs available, a job given back: each sends NOTIFY, which the store's LISTEN task
//!   turns into [`Cursors::rewind`]) and after this process promoted due jobs of the queue:
//!   at once while full claims are cheap (at most [`CHEAP_FULL`]: no transaction is held, and
//!   a full claim costs about what a cursor claim does), so such jobs are claimed in order
//!   without delay; otherwise never more often than keeps full claims within 1 /
//!   [`FULL_COST_SHARE`] of the time: while a held transaction makes a full claim walk dead
//!   entries for 1 s, it comes at most every 20 s, and jobs behind the cursor wait that long;
//! * always for a claim along completions of jobs that had dependents, a sequence or a batch
//!   ([`Cursors::force`]): the workflow's next steps those completions made available are
//!   claimed with them.
//!
//! The cursor trails the newest job taken by at least a [`LAG`]: it moves, in windows of a
//! `LAG`, to the newest job taken in the window before the one that just closed. So a job
//! whose insert committed up to a `LAG` after its due time (the time of its insert statement) is
//! not passed by. It is kept only while the claims take jobs of the first priority (1): a job
//! of a higher priority sorts before any cursor of a later one, so a queue whose claims reach
//! priority 2 walks from its start, as before. A claim taking jobs behind the cursor (a full
//! claim that found some) moves the cursor back to the newest of them. Claims of one queue for
//! different kinds keep cursors of their own.
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
/// A full claim that took no longer than this costs about what a cursor claim does: after a
/// rewind, the next claim is full at once.
pub(crate) const CHEAP_FULL: Duration = Duration::from_millis(10);

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

/// One queue's cursor, for one set of kinds.
#[derive(Debug, Default)]
struct Cursor {
    /// Where cursor claims start; `None`: from the start.
    at: Option<Position>,
    /// The newest position taken in the last window that closed: `at` moves up to it when the
    /// window after it closes, at least a [`LAG`] after it was taken.
    closed: Option<Position>,
    /// The window being filled: when it opened, and the newest position taken in it. It closes
    /// at the first claim that takes jobs a [`LAG`] or more after it opened.
    open: Option<(Instant, Position)>,
    /// When the last full claim ran, and what it cost.
    last_full: Option<(Instant, Duration)>,
    /// Jobs may be available behind the cursor: a full claim as soon as its cost allows.
    rewound: bool,
    /// Jobs are available behind the cursor: the next claim is full, whatever it costs.
    forced: bool,
    /// Rewinds so far. A full claim answers only those that came before it began: its
    /// snapshot may be older than the jobs a later one announced.
    rewinds: u64,
    /// Forces so far, likewise.
    forces: u64,
}

/// The cursors of this process's queues, by queue and the kinds its claims take: claims of
/// one queue for different kinds (two runtimes on one store, say) skip different jobs.
#[derive(Debug, Default)]
pub(crate) struct Cursors {
    queues: Mutex<HashMap<(String, Vec<String>), Cursor>>,
}

/// What a claim is about to do: start at `from`; `full` when that is the queue's start.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Walk {
    pub from: Position,
    pub full: bool,
    started: Instant,
    /// The cursor's [`Cursor::rewinds`] and [`Cursor::forces`] when the claim began.
    asked: (u64, u64),
}

fn key(queue: &str, kinds: &[String]) -> (String, Vec<String>) {
    let mut kinds = kinds.to_vec();
    kinds.sort();
    kinds.dedup();
    (queue.to_string(), kinds)
}

impl Cursors {
    /// Where the next claim of `queue` for `kinds` starts, at `now`.
    pub(crate) fn walk(&self, queue: &str, kinds: &[String], now: Instant) -> Walk {
        let queues = self.queues.lock().expect("cursor lock");
        let cursor = queues.get(&key(queue, kinds));
        let at = cursor.and_then(|c| c.at);
        let asked = cursor.map_or((0, 0), |c| (c.rewinds, c.forces));
        let full_due = match cursor.and_then(|c| c.last_full.map(|l| (l, c))) {
            None => true,
            Some((_, c)) if c.forced => true,
            // A full claim as cheap as this costs about what a cursor claim does.
            Some(((_, cost), c)) if c.rewound && cost <= CHEAP_FULL => true,
            Some(((ran, cost), c)) => {
                let every = if c.rewound {
                    Duration::ZERO
                } else {
                    FULL_EVERY
                };
                now.duration_since(ran) >= every.max(cost * FULL_COST_SHARE)
            }
        };
        match at {
            Some(from) if !full_due => Walk {
                from,
                full: false,
                started: now,
                asked,
            },
            _ => Walk {
                from: Position::start(),
                full: true,
                started: now,
                asked,
            },
        }
    }

    /// Records what a claim that walked as `walk` took (the newest of its jobs), at `now`.
    pub(crate) fn taken(
        &self,
        queue: &str,
        kinds: &[String],
        walk: Walk,
        newest: Option<Position>,
        now: Instant,
    ) {
        let mut queues = self.queues.lock().expect("cursor lock");
        let cursor = queues.entry(key(queue, kinds)).or_default();
        if walk.full {
            cursor.last_full = Some((now, now.duration_since(walk.started)));
            // Each flag stays set only when asked for again while this claim ran: a rewind
            // during a forced claim asks for a full claim as its cost allows, not whatever
            // it costs.
            cursor.rewound = cursor.rewinds != walk.asked.0;
            cursor.forced = cursor.forces != walk.asked.1;
        }
        let Some(newest) = newest else {
            return;
        };
        if newest.priority > 1 {
            // Jobs of a higher priority would sort before this: walk from the start.
            *cursor = Cursor {
                last_full: cursor.last_full,
                rewinds: cursor.rewinds,
                forces: cursor.forces,
                ..Cursor::default()
            };
            return;
        }
        if cursor.at.is_some_and(|at| newest <= at) {
            // Jobs behind the cursor, not all of them perhaps: take them in order from here.
            cursor.at = Some(newest);
            cursor.closed = None;
            cursor.open = None;
            return;
        }
        cursor.open = match cursor.open {
            None => Some((now, newest)),
            Some((opened, p)) if now.duration_since(opened) >= LAG => {
                // The window closes: the cursor moves up to the one before it, whose newest
                // was taken before this one opened, a LAG or more ago.
                cursor.at = cursor.closed.max(cursor.at);
                cursor.closed = Some(p);
                Some((now, newest))
            }
            Some((opened, p)) => Some((opened, p.max(newest))),
        };
    }

    /// Jobs of `queue` may have become available behind its cursors (this process promoted
    /// some, or a wake-up came for the queue: an insert, a parent's end that made its children
    /// available, a job given back): a full claim as soon as its cost allows.
    pub(crate) fn rewind(&self, queue: &str) {
        self.each_of(queue, |cursor| {
            cursor.rewound = true;
            cursor.rewinds += 1;
        });
    }

    /// Jobs of `queue` are available behind its cursors (completions just made a workflow's,
    /// sequence's or batch's jobs available, and a claim along them follows): the next claim
    /// is full, whatever it costs.
    pub(crate) fn force(&self, queue: &str) {
        self.each_of(queue, |cursor| {
            cursor.forced = true;
            cursor.forces += 1;
        });
    }

    /// Applies `f` to the cursors of `queue`, whatever their kinds.
    fn each_of(&self, queue: &str, f: impl Fn(&mut Cursor)) {
        let mut queues = self.queues.lock().expect("cursor lock");
        queues
            .iter_mut()
            .filter(|((q, _), _)| q == queue)
            .for_each(|(_, cursor)| f(cursor));
    }

    /// [`Cursors::rewind`] for every queue (wake-ups may have been missed).
    pub(crate) fn rewind_all(&self) {
        let mut queues = self.queues.lock().expect("cursor lock");
        for cursor in queues.values_mut() {
            cursor.rewound = true;
            cursor.rewinds += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn kinds() -> Vec<String> {
        vec!["noop".to_string()]
    }

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
        let walk = c.walk("q", &kinds(), now);
        c.taken("q", &kinds(), walk, taken.iter().copied().max(), now);
        (walk.full, walk.from)
    }

    #[test]
    fn the_cursor_trails_the_newest_job_taken_by_a_lag() {
        let (c, t0) = (Cursors::default(), Instant::now());
        let first = claim(&c, t0, 0, &[pos(1, 0, 1), pos(1, 0, 2)]);
        assert!(first.0, "the first claim is full");
        assert!(claim(&c, t0, 500, &[pos(1, 1, 3)]).0);
        // The first window (0-1,100 ms) closes: nothing closed before it, no cursor yet.
        assert!(claim(&c, t0, 1_100, &[pos(1, 2, 4)]).0);
        assert!(claim(&c, t0, 1_200, &[pos(1, 3, 5)]).0);
        // The second closes: the cursor moves to the first's newest (job 3, taken 1.6 s
        // before).
        assert!(claim(&c, t0, 2_100, &[pos(1, 4, 6)]).0);
        assert_eq!(claim(&c, t0, 2_200, &[]), (false, pos(1, 1, 3)));
        // A full claim comes back FULL_EVERY after the last (at 2,100 ms).
        assert!(!claim(&c, t0, 3_000, &[]).0);
        assert!(claim(&c, t0, 3_100, &[]).0);
    }

    #[test]
    fn a_job_taken_just_before_a_window_closes_is_not_the_cursor_yet() {
        // Found by review: with one window, the newest job of the window that closed became
        // the cursor, though it may have been taken a moment before.
        let (c, t0) = (Cursors::default(), Instant::now());
        claim(&c, t0, 0, &[pos(1, 0, 1)]);
        claim(&c, t0, 1_000, &[pos(1, 1, 2)]);
        claim(&c, t0, 1_900, &[pos(1, 2, 3)]);
        claim(&c, t0, 2_000, &[pos(1, 3, 4)]);
        // Job 3 was taken 100 ms ago: the cursor is job 1, taken 2 s ago.
        assert_eq!(claim(&c, t0, 2_050, &[]), (false, pos(1, 0, 1)));
    }

    #[test]
    fn full_claims_that_cost_much_come_less_often() {
        let (c, t0) = (Cursors::default(), Instant::now());
        claim(&c, t0, 0, &[pos(1, 0, 1)]);
        claim(&c, t0, 1_000, &[pos(1, 1, 2)]);
        // A full claim at 2,000 ms that takes 500 ms: the next is due 10 s after it ended,
        // even when asked for.
        let walk = c.walk("q", &kinds(), t0 + Duration::from_millis(2_000));
        assert!(walk.full);
        let ended = t0 + Duration::from_millis(2_500);
        c.taken("q", &kinds(), walk, Some(pos(1, 2, 3)), ended);
        c.rewind("q");
        assert!(!claim(&c, t0, 12_000, &[]).0);
        assert!(claim(&c, t0, 12_500, &[]).0);
    }

    #[test]
    fn a_rewind_asks_for_a_full_claim_and_jobs_behind_move_the_cursor_back() {
        let (c, t0) = (Cursors::default(), Instant::now());
        claim(&c, t0, 0, &[pos(1, 10, 10)]);
        claim(&c, t0, 1_000, &[pos(1, 11, 11)]);
        claim(&c, t0, 2_000, &[pos(1, 12, 12)]);
        assert_eq!(claim(&c, t0, 2_100, &[]), (false, pos(1, 10, 10)));
        // A child made available behind the cursor: the wake-up for it rewinds, the next
        // claim is full and finds it.
        c.rewind("q");
        assert!(claim(&c, t0, 2_200, &[pos(1, 5, 3)]).0);
        // More may wait behind it: cursor claims go on from there.
        assert_eq!(claim(&c, t0, 2_300, &[]), (false, pos(1, 5, 3)));
        c.rewind_all();
        assert!(claim(&c, t0, 2_400, &[]).0);
    }

    #[test]
    fn a_claim_reaching_a_later_priority_drops_the_cursor() {
        let (c, t0) = (Cursors::default(), Instant::now());
        claim(&c, t0, 0, &[pos(1, 0, 1)]);
        claim(&c, t0, 1_000, &[pos(1, 1, 2)]);
        claim(&c, t0, 2_000, &[pos(1, 2, 3)]);
        assert!(!claim(&c, t0, 2_100, &[pos(2, 0, 7)]).0);
        assert_eq!(
            claim(&c, t0, 2_200, &[]),
            (true, Position::start()),
            "priority 2 taken: from the start"
        );
    }

    #[test]
    fn claims_for_other_kinds_keep_a_cursor_of_their_own() {
        // Found by review: two runtimes on one store claiming one queue for different kinds
        // shared a cursor, so the busier one's claims passed the other's jobs.
        let (c, t0) = (Cursors::default(), Instant::now());
        claim(&c, t0, 0, &[pos(1, 0, 1)]);
        claim(&c, t0, 1_000, &[pos(1, 1, 2)]);
        claim(&c, t0, 2_000, &[pos(1, 2, 3)]);
        assert!(!claim(&c, t0, 2_100, &[]).0);
        let other = vec!["mail".to_string()];
        let walk = c.walk("q", &other, t0 + Duration::from_millis(2_100));
        assert!(walk.full, "no cursor for the other kinds");
        let same = vec!["noop".to_string(), "noop".to_string()];
        assert!(!c.walk("q", &same, t0 + Duration::from_millis(2_100)).full);
    }

    #[test]
    fn a_forced_claim_is_full_whatever_full_claims_cost() {
        let (c, t0) = (Cursors::default(), Instant::now());
        claim(&c, t0, 0, &[pos(1, 0, 1)]);
        claim(&c, t0, 1_000, &[pos(1, 1, 2)]);
        let walk = c.walk("q", &kinds(), t0 + Duration::from_millis(2_000));
        let ended = t0 + Duration::from_millis(2_500);
        c.taken("q", &kinds(), walk, Some(pos(1, 2, 3)), ended);
        c.rewind("q");
        assert!(
            !claim(&c, t0, 2_600, &[]).0,
            "a 500 ms full claim: not at once"
        );
        c.force("q");
        assert!(claim(&c, t0, 2_700, &[]).0);
    }

    #[test]
    fn a_rewind_during_a_full_claim_asks_for_another() {
        // Found by review: a full claim cleared the rewinds that came while it ran, though its
        // snapshot may be older than the jobs they announced (a workflow's next step made
        // available by another process's commit, say); the claims after it went from the
        // cursor and passed those jobs until the next full claim was due.
        let (c, t0) = (Cursors::default(), Instant::now());
        claim(&c, t0, 0, &[pos(1, 10, 10)]);
        claim(&c, t0, 1_000, &[pos(1, 11, 11)]);
        claim(&c, t0, 2_000, &[pos(1, 12, 12)]);
        for ask in [Cursors::rewind, Cursors::force] {
            c.rewind("q");
            let walk = c.walk("q", &kinds(), t0 + Duration::from_millis(2_100));
            assert!(walk.full);
            ask(&c, "q");
            let ended = t0 + Duration::from_millis(2_101);
            c.taken("q", &kinds(), walk, None, ended);
            assert!(
                claim(&c, t0, 2_102, &[]).0,
                "asked for while the full claim ran: the next is full too"
            );
            assert!(!claim(&c, t0, 2_103, &[]).0, "and that one answered it");
        }
    }

    #[test]
    fn a_rewind_during_a_forced_claim_waits_for_the_cost_limit() {
        // Found by review of the test above's fix: one count for rewinds and forces kept a
        // force set when a rewind came during the forced claim (a completion's own NOTIFY
        // does), so every claim after was full whatever full claims cost.
        let (c, t0) = (Cursors::default(), Instant::now());
        claim(&c, t0, 0, &[pos(1, 0, 1)]);
        claim(&c, t0, 1_000, &[pos(1, 1, 2)]);
        claim(&c, t0, 2_000, &[pos(1, 2, 3)]);
        c.force("q");
        let walk = c.walk("q", &kinds(), t0 + Duration::from_millis(2_100));
        assert!(walk.full);
        c.rewind("q");
        // A 500 ms full claim: the rewind may have it again only 10 s after it ended.
        c.taken("q", &kinds(), walk, None, t0 + Duration::from_millis(2_600));
        assert!(!claim(&c, t0, 2_700, &[]).0, "the force was answered");
        assert!(
            claim(&c, t0, 12_600, &[]).0,
            "the rewind, as the cost allows"
        );
    }
}
