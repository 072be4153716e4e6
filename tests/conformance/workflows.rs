//! Workflows (issue 16.2): named steps wired by name, inserted as one graph in one transaction
//! (all or nothing, in the caller's transaction too), listed, shown and cancelled as a whole.

use std::collections::BTreeMap;

use porter::job::{InsertOpts, JobState};
use porter::store::*;
use porter::workflow::{Step, StepPage, StepParents, Workflow};
use porter::{Client, Error};

use super::*;

pub(crate) fn step(name: &str, kind: &str) -> Step {
    Step::raw(name, kind, serde_json::json!({ "step": name }))
}

/// a -> b, a -> c, (b, c) -> d.
fn diamond(name: &str) -> Workflow {
    Workflow::new(name)
        .step(step("a", "wf_a"))
        .step(step("b", "wf_b").after(["a"]))
        .step(step("c", "wf_c").after(["a"]))
        .step(step("d", "wf_d").after(["b", "c"]))
}

const KINDS: [&str; 4] = ["wf_a", "wf_b", "wf_c", "wf_d"];

/// Claims whatever is due (as a greedy worker would) and completes it, until nothing is left.
/// Claims and completes until nothing is left; each job claimed has every parent ended as it
/// needs (completed, or ended in any way after any) at its claim, which the rows' times
/// (equal within SQLite's millisecond) cannot show.
async fn drain(s: &Store) {
    for _ in 0..20 {
        let got = s.job_claim(claim("default", &KINDS, 100, W)).await.unwrap();
        if got.is_empty() {
            return;
        }
        for job in &got {
            for p in s.job_deps(job.id).await.unwrap().parents {
                let ended = p.state == JobState::Completed || (p.after_any && p.state.is_final());
                assert!(
                    ended,
                    "job {} claimed while its parent {} is {}",
                    job.id, p.id, p.state
                );
            }
        }
        let fences = got.iter().map(|j| j.fence()).collect();
        s.job_complete_many(fences).await.unwrap();
    }
    panic!("the workflow did not drain");
}

backend_case! {
    /// A diamond inserted as a workflow: one id, its steps tagged and waiting as wired, and
    /// drained by a greedy claimer no step started before the steps it waits for completed
    /// (checked at each claim, and from the rows' times). list and show give its counts and its edges by name.
    async fn a_workflow_diamond_runs_in_step_order(db: TestDb) {
        let s = &db.store;
        let client = Client::new(s.clone());
        let wf = client.insert_workflow(diamond("nightly")).await.unwrap();
        assert_eq!(wf.name, "nightly");
        let names: Vec<&str> = wf.steps.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["a", "b", "c", "d"]);
        assert_eq!(wf.job("a").unwrap().state, JobState::Available);
        for n in ["b", "c", "d"] {
            assert_eq!(wf.job(n).unwrap().state, JobState::Pending, "{n}");
        }
        let shown = client.workflow(wf.id).await.unwrap().expect("the workflow");
        assert_eq!(shown.workflow.total, 4);
        assert_eq!(
            shown.workflow.counts,
            BTreeMap::from([(JobState::Available, 1), (JobState::Pending, 3)])
        );
        let after: Vec<(&str, Vec<String>)> =
            shown.steps.iter().map(|st| (st.step.as_str(), st.after.clone())).collect();
        assert_eq!(
            after,
            vec![
                ("a", vec![]),
                ("b", vec!["a".to_string()]),
                ("c", vec!["a".to_string()]),
                ("d", vec!["b".to_string(), "c".to_string()]),
            ]
        );
        // The same parents by job id (what the dashboard draws edges by).
        let id = |n: &str| wf.job(n).unwrap().id;
        for st in &shown.steps {
            let ids: Vec<i64> = st.after.iter().map(|p| id(p)).collect();
            assert_eq!(st.after_ids, ids, "step {}", st.step);
        }
        // Each step's job names its workflow and step (`porter jobs show`); a plain job none.
        for n in ["a", "d"] {
            let named = workflow::JobWorkflow { id: wf.id, name: "nightly".into(), step: n.into() };
            assert_eq!(s.job_workflow(id(n)).await.unwrap(), Some(named), "step {n}");
            assert_eq!(s.job_deps(id(n)).await.unwrap().batch, None, "step {n}");
        }
        let plain = insert(s, job("plain")).await;
        assert_eq!(s.job_workflow(plain.id).await.unwrap(), None);
        // Another program's row tagged with the workflow and no step reads, with no step.
        raw_exec(
            &db,
            &format!("INSERT INTO porter_jobs (kind, args, workflow_id) VALUES ('plain', '{{}}', {})", wf.id),
        )
        .await;
        let tagged = plain.id + 1;
        let detail = client.get_detail(tagged).await.unwrap().expect("the job");
        assert_eq!(detail.workflow, Some(workflow::JobWorkflow { id: wf.id, name: "nightly".into(), step: String::new() }));
        assert_eq!(s.job_deps(plain.id).await.unwrap().batch, None);
        assert_eq!(s.job_deps(i64::MAX).await.unwrap(), JobDeps::default(), "no such job");

        drain(s).await;

        let done = client.workflow(wf.id).await.unwrap().unwrap();
        assert_eq!(done.workflow.counts, BTreeMap::from([(JobState::Completed, 4)]));
        assert!(done.workflow.finished());
        let rows: BTreeMap<String, porter::JobRow> = {
            let mut m = BTreeMap::new();
            for (n, j) in &wf.steps {
                m.insert(n.clone(), s.job_get(j.id).await.unwrap().unwrap());
            }
            m
        };
        for st in &done.steps {
            let child = &rows[&st.step];
            let started = child.attempted_at.expect("ran");
            for parent in &st.after {
                let ended = rows[parent].finalized_at.expect("parent ended");
                assert!(
                    started >= ended,
                    "step {} started at {started} before its parent {parent} completed at {ended}",
                    st.step
                );
            }
        }
        let listed = client.workflows(None, None).await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!((listed[0].id, listed[0].name.as_str(), listed[0].total), (wf.id, "nightly", 4));
    }
}

backend_case! {
    /// Bad workflows are refused before anything is written (the builder's checks), and a step
    /// the database refuses half-way (its unique key held; a parent outside the workflow that
    /// does not exist) rolls back every step inserted before it, and the workflow's row.
    async fn a_bad_step_rolls_back_the_whole_workflow(db: TestDb) {
        let s = &db.store;
        let client = Client::new(s.clone());
        for bad in [
            Workflow::new("empty"),
            Workflow::new("dup").step(step("a", "k")).step(step("a", "k")),
            Workflow::new("unknown").step(step("a", "k").after(["nope"])),
            Workflow::new("later").step(step("a", "k").after(["b"])).step(step("b", "k")),
            // Any step's bad options, not only its kind.
            Workflow::new("priority").step(step("a", "k")).step(step("b", "k").opts(InsertOpts { priority: Some(9), ..Default::default() })),
            Workflow::new("attempts").step(step("a", "k").opts(InsertOpts { max_attempts: Some(0), ..Default::default() })),
            Workflow::new("queue").step(step("a", "k").opts(InsertOpts { queue: Some("Bad Queue".into()), ..Default::default() })),
        ] {
            let err = client.insert_workflow(bad).await.unwrap_err();
            assert!(matches!(err, Error::Invalid { .. }), "{err}");
        }
        let holder = insert(
            s,
            job_with("k", InsertOpts { unique_key: Some("taken".into()), ..Default::default() }),
        )
        .await;
        let held = Workflow::new("held")
            .step(step("a", "k"))
            .step(step("b", "k").after(["a"]))
            .step(step("c", "k").after(["b"]).opts(InsertOpts {
                unique_key: Some("taken".into()),
                ..Default::default()
            }));
        let err = client.insert_workflow(held).await.unwrap_err();
        assert!(matches!(err, Error::Conflict(_)), "{err}");
        assert!(err.to_string().contains(&format!("job {}", holder.id)), "{err}");
        let missing = Workflow::new("missing")
            .step(step("a", "k"))
            .step(step("b", "k").after(["a"]).opts(InsertOpts {
                depends_on: vec![holder.id + 1_000_000],
                ..Default::default()
            }));
        let err = client.insert_workflow(missing).await.unwrap_err();
        assert!(matches!(err, Error::Invalid { what: "depends_on", .. }), "{err}");
        // Two refusals: the earlier step's answers, on both backends.
        let both = Workflow::new("both")
            .step(step("a", "k").opts(InsertOpts {
                unique_key: Some("taken".into()),
                ..Default::default()
            }))
            .step(step("b", "k").after(["a"]).opts(InsertOpts {
                depends_on: vec![holder.id + 1_000_000],
                ..Default::default()
            }));
        let err = client.insert_workflow(both).await.unwrap_err();
        assert!(matches!(err, Error::Conflict(_)), "{err}");
        // Two of its own steps with one unique key (both starting as they would hold it):
        // refused naming the step that holds it. The refusal used to name that step's id,
        // which it undid (on SQLite, an id the next insert then took).
        let keyed = |name: &str| {
            step(name, "k").opts(InsertOpts { unique_key: Some("z".into()), ..Default::default() })
        };
        let twice = Workflow::new("twice").step(keyed("a")).step(step("b", "k")).step(keyed("c"));
        let err = client.insert_workflow(twice).await.unwrap_err();
        assert!(matches!(err, Error::Conflict(_)), "{err}");
        assert!(
            err.to_string().contains("step \"c\" has unique key \"z\", as step \"a\" of this workflow has"),
            "{err}"
        );
        assert_eq!(total(s).await, 1, "only the holder: no step of either workflow stayed");
        assert!(client.workflows(None, None).await.unwrap().is_empty(), "no workflow row stayed");
        // The same database takes a good workflow afterwards.
        client.insert_workflow(diamond("fine")).await.unwrap();
        assert_eq!(total(s).await, 5);
    }
}

backend_case! {
    /// Inside the caller's transaction: rolled back, nothing of the workflow exists; a workflow
    /// refused inside a transaction the caller then commits leaves nothing either (its own
    /// savepoint), while the caller's other writes commit; committed, it exists whole.
    async fn a_workflow_in_a_caller_transaction(db: TestDb) {
        let s = &db.store;
        let client = Client::new(s.clone());
        let refused = || Workflow::new("refused").step(step("a", "k")).step(
            step("b", "k").opts(InsertOpts { depends_on: vec![9_999_999], ..Default::default() }),
        );
        let kept = match db.sqlite_path() {
            Some(path) => {
                let mut c = rusqlite::Connection::open(path).unwrap();
                c.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
                let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).unwrap();
                let wf = Client::insert_workflow_tx_sqlite(&tx, diamond("rolled")).unwrap();
                assert_eq!(wf.steps.len(), 4);
                tx.rollback().unwrap();
                let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).unwrap();
                let own = porter::store::sqlite::job_insert_tx(&tx, &[job("own")]).unwrap().remove(0);
                assert!(Client::insert_workflow_tx_sqlite(&tx, refused()).is_err());
                tx.commit().unwrap();
                let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).unwrap();
                let wf = Client::insert_workflow_tx_sqlite(&tx, diamond("kept")).unwrap();
                tx.commit().unwrap();
                (own.job.id, wf.id)
            }
            None => {
                use sqlx::Connection;
                let mut c = sqlx::PgConnection::connect(&db.url).await.unwrap();
                let mut tx = c.begin().await.unwrap();
                let wf = Client::insert_workflow_tx_pg(&mut tx, diamond("rolled")).await.unwrap();
                assert_eq!(wf.steps.len(), 4);
                tx.rollback().await.unwrap();
                let mut tx = c.begin().await.unwrap();
                let own = porter::store::postgres::job_insert_tx(&mut tx, vec![job("own")])
                    .await
                    .unwrap()
                    .remove(0);
                assert!(Client::insert_workflow_tx_pg(&mut tx, refused()).await.is_err());
                tx.commit().await.unwrap();
                let mut tx = c.begin().await.unwrap();
                let wf = Client::insert_workflow_tx_pg(&mut tx, diamond("kept")).await.unwrap();
                tx.commit().await.unwrap();
                (own.job.id, wf.id)
            }
        };
        let (own, kept) = kept;
        assert!(s.job_get(own).await.unwrap().is_some(), "the caller's own insert committed");
        let listed = client.workflows(None, None).await.unwrap();
        let names: Vec<&str> = listed.iter().map(|w| w.name.as_str()).collect();
        assert_eq!(names, ["kept"], "neither the rolled-back nor the refused workflow exists");
        assert_eq!(listed[0].id, kept);
        assert_eq!(total(s).await, 5, "the caller's job and the kept workflow's four steps");
    }
}

backend_case! {
    /// Cancelling a workflow cancels its steps that have not started (pending ones included,
    /// and an after_any step is not let run by its cancelled parents), asks its running step to
    /// stop, and leaves finished steps alone; another workflow is untouched.
    async fn cancelling_a_workflow_stops_its_unfinished_steps(db: TestDb) {
        let s = &db.store;
        let client = Client::new(s.clone());
        let wf = client
            .insert_workflow(
                Workflow::new("cancel me")
                    .step(step("done", "wf_a"))
                    .step(step("runs", "wf_b"))
                    .step(step("waits", "wf_c").after(["runs"]))
                    .step(step("anyway", "wf_d").after(["waits"]).after_any())
                    .step(step("later", "wf_d").after(["done"]).opts(InsertOpts {
                        schedule_in: Some(std::time::Duration::from_secs(3600)),
                        ..Default::default()
                    })),
            )
            .await
            .unwrap();
        let other = client.insert_workflow(diamond("other")).await.unwrap();
        let done = claim_one(s, "wf_a").await;
        s.job_complete_many(vec![done.fence()]).await.unwrap();
        let runs = claim_one(s, "wf_b").await;
        assert_eq!(s.job_get(wf.job("later").unwrap().id).await.unwrap().unwrap().state, JobState::Scheduled);

        let out = client.cancel_workflow(wf.id).await.unwrap();
        assert_eq!((out.cancelled, out.cancel_requested), (3, 1), "{out:?}");
        let state = |n: &str| {
            let id = wf.job(n).unwrap().id;
            async move { s.job_get(id).await.unwrap().unwrap() }
        };
        assert_eq!(state("done").await.state, JobState::Completed);
        let running = state("runs").await;
        assert_eq!(running.state, JobState::Running);
        assert!(running.cancel_requested());
        for n in ["waits", "anyway", "later"] {
            assert_eq!(state(n).await.state, JobState::Cancelled, "{n}");
        }
        // The running step stops (its worker records it cancelled): nothing is promoted.
        s.job_cancel_running(JobCancelRunningParams { started: true, fence: runs.fence(), reason: "asked".into() })
            .await
            .unwrap();
        assert_eq!(state("anyway").await.state, JobState::Cancelled);
        let shown = client.workflow(wf.id).await.unwrap().unwrap();
        assert_eq!(
            shown.workflow.counts,
            BTreeMap::from([(JobState::Completed, 1), (JobState::Cancelled, 4)])
        );
        let untouched = client.workflow(other.id).await.unwrap().unwrap();
        assert_eq!(
            untouched.workflow.counts,
            BTreeMap::from([(JobState::Available, 1), (JobState::Pending, 3)])
        );
        // Again: nothing left to cancel. An unknown workflow is not found.
        let again = client.cancel_workflow(wf.id).await.unwrap();
        assert_eq!((again.cancelled, again.cancel_requested), (0, 0));
        let err = client.cancel_workflow(other.id + 1000).await.unwrap_err();
        assert!(matches!(err, Error::NotFound { what: "workflow", .. }), "{err}");
        assert!(client.workflow(other.id + 1000).await.unwrap().is_none());
    }
}

backend_case! {
    /// A workflow cancelled again while a step it asked to stop still runs asks nothing new:
    /// the answer counts no step, the first request's time is kept, and the step is still
    /// found asked (it was counted as asked again, on both backends).
    async fn a_workflow_cancelled_again_does_not_count_a_step_already_asked_to_stop(db: TestDb) {
        let s = &db.store;
        let client = Client::new(s.clone());
        let wf = client
            .insert_workflow(
                Workflow::new("twice")
                    .step(step("runs", "wf_a"))
                    .step(step("waits", "wf_b").after(["runs"])),
            )
            .await
            .unwrap();
        let runs = claim_one(s, "wf_a").await;
        let first = client.cancel_workflow(wf.id).await.unwrap();
        assert_eq!((first.cancelled, first.cancel_requested), (1, 1), "{first:?}");
        let asked_at = s.job_get(runs.id).await.unwrap().unwrap().metadata["cancel_requested_at"].clone();

        let again = client.cancel_workflow(wf.id).await.unwrap();
        assert_eq!((again.cancelled, again.cancel_requested), (0, 0), "{again:?}");
        let row = s.job_get(runs.id).await.unwrap().unwrap();
        assert_eq!(row.state, JobState::Running);
        assert_eq!(row.metadata["cancel_requested_at"], asked_at, "the first request's time is kept");
        assert_eq!(s.job_cancel_requests(W, &[runs.id]).await.unwrap(), vec![runs.fence()]);
    }
}

backend_case! {
    /// Workflows list newest first, a page at a time; a workflow whose jobs are all deleted
    /// goes with them.
    async fn workflows_list_in_pages_and_go_with_their_jobs(db: TestDb) {
        let s = &db.store;
        let client = Client::new(s.clone());
        let mut ids = Vec::new();
        for i in 0..5 {
            let wf = Workflow::new(format!("w{i}")).step(step("only", "wf_a"));
            ids.push(client.insert_workflow(wf).await.unwrap().id);
        }
        let page = client.workflows(None, Some(2)).await.unwrap();
        assert_eq!(page.iter().map(|w| w.id).collect::<Vec<_>>(), vec![ids[4], ids[3]]);
        let next = client.workflows(Some(ids[3]), Some(10)).await.unwrap();
        assert_eq!(next.iter().map(|w| w.id).collect::<Vec<_>>(), vec![ids[2], ids[1], ids[0]]);
        let first = client.workflow(ids[0]).await.unwrap().unwrap();
        let job_id = first.steps[0].job_id;
        s.job_cancel(job_id).await.unwrap();
        assert_eq!(s.driver().job_delete_many(vec![job_id], vec![]).await.unwrap(), 1);
        assert!(client.workflow(ids[0]).await.unwrap().is_none(), "emptied: gone");
        assert_eq!(client.workflows(None, None).await.unwrap().len(), 4);
    }
}

backend_case! {
    /// Steps of a queue and kind no live worker serves (issue 16, bad input): the workflow is
    /// inserted whole and the insert result warns of each such queue and kind, with its count
    /// of steps (as `porter enqueue` warns); served ones are not named.
    async fn steps_nobody_serves_are_warned_of_at_insert(db: TestDb) {
        let s = &db.store;
        let client = Client::new(s.clone());
        let mut worker = crate::register("serves-a", std::time::Duration::from_secs(3600), &[]);
        worker.queues = vec!["default".into()];
        worker.kinds = vec!["wf_a".into()];
        s.worker_register(worker).await.unwrap();

        let wf = client.insert_workflow(diamond("warned")).await.unwrap();
        assert_eq!(wf.steps.len(), 4, "inserted all the same");
        assert_eq!(
            wf.warnings,
            ["wf_b", "wf_c", "wf_d"]
                .iter()
                .map(|k| format!(
                    "workflow {}, 1 step: no live worker serves queue 'default' kind '{k}'; the job waits until one does",
                    wf.id
                ))
                .collect::<Vec<_>>()
        );
        let two = Workflow::new("two")
            .step(step("x", "nobody"))
            .step(step("y", "nobody").after(["x"]));
        let wf = client.insert_workflow(two).await.unwrap();
        assert_eq!(
            wf.warnings,
            vec![format!(
                "workflow {}, 2 steps: no live worker serves queue 'default' kind 'nobody'; the jobs wait until one does",
                wf.id
            )]
        );

        let mut worker = crate::register("serves-all", std::time::Duration::from_secs(3600), &[]);
        worker.queues = vec!["default".into()];
        worker.kinds = KINDS.iter().map(|k| k.to_string()).collect();
        s.worker_register(worker).await.unwrap();
        let wf = client.insert_workflow(diamond("served")).await.unwrap();
        assert!(wf.warnings.is_empty(), "{:?}", wf.warnings);
    }
}

backend_case! {
    /// The `_tx` insert warns of steps nobody serves as the pool's does, asking on the caller's
    /// connection; the caller's transaction goes on and commits.
    async fn a_workflow_in_a_caller_transaction_warns_of_steps_nobody_serves(db: TestDb) {
        let s = &db.store;
        let mut worker = crate::register("serves-most", std::time::Duration::from_secs(3600), &[]);
        worker.queues = vec!["default".into()];
        worker.kinds = vec!["wf_a".into(), "wf_b".into(), "wf_c".into()];
        s.worker_register(worker).await.unwrap();
        let wf = match db.sqlite_path() {
            Some(path) => {
                let mut c = rusqlite::Connection::open(path).unwrap();
                c.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
                let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).unwrap();
                let wf = Client::insert_workflow_tx_sqlite(&tx, diamond("tx")).unwrap();
                tx.commit().unwrap();
                wf
            }
            None => {
                use sqlx::Connection;
                let mut c = sqlx::PgConnection::connect(&db.url).await.unwrap();
                let mut tx = c.begin().await.unwrap();
                let wf = Client::insert_workflow_tx_pg(&mut tx, diamond("tx")).await.unwrap();
                tx.commit().await.unwrap();
                wf
            }
        };
        assert_eq!(
            wf.warnings,
            vec![format!(
                "workflow {}, 1 step: no live worker serves queue 'default' kind 'wf_d'; the job waits until one does",
                wf.id
            )]
        );
        assert_eq!(total(s).await, 4, "committed whole");
    }
}

backend_case! {
    /// The `_tx` insert's question whether live workers serve the steps, asked on the caller's
    /// connection, can fail (here: the workers' table renamed away inside the caller's
    /// transaction). It then counts as served, and the caller's transaction is untouched: on
    /// PostgreSQL the question runs in a savepoint of its own, without which the failed
    /// statement would have aborted the caller's transaction and its commit failed. Workflows
    /// and batches alike.
    async fn a_failed_serving_question_leaves_the_caller_transaction_as_it_was(db: TestDb) {
        let s = &db.store;
        let away = "ALTER TABLE porter_workers RENAME TO porter_workers_away";
        let back = "ALTER TABLE porter_workers_away RENAME TO porter_workers";
        let batch = || {
            let mut b = porter::batch::Batch::new();
            b.push_params(porter::store::JobInsertParams::new("nobody", serde_json::json!({}), InsertOpts::default()).unwrap());
            b.callback_raw("nobody", serde_json::json!({}), InsertOpts::default(), false)
        };
        let (wf, b) = match db.sqlite_path() {
            Some(path) => {
                let mut c = rusqlite::Connection::open(path).unwrap();
                c.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
                let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).unwrap();
                tx.execute_batch(away).unwrap();
                let wf = Client::insert_workflow_tx_sqlite(&tx, diamond("tx")).unwrap();
                let b = Client::insert_batch_tx_sqlite(&tx, batch()).unwrap();
                tx.execute_batch(back).unwrap();
                tx.commit().unwrap();
                (wf, b)
            }
            None => {
                use sqlx::Connection;
                let mut c = sqlx::PgConnection::connect(&db.url).await.unwrap();
                let mut tx = c.begin().await.unwrap();
                sqlx::raw_sql(away).execute(&mut *tx).await.unwrap();
                let wf = Client::insert_workflow_tx_pg(&mut tx, diamond("tx")).await.unwrap();
                let b = Client::insert_batch_tx_pg(&mut tx, batch()).await.unwrap();
                sqlx::raw_sql(back).execute(&mut *tx).await.unwrap();
                tx.commit().await.unwrap();
                (wf, b)
            }
        };
        assert!(wf.warnings.is_empty(), "a failed question counts as served: {:?}", wf.warnings);
        assert!(b.warnings.is_empty(), "a failed question counts as served: {:?}", b.warnings);
        assert_eq!(total(s).await, 4 + 2, "committed whole");
        assert!(Client::new(s.clone()).workflow(wf.id).await.unwrap().is_some());
    }
}

backend_case! {
    /// Steps that wait for jobs outside the workflow that have already ended start as those
    /// ends leave them, and so do the steps after them inside the workflow, at insert: a step
    /// after a completed job starts available and its own child waits for it; a step after a
    /// cancelled job starts cancelled naming it, and so does a child of that step (naming the
    /// step), unless the child runs anyway (after_any); a child of both a waiting step and a
    /// cancelled one starts cancelled. Drained, the rest run in order.
    async fn steps_after_ended_jobs_outside_start_as_those_ends_leave_them(db: TestDb) {
        let s = &db.store;
        let client = Client::new(s.clone());
        let done = insert(s, job("wf_a")).await;
        let got = s.job_claim(claim("default", &["wf_a"], 1, W)).await.unwrap();
        s.job_complete_many(vec![got[0].fence()]).await.unwrap();
        let gone = insert(s, job("wf_a")).await;
        s.job_cancel(gone.id).await.unwrap();
        let outside = |id: i64| InsertOpts { depends_on: vec![id], ..Default::default() };
        let flow = Workflow::new("after ended")
            .step(step("a", "wf_b").opts(outside(done.id)))
            .step(step("b", "wf_b").opts(outside(gone.id)))
            .step(step("c", "wf_c").after(["b"]))
            .step(step("d", "wf_c").after(["b"]).after_any())
            .step(step("e", "wf_d").after(["a"]))
            .step(step("f", "wf_d").after(["a", "c"]));
        let inserted = client.insert_workflow(flow).await.unwrap();
        let ids: BTreeMap<String, i64> =
            inserted.steps.iter().map(|(name, job)| (name.clone(), job.id)).collect();
        let cancelled_by = |row: &porter::JobRow| row.errors.last().map(|e| e.error.clone());
        let mut states = BTreeMap::new();
        for (name, job) in &inserted.steps {
            let row = s.job_get(job.id).await.unwrap().unwrap();
            assert_eq!(row.state, job.state, "{name}: the row as the insert answered it");
            states.insert(name.as_str(), (row.state, cancelled_by(&row)));
        }
        let was = |id: i64| Some(format!("parent job {id} was cancelled"));
        assert_eq!(states["a"], (JobState::Available, None));
        assert_eq!(states["b"], (JobState::Cancelled, was(gone.id)));
        assert_eq!(states["c"], (JobState::Cancelled, was(ids["b"])));
        assert_eq!(states["d"], (JobState::Available, None), "after_any");
        assert_eq!(states["e"], (JobState::Pending, None), "waits for a");
        assert_eq!(states["f"], (JobState::Cancelled, was(ids["c"])));
        drain(s).await;
        for (name, end) in [
            ("a", JobState::Completed),
            ("b", JobState::Cancelled),
            ("c", JobState::Cancelled),
            ("d", JobState::Completed),
            ("e", JobState::Completed),
            ("f", JobState::Cancelled),
        ] {
            let row = s.job_get(ids[name]).await.unwrap().unwrap();
            assert_eq!(row.state, end, "{name}");
        }
        let e = s.job_get(ids["e"]).await.unwrap().unwrap();
        let a = s.job_get(ids["a"]).await.unwrap().unwrap();
        assert!(e.attempted_at.unwrap() >= a.finalized_at.unwrap(), "e started after a ended");
    }
}

backend_case! {
    /// Cancelling a workflow cancels its steps as listed (no entry naming a step), and a job
    /// outside it that waits for two of its steps is cancelled by their ends, naming the first
    /// of them by id, on both backends.
    async fn a_job_after_two_steps_of_a_cancelled_workflow_names_the_first(db: TestDb) {
        let s = &db.store;
        let client = Client::new(s.clone());
        let wf = client
            .insert_workflow(
                Workflow::new("two roots")
                    .step(step("a", "wf_a"))
                    .step(step("b", "wf_b"))
                    .step(step("c", "wf_c").after(["a", "b"])),
            )
            .await
            .unwrap();
        let (a, b, c) = (wf.job("a").unwrap().id, wf.job("b").unwrap().id, wf.job("c").unwrap().id);
        let outside = insert(
            s,
            job_with("wf_d", InsertOpts { depends_on: vec![b, a], ..Default::default() }),
        )
        .await;
        client.cancel_workflow(wf.id).await.unwrap();
        for id in [a, b, c] {
            let row = s.job_get(id).await.unwrap().unwrap();
            assert_eq!((row.state, row.errors.len()), (JobState::Cancelled, 0), "step {id}");
        }
        let row = s.job_get(outside.id).await.unwrap().unwrap();
        assert_eq!(row.state, JobState::Cancelled);
        let said: Vec<&str> = row.errors.iter().map(|e| e.error.as_str()).collect();
        assert_eq!(said, [format!("parent job {a} was cancelled")]);
    }
}

backend_case! {
    /// A workflow read a page of steps at a time (the admin API's `after_id` and `limit`, the
    /// dashboard's offset): the pages together are the whole list, in insertion order; a
    /// step's parents are named by step even when they sit on an earlier page, and a job
    /// outside the workflow as `job N`; every page carries the counts of all the steps, and
    /// `next_after_id` is set exactly when another page follows.
    async fn a_workflow_reads_a_page_of_steps_at_a_time(db: TestDb) {
        let s = &db.store;
        let client = Client::new(s.clone());
        let outside = insert(s, job("plain")).await;
        let mut flow = Workflow::new("paged").step(step("root", "wf_a"));
        let middle: Vec<String> = (0..20).map(|i| format!("s{i:02}")).collect();
        for name in &middle {
            flow = flow.step(step(name, "wf_b").after(["root"]));
        }
        flow = flow.step(
            step("join", "wf_d")
                .after(middle.clone())
                .opts(InsertOpts { depends_on: vec![outside.id], ..Default::default() }),
        );
        let wf = client.insert_workflow(flow).await.unwrap();
        let whole = client.workflow(wf.id).await.unwrap().expect("the workflow");
        assert_eq!(whole.steps.len(), 22);
        assert_eq!(whole.next_after_id, None, "all steps: no next page");

        let mut pages = Vec::new();
        let mut after_id = 0;
        loop {
            let page = StepPage { after_id, limit: Some(8), ..StepPage::all() };
            let got = client.workflow_page(wf.id, page).await.unwrap().expect("the workflow");
            assert_eq!(got.workflow, whole.workflow, "every page has the counts of all steps");
            assert!(got.steps.len() <= 8);
            pages.push(got.steps.len());
            let next = got.next_after_id;
            assert_eq!(next.is_some(), got.steps.last().map(|st| st.job_id) != whole.steps.last().map(|st| st.job_id));
            let more = got.steps.clone();
            after_id = match next {
                Some(n) => {
                    assert_eq!(Some(n), more.last().map(|st| st.job_id));
                    n
                }
                None => 0,
            };
            // Collected in order: the pages, one after another, are the whole list.
            let at = pages.iter().sum::<usize>() - more.len();
            assert_eq!(more, whole.steps[at..at + more.len()].to_vec());
            if next.is_none() {
                break;
            }
        }
        assert_eq!(pages, vec![8, 8, 6]);
        // The fan-in step, alone on its page, names its 20 parents (on earlier pages) by step,
        // and the outside job by id.
        let last = whole.steps.last().unwrap();
        let alone = StepPage { after_id: whole.steps[20].job_id, limit: Some(5), ..StepPage::all() };
        let join = client.workflow_page(wf.id, alone).await.unwrap().unwrap();
        assert_eq!(join.steps, vec![last.clone()]);
        let mut named = middle.clone();
        named.insert(0, format!("job {}", outside.id));
        let mut after = join.steps[0].after.clone();
        after.sort();
        named.sort();
        assert_eq!(after, named);
        assert_eq!(join.steps[0].after_ids.len(), 21);
        // By offset, as the dashboard's page numbers read it.
        let third = StepPage { offset: 2, limit: Some(3), ..StepPage::all() };
        let got = client.workflow_page(wf.id, third).await.unwrap().unwrap();
        assert_eq!(got.steps, whole.steps[2..5].to_vec());
        assert_eq!(got.next_after_id, Some(whole.steps[4].job_id));
        // Past the end: no steps, the counts all the same.
        let past = StepPage { after_id: last.job_id, limit: Some(10), ..StepPage::all() };
        let got = client.workflow_page(wf.id, past).await.unwrap().unwrap();
        assert!(got.steps.is_empty());
        assert_eq!(got.next_after_id, None);
        assert_eq!(got.workflow.total, 22);
        assert!(client.workflow_page(wf.id + 1000, past).await.unwrap().is_none());
        // A reader that has the counts skips them: the same steps, no counts read.
        let uncounted = StepPage { after_id: whole.steps[4].job_id, limit: Some(3), skip_counts: true, ..StepPage::all() };
        let got = client.workflow_page(wf.id, uncounted).await.unwrap().unwrap();
        assert_eq!(got.steps, whole.steps[5..8].to_vec());
        assert_eq!(got.next_after_id, Some(whole.steps[7].job_id));
        assert!(got.workflow.counts.is_empty() && got.workflow.total == 0, "{:?}", got.workflow);
        // A page of no steps is refused, not answered empty as the last page (found by
        // review: it said no page followed).
        let none = StepPage { limit: Some(0), ..StepPage::all() };
        let err = client.workflow_page(wf.id, none).await.unwrap_err();
        assert!(matches!(err, porter::Error::Invalid { .. }), "{err}");
    }
}

backend_case! {
    /// A step whose job is gone (deleted by another program with triggers or foreign keys
    /// off, as a replication subscriber or the sqlite3 shell does) is passed over by the
    /// pages, which stay full and go on to the last step (found by review of cfc571e: on
    /// Postgres a page chose its steps before looking their jobs up, came up short, and said
    /// no page followed).
    async fn a_workflows_pages_pass_over_a_step_whose_job_is_gone(db: TestDb) {
        let s = &db.store;
        let client = Client::new(s.clone());
        let gone = insert(s, job("plain")).await;
        raw_exec(&db, &format!("DELETE FROM porter_jobs WHERE id = {}", gone.id)).await;
        let mut flow = Workflow::new("gappy");
        for i in 0..6 {
            flow = flow.step(step(&format!("s{i}"), "wf_a"));
        }
        let wf = client.insert_workflow(flow).await.unwrap();
        // The step written as such a program would leave it: before every other.
        let sqlite = db.store.backend() == porter::Backend::Sqlite;
        raw_exec(
            &db,
            &format!(
                "{}INSERT INTO porter_workflow_steps (workflow_id, step, job_id) VALUES ({}, 'ghost', {})",
                if sqlite { "PRAGMA foreign_keys = OFF; " } else { "" },
                wf.id,
                gone.id
            ),
        )
        .await;
        let whole = client.workflow(wf.id).await.unwrap().expect("the workflow");
        assert_eq!(whole.steps.len(), 6, "{whole:?}");
        for limit in [1, 2, 5] {
            let mut read = Vec::new();
            let mut after_id = 0;
            loop {
                let page = StepPage { after_id, limit: Some(limit), ..StepPage::all() };
                let got = client.workflow_page(wf.id, page).await.unwrap().expect("the workflow");
                read.extend(got.steps.iter().map(|st| st.job_id));
                match got.next_after_id {
                    Some(next) => after_id = next,
                    None => break,
                }
            }
            let want: Vec<i64> = whole.steps.iter().map(|st| st.job_id).collect();
            assert_eq!(read, want, "pages of {limit}");
            // By offset, as the dashboard pages: the step passed over is not counted either
            // (PostgreSQL's offset counted it, so each page but the first started a step early,
            // repeating one, and the last step was never shown).
            let mut read = Vec::new();
            for n in 0..(whole.steps.len() as u32).div_ceil(limit) {
                let page = StepPage { offset: n * limit, limit: Some(limit), ..StepPage::all() };
                let got = client.workflow_page(wf.id, page).await.unwrap().expect("the workflow");
                read.extend(got.steps.iter().map(|st| st.job_id));
            }
            assert_eq!(read, want, "offset pages of {limit}");
        }
    }
}

backend_case! {
    /// A page may read only some of each step's parents (`StepPage::parents`): the first by
    /// id, with how many the step has in all, or those among the page's own steps (by id,
    /// from its first to its last), shown in id order. Unasked, every parent is read and no
    /// total is given; a first of none is refused. (The dashboard read every parent: a page of
    /// 200 steps each after 10,000 jobs named 2,000,000 of them at every refresh.)
    async fn a_page_reads_the_parents_of_each_step_it_asks_for_and_counts_them_all(db: TestDb) {
        let s = &db.store;
        let client = Client::new(s.clone());
        let mut outside = Vec::new();
        for _ in 0..30 {
            outside.push(insert(s, job("plain")).await.id);
        }
        let after = |ids: &[i64]| InsertOpts { depends_on: ids.to_vec(), ..Default::default() };
        let wf = client
            .insert_workflow(
                Workflow::new("wide")
                    .step(step("a", "wf_a").opts(after(&outside)))
                    .step(step("b", "wf_b").opts(after(&outside[..5])).after(["a"]))
                    .step(step("c", "wf_c"))
                    .step(step("d", "wf_d").after(["a", "b"])),
            )
            .await
            .unwrap();
        let (a, b) = (wf.job("a").unwrap().id, wf.job("b").unwrap().id);
        let read = |parents: StepParents, limit: Option<u32>| {
            let client = client.clone();
            async move {
                let page = StepPage { parents, limit, ..StepPage::all() };
                let got = client.workflow_page(wf.id, page).await.unwrap().unwrap();
                got.steps.into_iter().map(|st| (st.step, st.after_ids, st.after, st.parents_total)).collect::<Vec<_>>()
            }
        };
        let names = |ids: &[i64]| {
            ids.iter()
                .map(|id| match *id {
                    id if id == a => "a".to_string(),
                    id if id == b => "b".to_string(),
                    id => format!("job {id}"),
                })
                .collect::<Vec<_>>()
        };
        let row = |step: &str, ids: Vec<i64>, total: Option<u64>| (step.to_string(), ids.clone(), names(&ids), total);

        let first = read(StepParents::First(3), None).await;
        assert_eq!(first[0], row("a", outside[..3].to_vec(), Some(30)));
        assert_eq!(first[1], row("b", outside[..3].to_vec(), Some(6)));
        assert_eq!(first[2], row("c", vec![], None), "no parents, no total");
        assert_eq!(first[3], row("d", vec![a, b], Some(2)));

        // Among the page's own steps: all of a workflow's steps, then the first two only.
        let own = read(StepParents::InPage, None).await;
        assert_eq!(own[0], row("a", vec![], None), "its parents are outside");
        assert_eq!(own[1], row("b", vec![a], None));
        assert_eq!(own[3], row("d", vec![a, b], None));
        let two = read(StepParents::InPage, Some(2)).await;
        assert_eq!(two.len(), 2);
        assert_eq!(two[1], row("b", vec![a], None));

        let all = read(StepParents::All, None).await;
        let mut b_all = outside[..5].to_vec();
        b_all.push(a);
        assert_eq!(all[0], row("a", outside.clone(), None));
        assert_eq!(all[1], row("b", b_all, None));
        assert_eq!(all[3], row("d", vec![a, b], None));

        let none = StepPage { parents: StepParents::First(0), ..StepPage::all() };
        let err = client.workflow_page(wf.id, none).await.unwrap_err();
        assert!(matches!(err, Error::Invalid { what: "step page", .. }), "{err}");
    }
}

backend_case! {
    /// Every job a workflow's insert or a waiting job's insert answers is the row the database
    /// holds, however its batch was written: steps of several kinds, queues, priorities,
    /// attempts and metadata, available or waiting, with dependents or without, beside a step
    /// due later and a step with a unique key (which PostgreSQL writes through its general
    /// statement); and jobs outside a workflow waiting for parents running and completed.
    async fn inserted_steps_and_waiting_jobs_are_answered_as_stored(db: TestDb) {
        let s = &db.store;
        let client = Client::new(s.clone());
        let opts = |queue: &str, priority: i16, attempts: i32, meta: serde_json::Value| InsertOpts {
            queue: Some(queue.into()),
            priority: Some(priority),
            max_attempts: Some(attempts),
            metadata: Some(meta),
            ..Default::default()
        };
        let plain = Workflow::new("mixed")
            .step(step("a", "wf_a").opts(opts("q1", 2, 3, serde_json::json!({"m": 1}))))
            .step(step("b", "wf_b").after(["a"]).opts(opts("q2", 1, 5, serde_json::json!({}))))
            .step(step("c", "wf_c").after(["a"]).after_any())
            .step(step("d", "wf_d").after(["b", "c"]).opts(opts("q1", 4, 1, serde_json::json!({"x": [1, 2]}))))
            .step(step("e", "wf_a"));
        let general = Workflow::new("keyed")
            .step(step("a", "wf_a"))
            .step(step("later", "wf_b").opts(InsertOpts {
                schedule_in: Some(std::time::Duration::from_secs(3600)),
                ..Default::default()
            }))
            .step(step("keyed", "wf_c").after(["a"]).opts(InsertOpts {
                unique_key: Some("inserted-as-stored".into()),
                ..Default::default()
            }));
        let mut answered = Vec::new();
        for w in [plain, general] {
            let wf = client.insert_workflow(w).await.unwrap();
            answered.extend(wf.steps.into_iter().map(|(_, job)| job));
        }
        // Outside any workflow: waiting for a running and a completed parent, and for none.
        insert(s, job("p_run")).await;
        let running = claim_one(s, "p_run").await;
        insert(s, job("p_done")).await;
        let done = claim_one(s, "p_done").await;
        s.job_complete_many(vec![done.fence()]).await.unwrap();
        let waiting = |parents: Vec<i64>| {
            job_with("child", InsertOpts {
                depends_on: parents,
                ..opts("q3", 3, 7, serde_json::json!({"c": true}))
            })
        };
        let children = s
            .job_insert_many(vec![
                waiting(vec![running.id, done.id]),
                waiting(vec![done.id]),
                waiting(vec![running.id]),
            ])
            .await
            .unwrap();
        answered.extend(children.into_iter().map(|r| r.job));
        let states: Vec<JobState> = answered.iter().map(|j| j.state).collect();
        use JobState::*;
        assert_eq!(
            states,
            [Available, Pending, Pending, Pending, Available, Available, Scheduled, Pending, Pending, Available, Pending]
        );
        for job in &answered {
            assert_eq!(s.job_get(job.id).await.unwrap().as_ref(), Some(job), "job {} ({})", job.id, job.kind);
        }
    }
}

backend_case! {
    /// `WorkflowInsertParams` can be built by hand too (its fields are public): the store
    /// checks it as `Workflow::params` does before it writes anything. Until 5 Dec a step
    /// waiting for a placeholder past the steps, or for itself or a later step, panicked in
    /// the insert (an index out of bounds), and an empty name or two steps of one name went in
    /// or failed in the database.
    async fn workflow_params_built_by_hand_are_checked(db: TestDb) {
        let s = &*db.store;
        let good = diamond("by hand").params().unwrap();
        let edit = |f: &dyn Fn(&mut WorkflowInsertParams)| {
            let mut p = good.clone();
            f(&mut p);
            p
        };
        let bad: Vec<(&str, WorkflowInsertParams)> = vec![
            ("workflow name", edit(&|p| p.name = String::new())),
            ("workflow name", edit(&|p| p.name = "n\0".into())),
            ("workflow", edit(&|p| p.steps.clear())),
            ("step name", edit(&|p| p.steps[1].name = String::new())),
            ("workflow", edit(&|p| p.steps[2].name = "b".into())),
            ("kind", edit(&|p| p.steps[3].job.kind = "Bad Kind".into())),
            ("queue", edit(&|p| p.steps[0].job.queue = "q\u{1b}[2J".into())),
            // Placeholders: past the steps, the step itself, a later step; 0 is no job.
            ("depends_on", edit(&|p| p.steps[3].job.depends_on = vec![-100])),
            ("depends_on", edit(&|p| p.steps[1].job.depends_on = vec![-2])),
            ("depends_on", edit(&|p| p.steps[0].job.depends_on = vec![-4])),
            ("depends_on", edit(&|p| p.steps[0].job.depends_on = vec![0])),
            ("depends_on", edit(&|p| p.steps[3].job.depends_on = vec![-2, -2])),
        ];
        for (what, b) in bad {
            let shown = format!("{b:?}").chars().take(300).collect::<String>();
            match s.workflow_insert(b).await {
                Err(Error::Invalid { what: w, .. }) => assert_eq!(w, what, "{shown}"),
                other => panic!("{shown}: refused as bad {what}, got {other:?}"),
            }
            assert_eq!(total(s).await, 0, "nothing written for a bad {what}");
            assert!(s.workflow_list(None, None).await.unwrap().is_empty());
        }
        // On a caller's connection too (the public `_tx` functions take params).
        let mut past = good.clone();
        past.steps[3].job.depends_on = vec![-100];
        let refused = match db.sqlite_path() {
            Some(path) => {
                let c = rusqlite::Connection::open(path).unwrap();
                c.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
                porter::store::sqlite::workflow_insert_tx(&c, &past).map(|_| ())
            }
            None => {
                use sqlx::Connection;
                let mut c = sqlx::PgConnection::connect(&db.url).await.unwrap();
                porter::store::postgres::workflow_insert_tx(&mut c, &past).await.map(|_| ())
            }
        };
        assert!(matches!(refused, Err(Error::Invalid { what: "depends_on", .. })), "{refused:?}");
        assert_eq!(total(s).await, 0);
        assert_eq!(s.workflow_insert(good).await.unwrap().steps.len(), 4);
    }
}
