//! The web process on both backends (`case::sqlite`, `case::postgres`): through the router
//! without a socket (`oneshot`) and through a real server on 127.0.0.1:0 with a worker beside
//! it. The tablo API and its transactional delete (commit and rollback), the admin API, the
//! metrics, and every error status with nothing changed.

#[path = "common/chaos_gated_store.rs"]
mod chaos_gated_store;
mod common;
#[path = "common/surfaces.rs"]
mod surfaces;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use object_store::path::Path;
use object_store::ObjectStore;
use porter::http::{router, HttpConfig};
use porter::{JobState, Store};
use serde_json::{json, Value};
use tower::ServiceExt;
use uuid::Uuid;

use crate::common::eventually;

#[test]
fn listening_beyond_loopback_needs_an_admin_token() {
    use porter::http::check_listen;
    let public = "0.0.0.0:8080".parse().unwrap();
    assert!(check_listen(public, None).is_err());
    assert!(
        check_listen(public, Some("")).is_err(),
        "an empty token is no token"
    );
    assert!(check_listen(public, Some("s3cret")).is_ok());
    assert!(
        check_listen(public, Some("s3 cr3t")).is_ok(),
        "a space inside can be sent"
    );
    // A token no request can send (a header value is visible ASCII and spaces) is refused,
    // on loopback too: every /admin/* request was 401 for good (review of 7 Dec).
    let loopback = "127.0.0.1:8080".parse().unwrap();
    for token in ["pässwort", "a\tb", "a\u{7f}b", "a\nb"] {
        let err = check_listen(loopback, Some(token)).unwrap_err().to_string();
        assert!(err.contains("PORTER_ADMIN_TOKEN"), "{token:?}: {err}");
        assert!(!err.contains(token), "the token is not printed: {err}");
    }
    assert!(check_listen("127.0.0.1:8080".parse().unwrap(), None).is_ok());
    assert!(check_listen("[::1]:8080".parse().unwrap(), None).is_ok());
}

const TOKEN: &str = "test-admin-token-0123456789";

fn request(method: Method, uri: &str, body: impl Into<Body>) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(uri)
        .body(body.into())
        .unwrap()
}

fn json_request(method: Method, uri: &str, body: Value) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(uri)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

fn with_json_type(mut req: Request<Body>) -> Request<Body> {
    req.headers_mut()
        .insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
    req
}

fn with_token(mut req: Request<Body>, token: &str) -> Request<Body> {
    req.headers_mut().insert(
        header::AUTHORIZATION,
        format!("Bearer {token}").parse().unwrap(),
    );
    req
}

/// Sends one request; returns the status and the body as JSON (Null when it is not JSON).
async fn send(app: &Router, req: Request<Body>) -> (StatusCode, Value) {
    let response = app.clone().oneshot(req).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// Sends one request; returns the status and the body as text.
async fn send_text(app: &Router, req: Request<Body>) -> (StatusCode, String) {
    let response = app.clone().oneshot(req).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

async fn job_state(store: &Store, id: i64) -> JobState {
    store.job_get(id).await.unwrap().expect("job exists").state
}

backend_case! {
    async fn tablo_api_creates_uploads_lists_and_deletes(db: TestDb) {
        let state = surfaces::app_state(db.store.clone(), HttpConfig::default()).await;
        let objects = state.objects.clone();
        let app = router(state);

        let (status, body) = send(
            &app,
            json_request(Method::POST, "/api/tablos", json!({"name": "holidays"})),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let tablo: Uuid = body["id"].as_str().unwrap().parse().unwrap();
        assert_eq!(
            db.tablos()
                .await
                .tablo_get(tablo)
                .await
                .unwrap()
                .unwrap()
                .name,
            "holidays"
        );

        let mut upload = request(
            Method::POST,
            &format!("/api/tablos/{tablo}/files"),
            "hello, tablo",
        );
        upload
            .headers_mut()
            .insert("x-file-name", "hello.txt".parse().unwrap());
        let (status, body) = send(&app, upload).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let key = body["s3_key"].as_str().unwrap().to_string();
        assert!(key.starts_with(&format!("tablos/{tablo}/")), "{key}");
        let stored = objects
            .get(&Path::from(key.as_str()))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(&stored[..], b"hello, tablo");

        let (status, body) = send(
            &app,
            request(
                Method::GET,
                &format!("/api/tablos/{tablo}/files"),
                Body::empty(),
            ),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        let files = body.as_array().unwrap();
        assert_eq!(files.len(), 1);
        assert_eq!(files[0]["s3_key"], key.as_str());
        assert_eq!(files[0]["size"], 12);

        let (status, body) = send(
            &app,
            request(
                Method::DELETE,
                &format!("/api/tablos/{tablo}"),
                Body::empty(),
            ),
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        assert!(body["job_id"].as_i64().is_some());
        let (status, _) = send(
            &app,
            request(
                Method::DELETE,
                &format!("/api/tablos/{tablo}"),
                Body::empty(),
            ),
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "a deleted tablo is gone");
        let (status, _) = send(
            &app,
            request(
                Method::GET,
                &format!("/api/tablos/{tablo}/files"),
                Body::empty(),
            ),
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
}

backend_case! {
    async fn tablo_delete_commits_the_row_delete_and_the_cleanup_job_together(db: TestDb) {
        let app = router(surfaces::app_state(db.store.clone(), HttpConfig::default()).await);
        let tablo = db.tablos().await.tablo_insert("to delete").await.unwrap();

        let (status, body) = send(
            &app,
            request(
                Method::DELETE,
                &format!("/api/tablos/{}", tablo.id),
                Body::empty(),
            ),
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        assert!(
            db.tablos()
                .await
                .tablo_get(tablo.id)
                .await
                .unwrap()
                .is_none(),
            "the tablo row is gone"
        );
        let job = db
            .store
            .job_get(body["job_id"].as_i64().unwrap())
            .await
            .unwrap()
            .expect("the job exists");
        assert_eq!(job.kind, "orphan_file_cleanup");
        assert_eq!(job.state, JobState::Available);
        assert_eq!(job.args, json!({"tablo_id": tablo.id}));
        assert_eq!(
            surfaces::all_jobs(db.store.as_ref()).await.len(),
            1,
            "exactly one job"
        );
    }
}

backend_case! {
    async fn tablo_delete_rolls_back_when_the_cleanup_job_cannot_be_inserted(db: TestDb) {
        let app = router(surfaces::app_state(db.store.clone(), HttpConfig::default()).await);
        let tablo = db.tablos().await.tablo_insert("kept").await.unwrap();
        let unrelated = surfaces::insert(db.store.as_ref(), "noop", "default").await;
        surfaces::refuse_cleanup_jobs(&db.url, db.store.as_ref(), db.sqlite_path()).await;

        let (status, body) = send(
            &app,
            request(
                Method::DELETE,
                &format!("/api/tablos/{}", tablo.id),
                Body::empty(),
            ),
        )
        .await;
        // SQLite reports the trigger's abort as a refused constraint (422), Postgres as a
        // database error (500): either way an error, and the whole transaction undone.
        assert!(
            status.is_client_error() || status.is_server_error(),
            "{status}: {body}"
        );
        assert!(body["error"].is_string());
        assert!(
            db.tablos()
                .await
                .tablo_get(tablo.id)
                .await
                .unwrap()
                .is_some(),
            "the row delete was rolled back"
        );
        let jobs = surfaces::all_jobs(db.store.as_ref()).await;
        assert_eq!(
            jobs.iter().map(|j| j.id).collect::<Vec<_>>(),
            vec![unrelated.id],
            "no job was added"
        );

        // The same store still works afterwards (the failed transaction left nothing open).
        let (status, _) = send(
            &app,
            json_request(Method::POST, "/admin/jobs", json!({"kind": "noop"})),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED);
    }
}

backend_case! {
    async fn admin_insert_is_run_by_a_running_worker(db: TestDb) {
        let state = surfaces::app_state(db.store.clone(), HttpConfig::default()).await;
        let (shutdown, worker) = surfaces::spawn_worker(db.store.clone(), state.objects.clone());
        let app = router(state);

        let (status, body) = send(
            &app,
            json_request(
                Method::POST,
                "/admin/jobs",
                json!({"kind": "sleep", "args": {"ms": 1}, "queue": "default"}),
            ),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert_eq!(body["inserted"], true);
        let id = body["id"].as_i64().unwrap();
        let store = db.store.clone();
        eventually("the worker completes the job", || {
            let store = store.clone();
            async move { job_state(store.as_ref(), id).await == JobState::Completed }
        })
        .await;
        shutdown.soft.cancel();
        worker.await.unwrap().unwrap();
        let job = db.store.job_get(id).await.unwrap().unwrap();
        assert_eq!(job.attempt, 1);
    }
}

backend_case! {
    async fn real_server_runs_enqueued_jobs_and_deleted_tablos_lose_their_objects(db: TestDb) {
        let config = HttpConfig {
            admin_token: Some(TOKEN.to_string()),
            ..HttpConfig::default()
        };
        let state = surfaces::app_state(db.store.clone(), config).await;
        let objects: Arc<dyn ObjectStore> = state.objects.clone();
        let (worker_shutdown, worker) = surfaces::spawn_worker(db.store.clone(), objects.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let stop = tokio_util::sync::CancellationToken::new();
        let server = tokio::spawn(porter::http::serve(
            listener,
            state,
            stop.clone().cancelled_owned(),
        ));
        let client = reqwest::Client::new();

        let health = client.get(format!("{base}/healthz")).send().await.unwrap();
        assert_eq!(health.status(), 200);
        assert_eq!(
            health.json::<Value>().await.unwrap(),
            json!({"status": "ok"})
        );

        let refused = client
            .post(format!("{base}/admin/jobs"))
            .json(&json!({"kind": "noop"}))
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 401);
        let created = client
            .post(format!("{base}/admin/jobs"))
            .bearer_auth(TOKEN)
            .json(&json!({"kind": "noop"}))
            .send()
            .await
            .unwrap();
        assert_eq!(created.status(), 201);
        let id = created.json::<Value>().await.unwrap()["id"]
            .as_i64()
            .unwrap();
        let store = db.store.clone();
        eventually("the worker completes the job enqueued over HTTP", || {
            let store = store.clone();
            async move { job_state(store.as_ref(), id).await == JobState::Completed }
        })
        .await;

        // A tablo with a file; deleting it enqueues the targeted cleanup, which the worker runs.
        let tablo: Value = client
            .post(format!("{base}/api/tablos"))
            .json(&json!({"name": "trip"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let tablo = tablo["id"].as_str().unwrap().to_string();
        let file = client
            .post(format!("{base}/api/tablos/{tablo}/files"))
            .header("x-file-name", "photo.jpg")
            .body(vec![7u8; 4096])
            .send()
            .await
            .unwrap();
        assert_eq!(file.status(), 201);
        let key = file.json::<Value>().await.unwrap()["s3_key"]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(
            objects.head(&Path::from(key.as_str())).await.unwrap().size,
            4096
        );

        let deleted = client
            .delete(format!("{base}/api/tablos/{tablo}"))
            .send()
            .await
            .unwrap();
        assert_eq!(deleted.status(), 202);
        let job_id = deleted.json::<Value>().await.unwrap()["job_id"]
            .as_i64()
            .unwrap();
        let store = db.store.clone();
        eventually("the cleanup job completes", || {
            let store = store.clone();
            async move { job_state(store.as_ref(), job_id).await == JobState::Completed }
        })
        .await;
        assert!(
            matches!(
                objects.head(&Path::from(key.as_str())).await,
                Err(object_store::Error::NotFound { .. })
            ),
            "the object is gone"
        );
        let tablo_id: Uuid = tablo.parse().unwrap();
        assert!(
            db.tablos()
                .await
                .tablo_file_list(tablo_id)
                .await
                .unwrap()
                .is_empty(),
            "the file row is gone"
        );

        stop.cancel();
        server.await.unwrap().unwrap();
        worker_shutdown.soft.cancel();
        worker.await.unwrap().unwrap();
    }
}

backend_case! {
    async fn every_error_status_changes_nothing(db: TestDb) {
        let config = HttpConfig {
            admin_token: Some(TOKEN.to_string()),
            max_json_bytes: 4096,
            max_file_bytes: 1024,
            ..HttpConfig::default()
        };
        let app = router(surfaces::app_state(db.store.clone(), config).await);
        let store = db.store.as_ref();
        let tablos = db.tablos().await;
        let running = surfaces::running_job(store).await;
        let discarded = surfaces::discarded_job(store, "it broke").await;
        let tablo = tablos.tablo_insert("kept").await.unwrap();
        let mut upload = request(
            Method::POST,
            &format!("/api/tablos/{}/files", tablo.id),
            "first file",
        );
        upload
            .headers_mut()
            .insert("x-file-name", "a.txt".parse().unwrap());
        assert_eq!(send(&app, upload).await.0, StatusCode::CREATED);

        let jobs_before = surfaces::all_jobs(store).await;
        let files_before = tablos.tablo_file_list(tablo.id).await.unwrap();
        let admin = |req: Request<Body>| with_token(req, TOKEN);
        let missing = Uuid::new_v4();
        let cases: Vec<(&str, Request<Body>, StatusCode)> = vec![
            (
                "no token",
                json_request(Method::POST, "/admin/jobs", json!({"kind": "noop"})),
                StatusCode::UNAUTHORIZED,
            ),
            (
                "wrong token",
                with_token(
                    json_request(Method::POST, "/admin/jobs", json!({"kind": "noop"})),
                    "wrong",
                ),
                StatusCode::UNAUTHORIZED,
            ),
            (
                "wrong token, longer",
                with_token(
                    request(Method::GET, "/admin/jobs", Body::empty()),
                    &format!("{TOKEN}x"),
                ),
                StatusCode::UNAUTHORIZED,
            ),
            (
                "wrong token on retry",
                with_token(
                    request(
                        Method::POST,
                        &format!("/admin/jobs/{}/retry", discarded.id),
                        Body::empty(),
                    ),
                    "nope",
                ),
                StatusCode::UNAUTHORIZED,
            ),
            (
                "malformed JSON",
                admin(with_json_type(request(
                    Method::POST,
                    "/admin/jobs",
                    r#"{"kind": "noop""#,
                ))),
                StatusCode::BAD_REQUEST,
            ),
            (
                "unknown kind",
                admin(json_request(
                    Method::POST,
                    "/admin/jobs",
                    json!({"kind": "send_email"}),
                )),
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
            (
                "malformed kind",
                admin(json_request(
                    Method::POST,
                    "/admin/jobs",
                    json!({"kind": "Noop!"}),
                )),
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
            (
                "bad queue name",
                admin(json_request(
                    Method::POST,
                    "/admin/jobs",
                    json!({"kind": "noop", "queue": "Bad Queue"}),
                )),
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
            (
                "priority out of range",
                admin(json_request(
                    Method::POST,
                    "/admin/jobs",
                    json!({"kind": "noop", "priority": 9}),
                )),
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
            (
                "field of the wrong type",
                admin(json_request(
                    Method::POST,
                    "/admin/jobs",
                    json!({"kind": "noop", "max_attempts": "many"}),
                )),
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
            (
                "unknown field",
                admin(json_request(
                    Method::POST,
                    "/admin/jobs",
                    json!({"kind": "noop", "colour": "red"}),
                )),
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
            // Review of 7 Dec: serde took an array of the fields in their order as the
            // request (a job inserted, a limit set, a tablo created).
            (
                "job as an array of its fields",
                admin(json_request(Method::POST, "/admin/jobs", json!(["noop", {}, "arrq", 4, 3, null, null, null, null, null, null]))),
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
            (
                "limits as an array of their fields",
                admin(json_request(Method::POST, "/admin/queues/arrq/limit", json!([false, 2, null, null, null]))),
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
            (
                "tablo as an array of its fields",
                json_request(Method::POST, "/api/tablos", json!(["x"])),
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
            (
                "oversized body",
                admin(json_request(
                    Method::POST,
                    "/admin/jobs",
                    json!({"kind": "noop", "args": {"pad": "x".repeat(5000)}}),
                )),
                StatusCode::PAYLOAD_TOO_LARGE,
            ),
            (
                "unknown job",
                admin(request(Method::GET, "/admin/jobs/999999", Body::empty())),
                StatusCode::NOT_FOUND,
            ),
            (
                "retry unknown job",
                admin(request(
                    Method::POST,
                    "/admin/jobs/999999/retry",
                    Body::empty(),
                )),
                StatusCode::NOT_FOUND,
            ),
            (
                "cancel unknown job",
                admin(request(
                    Method::POST,
                    "/admin/jobs/999999/cancel",
                    Body::empty(),
                )),
                StatusCode::NOT_FOUND,
            ),
            (
                "retry a running job",
                admin(request(
                    Method::POST,
                    &format!("/admin/jobs/{}/retry", running.id),
                    Body::empty(),
                )),
                StatusCode::CONFLICT,
            ),
            (
                "cancel a discarded job",
                admin(request(
                    Method::POST,
                    &format!("/admin/jobs/{}/cancel", discarded.id),
                    Body::empty(),
                )),
                StatusCode::CONFLICT,
            ),
            (
                "job id not a number",
                admin(request(Method::GET, "/admin/jobs/abc", Body::empty())),
                StatusCode::BAD_REQUEST,
            ),
            (
                "unknown state filter",
                admin(request(
                    Method::GET,
                    "/admin/jobs?state=stuck",
                    Body::empty(),
                )),
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
            (
                "limit not a number",
                admin(request(
                    Method::GET,
                    "/admin/jobs?limit=lots",
                    Body::empty(),
                )),
                StatusCode::BAD_REQUEST,
            ),
            (
                "unknown query parameter",
                admin(request(
                    Method::GET,
                    "/admin/jobs?colour=red",
                    Body::empty(),
                )),
                StatusCode::BAD_REQUEST,
            ),
            (
                "bad queue name to pause",
                admin(request(
                    Method::POST,
                    "/admin/queues/Bad%20Queue/pause",
                    Body::empty(),
                )),
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
            (
                "tablo: malformed JSON",
                with_json_type(request(Method::POST, "/api/tablos", "{")),
                StatusCode::BAD_REQUEST,
            ),
            (
                "tablo: JSON sent as text/plain",
                request(Method::POST, "/api/tablos", r#"{"name": "x"}"#),
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ),
            (
                "tablo: empty name",
                json_request(Method::POST, "/api/tablos", json!({"name": " "})),
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
            (
                "upload to an unknown tablo",
                request(Method::POST, &format!("/api/tablos/{missing}/files"), "x"),
                StatusCode::NOT_FOUND,
            ),
            (
                "oversized upload",
                request(
                    Method::POST,
                    &format!("/api/tablos/{}/files", tablo.id),
                    vec![0u8; 2048],
                ),
                StatusCode::PAYLOAD_TOO_LARGE,
            ),
            (
                "oversized form to a dashboard route ending in /files",
                request(Method::POST, "/dashboard/jobs/1/files", vec![b'a'; 8192]),
                StatusCode::PAYLOAD_TOO_LARGE,
            ),
            (
                "tablo id not a UUID",
                request(Method::GET, "/api/tablos/42/files", Body::empty()),
                StatusCode::BAD_REQUEST,
            ),
            (
                "delete an unknown tablo",
                request(
                    Method::DELETE,
                    &format!("/api/tablos/{missing}"),
                    Body::empty(),
                ),
                StatusCode::NOT_FOUND,
            ),
            (
                "unknown route",
                request(Method::GET, "/no/such/route", Body::empty()),
                StatusCode::NOT_FOUND,
            ),
        ];
        for (what, req, expected) in cases {
            let path = req.uri().path();
            let upload = path.starts_with("/api/tablos/") && path.ends_with("/files");
            let (status, body) = send(&app, req).await;
            assert_eq!(status, expected, "{what}: {body}");
            assert!(
                body["error"].as_str().is_some_and(|e| !e.is_empty()),
                "{what}: an error message, got {body}"
            );
            if status == StatusCode::PAYLOAD_TOO_LARGE {
                // The limit is named (axum's text said only "length limit exceeded").
                let limit = if upload { "1024 bytes" } else { "4096 bytes" };
                assert!(body["error"].as_str().unwrap().contains(limit), "{what}: {body}");
            }
            assert_eq!(
                surfaces::all_jobs(store).await,
                jobs_before,
                "{what}: no job changed"
            );
            assert_eq!(
                tablos.tablo_file_list(tablo.id).await.unwrap(),
                files_before,
                "{what}: no file changed"
            );
            assert!(
                tablos.tablo_get(tablo.id).await.unwrap().is_some(),
                "{what}: the tablo is still there"
            );
        }
        assert_eq!(job_state(store, running.id).await, JobState::Running);
        assert_eq!(job_state(store, discarded.id).await, JobState::Discarded);
    }
}

backend_case! {
    async fn admin_api_lists_filters_pages_and_manages_queues(db: TestDb) {
        let app = router(surfaces::app_state(db.store.clone(), HttpConfig::default()).await);
        let insert = |body: Value| json_request(Method::POST, "/admin/jobs", body);
        let mut ids = Vec::new();
        for body in [
            json!({"kind": "noop"}),
            json!({"kind": "noop", "priority": 2, "max_attempts": 3}),
            json!({"kind": "sleep", "args": {"ms": 5}, "queue": "mail"}),
            json!({"kind": "sleep", "args": {"ms": 5}, "queue": "mail", "scheduled_at": "2999-01-01T00:00:00Z"}),
        ] {
            let (status, body) = send(&app, insert(body)).await;
            assert_eq!(status, StatusCode::CREATED, "{body}");
            ids.push(body["id"].as_i64().unwrap());
        }
        let failed = surfaces::discarded_job(db.store.as_ref(), "exploded").await;

        let (status, first) =
            send(&app, insert(json!({"kind": "noop", "unique_key": "once"}))).await;
        assert_eq!(
            (status, &first["inserted"]),
            (StatusCode::CREATED, &json!(true))
        );
        let (status, again) =
            send(&app, insert(json!({"kind": "noop", "unique_key": "once"}))).await;
        assert_eq!(
            (status, &again["inserted"]),
            (StatusCode::CREATED, &json!(false))
        );
        assert_eq!(
            again["id"], first["id"],
            "the holder of the unique key is returned"
        );

        let list =
            |query: &str| request(Method::GET, &format!("/admin/jobs{query}"), Body::empty());
        let ids_of = |body: &Value| {
            body["jobs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|j| j["id"].as_i64().unwrap())
                .collect::<Vec<_>>()
        };
        let (_, all) = send(&app, list("")).await;
        assert_eq!(ids_of(&all).len(), 6);
        assert!(ids_of(&all).windows(2).all(|w| w[0] > w[1]), "newest first");
        let (_, mail) = send(&app, list("?queue=mail")).await;
        assert_eq!(ids_of(&mail), vec![ids[3], ids[2]]);
        let (_, scheduled) = send(&app, list("?state=scheduled")).await;
        assert_eq!(ids_of(&scheduled), vec![ids[3]]);
        let (_, two_states) = send(&app, list("?state=scheduled&state=discarded")).await;
        assert_eq!(ids_of(&two_states), vec![failed.id, ids[3]]);
        let (_, comma) = send(&app, list("?state=scheduled,discarded")).await;
        assert_eq!(ids_of(&comma), ids_of(&two_states));
        let (_, noop) = send(&app, list("?kind=noop&state=available")).await;
        assert_eq!(ids_of(&noop).len(), 3);
        let (_, page1) = send(&app, list("?limit=2")).await;
        let page1 = ids_of(&page1);
        let (_, page2) = send(&app, list(&format!("?limit=2&before_id={}", page1[1]))).await;
        let page2 = ids_of(&page2);
        assert_eq!([page1.clone(), page2].concat(), ids_of(&all)[..4].to_vec());

        let (status, one) = send(
            &app,
            request(
                Method::GET,
                &format!("/admin/jobs/{}", ids[1]),
                Body::empty(),
            ),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            (one["priority"].as_i64(), one["max_attempts"].as_i64()),
            (Some(2), Some(3))
        );
        // A job of no workflow and no batch says so.
        assert_eq!((&one["workflow"], &one["batch"]), (&json!(null), &json!(null)), "{one}");

        let (status, failed_list) =
            send(&app, request(Method::GET, "/admin/failed", Body::empty())).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(ids_of(&failed_list), vec![failed.id]);
        assert_eq!(failed_list["jobs"][0]["errors"][0]["error"], "exploded");

        let (status, retried) = send(
            &app,
            request(
                Method::POST,
                &format!("/admin/jobs/{}/retry", failed.id),
                Body::empty(),
            ),
        )
        .await;
        assert_eq!(
            (status, retried["state"].as_str()),
            (StatusCode::OK, Some("available"))
        );
        let (status, cancelled) = send(
            &app,
            request(
                Method::POST,
                &format!("/admin/jobs/{}/cancel", ids[3]),
                Body::empty(),
            ),
        )
        .await;
        assert_eq!(
            (status, cancelled["state"].as_str()),
            (StatusCode::OK, Some("cancelled"))
        );

        let (status, stats) = send(&app, request(Method::GET, "/admin/stats", Body::empty())).await;
        assert_eq!(status, StatusCode::OK);
        let counts = serde_json::to_value(db.store.job_counts().await.unwrap()).unwrap();
        assert_eq!((&stats["total"], &stats["queues"]), (&counts["total"], &counts["queues"]));
        assert_eq!(
            stats.as_object().unwrap().keys().collect::<Vec<_>>(),
            ["queues", "total", "unserved"],
            "the shape of stats --json: {stats}"
        );
        let total = stats["total"].as_object().unwrap();
        assert_eq!(total.len(), porter::JobState::ALL.len(), "every state is present: {stats}");
        assert_eq!(stats["total"]["available"], 5);
        assert_eq!(stats["total"]["cancelled"], 1);
        assert_eq!(stats["queues"]["mail"]["available"], 1);

        let (status, _) = send(
            &app,
            request(Method::POST, "/admin/queues/mail/pause", Body::empty()),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        let (_, queues) = send(&app, request(Method::GET, "/admin/queues", Body::empty())).await;
        let paused = |queues: &Value, name: &str| {
            queues["queues"]
                .as_array()
                .unwrap()
                .iter()
                .find(|q| q["name"] == name)
                .map(|q| q["paused"].as_bool().unwrap())
        };
        assert_eq!(paused(&queues, "mail"), Some(true));
        assert_eq!(paused(&queues, "default"), Some(false));
        let (status, _) = send(
            &app,
            request(Method::POST, "/admin/queues/mail/resume", Body::empty()),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        let (_, queues) = send(&app, request(Method::GET, "/admin/queues", Body::empty())).await;
        assert_eq!(paused(&queues, "mail"), Some(false));
    }
}

backend_case! {
    /// Limits through the admin API: `concurrency_key` on insert, POST
    /// /admin/queues/{name}/limit, the limits in GET /admin/queues, bad input 422 with nothing
    /// written, and /metrics' jobs waiting because of a limit.
    async fn admin_api_sets_queue_limits_and_metrics_show_jobs_held_back(db: TestDb) {
        let app = router(surfaces::app_state(db.store.clone(), HttpConfig::default()).await);
        for n in 0..4 {
            let (status, body) = send(
                &app,
                json_request(Method::POST, "/admin/jobs", json!({"kind": "noop", "queue": "mail", "concurrency_key": format!("c{}", n % 2)})),
            )
            .await;
            assert_eq!(status, StatusCode::CREATED, "{body}");
            let row = db.store.job_get(body["id"].as_i64().unwrap()).await.unwrap().unwrap();
            assert_eq!(row.concurrency_key, Some(format!("c{}", n % 2)));
        }
        let limit = |name: &str, body: Value| json_request(Method::POST, &format!("/admin/queues/{name}/limit"), body);
        for bad in [
            json!({"concurrency": 0}),
            json!({"concurrency": -5}),
            json!({"per_key": 0}),
            json!({"rate": "20"}),
            json!({"rate": "20/0ms"}),
            json!({"rate_per_key": "0/1s"}),
            json!({}),
            json!({"concurrency": "x';DROP TABLE porter_jobs;--"}),
            json!({"no_such_limit": 1}),
        ] {
            let (status, body) = send(&app, limit("mail", bad.clone())).await;
            assert!(status == StatusCode::UNPROCESSABLE_ENTITY || status == StatusCode::BAD_REQUEST, "{bad}: {status} {body}");
            assert!(body["error"].is_string(), "{bad}: {body}");
        }
        let (status, body) = send(&app, limit("Bad%20Queue", json!({"concurrency": 1}))).await;
        assert!(status.is_client_error(), "{status} {body}");
        for (status, body) in [
            send(&app, json_request(Method::POST, "/admin/jobs", json!({"kind": "noop", "concurrency_key": "k".repeat(256)}))).await,
            send(&app, json_request(Method::POST, "/admin/jobs", json!({"kind": "noop", "concurrency_key": "a\0b"}))).await,
        ] {
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        }
        assert!(db.store.queue_list().await.unwrap().iter().all(|q| !q.limits.any()), "nothing written");
        let (status, body) = send(&app, limit("mail", json!({"per_key": 1, "rate": "100/1m"}))).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["limits"]["per_key"], 1, "{body}");
        let (_, queues) = send(&app, request(Method::GET, "/admin/queues", Body::empty())).await;
        let mail = queues["queues"].as_array().unwrap().iter().find(|q| q["name"] == "mail").unwrap().clone();
        assert_eq!(
            mail["limits"],
            json!({"concurrency": null, "per_key": 1, "rate": {"limit": 100, "period_ms": 60000}, "rate_per_key": null})
        );
        // One job per key runs; the other two wait because of the per-key limit.
        let claimed = db
            .store
            .job_claim(porter::store::JobClaimParams { queue: "mail".into(), kinds: vec!["noop".into()], limit: 10, worker_id: "w".into() })
            .await
            .unwrap();
        assert_eq!(claimed.len(), 2);
        let (_, text) = send_text(&app, request(Method::GET, "/metrics", Body::empty())).await;
        assert!(text.contains("porter_jobs_waiting_for_limit{queue=\"mail\"} 2"), "{text}");
        let (status, body) = send(&app, limit("mail", json!({"clear": true}))).await;
        assert_eq!((status, body["limits"]["rate"].clone()), (StatusCode::OK, Value::Null));
        let (_, text) = send_text(&app, request(Method::GET, "/metrics", Body::empty())).await;
        assert!(!text.contains("porter_jobs_waiting_for_limit{"), "no limited queue: {text}");
    }
}

backend_case! {
    /// /metrics stays bounded however many queues callers name: any caller of `POST
    /// /admin/jobs` can name a new queue with each job, and each made series of its own, for
    /// good in this process's insert counter (review of 7 Dec: 55,000 queues, a 60 MB scrape of
    /// 400,000 series). The gauges read from the database name the first 1,000 queues by name
    /// (as `/admin/stats` does) and `porter_metrics_queues_left_out` counts the others; the
    /// process's counters keep their first 1,000 queue and kind pairs and add the rest up under
    /// `queue="(other)",kind="(other)"`.
    async fn metrics_stay_bounded_however_many_queues_are_named(db: TestDb) {
        let app = router(surfaces::app_state(db.store.clone(), HttpConfig::default()).await);
        // A limited queue without jobs is named below the cap, as before it (the cut named
        // only queues with jobs at first: review of 7 Dec).
        let (status, body) = send(
            &app,
            json_request(Method::POST, "/admin/queues/a-limited/limit", json!({"concurrency": 1})),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (_, text) = send_text(&app, request(Method::GET, "/metrics", Body::empty())).await;
        assert!(text.contains("porter_jobs_waiting_for_limit{queue=\"a-limited\"} 0"), "{text}");
        assert!(text.contains("porter_metrics_queues_left_out 0"), "{text}");
        let n = porter::http::METRICS_QUEUES + 5;
        for i in 0..n {
            let (status, _) = send(
                &app,
                json_request(Method::POST, "/admin/jobs", json!({"kind": "noop", "queue": format!("q{i:05}")})),
            )
            .await;
            assert_eq!(status, StatusCode::CREATED);
        }
        let (status, text) = send_text(&app, request(Method::GET, "/metrics", Body::empty())).await;
        assert_eq!(status, StatusCode::OK);
        let series = |name: &str| text.lines().filter(|l| l.starts_with(&format!("{name}{{"))).count();
        assert_eq!(series("porter_queue_depth"), porter::http::METRICS_QUEUES, "{text}");
        assert_eq!(series("porter_jobs"), porter::http::METRICS_QUEUES * 8);
        assert!(text.contains("porter_queue_depth{queue=\"q00000\"} 1"), "the first by name");
        assert!(!text.contains(&format!("queue=\"q{:05}\"}}", n - 1)), "the last left out");
        assert!(text.contains("porter_metrics_queues_left_out 5"), "{text}");
        assert!(text.contains("porter_jobs_waiting_for_limit{queue=\"a-limited\"} 0"), "named before the cut");
        assert_eq!(series("porter_jobs_inserted_total"), porter::http::METRICS_QUEUES + 1);
        assert!(
            text.contains(r#"porter_jobs_inserted_total{queue="(other)",kind="(other)"} 5"#),
            "{text}"
        );
    }
}

backend_case! {
    /// Queue and kind names another program's plain INSERT wrote (porter's own paths refuse
    /// them) reach /metrics escaped as Prometheus's text format needs: before, a name with a
    /// double quote and a newline ended its label and forged a series of its own.
    async fn metrics_escape_names_another_program_wrote(db: TestDb) {
        let app = router(surfaces::app_state(db.store.clone(), HttpConfig::default()).await);
        common::raw_exec(
            &db,
            "INSERT INTO porter_jobs (kind, queue, args) VALUES ('k\\\"x', 'evil\"} 1\nfake{a=\"b', '{}')",
        )
        .await;
        let (status, text) = send_text(&app, request(Method::GET, "/metrics", Body::empty())).await;
        assert_eq!(status, StatusCode::OK);
        assert!(!text.lines().any(|l| l.starts_with("fake")), "{text}");
        assert!(
            text.contains("porter_jobs{queue=\"evil\\\"} 1\\nfake{a=\\\"b\",state=\"available\"} 1"),
            "{text}"
        );
        assert!(text.contains("kind=\"k\\\\\\\"x\""), "{text}");
    }
}

backend_case! {
    /// Jobs nobody will run (issue 17.7) through the web: POST /admin/jobs adds a "warning"
    /// when no live worker serves the queue and kind (and nothing else changes), GET
    /// /admin/stats counts them under "unserved" as `stats --json` does, and /metrics has a
    /// gauge per queue and kind.
    async fn admin_api_and_metrics_show_jobs_no_live_worker_serves(db: TestDb) {
        let app = router(surfaces::app_state(db.store.clone(), HttpConfig::default()).await);
        let insert = |queue: &str| json_request(Method::POST, "/admin/jobs", json!({"kind": "noop", "queue": queue}));
        let (status, body) = send(&app, insert("emails")).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert_eq!(
            body["warning"],
            "no live worker serves queue 'emails' kind 'noop'; the job waits until one does",
            "{body}"
        );
        assert_eq!(body["inserted"], true, "{body}");
        send(&app, insert("emails")).await;
        surfaces::serving_worker(db.store.as_ref(), "w1", &["default"], &["noop"]).await;
        let (status, body) = send(&app, insert("default")).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert_eq!(
            body.as_object().unwrap().keys().collect::<Vec<_>>(),
            ["id", "inserted"],
            "served: no warning: {body}"
        );
        // Bad names are refused as before, with nothing inserted and nothing asked.
        let (status, body) = send(&app, json_request(Method::POST, "/admin/jobs", json!({"kind": "noop", "queue": "x'; DROP TABLE porter_jobs; --"}))).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");

        let (status, stats) = send(&app, request(Method::GET, "/admin/stats", Body::empty())).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(stats["unserved"], json!({"emails": {"noop": 2}}), "{stats}");
        assert_eq!(stats["total"]["available"], 3, "{stats}");
        let (_, text) = send_text(&app, request(Method::GET, "/metrics", Body::empty())).await;
        assert!(
            text.lines().any(|l| l == r#"porter_jobs_unserved{queue="emails",kind="noop"} 2"#),
            "{text}"
        );
        assert!(!text.contains(r#"porter_jobs_unserved{queue="default""#), "{text}");
        surfaces::serving_worker(db.store.as_ref(), "w2", &["emails"], &["noop"]).await;
        let (_, text) = send_text(&app, request(Method::GET, "/metrics", Body::empty())).await;
        assert!(!text.contains("porter_jobs_unserved{"), "served now: {text}");
        let (_, stats) = send(&app, request(Method::GET, "/admin/stats", Body::empty())).await;
        assert_eq!(stats["unserved"], json!({}), "{stats}");
    }
}

backend_case! {
    /// A job POSTed after a parent that was cancelled is inserted cancelled: the answer says
    /// it will not run, as `porter enqueue` does (found by review: it said the job waited for
    /// a worker, and with a worker serving it said nothing).
    async fn admin_api_says_a_job_inserted_cancelled_will_not_run(db: TestDb) {
        let app = router(surfaces::app_state(db.store.clone(), HttpConfig::default()).await);
        surfaces::serving_worker(db.store.as_ref(), "w1", &["default"], &["noop"]).await;
        let parent = surfaces::insert(db.store.as_ref(), "noop", "default").await;
        let (status, _) = send(&app, request(Method::POST, &format!("/admin/jobs/{}/cancel", parent.id), Body::empty())).await;
        assert_eq!(status, StatusCode::OK);
        let (status, body) = send(
            &app,
            json_request(Method::POST, "/admin/jobs", json!({"kind": "noop", "depends_on": [parent.id]})),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let id = body["id"].as_i64().expect("an id");
        assert_eq!(
            body["warning"],
            format!("job {id} was inserted cancelled and will not run: parent job {} was cancelled", parent.id),
            "{body}"
        );
        let (_, job) = send(&app, request(Method::GET, &format!("/admin/jobs/{id}"), Body::empty())).await;
        assert_eq!(job["state"], "cancelled", "{job}");
    }
}

backend_case! {
    /// `null` for an optional field of a POSTed job means "not given", for every one of them:
    /// `depends_on` and `after_any` were refused with 422 (`invalid type: null`) while the
    /// others took it (review of 5 Dec), and porter_enqueue takes NULL for each.
    async fn admin_api_takes_null_for_every_optional_field_of_a_job(db: TestDb) {
        let app = router(surfaces::app_state(db.store.clone(), HttpConfig::default()).await);
        let body = json!({
            "kind": "noop", "args": {}, "queue": null, "priority": null, "max_attempts": null,
            "scheduled_at": null, "unique_key": null, "concurrency_key": null,
            "sequence_key": null, "depends_on": null, "after_any": null,
        });
        let (status, body) = send(&app, json_request(Method::POST, "/admin/jobs", body)).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let job = db.store.job_get(body["id"].as_i64().expect("an id")).await.unwrap().unwrap();
        assert_eq!((job.queue.as_str(), job.priority, job.state), ("default", 1, porter::JobState::Available));
    }
}

backend_case! {
    /// An insert deduplicated to a running job whose cancel is pending says so: the holder
    /// keeps its unique key until it has stopped, and then ends cancelled, so nothing of this
    /// insert will run. It used to answer `inserted: false` alone, as for a holder that runs.
    async fn admin_api_says_the_unique_keys_holder_is_being_cancelled(db: TestDb) {
        let app = router(surfaces::app_state(db.store.clone(), HttpConfig::default()).await);
        surfaces::serving_worker(db.store.as_ref(), "w1", &["held"], &["noop"]).await;
        let insert = || json_request(Method::POST, "/admin/jobs", json!({"kind": "noop", "queue": "held", "unique_key": "k"}));
        let (status, first) = send(&app, insert()).await;
        assert_eq!((status, &first["inserted"]), (StatusCode::CREATED, &json!(true)), "{first}");
        let holder = surfaces::claim(db.store.as_ref(), "noop", "held").await;
        let (status, again) = send(&app, insert()).await;
        assert_eq!((status, &again["inserted"]), (StatusCode::CREATED, &json!(false)), "{again}");
        assert!(again.get("warning").is_none(), "a running holder runs: {again}");
        let (status, _) = send(&app, request(Method::POST, &format!("/admin/jobs/{}/cancel", holder.id), Body::empty())).await;
        assert_eq!(status, StatusCode::OK);
        let (status, again) = send(&app, insert()).await;
        assert_eq!((status, &again["inserted"], &again["id"]), (StatusCode::CREATED, &json!(false), &json!(holder.id)), "{again}");
        assert_eq!(
            again["warning"],
            format!(
                "job {} holds this unique key and is being cancelled: nothing was inserted, and it \
                 will not run again; insert again once it has stopped",
                holder.id
            ),
            "{again}"
        );
    }
}

backend_case! {
    /// A listing's `limit` is a whole number of at least 1: 0 used to list one row, and -1 was
    /// called "not a number" (found by review). Above the most listed, the most are listed.
    async fn listings_refuse_a_limit_below_one(db: TestDb) {
        let app = router(surfaces::app_state(db.store.clone(), HttpConfig::default()).await);
        surfaces::insert(db.store.as_ref(), "noop", "default").await;
        for route in ["/admin/jobs", "/admin/workflows", "/admin/batches"] {
            for bad in ["0", "-1", "x", "0000000000000000000000000", "1.5"] {
                let (status, body) = send(&app, request(Method::GET, &format!("{route}?limit={bad}"), Body::empty())).await;
                assert_eq!(status, StatusCode::BAD_REQUEST, "{route} limit={bad}: {body}");
                let error = body["error"].as_str().unwrap_or_default().to_string() + &body.to_string();
                assert!(error.contains("at least 1"), "{route} limit={bad}: {body}");
            }
            // Empty: not given (DESIGN.md's `?state=&kind=&queue=&limit=&before_id=`).
            for good in ["", "1", "10000", "20000", "4294967296", "%2B4294967296", "1234567890123456789012345678901234567890"] {
                let (status, body) = send(&app, request(Method::GET, &format!("{route}?limit={good}"), Body::empty())).await;
                assert_eq!(status, StatusCode::OK, "{route} limit={good}: {body}");
            }
        }
    }
}

backend_case! {
    /// DESIGN.md's query template, filled with blanks for what is not wanted, lists as the
    /// bare route does: an empty value is a parameter not given (review of 7 Dec: a 422 for
    /// `kind=`, a 400 for `limit=`).
    async fn listings_take_the_documented_query_template_with_blanks(db: TestDb) {
        let app = router(surfaces::app_state(db.store.clone(), HttpConfig::default()).await);
        surfaces::insert(db.store.as_ref(), "noop", "default").await;
        surfaces::discarded_job(db.store.as_ref(), "boom").await;
        for (blank, bare, key) in [
            ("/admin/jobs?state=&kind=&queue=&limit=&before_id=", "/admin/jobs", "jobs"),
            ("/admin/jobs?state=discarded&kind=&queue=", "/admin/jobs?state=discarded", "jobs"),
            ("/admin/failed?limit=&before_id=", "/admin/failed", "jobs"),
        ] {
            let (status, with_blanks) = send(&app, request(Method::GET, blank, Body::empty())).await;
            assert_eq!(status, StatusCode::OK, "{blank}: {with_blanks}");
            let (_, without) = send(&app, request(Method::GET, bare, Body::empty())).await;
            assert_eq!(with_blanks[key], without[key], "{blank}");
            assert!(with_blanks[key].as_array().is_some_and(|a| !a.is_empty()), "{blank}: {with_blanks}");
        }
    }
}

backend_case! {
    async fn metrics_report_jobs_by_queue_and_state_and_this_process_counters(db: TestDb) {
        let app = router(surfaces::app_state(db.store.clone(), HttpConfig::default()).await);
        for _ in 0..2 {
            let (status, _) = send(
                &app,
                json_request(Method::POST, "/admin/jobs", json!({"kind": "noop"})),
            )
            .await;
            assert_eq!(status, StatusCode::CREATED);
        }
        surfaces::insert(db.store.as_ref(), "noop", "mail").await;
        surfaces::discarded_job(db.store.as_ref(), "boom").await;
        assert_eq!(
            send(
                &app,
                request(Method::GET, "/admin/jobs/424242", Body::empty())
            )
            .await
            .0,
            StatusCode::NOT_FOUND
        );

        let response = app
            .clone()
            .oneshot(request(Method::GET, "/metrics", Body::empty()))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let content_type = response.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .to_string();
        assert!(
            content_type.starts_with("application/openmetrics-text"),
            "{content_type}"
        );
        let text = String::from_utf8(
            response
                .into_body()
                .collect()
                .await
                .unwrap()
                .to_bytes()
                .to_vec(),
        )
        .unwrap();
        for line in [
            r#"porter_jobs{queue="default",state="available"} 2"#,
            r#"porter_jobs{queue="default",state="discarded"} 1"#,
            r#"porter_jobs{queue="default",state="running"} 0"#,
            r#"porter_jobs{queue="mail",state="available"} 1"#,
            r#"porter_jobs_inserted_total{queue="default",kind="noop"} 2"#,
            r#"porter_http_errors_total{status="404"} 1"#,
            r#"porter_queue_depth{queue="default"} 2"#,
            r#"porter_queue_depth{queue="mail"} 1"#,
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in:\n{text}"
            );
        }
        assert!(
            text.lines()
                .any(|l| l.starts_with(r#"porter_queue_lag_seconds{queue="mail"} "#)),
            "a lag per queue:\n{text}"
        );
        assert!(text.trim_end().ends_with("# EOF"));
    }
}

/// The database's write lock, held from another connection (as another program, or a
/// migration's `LOCK TABLE`, may hold it) until [`WriteLock::release`].
enum WriteLock {
    Sqlite(
        tokio::sync::oneshot::Sender<()>,
        std::thread::JoinHandle<()>,
    ),
    Postgres(sqlx::PgConnection),
}

impl WriteLock {
    async fn hold(db: &crate::common::TestDb) -> WriteLock {
        match db.sqlite_path() {
            Some(path) => {
                let (release, released) = tokio::sync::oneshot::channel::<()>();
                let (held_tx, held) = tokio::sync::oneshot::channel::<()>();
                let thread = std::thread::spawn(move || {
                    let c = rusqlite::Connection::open(path).unwrap();
                    c.execute_batch("BEGIN IMMEDIATE").unwrap();
                    held_tx.send(()).unwrap();
                    let _ = released.blocking_recv();
                    c.execute_batch("COMMIT").unwrap();
                });
                held.await.unwrap();
                WriteLock::Sqlite(release, thread)
            }
            None => {
                use sqlx::Connection;
                let mut c = sqlx::PgConnection::connect(&db.url).await.unwrap();
                sqlx::raw_sql("BEGIN; LOCK TABLE porter_jobs IN SHARE MODE")
                    .execute(&mut c)
                    .await
                    .unwrap();
                WriteLock::Postgres(c)
            }
        }
    }

    async fn release(self) {
        match self {
            WriteLock::Sqlite(release, thread) => {
                release.send(()).unwrap();
                thread.join().unwrap();
            }
            WriteLock::Postgres(mut c) => {
                sqlx::raw_sql("COMMIT").execute(&mut c).await.unwrap();
            }
        }
    }
}

backend_case! {
    /// A request whose write waits past the request timeout (another connection holds the
    /// lock) is answered once the write ended, with what it did: 201, and the job inserted
    /// once. (Review of 6 Dec: it was answered 408 at the timeout, and the job was inserted
    /// when the lock went; a client's retry of the 408 inserted it again.) A request that has
    /// not begun a write is still cut short.
    async fn a_write_that_waits_past_the_request_timeout_is_answered_with_what_it_did(db: TestDb) {
        let config = HttpConfig { request_timeout: std::time::Duration::from_millis(300), ..HttpConfig::default() };
        let app = router(surfaces::app_state(db.store.clone(), config).await);
        // Once first, so that the insert's statement is prepared (a fresh connection waits for
        // the lock earlier, before the statement is sent).
        let (status, _) = send(&app, json_request(Method::POST, "/admin/jobs", json!({"kind": "noop"}))).await;
        assert_eq!(status, StatusCode::CREATED);
        let lock = WriteLock::hold(&db).await;
        let post = {
            let app = app.clone();
            tokio::spawn(async move {
                send(&app, json_request(Method::POST, "/admin/jobs", json!({"kind": "noop", "queue": "held"}))).await
            })
        };
        tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
        assert!(!post.is_finished(), "still waiting for its write");
        lock.release().await;
        let (status, body) = post.await.unwrap();
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let held: Vec<_> = db.store.job_list(Default::default()).await.unwrap().into_iter().filter(|j| j.queue == "held").collect();
        assert_eq!(held.len(), 1, "{held:?}");
        assert_eq!(body["id"], json!(held[0].id));
    }
}

backend_case! {
    /// A shutdown waits for a request whose write waits for a lock at most the request
    /// timeout, then returns: such a request is not cut by the request timeout, and held the
    /// shutdown for as long as the lock was held (review of 6 Dec: a second signal did not
    /// help either; only SIGKILL stopped `porter web`).
    async fn a_shutdown_does_not_wait_for_good_for_a_write_waiting_on_a_lock(db: TestDb) {
        let config = HttpConfig { request_timeout: std::time::Duration::from_millis(300), ..HttpConfig::default() };
        let state = surfaces::app_state(db.store.clone(), config).await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let stop = tokio_util::sync::CancellationToken::new();
        let server = tokio::spawn(porter::http::serve(listener, state, stop.clone().cancelled_owned()));
        let client = reqwest::Client::new();
        // Once first, so that the insert's statement is prepared.
        let first = client.post(format!("http://{address}/admin/jobs")).json(&json!({"kind": "noop"})).send().await.unwrap();
        assert_eq!(first.status(), 201);
        let lock = WriteLock::hold(&db).await;
        let waiting = tokio::spawn(client.post(format!("http://{address}/admin/jobs")).json(&json!({"kind": "noop"})).send());
        tokio::time::sleep(std::time::Duration::from_millis(800)).await;
        assert!(!waiting.is_finished(), "its write waits for the lock");
        stop.cancel();
        let stopped = tokio::time::timeout(std::time::Duration::from_secs(30), server).await;
        lock.release().await;
        stopped.expect("the server stopped with the write still waiting").unwrap().unwrap();
        drop(waiting);
    }
}

backend_case! {
    /// A scrape while the database does not answer still answers this process's counters,
    /// with `porter_database_up 0` and without the gauges read from the database; once it
    /// answers again they are back. (Review of 6 Dec: the scrape was a 503 with no counters.)
    async fn metrics_answer_the_process_counters_when_the_database_does_not(db: TestDb) {
        let gated = chaos_gated_store::GatedStore::new(db.store.clone());
        let app = router(surfaces::app_state(gated.store(), HttpConfig::default()).await);
        let (status, _) = send(&app, json_request(Method::POST, "/admin/jobs", json!({"kind": "noop"}))).await;
        assert_eq!(status, StatusCode::CREATED);
        let scrape = || async {
            let response = app.clone().oneshot(request(Method::GET, "/metrics", Body::empty())).await.unwrap();
            let status = response.status();
            let body = response.into_body().collect().await.unwrap().to_bytes();
            (status, String::from_utf8(body.to_vec()).unwrap())
        };
        let inserted = r#"porter_jobs_inserted_total{queue="default",kind="noop"} 1"#;
        let (status, text) = scrape().await;
        assert_eq!(status, StatusCode::OK, "{text}");
        assert!(text.lines().any(|l| l == "porter_database_up 1"), "{text}");
        assert!(text.lines().any(|l| l == r#"porter_jobs{queue="default",state="available"} 1"#), "{text}");

        gated.fail_counts(true);
        let (status, text) = scrape().await;
        assert_eq!(status, StatusCode::OK, "{text}");
        assert!(text.lines().any(|l| l == "porter_database_up 0"), "{text}");
        assert!(text.lines().any(|l| l == inserted), "the process's counters: {text}");
        assert!(!text.lines().any(|l| l.starts_with("porter_jobs{")), "no stale gauges: {text}");
        assert!(text.trim_end().ends_with("# EOF"));

        gated.fail_counts(false);
        let (_, text) = scrape().await;
        assert!(text.lines().any(|l| l == "porter_database_up 1"), "{text}");
        assert!(text.lines().any(|l| l == r#"porter_jobs{queue="default",state="available"} 1"#), "{text}");
    }
}

backend_case! {
    /// A runtime that reports to the web process's metrics (as in `porter dev`, or `porter
    /// worker --metrics-listen`) counts each outcome by queue and kind, and times each attempt.
    async fn metrics_count_outcomes_of_the_runtime_by_queue_and_kind(db: TestDb) {
        use porter::runtime::{Runtime, RuntimeConfig, Shutdown};
        let state = surfaces::app_state(db.store.clone(), HttpConfig::default()).await;
        let app = router(state.clone());
        let client = porter::Client::new(db.store.clone());
        let ok = client.insert(&porter::jobs::Noop {}, None).await.unwrap().job.id;
        let once = porter::InsertOpts { max_attempts: Some(1), ..Default::default() };
        let failed = client
            .insert(&porter::jobs::Fail { message: "boom".into(), panic: false }, Some(once))
            .await
            .unwrap()
            .job
            .id;
        let twice = porter::InsertOpts { max_attempts: Some(2), ..Default::default() };
        let retried = client
            .insert(&porter::jobs::Fail { message: "again".into(), panic: false }, Some(twice))
            .await
            .unwrap()
            .job
            .id;
        let workers = porter::app::builtin::builtin_workers(db.store.clone(), state.objects.clone(), std::time::Duration::from_secs(3600)).unwrap();
        let shutdown = Shutdown::new();
        let runtime = Runtime::new(
            db.store.clone(),
            workers,
            RuntimeConfig { periodic: Vec::new(), ..RuntimeConfig::default() },
        )
        .with_events(state.metrics.clone());
        let task = tokio::spawn(runtime.run(shutdown.clone()));
        let scrape = || async {
            let (_, body) = send_text(&app, request(Method::GET, "/metrics", Body::empty())).await;
            body
        };
        eventually("every outcome counted", || async {
            let text = scrape().await;
            [
                r#"porter_jobs_completed_total{queue="default",kind="noop"} 1"#,
                r#"porter_jobs_discarded_total{queue="default",kind="fail"} 2"#,
                r#"porter_jobs_failed_total{queue="default",kind="fail"} 1"#,
                r#"porter_job_duration_seconds_count{queue="default",kind="noop"} 1"#,
                r#"porter_job_duration_seconds_count{queue="default",kind="fail"} 3"#,
            ]
            .iter()
            .all(|line| text.lines().any(|l| l == *line))
        })
        .await;
        shutdown.soft.cancel();
        task.await.unwrap().unwrap();
        for (id, state) in [(ok, JobState::Completed), (failed, JobState::Discarded), (retried, JobState::Discarded)] {
            assert_eq!(db.store.job_get(id).await.unwrap().unwrap().state, state);
        }
    }
}

backend_case! {
    /// Every outcome counter of every queue and kind a runtime serves exists from its start,
    /// at 0: alert rules that add rates of several counters (a `+` drops a series missing
    /// from either side) or take the increase of one (its first increment is invisible when
    /// the series appears at 1) see the first failure. A job the rescuer discards counts as
    /// discarded as well as rescued, and one it ends cancelled as cancelled.
    async fn metrics_have_every_outcome_series_from_the_start(db: TestDb) {
        use porter::runtime::{JobEvents, Runtime, RuntimeConfig, Shutdown};
        let state = surfaces::app_state(db.store.clone(), HttpConfig::default()).await;
        let app = router(state.clone());
        let workers = porter::app::builtin::builtin_workers(db.store.clone(), state.objects.clone(), std::time::Duration::from_secs(3600)).unwrap();
        let shutdown = Shutdown::new();
        let runtime = Runtime::new(
            db.store.clone(),
            workers,
            RuntimeConfig {
                periodic: Vec::new(),
                queues: vec![("default".into(), 5), ("mail".into(), 5)],
                ..RuntimeConfig::default()
            },
        )
        .with_events(state.metrics.clone());
        let task = tokio::spawn(runtime.run(shutdown.clone()));
        let scrape = || async {
            let (_, body) = send_text(&app, request(Method::GET, "/metrics", Body::empty())).await;
            body
        };
        eventually("zero series for every queue and kind", || async {
            let text = scrape().await;
            ["completed", "failed", "discarded", "cancelled", "rescued"].iter().all(|c| {
                ["default", "mail"].iter().all(|q| {
                    ["noop", "fail", "heartbeat"].iter().all(|k| {
                        let line = format!(r#"porter_jobs_{c}_total{{queue="{q}",kind="{k}"}} 0"#);
                        text.lines().any(|l| l == line)
                    })
                })
            })
        })
        .await;
        state.metrics.rescued(&porter::store::RescuedJob {
            queue: "mail".into(),
            kind: "fail".into(),
            state: JobState::Discarded,
        });
        // Ended cancelled (a user had asked its lost worker to stop it): a cancel too (review
        // of 8 Dec: counted as rescued only).
        state.metrics.rescued(&porter::store::RescuedJob {
            queue: "default".into(),
            kind: "noop".into(),
            state: JobState::Cancelled,
        });
        let text = scrape().await;
        for line in [
            r#"porter_jobs_rescued_total{queue="mail",kind="fail"} 1"#,
            r#"porter_jobs_discarded_total{queue="mail",kind="fail"} 1"#,
            r#"porter_jobs_rescued_total{queue="default",kind="noop"} 1"#,
            r#"porter_jobs_cancelled_total{queue="default",kind="noop"} 1"#,
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in:\n{text}");
        }
        shutdown.soft.cancel();
        task.await.unwrap().unwrap();
    }
}

backend_case! {
    async fn admin_cancel_of_a_running_job_answers_that_the_cancel_was_requested(db: TestDb) {
        let app = router(surfaces::app_state(db.store.clone(), HttpConfig::default()).await);
        let running = surfaces::running_job(db.store.as_ref()).await;
        let path = format!("/admin/jobs/{}/cancel", running.id);
        let (status, body) = send(&app, request(Method::POST, &path, Body::empty())).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(
            body["state"], "running",
            "running until its worker stops it: {body}"
        );
        assert!(
            body["metadata"]["cancel_requested_at"].is_string(),
            "{body}"
        );
        assert_eq!(
            db.store
                .job_cancel_requests(surfaces::TEST_WORKER, &[running.id])
                .await
                .unwrap(),
            vec![running.fence()]
        );
    }
}

backend_case! {
    /// Issue 17.6: a built-in kind's args are checked when the job is inserted (422), not
    /// failed on every attempt at run time.
    async fn admin_insert_checks_builtin_kinds_args(db: TestDb) {
        let app = router(surfaces::app_state(db.store.clone(), HttpConfig::default()).await);
        let (status, body) = send(
            &app,
            json_request(Method::POST, "/admin/jobs", json!({"kind": "sleep", "args": {}})),
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert!(body["error"].as_str().unwrap().contains("ms"), "{body}");
        assert!(surfaces::all_jobs(db.store.as_ref()).await.is_empty());
        let (status, _) = send(
            &app,
            json_request(Method::POST, "/admin/jobs", json!({"kind": "sleep", "args": {"ms": 5}})),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED);
    }
}

backend_case! {
    /// The workflow routes: list, show (404 for an unknown id), cancel (running steps asked to
    /// stop), all behind the admin token when one is set, and a POST from a foreign origin
    /// refused with nothing cancelled.
    async fn admin_api_lists_shows_and_cancels_workflows(db: TestDb) {
        use porter::workflow::{Step, Workflow};
        let config = HttpConfig {
            admin_token: Some(TOKEN.to_string()),
            ..HttpConfig::default()
        };
        let app = router(surfaces::app_state(db.store.clone(), config).await);
        let client = porter::Client::new(db.store.clone());
        let wf = client
            .insert_workflow(
                Workflow::new("etl")
                    .step(Step::raw("extract", "noop", json!({})))
                    .step(Step::raw("load", "noop", json!({})).after(["extract"])),
            )
            .await
            .unwrap();
        let get = |uri: &str| with_token(request(Method::GET, uri, Body::empty()), TOKEN);
        let (status, _) = send(&app, request(Method::GET, "/admin/workflows", Body::empty())).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "the token is needed");
        let (status, list) = send(&app, get("/admin/workflows?limit=10")).await;
        assert_eq!(status, StatusCode::OK, "{list}");
        assert_eq!(list["workflows"][0]["id"], json!(wf.id));
        assert_eq!(list["workflows"][0]["name"], json!("etl"));
        assert_eq!(list["workflows"][0]["counts"], json!({"available": 1, "pending": 1}));
        let (status, shown) = send(&app, get(&format!("/admin/workflows/{}", wf.id))).await;
        assert_eq!(status, StatusCode::OK, "{shown}");
        assert_eq!(shown["steps"][1]["step"], json!("load"));
        assert_eq!(shown["steps"][1]["after"], json!(["extract"]));
        assert_eq!(shown["next_after_id"], json!(null));
        // A page at a time: the counts of all steps on each, the parent named across pages.
        let first = format!("/admin/workflows/{}?limit=1", wf.id);
        let (status, page) = send(&app, get(&first)).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert_eq!(page["steps"].as_array().unwrap().len(), 1);
        assert_eq!(page["total"], json!(2));
        let next = page["next_after_id"].as_i64().expect("a next page");
        assert_eq!(next, wf.job("extract").unwrap().id);
        let second = format!("/admin/workflows/{}?after_id={next}&limit=1", wf.id);
        let (status, page) = send(&app, get(&second)).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert_eq!(page["steps"][0]["step"], json!("load"));
        assert_eq!(page["steps"][0]["after"], json!(["extract"]));
        assert_eq!(page["next_after_id"], json!(null));
        for bad in ["limit=0", "limit=100001", "limit=x", "after_id=-1", "after_id=1e3", "page=2"] {
            let uri = format!("/admin/workflows/{}?{bad}", wf.id);
            let (status, out) = send(&app, get(&uri)).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {out}");
            assert!(out.to_string().contains(bad.split('=').next().unwrap()), "{bad}: {out}");
        }
        let (status, _) = send(&app, get("/admin/workflows/999999")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _) = send(&app, get("/admin/workflows?limit=x")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        // A workflow of more steps than a page: the first 1,000 unless `limit` says.
        let mut wide = Workflow::new("wide").step(Step::raw("root", "noop", json!({})));
        for i in 0..1000 {
            wide = wide.step(Step::raw(format!("leaf-{i}"), "noop", json!({})).after(["root"]));
        }
        let wide = client.insert_workflow(wide).await.unwrap();
        let (status, page) = send(&app, get(&format!("/admin/workflows/{}", wide.id))).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(page["steps"].as_array().unwrap().len(), 1000);
        assert_eq!(page["total"], json!(1001));
        assert_eq!(page["next_after_id"], json!(wide.job("leaf-998").unwrap().id));
        let (_, all) = send(&app, get(&format!("/admin/workflows/{}?limit=5000", wide.id))).await;
        assert_eq!(all["steps"].as_array().unwrap().len(), 1001);
        assert_eq!(all["next_after_id"], json!(null));

        let cancel = format!("/admin/workflows/{}/cancel", wf.id);
        // Without a token, the origin guard refuses a foreign page's POST.
        let open = router(surfaces::app_state(db.store.clone(), HttpConfig::default()).await);
        let mut foreign = request(Method::POST, &cancel, Body::empty());
        foreign.headers_mut().insert(header::ORIGIN, "https://evil.example".parse().unwrap());
        let (status, _) = send(&open, foreign).await;
        assert!(status.is_client_error(), "{status}");
        assert_eq!(job_state(&db.store, wf.job("extract").unwrap().id).await, JobState::Available);

        let (status, out) =
            send(&app, with_token(request(Method::POST, &cancel, Body::empty()), TOKEN)).await;
        assert_eq!(status, StatusCode::OK, "{out}");
        assert_eq!(out, json!({"id": wf.id, "cancelled": 2, "cancel_requested": 0}));
        for (_, job) in &wf.steps {
            assert_eq!(job_state(&db.store, job.id).await, JobState::Cancelled);
        }
    }
}

backend_case! {
    /// The batch routes: list and show, as `porter batches list|show --json` print them (404
    /// for an unknown id, 400 for a bad query), behind the admin token when one is set.
    async fn admin_api_lists_and_shows_batches(db: TestDb) {
        use porter::batch::Batch;
        let config = HttpConfig {
            admin_token: Some(TOKEN.to_string()),
            ..HttpConfig::default()
        };
        let app = router(surfaces::app_state(db.store.clone(), config).await);
        let client = porter::Client::new(db.store.clone());
        let mut batch = Batch::new();
        for i in 0..3 {
            batch.push_params(
                porter::store::JobInsertParams::new("noop", json!({ "i": i }), Default::default())
                    .unwrap(),
            );
        }
        let batch = batch.callback_raw("done", json!({}), Default::default(), true);
        let inserted = client.insert_batch(batch).await.unwrap();
        let get = |uri: &str| with_token(request(Method::GET, uri, Body::empty()), TOKEN);
        let (status, _) = send(&app, request(Method::GET, "/admin/batches", Body::empty())).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "the token is needed");
        let (status, list) = send(&app, get("/admin/batches?limit=10")).await;
        assert_eq!(status, StatusCode::OK, "{list}");
        let first = &list["batches"][0];
        assert_eq!(first["id"], json!(inserted.id));
        assert_eq!(first["on_success"], json!(true));
        assert_eq!(first["members"], json!(3));
        assert_eq!(first["counts"], json!({"available": 3}));
        assert_eq!(first["callback_id"], json!(inserted.callback.id));
        assert_eq!(first["callback_kind"], json!("done"));
        assert_eq!(first["callback_state"], json!("pending"));
        let (status, shown) = send(&app, get(&format!("/admin/batches/{}", inserted.id))).await;
        assert_eq!(status, StatusCode::OK, "{shown}");
        assert_eq!(&shown, first);
        let (status, _) = send(&app, get(&format!("/admin/batches?before_id={}", inserted.id))).await;
        assert_eq!(status, StatusCode::OK);
        let (status, body) = send(&app, get("/admin/batches/999999")).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        for bad in ["/admin/batches?limit=x", "/admin/batches?before_id=1%3BDROP", "/admin/batches?state=x"] {
            let (status, body) = send(&app, get(bad)).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        }
        let (status, _) = send(&app, get("/admin/batches/1%27%20OR%201=1")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }
}

backend_case! {
    /// A fan-out's root: `GET /admin/jobs/{id}` lists its first 1,000 children by id and
    /// counts them all (`children_total`), where it listed every one (6.5 MB for 100,000); the
    /// dashboard's page reads the first 100 and says how many more.
    async fn a_jobs_detail_lists_the_first_children_and_counts_them_all(db: TestDb) {
        let app = router(surfaces::app_state(db.store.clone(), HttpConfig::default()).await);
        let client = porter::Client::new(db.store.clone());
        let root = db.store.job_insert_many(vec![porter::store::JobInsertParams::new("noop", json!({}), porter::InsertOpts::default()).unwrap()]).await.unwrap()[0].job.id;
        let after = porter::InsertOpts { depends_on: vec![root], ..Default::default() };
        let children: Vec<_> = (0..1001)
            .map(|_| porter::store::JobInsertParams::new("noop", json!({}), after.clone()).unwrap())
            .collect();
        db.store.job_insert_many(children).await.unwrap();
        let (status, one) = send(&app, request(Method::GET, &format!("/admin/jobs/{root}"), Body::empty())).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(one["children"].as_array().unwrap().len(), 1000);
        assert_eq!((one["children_total"].as_i64(), one["parents_total"].as_i64()), (Some(1001), Some(0)));
        assert_eq!(one["children"][0]["id"], json!(root + 1), "by id");
        let all = client.get_detail_links(root, None).await.unwrap().unwrap();
        assert_eq!(all.children.len(), 1001, "porter jobs show lists every one");
        let (status, html) = send_text(&app, request(Method::GET, &format!("/dashboard/jobs/{root}"), Body::empty())).await;
        assert_eq!(status, StatusCode::OK);
        assert!(html.contains("The first 100 of 1001, and 901 more"), "{html}");
        assert_eq!(html.matches("class=\"link\"").count(), 100);

        // The rest are reached a page at a time (until 5 Dec, children past the first 1,000
        // could not be read over HTTP at all): `/children` and `/parents` by id after
        // `after_id`, with `next_after_id` while more may follow.
        let fan_in = db.store.job_insert_many(vec![porter::store::JobInsertParams::new(
            "noop",
            json!({}),
            porter::InsertOpts { depends_on: all.children.iter().map(|c| c.id).collect(), ..Default::default() },
        ).unwrap()]).await.unwrap()[0].job.id;
        for (uri, key, want) in [
            (format!("/admin/jobs/{root}/children"), "children", all.children.iter().map(|c| c.id).collect::<Vec<_>>()),
            (format!("/admin/jobs/{fan_in}/parents"), "parents", all.children.iter().map(|c| c.id).collect()),
            (format!("/admin/jobs/{root}/parents"), "parents", vec![]),
        ] {
            let mut seen = Vec::new();
            let mut next = format!("{uri}?limit=400");
            for _ in 0..10 {
                let (status, page) = send(&app, request(Method::GET, &next, Body::empty())).await;
                assert_eq!(status, StatusCode::OK, "{next}: {page}");
                let links = page[key].as_array().unwrap();
                assert!(links.len() <= 400, "{next}");
                seen.extend(links.iter().map(|l| l["id"].as_i64().unwrap()));
                match page["next_after_id"].as_i64() {
                    Some(after) => {
                        assert_eq!(Some(&after), seen.last(), "{next}");
                        next = format!("{uri}?limit=400&after_id={after}");
                    }
                    None => break,
                }
            }
            assert_eq!(seen, want, "{uri}: each once, by id");
        }
        let (_, page) = send(&app, request(Method::GET, &format!("/admin/jobs/{root}/children"), Body::empty())).await;
        assert_eq!(page["children"].as_array().unwrap().len(), 1000, "a page holds 1,000 unless limit says");
        // A child another program wrote with an id below 1 is paged too (the cursor started at
        // 0 and refused a negative one: review of 5 Dec).
        common::raw_exec(&db, &format!(
            "INSERT INTO porter_jobs (id, kind, queue, args, state, waiting_for) VALUES (-5, 'noop', 'default', '{{}}', 'pending', 1); \
             INSERT INTO porter_job_deps (child_id, parent_id) VALUES (-5, {root});"
        )).await;
        let (status, page) = send(&app, request(Method::GET, &format!("/admin/jobs/{root}/children?limit=2"), Body::empty())).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert_eq!(page["children"][0]["id"], json!(-5), "{page}");
        let (status, page) = send(&app, request(Method::GET, &format!("/admin/jobs/{root}/children?limit=2&after_id=-6"), Body::empty())).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert_eq!(page["children"][0]["id"], json!(-5), "{page}");
        assert_eq!(page["children"][0]["state"], json!("pending"));
        for (bad, status) in [
            (format!("/admin/jobs/{root}/children?after_id=x"), StatusCode::BAD_REQUEST),
            (format!("/admin/jobs/{root}/children?limit=0"), StatusCode::BAD_REQUEST),
            (format!("/admin/jobs/{root}/children?before_id=1"), StatusCode::BAD_REQUEST),
            (format!("/admin/jobs/{}/children", fan_in + 1000), StatusCode::NOT_FOUND),
        ] {
            let (got, body) = send(&app, request(Method::GET, &bad, Body::empty())).await;
            assert_eq!(got, status, "{bad}: {body}");
        }
    }
}

/// The `Link` header's next page, as a path and query.
fn next_link(response: &axum::response::Response) -> Option<String> {
    let link = response.headers().get(header::LINK)?.to_str().unwrap();
    let inner = link.strip_prefix('<')?.split_once(">; rel=\"next\"")?.0;
    Some(inner.to_string())
}

backend_case! {
    /// `GET /api/tablos/{id}/files` answered every file of the tablo in one body (review of 6
    /// Dec: a million rows were 200 MB and a gigabyte of the web process). It now answers a
    /// page, bounded in rows and bytes, with a `Link` to the next.
    async fn a_tablos_files_are_listed_a_bounded_page_at_a_time(db: TestDb) {
        let app = router(surfaces::app_state(db.store.clone(), HttpConfig::default()).await);
        let tablos = db.tablos().await;
        let tablo = tablos.tablo_insert("many").await.unwrap();
        let other = tablos.tablo_insert("other").await.unwrap();
        let file = |tablo_id: Uuid, key: String| porter::app::store::TabloFileRow {
            id: Uuid::new_v4(),
            tablo_id,
            s3_key: key,
            size: 1,
            created_at: chrono::Utc::now(),
        };
        let mut ids = Vec::new();
        for i in 0..250 {
            let f = file(tablo.id, format!("tablos/{}/f{i}", tablo.id));
            ids.push(f.id);
            tablos.tablo_file_insert(f).await.unwrap();
        }
        tablos
            .tablo_file_insert(file(other.id, format!("tablos/{}/x", other.id)))
            .await
            .unwrap();
        ids.sort();

        let get = |uri: String| {
            let app = app.clone();
            async move {
                let response = app
                    .oneshot(request(Method::GET, &uri, Body::empty()))
                    .await
                    .unwrap();
                let status = response.status();
                let next = next_link(&response);
                let bytes = response.into_body().collect().await.unwrap().to_bytes();
                let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                (status, body, next, bytes.len())
            }
        };
        let listed = |body: &Value| -> Vec<Uuid> {
            body.as_array()
                .unwrap()
                .iter()
                .map(|f| f["id"].as_str().unwrap().parse().unwrap())
                .collect()
        };

        // The default page: 100 files, in id order, and a link to the next.
        let (status, body, next, _) = get(format!("/api/tablos/{}/files", tablo.id)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(listed(&body), ids[..100]);
        let next = next.expect("more files follow");
        assert_eq!(
            next,
            format!("/api/tablos/{}/files?after={}&limit=100", tablo.id, ids[99])
        );

        // Followed to the end: every file once, the last page without a link.
        let (mut seen, mut uri, mut pages) = (Vec::new(), Some(format!("/api/tablos/{}/files?limit=60", tablo.id)), 0);
        while let Some(u) = uri {
            let (status, body, next, _) = get(u).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            let page = listed(&body);
            assert!(page.len() <= 60);
            seen.extend(page);
            uri = next;
            pages += 1;
        }
        assert_eq!(seen, ids, "every file of the tablo once, no other tablo's");
        assert_eq!(pages, 5);

        // A page exactly as long as what is left has no link.
        let (_, body, next, _) = get(format!("/api/tablos/{}/files?after={}&limit=50", tablo.id, ids[199])).await;
        assert_eq!(listed(&body), ids[200..]);
        assert_eq!(next, None);

        // Rows another program wrote with huge keys: the page stops at the byte budget (at
        // least one row), and the rest follow.
        let big = tablos.tablo_insert("big").await.unwrap();
        let mut big_ids = Vec::new();
        for i in 0..6 {
            let f = file(big.id, format!("tablos/{}/{i}-{}", big.id, "k".repeat(1 << 20)));
            big_ids.push(f.id);
            tablos.tablo_file_insert(f).await.unwrap();
        }
        big_ids.sort();
        let (mut seen, mut uri) = (Vec::new(), Some(format!("/api/tablos/{}/files?limit=10000", big.id)));
        while let Some(u) = uri {
            let (status, body, next, bytes) = get(u).await;
            assert_eq!(status, StatusCode::OK);
            assert!(bytes <= porter::app::api::LIST_FILES_BUDGET, "{bytes} bytes");
            let page = listed(&body);
            assert!(!page.is_empty() && page.len() < 6, "{} rows", page.len());
            seen.extend(page);
            uri = next;
        }
        assert_eq!(seen, big_ids);

        // Bad parameters are refused, and answer no files. (A limit of 0 answered one file
        // until 6 Dec, where the admin listings refuse it.)
        for query in ["limit=abc", "limit=-1", "limit=0", "after=nope", "after=1&after=2", "limit=1&limit=2", "offset=3"] {
            let (status, body, _, _) = get(format!("/api/tablos/{}/files?{query}", tablo.id)).await;
            assert!(status.is_client_error(), "{query}: {status}");
            assert!(!body.is_array(), "{query}: {body}");
        }
        // A limit past the largest is taken as the largest, as the admin listings do, however
        // many digits it has (one too long for 32 bits was refused until 6 Dec).
        for limit in ["20000", "4294967296", "99999999999"] {
            let (status, body, next, _) = get(format!("/api/tablos/{}/files?limit={limit}", tablo.id)).await;
            assert_eq!(status, StatusCode::OK, "{limit}");
            assert_eq!(listed(&body), ids);
            assert_eq!(next, None);
        }
    }
}

/// Reads from `stream` until the server closes it; panics if it is still open after a minute
/// (a bound only against a hung test: the server closes it after a second here).
async fn closed_by_the_server(stream: &mut tokio::net::TcpStream, what: &str) -> Vec<u8> {
    use tokio::io::AsyncReadExt;
    let mut seen = Vec::new();
    let read = tokio::time::timeout(std::time::Duration::from_secs(60), async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(read.is_ok(), "{what}: the server kept the connection open");
    seen
}

backend_case! {
    /// A client that never finished a request's headers held its connection open for good:
    /// the request timeout starts once the headers are in (review of 6 Dec: 300 such
    /// connections took every file descriptor of a web process, and `/healthz` failed). Such
    /// a connection, and one left idle after a request, is now closed after
    /// `header_read_timeout`, and the server goes on answering others.
    async fn a_connection_that_never_finishes_its_headers_is_closed(db: TestDb) {
        use tokio::io::AsyncWriteExt;
        let config = HttpConfig {
            header_read_timeout: std::time::Duration::from_secs(1),
            ..HttpConfig::default()
        };
        let state = surfaces::app_state(db.store.clone(), config).await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let stop = tokio_util::sync::CancellationToken::new();
        let server = tokio::spawn(porter::http::serve(listener, state, stop.clone().cancelled_owned()));

        let mut slow = tokio::net::TcpStream::connect(address).await.unwrap();
        slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n").await.unwrap();
        let mut idle = tokio::net::TcpStream::connect(address).await.unwrap();
        idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n").await.unwrap();

        // Others are answered meanwhile.
        let health = reqwest::get(format!("http://{address}/healthz")).await.unwrap();
        assert_eq!(health.status(), 200);

        let answered = closed_by_the_server(&mut slow, "unfinished headers").await;
        assert!(
            !String::from_utf8_lossy(&answered).contains("200 OK"),
            "the unfinished request was not served"
        );
        let answered = closed_by_the_server(&mut idle, "idle after its request").await;
        assert!(
            String::from_utf8_lossy(&answered).starts_with("HTTP/1.1 200"),
            "its request was served first: {}",
            String::from_utf8_lossy(&answered)
        );

        stop.cancel();
        server.await.unwrap().unwrap();
    }
}
