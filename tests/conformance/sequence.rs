//! Sequences (issue 15.4): jobs with one sequence key run one at a time, in insertion order;
//! the next becomes due only when the previous is finalized; a job waiting to retry holds its
//! sequence.

use std::time::Duration;

use porter::job::{InsertOpts, JobState};
use porter::store::*;
use porter::Error;

use super::*;

fn seq(kind: &str, key: &str) -> JobInsertParams {
    job_with(
        kind,
        InsertOpts {
            sequence_key: Some(key.into()),
            ..Default::default()
        },
    )
}

async fn state(s: &Store, id: i64) -> JobState {
    s.job_get(id).await.unwrap().unwrap().state
}

backend_case! {
    /// The first job of a sequence is available; the later ones wait (pending) and are never
    /// claimed; each end (completed, discarded, cancelled) makes the next one available, in
    /// insertion order; other sequences and plain jobs are not held up.
    async fn a_sequence_runs_one_at_a_time_in_insertion_order(db: TestDb) {
        let s = &db.store;
        let a = insert(s, seq("step", "acct-1")).await;
        let b = insert(s, seq("step", "acct-1")).await;
        let c = insert(s, seq("step", "acct-1")).await;
        let d = insert(s, seq("step", "acct-1")).await;
        let other = insert(s, seq("step", "acct-2")).await;
        let plain = insert(s, job("step")).await;
        assert_eq!(a.state, JobState::Available);
        for j in [&b, &c, &d] {
            assert_eq!(j.state, JobState::Pending, "{j:?}");
            assert_eq!(j.sequence_key.as_deref(), Some("acct-1"));
        }
        assert_eq!(other.state, JobState::Available);
        let got = s.job_claim(claim("default", &["step"], 10, W)).await.unwrap();
        let ids: Vec<i64> = got.iter().map(|j| j.id).collect();
        assert_eq!(ids, vec![a.id, other.id, plain.id], "only the heads and the plain job");
        let counts = s.job_counts().await.unwrap().total;
        assert_eq!(counts[&JobState::Pending], 3);
        // Completed: the next is due at once.
        s.job_complete_many(vec![got[0].fence()]).await.unwrap();
        assert_eq!(state(s, b.id).await, JobState::Available);
        assert_eq!(state(s, c.id).await, JobState::Pending);
        // Discarded: the next goes on.
        let rb = claim_one(s, "step").await;
        assert_eq!(rb.id, b.id);
        let mut discard = fail(&rb, "no", Duration::ZERO);
        discard.discard = true;
        s.job_fail(discard).await.unwrap();
        assert_eq!(state(s, c.id).await, JobState::Available);
        // Cancelled by a user before it ran: the next goes on.
        s.job_cancel(c.id).await.unwrap();
        assert_eq!(state(s, d.id).await, JobState::Available);
        assert_eq!(claim_one(s, "step").await.id, d.id);
    }
}

backend_case! {
    /// A job of a sequence that fails and waits to retry keeps the sequence: the next one stays
    /// pending until the retried one is finalized.
    async fn a_job_waiting_to_retry_holds_its_sequence(db: TestDb) {
        let s = &db.store;
        let a = insert(s, seq("step", "k")).await;
        let b = insert(s, seq("step", "k")).await;
        let ra = claim_one(s, "step").await;
        s.job_fail(fail(&ra, "try again", Duration::ZERO)).await.unwrap();
        assert_eq!(state(s, a.id).await, JobState::Retryable);
        assert_eq!(state(s, b.id).await, JobState::Pending);
        // Due again: the retry is claimed, never b.
        let again = claim_one(s, "step").await;
        assert_eq!(again.id, a.id);
        assert_eq!(state(s, b.id).await, JobState::Pending);
        // A snooze and a release keep it too.
        s.job_snooze(JobSnoozeParams { fence: again.fence(), delay: Duration::ZERO }).await.unwrap();
        assert_eq!(state(s, b.id).await, JobState::Pending);
        let again = claim_one(s, "step").await;
        s.job_complete_many(vec![again.fence()]).await.unwrap();
        assert_eq!(state(s, b.id).await, JobState::Available);
    }
}

backend_case! {
    /// A running job of a sequence cancelled by a user keeps the sequence until its worker
    /// stops it; a pending one cancelled promotes nothing and the order goes on.
    async fn cancelling_jobs_of_a_sequence_keeps_the_order(db: TestDb) {
        let s = &db.store;
        let a = insert(s, seq("step", "k")).await;
        let b = insert(s, seq("step", "k")).await;
        let c = insert(s, seq("step", "k")).await;
        let ra = claim_one(s, "step").await;
        s.job_cancel(b.id).await.unwrap();
        assert_eq!(state(s, b.id).await, JobState::Cancelled);
        assert_eq!(state(s, c.id).await, JobState::Pending, "a is still running");
        s.job_cancel(a.id).await.unwrap();
        assert_eq!(state(s, a.id).await, JobState::Running, "only a request");
        assert_eq!(state(s, c.id).await, JobState::Pending);
        s.job_cancel_running(JobCancelRunningParams { started: true, fence: ra.fence(), reason: "asked".into() }).await.unwrap();
        assert_eq!(state(s, c.id).await, JobState::Available);
    }
}

backend_case! {
    /// A rescued job of a sequence (its worker lost) is retryable and still holds the
    /// sequence; one whose attempts are used up is discarded and lets the next go.
    async fn a_rescued_job_holds_its_sequence_until_it_ends(db: TestDb) {
        let s = &db.store;
        let a = insert(s, job_with("step", InsertOpts { sequence_key: Some("k".into()), max_attempts: Some(1), ..Default::default() })).await;
        let b = insert(s, seq("step", "k")).await;
        claim_one(s, "step").await;
        // No heartbeat from worker-a: lost at once with a zero lease.
        let counts = s.job_rescue(JobRescueParams { ending: Vec::new(), by: None, lease: Duration::ZERO, stuck_after: vec![], limit: 100 }).await.unwrap();
        assert_eq!(counts.retried, 1, "its first loss costs no attempt");
        assert_eq!(state(s, a.id).await, JobState::Retryable);
        assert_eq!(state(s, b.id).await, JobState::Pending);
        let ra = claim_one(s, "step").await;
        assert_eq!(ra.id, a.id);
        s.job_fail(fail(&ra, "last", Duration::ZERO)).await.unwrap();
        assert_eq!(state(s, a.id).await, JobState::Discarded);
        assert_eq!(state(s, b.id).await, JobState::Available);
    }
}

backend_case! {
    /// Retrying a finished job of a busy sequence puts it in line (pending), never beside the
    /// running one; a pending job cannot be retried (it has not run).
    async fn retrying_a_job_of_a_busy_sequence_waits_its_turn(db: TestDb) {
        let s = &db.store;
        let a = insert(s, seq("step", "k")).await;
        let ra = claim_one(s, "step").await;
        s.job_complete_many(vec![ra.fence()]).await.unwrap();
        let b = insert(s, seq("step", "k")).await;
        assert_eq!(b.state, JobState::Available, "the sequence was free");
        let c = insert(s, seq("step", "k")).await;
        let err = s.job_retry(c.id).await.unwrap_err();
        assert!(matches!(err, Error::Conflict(_)), "{err:?}");
        assert!(err.to_string().contains("pending"), "{err}");
        let rb = claim_one(s, "step").await;
        let retried = s.job_retry(a.id).await.unwrap();
        assert_eq!(retried.state, JobState::Pending);
        s.job_complete_many(vec![rb.fence()]).await.unwrap();
        // The oldest waiting job goes first: a (retried), then c.
        assert_eq!(state(s, a.id).await, JobState::Available);
        assert_eq!(state(s, c.id).await, JobState::Pending);
        let ra = claim_one(s, "step").await;
        assert_eq!(ra.id, a.id);
        s.job_complete_many(vec![ra.fence()]).await.unwrap();
        assert_eq!(state(s, c.id).await, JobState::Available);
    }
}

backend_case! {
    /// Retrying (running now) the job whose turn it is (scheduled for later, or waiting to
    /// retry) keeps its turn. It was put in line behind the jobs waiting for it, as a finished
    /// job is: every job of the sequence was then pending, none was due, and no job's end
    /// would ever promote one, so the sequence stopped for good.
    async fn retrying_the_job_whose_turn_it_is_keeps_the_sequence_going(db: TestDb) {
        let s = &db.store;
        let later = InsertOpts { sequence_key: Some("k".into()), schedule_in: Some(Duration::from_secs(3600)), ..Default::default() };
        let a = insert(s, job_with("step", later)).await;
        assert_eq!(a.state, JobState::Scheduled);
        let b = insert(s, seq("step", "k")).await;
        assert_eq!(b.state, JobState::Pending);
        assert_eq!(s.job_retry(a.id).await.unwrap().state, JobState::Available, "run now, its turn kept");
        assert_eq!(state(s, b.id).await, JobState::Pending);
        // Claimed and failed: waiting to retry, still its turn; retried by hand, again.
        let ra = claim_one(s, "step").await;
        assert_eq!(ra.id, a.id);
        s.job_fail(fail(&ra, "boom", Duration::from_secs(3600))).await.unwrap();
        assert_eq!(state(s, a.id).await, JobState::Retryable);
        assert_eq!(s.job_retry(a.id).await.unwrap().state, JobState::Available);
        let ra = claim_one(s, "step").await;
        s.job_complete_many(vec![ra.fence()]).await.unwrap();
        assert_eq!(state(s, b.id).await, JobState::Available, "then the next");
    }
}

backend_case! {
    /// A sequence key over 255 bytes, empty, or with NUL is refused with a clear error, and
    /// nothing is written; a sequence job due later is scheduled, its successors wait.
    async fn bad_sequence_keys_are_refused(db: TestDb) {
        let s = &db.store;
        for bad in ["".to_string(), "k".repeat(256), "a\0b".to_string()] {
            let err = JobInsertParams::new("step", serde_json::json!({}), InsertOpts { sequence_key: Some(bad.clone()), ..Default::default() }).unwrap_err();
            assert!(matches!(err, Error::Invalid { .. }), "{err:?}");
            assert!(err.to_string().contains("sequence"), "{err}");
        }
        assert_eq!(total(s).await, 0);
        let ok = "k".repeat(255);
        let later = insert(s, job_with("step", InsertOpts { sequence_key: Some(ok.clone()), schedule_in: Some(Duration::from_secs(3600)), ..Default::default() })).await;
        assert_eq!(later.state, JobState::Scheduled);
        let next = insert(s, seq("step", &ok)).await;
        assert_eq!(next.state, JobState::Pending);
    }
}

backend_case! {
    /// Many finalizers of many sequences at once, from two stores (two processes' worth of
    /// connections): every sequence ends with all its jobs completed, in insertion order, and
    /// never two of a sequence running at once.
    async fn concurrent_finalizers_never_lose_or_double_a_promotion(db: TestDb) {
        let s1 = db.store.clone();
        let s2 = db.reopen().await;
        const KEYS: usize = 6;
        const PER_KEY: usize = 8;
        let mut ids = vec![Vec::new(); KEYS];
        for n in 0..PER_KEY {
            for (k, list) in ids.iter_mut().enumerate() {
                list.push(insert(&s1, seq("step", &format!("k{k}"))).await.id);
            }
            let _ = n;
        }
        let order = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for (w, s) in [s1.clone(), s2.clone(), s1.clone(), s2.clone()].into_iter().enumerate() {
            let order = order.clone();
            tasks.push(tokio::spawn(async move {
                let worker = format!("w{w}");
                let mut idle = 0;
                while idle < 200 {
                    let got = s.job_claim(claim("default", &["step"], 3, &worker)).await.unwrap();
                    if got.is_empty() {
                        idle += 1;
                        tokio::time::sleep(Duration::from_millis(5)).await;
                        continue;
                    }
                    idle = 0;
                    order.lock().unwrap().extend(got.iter().map(|j| (j.sequence_key.clone().unwrap(), j.id)));
                    s.job_complete_many(got.iter().map(|j| j.fence()).collect()).await.unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let counts = s1.job_counts().await.unwrap().total;
        assert_eq!(counts[&JobState::Completed], (KEYS * PER_KEY) as i64, "{counts:?}");
        let order = order.lock().unwrap().clone();
        for (k, want) in ids.iter().enumerate() {
            let got: Vec<i64> = order.iter().filter(|(key, _)| key == &format!("k{k}")).map(|(_, id)| *id).collect();
            assert_eq!(&got, want, "sequence k{k} ran in insertion order, each once");
        }
    }
}

backend_case! {
    /// Batches spanning several sequences, inserted and completed at once from several tasks,
    /// each batch in its own order, all finish: no deadlock (PostgreSQL takes a lock per
    /// sequence key when a job of it is inserted or finalized: every path must take them in
    /// one order) and no job is lost or run out of turn.
    async fn concurrent_batches_across_sequences_neither_deadlock_nor_lose_jobs(db: TestDb) {
        const KEYS: usize = 6;
        const ROUNDS: usize = 20;
        const PRODUCERS: usize = 2;
        let total = KEYS * ROUNDS * PRODUCERS;
        let mut tasks = Vec::new();
        for _ in 0..PRODUCERS {
            let s = db.store.clone();
            tasks.push(tokio::spawn(async move {
                for _ in 0..ROUNDS {
                    let mut keys: Vec<usize> = (0..KEYS).collect();
                    fastrand::shuffle(&mut keys);
                    let batch = keys.iter().map(|k| seq("step", &format!("acct-{k}"))).collect();
                    s.job_insert_many(batch).await?;
                }
                Ok::<usize, Error>(0)
            }));
        }
        for w in 0..2 {
            let s = db.store.clone();
            tasks.push(tokio::spawn(async move {
                let mut done = 0;
                let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
                while tokio::time::Instant::now() < deadline {
                    let mut fences: Vec<JobFence> = s
                        .job_claim(claim("default", &["step"], KEYS as u32, &format!("w-{w}")))
                        .await?
                        .iter()
                        .map(|j| j.fence())
                        .collect();
                    if fences.is_empty() {
                        let left = s.job_counts().await?.total;
                        if left[&JobState::Pending] + left[&JobState::Available] + left[&JobState::Running] == 0
                            && left[&JobState::Completed] as usize == total
                        {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(5)).await;
                        continue;
                    }
                    fastrand::shuffle(&mut fences);
                    done += s.job_complete_many(fences).await?.iter().filter(|c| **c).count();
                }
                Ok(done)
            }));
        }
        let mut completed = 0;
        for t in tasks {
            completed += t.await.unwrap().expect("no insert or completion fails");
        }
        assert_eq!(completed, total, "every job completed once");
        let jobs = db
            .store
            .job_list(JobListParams {
                limit: Some(10_000),
                ..Default::default()
            })
            .await
            .unwrap();
        for k in 0..KEYS {
            let key = format!("acct-{k}");
            let mut of_key: Vec<_> = jobs.iter().filter(|j| j.sequence_key.as_deref() == Some(&key)).collect();
            of_key.sort_by_key(|j| j.id);
            assert!(
                of_key.windows(2).all(|w| w[0].attempted_at <= w[1].attempted_at),
                "{key} ran in insertion order"
            );
        }
    }
}

backend_case! {
    /// A sequence has one unfinished job that may run whatever path writes the rows: a plain
    /// INSERT of another program (which skips porter's checks) of a second available job of a
    /// busy sequence is refused by the unique index `porter_jobs_sequence_active`, and inserts
    /// nothing. No test reached the index before (review of 5 Dec).
    async fn a_second_active_job_of_a_sequence_is_refused_by_the_index(db: TestDb) {
        let s = &db.store;
        let first = insert(s, seq("k", "s1")).await;
        assert_eq!(first.state, JobState::Available);
        let before = total(s).await;
        let sql = "INSERT INTO porter_jobs (kind, queue, args, state, sequence_key) \
                   VALUES ('k', 'default', '{}', 'available', 's1')";
        let err = match db.sqlite_path() {
            Some(path) => rusqlite::Connection::open(path).unwrap().execute(sql, []).unwrap_err().to_string(),
            None => {
                use sqlx::Connection;
                let mut c = sqlx::PgConnection::connect(&db.url).await.unwrap();
                sqlx::raw_sql(sql).execute(&mut c).await.unwrap_err().to_string()
            }
        };
        assert!(err.contains("porter_jobs_sequence_active") || err.contains("UNIQUE constraint failed: porter_jobs.sequence_key"), "{err}");
        assert_eq!(total(s).await, before, "nothing inserted");
        // A finished one does not count: a second row once the first completed goes in.
        let got = s.job_claim(claim("default", &["k"], 1, W)).await.unwrap();
        s.job_complete_many(vec![got[0].fence()]).await.unwrap();
        crate::common::raw_exec(&db, sql).await;
        assert_eq!(total(s).await, before + 1);
    }
}

backend_case! {
    /// A job of a sequence inserted in a caller's transaction whose snapshot was taken before
    /// the sequence's active job ended (PostgreSQL at REPEATABLE READ or SERIALIZABLE; SQLite's
    /// transaction that read first) is refused, for the caller to try again, not left waiting.
    /// On PostgreSQL the stale read found the ended job still running: the new job waited
    /// `pending`, nothing was left to start it, and every later job of the sequence waited
    /// behind it for good (review of 7 Dec, `porter_enqueue` and `_tx` inserts alike).
    async fn a_sequence_job_inserted_on_a_stale_snapshot_is_refused_not_stranded(db: TestDb) {
        let s = &db.store;
        let a = insert(s, seq("step", "acct")).await;
        let running = claim_one(s, "step").await;
        assert_eq!(running.id, a.id);
        let complete = || async {
            assert_eq!(s.job_complete_many(vec![running.fence()]).await.unwrap(), vec![true]);
        };
        match db.sqlite_path() {
            Some(path) => {
                let mut c = rusqlite::Connection::open(path).unwrap();
                c.busy_timeout(Duration::from_secs(5)).unwrap();
                let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Deferred).unwrap();
                let seen: String =
                    tx.query_row("SELECT state FROM porter_jobs WHERE id = ?1", [a.id], |r| r.get(0)).unwrap();
                assert_eq!(seen, "running");
                complete().await;
                let stale = porter::store::sqlite::job_insert_tx(&tx, &[seq("step", "acct")]);
                assert!(stale.is_err(), "{stale:?}");
            }
            None => {
                use sqlx::Connection;
                let mut active = running.clone();
                for level in ["REPEATABLE READ", "SERIALIZABLE"] {
                    let mut c = sqlx::PgConnection::connect(&db.url).await.unwrap();
                    let mut tx = c.begin().await.unwrap();
                    sqlx::query(&format!("SET TRANSACTION ISOLATION LEVEL {level}"))
                        .execute(&mut *tx)
                        .await
                        .unwrap();
                    let seen: String = sqlx::query_scalar("SELECT state FROM porter_jobs WHERE id = $1")
                        .bind(active.id)
                        .fetch_one(&mut *tx)
                        .await
                        .unwrap();
                    assert_eq!(seen, "running", "{level}");
                    assert_eq!(s.job_complete_many(vec![active.fence()]).await.unwrap(), vec![true]);
                    let stale = porter::store::postgres::job_insert_tx(&mut tx, vec![seq("step", "acct")]).await;
                    let err = stale.expect_err(level).to_string();
                    assert!(err.contains("could not serialize access"), "{level}: {err}");
                    tx.rollback().await.unwrap();
                    // The sequence goes on; its next job is the next level's active one.
                    let next = insert(s, seq("step", "acct")).await;
                    assert_eq!(next.state, JobState::Available, "{level}");
                    active = claim_one(s, "step").await;
                    assert_eq!(active.id, next.id);
                }
                assert_eq!(s.job_complete_many(vec![active.fence()]).await.unwrap(), vec![true]);
                // The check's row lock is let go at once: a claim meanwhile takes the
                // sequence's available job, which a lock held to the commit had it pass over
                // (review of 7 Dec).
                let first = insert(s, seq("step", "other")).await;
                let mut c = sqlx::PgConnection::connect(&db.url).await.unwrap();
                let mut tx = c.begin().await.unwrap();
                sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                    .execute(&mut *tx)
                    .await
                    .unwrap();
                let second = porter::store::postgres::job_insert_tx(&mut tx, vec![seq("step", "other")])
                    .await
                    .unwrap()
                    .remove(0);
                assert_eq!(second.job.state, JobState::Pending);
                assert_eq!(claim_one(s, "step").await.id, first.id, "claimed while the insert's transaction is open");
                tx.commit().await.unwrap();
            }
        }
        let waiting = s
            .job_list(Default::default())
            .await
            .unwrap()
            .into_iter()
            .filter(|j| j.state == JobState::Pending)
            .count();
        let behind_running = if db.sqlite_path().is_some() { 0 } else { 1 };
        assert_eq!(waiting, behind_running, "nothing waits behind an ended job");
        let next = insert(s, seq("step", "acct")).await;
        assert_eq!(next.state, JobState::Available, "the sequence goes on");
    }
}
