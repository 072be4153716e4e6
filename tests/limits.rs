//! Durations and times at their limits, on both backends: a duration too long for the
//! database's time arithmetic is clamped (see `porter::store::MAX_DURATION`), and a time
//! outside the documented range is refused alike (issue 11, items 5 and 13).

mod common;

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use porter::job::{InsertOpts, JobState};
use porter::store::*;
use porter::Error;

#[test]
fn default_backoff_is_capped_for_any_attempt() {
    let cap = porter::job::MAX_DEFAULT_BACKOFF;
    for attempt in [700, 10_000, i32::MAX] {
        let d = porter::job::default_backoff(attempt);
        assert!(d <= cap, "attempt {attempt}: {d:?} exceeds the cap {cap:?}");
        assert!(
            d >= cap.mul_f64(0.89),
            "attempt {attempt}: {d:?} is capped, not wrapped around"
        );
    }
    assert!(
        porter::job::default_backoff(2) < Duration::from_secs(20),
        "small attempts keep attempt^4"
    );
}

fn job(kind: &str) -> JobInsertParams {
    JobInsertParams::new(kind, serde_json::json!({}), InsertOpts::default()).unwrap()
}

fn claim(kinds: &[&str], limit: u32, worker: &str) -> JobClaimParams {
    JobClaimParams {
        queue: "default".into(),
        kinds: kinds.iter().map(|k| k.to_string()).collect(),
        limit,
        worker_id: worker.into(),
    }
}

backend_case! {
    /// A worker with `max_timeout = Duration::MAX` gives the rescuer a stuck limit of
    /// `Duration::MAX`: the lost-worker rescue must still happen (Postgres raised "interval out
    /// of range" and rolled it back on every pass).
    async fn rescue_of_lost_workers_survives_a_huge_stuck_limit(db: TestDb) {
        let s = &*db.store;
        s.worker_heartbeat(WorkerHeartbeatParams {
            id: "alive".into(),
            host: "host".into(),
            pid: 1,
        })
        .await
        .unwrap();
        s.job_insert_many(vec![job("forever"), job("forever"), job("centuries")])
            .await
            .unwrap();
        let lost = s
            .job_claim(claim(&["forever"], 1, "gone"))
            .await
            .unwrap()
            .remove(0);
        let live = s
            .job_claim(claim(&["forever", "centuries"], 2, "alive"))
            .await
            .unwrap();
        let params = JobRescueParams { ending: Vec::new(), by: None,
            lease: Duration::from_secs(60),
            stuck_after: vec![
                ("forever".into(), Duration::MAX),
                (
                    "centuries".into(),
                    Duration::from_secs(10_000 * 365 * 86_400),
                ),
            ],
            limit: 100,
        };
        let counts = s
            .job_rescue(params)
            .await
            .expect("a huge stuck limit is no error");
        assert_eq!(
            counts,
            RescueCounts {
                retried: 1,
                discarded: 0,
                cancelled: 0
            }
        );
        assert_eq!(
            s.job_get(lost.id).await.unwrap().unwrap().state,
            JobState::Retryable
        );
        for j in live {
            assert_eq!(
                s.job_get(j.id).await.unwrap().unwrap().state,
                JobState::Running,
                "never stuck"
            );
        }
        // The lease is clamped alike: a huge one declares nobody lost, and fails nothing.
        let huge_lease = JobRescueParams { ending: Vec::new(), by: None,
            lease: Duration::MAX,
            stuck_after: vec![],
            limit: 100,
        };
        assert_eq!(
            s.job_rescue(huge_lease).await.unwrap(),
            RescueCounts::default()
        );
    }
}

backend_case! {
    async fn retention_of_centuries_deletes_nothing_and_does_not_fail(db: TestDb) {
        let s = &*db.store;
        s.job_insert_many(vec![job("noop"), job("noop")])
            .await
            .unwrap();
        let rows = s.job_claim(claim(&["noop"], 2, "w")).await.unwrap();
        s.job_complete_many(vec![rows[0].fence()]).await.unwrap();
        s.job_cancel(rows[1].id).await.unwrap();
        for keep in [Duration::MAX, Duration::from_secs(5_000 * 365 * 86_400)] {
            let p = JobDeleteFinalizedParams {
                completed: keep,
                cancelled: keep,
                discarded: keep,
                limit: 100,
            };
            assert_eq!(
                s.job_delete_finalized(p)
                    .await
                    .expect("a huge retention is no error"),
                0
            );
        }
        let p = JobDeleteFinalizedParams {
            completed: Duration::ZERO,
            cancelled: Duration::MAX,
            discarded: Duration::MAX,
            limit: 100,
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(
            s.job_delete_finalized(p).await.unwrap(),
            1,
            "only the completed job was past its retention"
        );
    }
}

backend_case! {
    /// A worker's `next_retry` or snooze of `Duration::MAX` must not leave the job running (the
    /// write failed: "NOT NULL constraint failed" on SQLite, "interval out of range" on
    /// Postgres); it is clamped, so the job waits about a thousand years.
    async fn huge_retry_and_snooze_delays_are_clamped(db: TestDb) {
        let s = &*db.store;
        s.job_insert_many(vec![job("noop"), job("noop")])
            .await
            .unwrap();
        let rows = s.job_claim(claim(&["noop"], 2, "w")).await.unwrap();
        let failed = s
            .job_fail(JobFailParams {
                fence: rows[0].fence(),
                error: "x".into(),
                trace: None,
                retry_in: Duration::MAX,
                discard: false,
            })
            .await
            .expect("a huge retry delay is no error");
        assert_eq!(failed.state, JobState::Retryable);
        let snoozed = s
            .job_snooze(JobSnoozeParams {
                fence: rows[1].fence(),
                delay: Duration::MAX,
            })
            .await
            .expect("a huge snooze is no error");
        assert_eq!(snoozed.state, JobState::Scheduled);
        let now = s.now().await.unwrap();
        for j in [failed, snoozed] {
            let years = (j.scheduled_at - now).num_days() / 365;
            assert!(
                (990..=1001).contains(&years),
                "due in about a thousand years, got {years}"
            );
        }
        assert!(s
            .job_claim(claim(&["noop"], 2, "w"))
            .await
            .unwrap()
            .is_empty());
    }
}

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

fn year(y: i32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, 1, 1, 0, 0, 0).unwrap()
}

fn scheduled(t: DateTime<Utc>) -> InsertOpts {
    InsertOpts {
        scheduled_at: Some(t),
        ..Default::default()
    }
}

fn delayed(d: Duration) -> InsertOpts {
    InsertOpts {
        schedule_in: Some(d),
        ..Default::default()
    }
}

backend_case! {
    /// Year 10000 or -1 was a 500 on SQLite and stored on Postgres; `--in 5000000d` a "NOT NULL
    /// constraint failed" on SQLite and accepted on Postgres. Now one range, refused alike.
    async fn times_outside_the_range_are_refused_alike(db: TestDb) {
        let s = &*db.store;
        let too_late =
            Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap() + chrono::Duration::seconds(1);
        let too_early = at("1969-12-31T23:59:59.999Z");
        for t in [year(10_000), year(-1), too_late, too_early] {
            let refused = JobInsertParams::new("noop", serde_json::json!({}), scheduled(t));
            match refused {
                Err(Error::Invalid {
                    what: "scheduled_at",
                    message,
                }) => {
                    assert!(
                        message.contains("1970-01-01T00:00:00Z")
                            && message.contains("9999-12-31T23:59:59.999Z"),
                        "{message}"
                    )
                }
                other => panic!("{t}: expected Invalid scheduled_at, got {other:?}"),
            }
        }
        for d in [
            Duration::from_secs(5_000_000 * 86_400),
            Duration::MAX,
            MAX_DURATION + Duration::from_millis(1),
        ] {
            match JobInsertParams::new("noop", serde_json::json!({}), delayed(d)) {
                Err(Error::Invalid {
                    what: "schedule_in",
                    message,
                }) => assert!(message.contains("1000 years"), "{message}"),
                other => panic!("{d:?}: expected Invalid schedule_in, got {other:?}"),
            }
        }
        // Params built by hand (the fields are public) are refused by the store alike, and
        // nothing of their batch is written.
        let good =
            JobInsertParams::new("noop", serde_json::json!({}), InsertOpts::default()).unwrap();
        for bad in [
            JobInsertParams {
                scheduled_at: Some(year(10_000)),
                ..good.clone()
            },
            JobInsertParams {
                scheduled_at: Some(year(-1)),
                ..good.clone()
            },
            JobInsertParams {
                schedule_in: Some(Duration::from_secs(5_000_000 * 86_400)),
                ..good.clone()
            },
        ] {
            let refused = s.job_insert_many(vec![good.clone(), bad]).await;
            assert!(matches!(refused, Err(Error::Invalid { .. })), "{refused:?}");
        }
        assert_eq!(
            s.job_counts().await.unwrap().total.values().sum::<i64>(),
            0,
            "nothing written"
        );
    }
}

backend_case! {
    async fn times_at_the_ends_of_the_range_are_stored_alike(db: TestDb) {
        let s = &*db.store;
        let last = at("9999-12-31T23:59:59.999Z");
        let first = at("1970-01-01T00:00:00Z");
        let params = [scheduled(last), scheduled(first), delayed(MAX_DURATION)]
            .map(|o| JobInsertParams::new("noop", serde_json::json!({}), o).unwrap());
        let rows = s.job_insert_many(params.to_vec()).await.unwrap();
        assert_eq!(
            (rows[0].job.state, rows[0].job.scheduled_at),
            (JobState::Scheduled, last)
        );
        assert_eq!(
            (rows[1].job.state, rows[1].job.scheduled_at),
            (JobState::Available, first)
        );
        assert_eq!(rows[2].job.state, JobState::Scheduled);
        for r in &rows {
            assert_eq!(
                s.job_get(r.job.id).await.unwrap().unwrap(),
                r.job,
                "read back as written"
            );
        }
    }
}

backend_case! {
    /// The admin API answers 422 with the reason (it was a 500 on SQLite, a 201 on Postgres).
    async fn admin_api_answers_422_for_a_time_out_of_range(db: TestDb) {
        use axum::body::Body;
        use axum::http::{header, Method, Request, StatusCode};
        use http_body_util::BodyExt;
        use tower::ServiceExt;

        let objects: std::sync::Arc<dyn object_store::ObjectStore> =
            std::sync::Arc::new(object_store::memory::InMemory::new());
        let app = porter::http::router(porter::http::AppState::with_config(
            db.store.clone(),
            objects,
            Default::default(),
        ));
        for when in [
            "+10000-01-01T00:00:00Z",
            "-0001-01-01T00:00:00Z",
            "1969-12-31T23:59:59Z",
        ] {
            let body = serde_json::json!({"kind": "noop", "scheduled_at": when});
            let req = Request::builder()
                .method(Method::POST)
                .uri("/admin/jobs")
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body.to_string()))
                .unwrap();
            let response = app.clone().oneshot(req).await.unwrap();
            let status = response.status();
            let bytes = response.into_body().collect().await.unwrap().to_bytes();
            let text = String::from_utf8_lossy(&bytes);
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{when}: {text}");
            assert!(
                text.contains("scheduled_at") && text.contains("9999-12-31"),
                "{when}: {text}"
            );
        }
        assert_eq!(
            db.store
                .job_counts()
                .await
                .unwrap()
                .total
                .values()
                .sum::<i64>(),
            0,
            "nothing written"
        );
    }
}

/// `porter enqueue --in` past the longest delay, or `--at` outside the range, is a usage error
/// (exit 2) naming the limit, on SQLite (it was a "NOT NULL constraint failed", exit 1).
#[test]
fn cli_enqueue_refuses_times_out_of_range_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/porter.db", dir.path().display());
    for (flag, value, says) in [
        ("--in", "5000000d", "1000 years"),
        ("--at", "1969-12-31T23:59:59Z", "1970-01-01T00:00:00Z"),
        (
            "--at",
            "9999-12-31T23:59:59.9999Z",
            "9999-12-31T23:59:59.999Z",
        ),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_porter"))
            .args(["--database-url", &url, "enqueue", "noop", flag, value])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flag} {value}: {stderr}");
        assert!(stderr.contains(says), "{flag} {value}: {stderr}");
    }
}
