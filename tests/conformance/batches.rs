//! Batches (issue 16.3): a set of jobs and a callback job that becomes due exactly once when
//! they have all ended (on_complete) or only if all completed (on_success), with the counts by
//! end state in its args; listed and shown.

use std::collections::BTreeMap;
use std::time::Duration;

use porter::batch::Batch;
use porter::job::{InsertOpts, JobState};
use porter::store::*;
use porter::{Client, Error};

use super::*;

fn batch_of(n: usize, kind: &str) -> Batch {
    let mut b = Batch::new();
    for i in 0..n {
        b.push_params(
            JobInsertParams::new(kind, serde_json::json!({ "i": i }), InsertOpts::default())
                .unwrap(),
        );
    }
    b
}

fn callback(b: Batch, on_success: bool) -> Batch {
    b.callback_raw(
        "cb",
        serde_json::json!({"report": "weekly"}),
        InsertOpts::default(),
        on_success,
    )
}

async fn end(s: &Store, row: &porter::JobRow, state: JobState) {
    match state {
        JobState::Completed => {
            assert_eq!(
                s.job_complete_many(vec![row.fence()]).await.unwrap(),
                vec![true]
            );
        }
        JobState::Discarded => {
            let mut p = fail(row, "broken", Duration::ZERO);
            p.discard = true;
            s.job_fail(p).await.unwrap();
        }
        JobState::Cancelled => {
            s.job_cancel_running(JobCancelRunningParams {
                started: true,
                fence: row.fence(),
                reason: "no".into(),
            })
            .await
            .unwrap();
        }
        other => panic!("{other}"),
    }
}

backend_case! {
    /// on_complete: the callback waits `pending` until every member ended, however; then it is
    /// due with the caller's args, the batch id and the counts by end state.
    async fn an_on_complete_callback_runs_once_all_ended_with_the_counts(db: TestDb) {
        let s = &db.store;
        let client = Client::new(s.clone());
        let b = client.insert_batch(callback(batch_of(3, "m"), false)).await.unwrap();
        assert_eq!(b.jobs.len(), 3);
        assert_eq!(b.callback.state, JobState::Pending);
        assert_eq!(b.callback.args["batch_id"], serde_json::json!(b.id));
        // Each job names its batch (`porter jobs show`), and whether it is the callback.
        let member = s.job_deps(b.jobs[0].id).await.unwrap();
        assert_eq!(member.batch, Some(JobBatch { id: b.id, callback: false }));
        let cb = s.job_deps(b.callback.id).await.unwrap();
        assert_eq!(cb.batch, Some(JobBatch { id: b.id, callback: true }));
        let claimed = s.job_claim(claim("default", &["m"], 10, W)).await.unwrap();
        assert_eq!(claimed.len(), 3);
        end(s, &claimed[0], JobState::Completed).await;
        end(s, &claimed[1], JobState::Discarded).await;
        let cb = s.job_get(b.callback.id).await.unwrap().unwrap();
        assert_eq!(cb.state, JobState::Pending, "one member still runs");
        assert!(cb.args.get("completed").is_none());
        end(s, &claimed[2], JobState::Cancelled).await;
        let cb = s.job_get(b.callback.id).await.unwrap().unwrap();
        assert_eq!(cb.state, JobState::Available);
        assert_eq!(
            cb.args,
            serde_json::json!({"report": "weekly", "batch_id": b.id,
                               "completed": 1, "cancelled": 1, "discarded": 1})
        );
        let shown = client.batch(b.id).await.unwrap().expect("the batch");
        assert_eq!(shown.members, 3);
        assert!(!shown.on_success);
        assert_eq!(
            shown.counts,
            BTreeMap::from([(JobState::Completed, 1), (JobState::Cancelled, 1), (JobState::Discarded, 1)])
        );
        assert_eq!(
            (shown.callback_id, shown.callback_kind.as_deref(), shown.callback_state),
            (Some(b.callback.id), Some("cb"), Some(JobState::Available))
        );
    }
}

backend_case! {
    /// on_success: all completed, the callback is due with the counts; one member discarded,
    /// the callback is cancelled at once (its error names the member) and stays so.
    async fn an_on_success_callback_runs_only_if_all_completed(db: TestDb) {
        let s = &db.store;
        let client = Client::new(s.clone());
        let good = client.insert_batch(callback(batch_of(2, "g"), true)).await.unwrap();
        for row in s.job_claim(claim("default", &["g"], 10, W)).await.unwrap() {
            end(s, &row, JobState::Completed).await;
        }
        let cb = s.job_get(good.callback.id).await.unwrap().unwrap();
        assert_eq!(cb.state, JobState::Available);
        assert_eq!(
            (&cb.args["completed"], &cb.args["cancelled"], &cb.args["discarded"]),
            (&serde_json::json!(2), &serde_json::json!(0), &serde_json::json!(0))
        );

        let bad = client.insert_batch(callback(batch_of(3, "b"), true)).await.unwrap();
        let claimed = s.job_claim(claim("default", &["b"], 10, W)).await.unwrap();
        end(s, &claimed[0], JobState::Discarded).await;
        let cb = s.job_get(bad.callback.id).await.unwrap().unwrap();
        assert_eq!(cb.state, JobState::Cancelled, "a member failed: no callback run");
        let reason = &cb.errors.last().expect("a reason").error;
        assert!(reason.contains(&format!("parent job {}", claimed[0].id)), "{reason}");
        end(s, &claimed[1], JobState::Completed).await;
        end(s, &claimed[2], JobState::Completed).await;
        let cb = s.job_get(bad.callback.id).await.unwrap().unwrap();
        assert_eq!(cb.state, JobState::Cancelled, "still cancelled, never due");
        let listed = client.batches(None, None).await.unwrap();
        assert_eq!(listed.iter().map(|b| b.id).collect::<Vec<_>>(), vec![bad.id, good.id]);
        assert_eq!(listed[0].callback_state, Some(JobState::Cancelled));
        assert!(listed[0].on_success);
    }
}

backend_case! {
    /// The last members of a batch end at the same moment in different "processes" (two store
    /// handles on one database, many tasks each completing one member): the callback becomes
    /// due exactly once, with every member counted, round after round. One member is kept out
    /// of each race, so an end counted twice shows as a callback due early.
    async fn a_callback_is_due_exactly_once_when_members_end_concurrently(db: TestDb) {
        let stores = [db.store.clone(), db.reopen().await];
        let client = Client::new(db.store.clone());
        const MEMBERS: usize = 60;
        for round in 0..4 {
            let kind = format!("c{round}");
            let b = client.insert_batch(callback(batch_of(MEMBERS, &kind), round % 2 == 0)).await.unwrap();
            let mut claimed = Vec::new();
            for (i, s) in stores.iter().enumerate() {
                let worker = format!("w{i}");
                claimed.extend(
                    s.job_claim(claim("default", &[kind.as_str()], (MEMBERS / 2) as u32, &worker))
                        .await
                        .unwrap()
                        .into_iter()
                        .map(|j| (i, j)),
                );
            }
            assert_eq!(claimed.len(), MEMBERS);
            let (held_by, held) = claimed.pop().unwrap();
            let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(MEMBERS - 1));
            let tasks: Vec<_> = claimed
                .into_iter()
                .map(|(i, row)| {
                    let s = stores[i].clone();
                    let barrier = barrier.clone();
                    tokio::spawn(async move {
                        barrier.wait().await;
                        s.job_complete_many(vec![row.fence()]).await.unwrap()
                    })
                })
                .collect();
            for t in tasks {
                assert_eq!(t.await.unwrap(), vec![true]);
            }
            let cb = db.store.job_get(b.callback.id).await.unwrap().unwrap();
            assert_eq!(cb.state, JobState::Pending, "round {round}: one member has not ended");
            assert_eq!(stores[held_by].job_complete_many(vec![held.fence()]).await.unwrap(), vec![true]);
            let cb = db.store.job_get(b.callback.id).await.unwrap().unwrap();
            assert_eq!(cb.state, JobState::Available, "round {round}: due once the last ended");
            assert_eq!(cb.args["completed"], serde_json::json!(MEMBERS), "round {round}: {}", cb.args);
            let callbacks = db
                .store
                .job_list(JobListParams { kind: Some("cb".into()), ..Default::default() })
                .await
                .unwrap();
            assert_eq!(callbacks.len(), round + 1, "one callback per batch");
        }
    }
}

backend_case! {
    /// A batch with no jobs is refused; a member whose unique key is held refuses the whole
    /// batch (members, callback and row). (A batch whose members all ended at its insert is
    /// `a_callback_whose_members_ended_at_insert_is_decided_at_once`.)
    async fn a_bad_batch_inserts_nothing(db: TestDb) {
        let s = &db.store;
        let client = Client::new(s.clone());
        let err = client.insert_batch(callback(Batch::new(), false)).await.unwrap_err();
        assert!(matches!(err, Error::Invalid { .. }), "{err}");
        let holder = insert(
            s,
            job_with("k", InsertOpts { unique_key: Some("taken".into()), ..Default::default() }),
        )
        .await;
        let mut b = batch_of(2, "k");
        b.push_params(
            JobInsertParams::new(
                "k",
                serde_json::json!({}),
                InsertOpts { unique_key: Some("taken".into()), ..Default::default() },
            )
            .unwrap(),
        );
        let err = client.insert_batch(callback(b, true)).await.unwrap_err();
        assert!(matches!(err, Error::Conflict(_)), "{err}");
        assert!(err.to_string().contains(&format!("job {}", holder.id)), "{err}");
        assert_eq!(total(s).await, 1, "only the holder");
        // Two of its own jobs with one unique key (two members, or a member and the callback):
        // refused naming the member that holds it. The refusal used to name that member's id,
        // which it undid (on SQLite, an id the next insert then took).
        let keyed = |key: &str| crate::common::keyed_job("k", key);
        let mut twice = batch_of(1, "k");
        twice.push_params(keyed("z"));
        twice.push_params(keyed("z"));
        let err = client.insert_batch(callback(twice, false)).await.unwrap_err();
        assert!(matches!(err, Error::Conflict(_)), "{err}");
        assert!(err.to_string().contains("batch job 2: its unique key \"z\" is batch job 1's too"), "{err}");
        let mut with_callback = batch_of(1, "k");
        with_callback.push_params(keyed("y"));
        let with_callback = with_callback.callback_raw(
            "cb",
            serde_json::json!({}),
            InsertOpts { unique_key: Some("y".into()), ..Default::default() },
            false,
        );
        let err = client.insert_batch(with_callback).await.unwrap_err();
        assert!(matches!(err, Error::Conflict(_)), "{err}");
        assert!(err.to_string().contains("the batch's callback: its unique key \"y\" is batch job 1's too"), "{err}");
        assert_eq!(total(s).await, 1, "only the holder");
        assert!(client.batches(None, None).await.unwrap().is_empty());
        assert!(client.batch(12345).await.unwrap().is_none());
    }
}

backend_case! {
    /// A fan-in of 10,000 jobs (the most a job waits for): the callback stays pending until the
    /// last one completed, then is due once with all of them counted.
    async fn a_ten_thousand_job_fan_in_calls_back_once(db: TestDb) {
        let s = &db.store;
        let client = Client::new(s.clone());
        const N: usize = 10_000;
        let b = client.insert_batch(callback(batch_of(N, "fan"), true)).await.unwrap();
        assert_eq!(b.jobs.len(), N);
        let mut done = 0;
        while done < N {
            let got = s.job_claim(claim("default", &["fan"], 1000, W)).await.unwrap();
            assert!(!got.is_empty(), "{done} of {N} completed, nothing left to claim");
            let cb = s.job_get(b.callback.id).await.unwrap().unwrap();
            assert_eq!(cb.state, JobState::Pending, "{done} of {N} completed");
            done += got.len();
            s.job_complete_many(got.iter().map(|j| j.fence()).collect()).await.unwrap();
        }
        let cb = s.job_get(b.callback.id).await.unwrap().unwrap();
        assert_eq!(cb.state, JobState::Available);
        assert_eq!(cb.args["completed"], serde_json::json!(N));
        let callbacks = s
            .job_list(JobListParams { kind: Some("cb".into()), ..Default::default() })
            .await
            .unwrap();
        assert_eq!(callbacks.len(), 1);
    }
}

backend_case! {
    /// A callback of a kind no live worker serves (issue 16, bad input): the batch is inserted
    /// whole, the insert result warns (as `porter enqueue` does), and afterwards the callback
    /// waits `available`, counted among the jobs no live worker serves; once a worker serves
    /// every queue and kind, an insert warns of nothing.
    async fn a_callback_nobody_serves_is_warned_of_at_insert(db: TestDb) {
        let s = &db.store;
        let client = Client::new(s.clone());
        let mut worker = crate::register("serves-members", Duration::from_secs(3600), &[]);
        worker.queues = vec!["default".into()];
        worker.kinds = vec!["k".into()];
        s.worker_register(worker).await.unwrap();

        let b = client.insert_batch(callback(batch_of(2, "k"), false)).await.unwrap();
        assert_eq!(
            b.warnings,
            vec![format!(
                "batch {}, callback job {}: no live worker serves queue 'default' kind 'cb'; \
                 the job waits until one does",
                b.id, b.callback.id
            )]
        );
        assert_eq!(total(s).await, 3, "inserted all the same");
        for job in &b.jobs {
            let got = s.job_claim(claim("default", &["k"], 1, W)).await.unwrap();
            assert_eq!(got.len(), 1, "member {}", job.id);
            s.job_complete_many(vec![got[0].fence()]).await.unwrap();
        }
        let cb = s.job_get(b.callback.id).await.unwrap().unwrap();
        assert_eq!(cb.state, JobState::Available, "due, and waits for a worker");
        let unserved: Vec<_> = s
            .job_unserved()
            .await
            .unwrap()
            .into_iter()
            .map(|u| (u.queue, u.kind, u.count))
            .collect();
        assert_eq!(unserved, vec![("default".to_string(), "cb".to_string(), 1)]);

        // Members nobody serves are named too, with their count.
        let b = client.insert_batch(callback(batch_of(3, "nobody"), false)).await.unwrap();
        assert_eq!(b.warnings.len(), 2, "{:?}", b.warnings);
        assert!(
            b.warnings[1].ends_with("3 jobs: no live worker serves queue 'default' kind 'nobody'; the jobs wait until one does"),
            "{:?}",
            b.warnings
        );

        // A callback of the queue and kind of members nobody serves: one line names them all
        // (there were two, one for the callback and one for the members).
        let b = client.insert_batch(callback(batch_of(3, "cb"), false)).await.unwrap();
        assert_eq!(
            b.warnings,
            vec![format!(
                "batch {}, callback job {} and 3 jobs: no live worker serves queue 'default' kind 'cb'; \
                 the jobs wait until one does",
                b.id, b.callback.id
            )]
        );

        let mut worker = crate::register("serves-all", Duration::from_secs(3600), &[]);
        worker.queues = vec!["default".into()];
        worker.kinds = vec!["k".into(), "cb".into()];
        s.worker_register(worker).await.unwrap();
        let b = client.insert_batch(callback(batch_of(2, "k"), true)).await.unwrap();
        assert!(b.warnings.is_empty(), "{:?}", b.warnings);
        let json = serde_json::to_value(&b).unwrap();
        assert!(json.get("warnings").is_none(), "no warnings key when there are none: {json}");
    }
}

backend_case! {
    /// The `_tx` insert warns as the pool's does, asking on the caller's connection; the
    /// caller's transaction goes on and commits.
    async fn a_batch_in_a_caller_transaction_warns_of_a_callback_nobody_serves(db: TestDb) {
        let s = &db.store;
        let mut worker = crate::register("serves-members", Duration::from_secs(3600), &[]);
        worker.queues = vec!["default".into()];
        worker.kinds = vec!["k".into()];
        s.worker_register(worker).await.unwrap();
        let b = match db.sqlite_path() {
            Some(path) => {
                let mut c = rusqlite::Connection::open(path).unwrap();
                c.busy_timeout(Duration::from_secs(5)).unwrap();
                let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).unwrap();
                let b = Client::insert_batch_tx_sqlite(&tx, callback(batch_of(2, "k"), false)).unwrap();
                tx.commit().unwrap();
                b
            }
            None => {
                use sqlx::Connection;
                let mut c = sqlx::PgConnection::connect(&db.url).await.unwrap();
                let mut tx = c.begin().await.unwrap();
                let b = Client::insert_batch_tx_pg(&mut tx, callback(batch_of(2, "k"), false)).await.unwrap();
                tx.commit().await.unwrap();
                b
            }
        };
        assert_eq!(
            b.warnings,
            vec![format!(
                "batch {}, callback job {}: no live worker serves queue 'default' kind 'cb'; \
                 the job waits until one does",
                b.id, b.callback.id
            )]
        );
        assert_eq!(total(s).await, 3, "committed whole");
    }
}

backend_case! {
    /// A member an admin retries after it ended is waited for again: the callback becomes due
    /// at that member's new end, with counts that add up to the batch. Before, the member's
    /// first end stood: an on_complete callback became due while the retried member was still
    /// to run (its counts short of the batch), and an on_success callback ran although the
    /// retried member then ended discarded. (Found by review.)
    async fn a_member_retried_after_it_ended_is_waited_for_again(db: TestDb) {
        let s = &db.store;
        let client = Client::new(s.clone());
        let b = client.insert_batch(callback(batch_of(3, "m"), false)).await.unwrap();
        let claimed = s.job_claim(claim("default", &["m"], 10, W)).await.unwrap();
        end(s, &claimed[0], JobState::Discarded).await;
        s.job_retry(claimed[0].id).await.unwrap();
        end(s, &claimed[1], JobState::Completed).await;
        end(s, &claimed[2], JobState::Completed).await;
        let cb = s.job_get(b.callback.id).await.unwrap().unwrap();
        assert_eq!(cb.state, JobState::Pending, "the retried member is still to run: {cb:?}");
        let again = s.job_claim(claim("default", &["m"], 10, W)).await.unwrap();
        assert_eq!(again.len(), 1);
        end(s, &again[0], JobState::Completed).await;
        let cb = s.job_get(b.callback.id).await.unwrap().unwrap();
        assert_eq!(cb.state, JobState::Available);
        assert_eq!(
            (&cb.args["completed"], &cb.args["discarded"], &cb.args["cancelled"]),
            (&serde_json::json!(3), &serde_json::json!(0), &serde_json::json!(0)),
            "{cb:?}"
        );

        // on_success: completed, retried, then discarded: the callback is cancelled.
        let b = client.insert_batch(callback(batch_of(2, "n"), true)).await.unwrap();
        let claimed = s.job_claim(claim("default", &["n"], 10, W)).await.unwrap();
        end(s, &claimed[0], JobState::Completed).await;
        s.job_retry(claimed[0].id).await.unwrap();
        let again = s.job_claim(claim("default", &["n"], 10, W)).await.unwrap();
        assert_eq!(again.len(), 1);
        end(s, &again[0], JobState::Discarded).await;
        end(s, &claimed[1], JobState::Completed).await;
        let cb = s.job_get(b.callback.id).await.unwrap().unwrap();
        assert_eq!(cb.state, JobState::Cancelled, "a member ended discarded: {cb:?}");
    }
}

backend_case! {
    /// A callback retried by hand while it waits to run again (failed and `retryable`, or
    /// snoozed and `scheduled`), after a member was retried and completed meanwhile, runs with
    /// the counts as they stand, as a callback retried after it ended does. The counts were
    /// recounted only when the callback left `pending` or an end, so it kept the member's first
    /// end: `discarded: 1` for a batch whose members had all completed (review of 7 Dec).
    async fn a_callback_retried_while_it_waits_to_run_again_gets_the_counts_as_they_stand(db: TestDb) {
        let s = &db.store;
        let client = Client::new(s.clone());
        for snoozed in [false, true] {
            let b = client.insert_batch(callback(batch_of(2, "m"), false)).await.unwrap();
            let claimed = s.job_claim(claim("default", &["m"], 10, W)).await.unwrap();
            end(s, &claimed[0], JobState::Discarded).await;
            end(s, &claimed[1], JobState::Completed).await;
            let cb = s.job_claim(claim("default", &["cb"], 10, W)).await.unwrap().remove(0);
            assert_eq!(cb.id, b.callback.id);
            assert_eq!((&cb.args["completed"], &cb.args["discarded"]), (&serde_json::json!(1), &serde_json::json!(1)));
            let waiting = if snoozed {
                s.job_snooze(JobSnoozeParams { fence: cb.fence(), delay: Duration::from_secs(3600) })
                    .await
                    .unwrap()
            } else {
                s.job_fail(fail(&cb, "not yet", Duration::from_secs(3600))).await.unwrap()
            };
            let expected = if snoozed { JobState::Scheduled } else { JobState::Retryable };
            assert_eq!(waiting.state, expected);
            s.job_retry(claimed[0].id).await.unwrap();
            let again = s.job_claim(claim("default", &["m"], 10, W)).await.unwrap();
            assert_eq!(again.len(), 1);
            end(s, &again[0], JobState::Completed).await;
            let retried = s.job_retry(cb.id).await.unwrap();
            assert_eq!(retried.state, JobState::Available, "{retried:?}");
            let cb = s.job_get(cb.id).await.unwrap().unwrap();
            assert_eq!(
                (&cb.args["completed"], &cb.args["discarded"], &cb.args["cancelled"], &cb.args["report"]),
                (&serde_json::json!(2), &serde_json::json!(0), &serde_json::json!(0), &serde_json::json!("weekly")),
                "snoozed {snoozed}: {cb:?}"
            );
            // Done with this round's callback.
            let cb = s.job_claim(claim("default", &["cb"], 10, W)).await.unwrap().remove(0);
            end(s, &cb, JobState::Completed).await;
        }

        // Its backoff ending recounts too: the promotion of the due callback (its own queue,
        // so that the members' claims do not promote it early).
        let b = client
            .insert_batch(batch_of(2, "m").callback_raw(
                "cb",
                serde_json::json!({}),
                InsertOpts { queue: Some("cbq".into()), ..Default::default() },
                false,
            ))
            .await
            .unwrap();
        let claimed = s.job_claim(claim("default", &["m"], 10, W)).await.unwrap();
        end(s, &claimed[0], JobState::Discarded).await;
        end(s, &claimed[1], JobState::Completed).await;
        let cb = s.job_claim(claim("cbq", &["cb"], 10, W)).await.unwrap().remove(0);
        assert_eq!(cb.id, b.callback.id);
        s.job_fail(fail(&cb, "not yet", Duration::ZERO)).await.unwrap();
        s.job_retry(claimed[0].id).await.unwrap();
        let again = s.job_claim(claim("default", &["m"], 10, W)).await.unwrap();
        end(s, &again[0], JobState::Completed).await;
        let cb = s.job_claim(claim("cbq", &["cb"], 10, W)).await.unwrap().remove(0);
        assert_eq!(
            (&cb.args["completed"], &cb.args["discarded"]),
            (&serde_json::json!(2), &serde_json::json!(0)),
            "{cb:?}"
        );
    }
}

backend_case! {
    /// A callback an admin retries after it ended (an on_success callback cancelled by a
    /// failed member, run anyway) gets the counts by end state as it becomes due, as one due
    /// at the batch's end does. Before, it ran without them: the counts were written only when
    /// a callback left `pending`. (Found by review.)
    async fn a_retried_callback_gets_the_counts(db: TestDb) {
        let s = &db.store;
        let client = Client::new(s.clone());
        let b = client.insert_batch(callback(batch_of(2, "m"), true)).await.unwrap();
        let claimed = s.job_claim(claim("default", &["m"], 10, W)).await.unwrap();
        end(s, &claimed[0], JobState::Discarded).await;
        end(s, &claimed[1], JobState::Completed).await;
        let cb = s.job_get(b.callback.id).await.unwrap().unwrap();
        assert_eq!(cb.state, JobState::Cancelled);
        let cb = s.job_retry(b.callback.id).await.unwrap();
        assert_eq!(cb.state, JobState::Available);
        let cb = s.job_get(b.callback.id).await.unwrap().unwrap();
        assert_eq!(
            (&cb.args["completed"], &cb.args["discarded"], &cb.args["cancelled"], &cb.args["report"]),
            (&serde_json::json!(1), &serde_json::json!(1), &serde_json::json!(0), &serde_json::json!("weekly")),
            "{cb:?}"
        );
    }
}

backend_case! {
    /// Retention keeps a batch's members as long as it keeps the batch's callback: a
    /// callback retried after its end counts the members again. Before, a discarded callback
    /// (kept for days) retried after its completed members' retention counted none of them.
    /// (Found by review.)
    async fn retention_keeps_a_batchs_members_while_it_keeps_the_callback(db: TestDb) {
        let s = &db.store;
        let client = Client::new(s.clone());
        let b = client.insert_batch(callback(batch_of(2, "m"), false)).await.unwrap();
        let claimed = s.job_claim(claim("default", &["m"], 10, W)).await.unwrap();
        end(s, &claimed[0], JobState::Completed).await;
        end(s, &claimed[1], JobState::Completed).await;
        let cb = s.job_claim(claim("default", &["cb"], 10, W)).await.unwrap();
        assert_eq!(cb.len(), 1);
        end(s, &cb[0], JobState::Discarded).await;
        let zero = Duration::ZERO;
        let keep_discarded = JobDeleteFinalizedParams { completed: zero, cancelled: zero, discarded: Duration::from_secs(3600), limit: 100 };
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert_eq!(s.job_delete_finalized(keep_discarded.clone()).await.unwrap(), 0, "the members stay with their callback");

        let cb = s.job_retry(b.callback.id).await.unwrap();
        assert_eq!(cb.state, JobState::Available);
        let cb = s.job_get(b.callback.id).await.unwrap().unwrap();
        assert_eq!((&cb.args["completed"], &cb.args["discarded"]), (&serde_json::json!(2), &serde_json::json!(0)), "{cb:?}");

        // Once the callback is deleted, so are its members.
        let cb = s.job_claim(claim("default", &["cb"], 10, W)).await.unwrap();
        end(s, &cb[0], JobState::Completed).await;
        crate::common::eventually("the batch's jobs deleted", || async {
            s.job_delete_finalized(keep_discarded.clone()).await.unwrap();
            total(s).await == 0
        })
        .await;
        // And with its last job, the batch's row.
        let client = Client::new(s.clone());
        assert!(client.batch(b.id).await.unwrap().is_none(), "the batch's row went with its jobs");
        assert!(client.batches(None, None).await.unwrap().is_empty());
    }
}

backend_case! {
    /// A batch row another program left without a callback still counts its members. Before,
    /// `<>` against a NULL callback id matched none of them. (Found by review.)
    async fn a_batch_without_a_callback_id_counts_its_members(db: TestDb) {
        let s = &db.store;
        let client = Client::new(s.clone());
        let b = client.insert_batch(callback(batch_of(2, "m"), false)).await.unwrap();
        crate::common::raw_exec(&db, &format!("UPDATE porter_batches SET callback_id = NULL WHERE id = {}", b.id)).await;
        let row = s.batch_get(b.id).await.unwrap().unwrap();
        assert_eq!(row.callback_id, None);
        // Its two members, and the callback job (tagged with the batch) now counted among them.
        assert_eq!(row.counts.values().sum::<i64>(), 3, "{row:?}");
    }
}

backend_case! {
    /// A bulk delete by hand that matches a batch's callback while it is pending deletes it
    /// (nothing waits for a callback, so the bulk rules let it go), as the README says: the
    /// batch then never calls back, and its listing shows no callback state (`porter batches
    /// show` prints it as gone). The members stay.
    async fn a_bulk_delete_of_a_pending_callback_leaves_the_batch_without_one(db: TestDb) {
        let s = &db.store;
        let client = Client::new(s.clone());
        let b = client.insert_batch(callback(batch_of(2, "m"), false)).await.unwrap();
        let pending = porter::store::JobFilter {
            states: vec![JobState::Pending],
            kind: Some("cb".into()),
            ..Default::default()
        };
        let out = s.job_bulk(porter::store::BulkAction::Delete, pending, i64::MAX).await.unwrap();
        assert_eq!((out.matched, out.changed), (1, 1), "{out:?}");
        assert!(s.job_get(b.callback.id).await.unwrap().is_none());
        let row = client.batch(b.id).await.unwrap().expect("the batch stays with its members");
        assert_eq!((row.callback_id, row.callback_state), (Some(b.callback.id), None), "{row:?}");
        for member in &b.jobs {
            assert_eq!(s.job_get(member.id).await.unwrap().unwrap().state, JobState::Available);
        }
    }
}

backend_case! {
    /// `BatchInsertParams` built by hand (its fields are public) is checked as `Batch::params`
    /// checks it before anything is written: until 5 Dec a batch of no jobs, a member or
    /// callback with a bad kind, or a callback that already waited for jobs went in.
    async fn batch_params_built_by_hand_are_checked(db: TestDb) {
        let s = &*db.store;
        let good = callback(batch_of(2, "item"), false).params().unwrap();
        let edit = |f: &dyn Fn(&mut BatchInsertParams)| {
            let mut p = good.clone();
            f(&mut p);
            p
        };
        let parent = insert(s, job("noop")).await;
        let bad: Vec<BatchInsertParams> = vec![
            edit(&|p| p.jobs.clear()),
            edit(&|p| p.jobs[1].kind = String::new()),
            edit(&|p| p.callback.queue = "has space".into()),
            edit(&|p| p.callback.args = serde_json::json!([1])),
            edit(&|p| p.callback.args = serde_json::json!({ "batch_id": 1 })),
            edit(&|p| p.callback.depends_on = vec![parent.id]),
            edit(&|p| p.callback.sequence_key = Some("s".into())),
        ];
        for b in bad {
            let shown = format!("{b:?}").chars().take(300).collect::<String>();
            match s.batch_insert(b).await {
                Err(Error::Invalid { what, .. }) => assert_eq!(what, "batch", "{shown}"),
                other => panic!("{shown}: refused as a bad batch, got {other:?}"),
            }
            assert_eq!(total(s).await, 1, "nothing written: {shown}");
        }
        // On a caller's connection too (the public `_tx` functions take params).
        let empty = edit(&|p| p.jobs.clear());
        let refused = match db.sqlite_path() {
            Some(path) => {
                let c = rusqlite::Connection::open(path).unwrap();
                c.busy_timeout(Duration::from_secs(5)).unwrap();
                porter::store::sqlite::batch_insert_tx(&c, &empty).map(|_| ())
            }
            None => {
                use sqlx::Connection;
                let mut c = sqlx::PgConnection::connect(&db.url).await.unwrap();
                porter::store::postgres::batch_insert_tx(&mut c, &empty).await.map(|_| ())
            }
        };
        assert!(matches!(refused, Err(Error::Invalid { what: "batch", .. })), "{refused:?}");
        assert_eq!(total(s).await, 1);
        assert_eq!(s.batch_insert(good).await.unwrap().jobs.len(), 2);

        // Callback args at the size limit take porter's `batch_id` beyond it: porter's own
        // addition is not checked again (PostgreSQL refused it as "args are over 1048576
        // bytes" in review of the first version of this check, SQLite took it).
        let filler = "x".repeat(porter::store::MAX_ARGS_BYTES - r#"{"k":""}"#.len());
        let at_limit = batch_of(1, "item")
            .callback_raw("cb", serde_json::json!({ "k": filler }), InsertOpts::default(), false)
            .params()
            .unwrap();
        let inserted = s.batch_insert(at_limit).await.unwrap();
        assert!(inserted.callback.args["batch_id"].is_i64(), "{:?}", inserted.callback.args.get("batch_id"));
    }
}

backend_case! {
    /// A member inserted after a parent that had already failed starts cancelled, so a
    /// batch's members may all have ended at its insert: its callback is then decided at once
    /// (`on_complete`: available, with the counts; `on_success`: cancelled), and with a member
    /// still to run it waits for that one and counts both.
    async fn a_callback_whose_members_ended_at_insert_is_decided_at_once(db: TestDb) {
        let s = &db.store;
        let client = Client::new(s.clone());
        let parent = insert(s, job("noop")).await;
        s.job_cancel(parent.id).await.unwrap();
        let after_parent = || {
            JobInsertParams::new(
                "item",
                serde_json::json!({}),
                InsertOpts { depends_on: vec![parent.id], ..Default::default() },
            )
            .unwrap()
        };
        let with = |members: Vec<JobInsertParams>, on_success: bool| {
            let mut b = Batch::new();
            for m in members {
                b.push_params(m);
            }
            callback(b, on_success)
        };

        let all_ended = client.insert_batch(with(vec![after_parent()], false)).await.unwrap();
        assert_eq!(all_ended.jobs[0].state, JobState::Cancelled);
        let cb = s.job_get(all_ended.callback.id).await.unwrap().unwrap();
        assert_eq!(cb.state, JobState::Available, "on_complete: due at once");
        assert_eq!(
            (&cb.args["batch_id"], &cb.args["completed"], &cb.args["cancelled"], &cb.args["discarded"]),
            (&serde_json::json!(all_ended.id), &serde_json::json!(0), &serde_json::json!(1), &serde_json::json!(0)),
            "{}",
            cb.args
        );
        assert_eq!(cb.args["report"], "weekly", "the given args stay");

        let success = client.insert_batch(with(vec![after_parent()], true)).await.unwrap();
        let cb = s.job_get(success.callback.id).await.unwrap().unwrap();
        assert_eq!(cb.state, JobState::Cancelled, "on_success: a member did not complete");

        let plain = JobInsertParams::new("item", serde_json::json!({}), InsertOpts::default()).unwrap();
        let mixed = client.insert_batch(with(vec![after_parent(), plain], false)).await.unwrap();
        let cb = s.job_get(mixed.callback.id).await.unwrap().unwrap();
        assert_eq!(cb.state, JobState::Pending, "one member still to run");
        let running = s.job_claim(claim("default", &["item"], 10, W)).await.unwrap();
        assert_eq!(running.len(), 1);
        end(s, &running[0], JobState::Completed).await;
        let cb = s.job_get(mixed.callback.id).await.unwrap().unwrap();
        assert_eq!(cb.state, JobState::Available);
        assert_eq!((&cb.args["completed"], &cb.args["cancelled"]), (&serde_json::json!(1), &serde_json::json!(1)), "{}", cb.args);
        for b in [all_ended.id, success.id, mixed.id] {
            assert!(client.batch(b).await.unwrap().is_some(), "batch {b} is listed");
        }
    }
}

backend_case! {
    /// A callback claimed ahead when a member is retried, and given back before its handler
    /// ran, waits for that member's new end and is decided by it: an on_success callback is
    /// cancelled if the member then fails, an on_complete one is due with counts that include
    /// it. Before, the retry found the callback running and left it, and the give-back made it
    /// claimable with the counts of the member's first end. (Found by review.)
    async fn a_callback_given_back_unstarted_after_a_member_was_retried_waits_for_it(db: TestDb) {
        // On a clock that moves only when told: the claim lies before the retry after it.
        let (store, clock) = clocked(&db).await;
        let (s, client) = (&*store, Client::new(store.clone()));
        for (on_success, kind) in [(true, "m"), (false, "n")] {
            let b = client.insert_batch(callback(batch_of(2, kind), on_success)).await.unwrap();
            let claimed = s.job_claim(claim("default", &[kind], 10, W)).await.unwrap();
            end(s, &claimed[0], JobState::Completed).await;
            end(s, &claimed[1], JobState::Completed).await;
            let cb = s.job_claim(claim("default", &["cb"], 1, W)).await.unwrap();
            assert_eq!(cb[0].id, b.callback.id);
            clock.advance(Duration::from_secs(1));
            s.job_retry(claimed[0].id).await.unwrap();
            let row = give_back_unstarted(s, &cb[0]).await;
            assert_eq!(row.state, JobState::Pending, "waits for the retried member: {row:?}");
            let again = s.job_claim(claim("default", &[kind], 10, W)).await.unwrap();
            end(s, &again[0], JobState::Discarded).await;
            let cb = s.job_get(b.callback.id).await.unwrap().unwrap();
            if on_success {
                assert_eq!(cb.state, JobState::Cancelled, "a member was discarded: {cb:?}");
            } else {
                assert_eq!(cb.state, JobState::Available, "{cb:?}");
                assert_eq!(
                    (&cb.args["completed"], &cb.args["discarded"], &cb.args["cancelled"]),
                    (&serde_json::json!(1), &serde_json::json!(1), &serde_json::json!(0)),
                    "{cb:?}"
                );
            }
        }

        // The member's new run completed before the give-back: due at once, counted again.
        // (The last round's callback, due, is run first.)
        let left = s.job_claim(claim("default", &["cb"], 10, W)).await.unwrap();
        s.job_complete_many(left.iter().map(|j| j.fence()).collect()).await.unwrap();
        let b = client.insert_batch(callback(batch_of(2, "k"), false)).await.unwrap();
        let claimed = s.job_claim(claim("default", &["k"], 10, W)).await.unwrap();
        end(s, &claimed[0], JobState::Discarded).await;
        end(s, &claimed[1], JobState::Completed).await;
        let cb = s.job_claim(claim("default", &["cb"], 1, W)).await.unwrap();
        assert_eq!(cb[0].id, b.callback.id);
        assert_eq!(cb[0].args["discarded"], serde_json::json!(1), "{:?}", cb[0]);
        clock.advance(Duration::from_secs(1));
        s.job_retry(claimed[0].id).await.unwrap();
        let again = s.job_claim(claim("default", &["k"], 10, W)).await.unwrap();
        end(s, &again[0], JobState::Completed).await;
        let row = give_back_unstarted(s, &cb[0]).await;
        assert_eq!(row.state, JobState::Available, "{row:?}");
        assert_eq!(
            (&row.args["completed"], &row.args["discarded"], &row.args["cancelled"]),
            (&serde_json::json!(2), &serde_json::json!(0), &serde_json::json!(0)),
            "{row:?}"
        );
    }
}
