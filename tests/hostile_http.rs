//! The web process against hostile input, on both backends (`sqlite::case`,
//! `postgres::case`), through the router without a socket: a foreign browser page can neither
//! act nor read (Origin, Content-Type and Host rules), a token guards reading too, listings
//! stay bounded in bytes, args over the maximum are refused, large batches insert in chunks
//! and all or nothing, and an exhausted Postgres pool says so (issue 12).

mod common;
#[path = "common/surfaces.rs"]
mod surfaces;

on_both_backends!(cases:
    args_over_the_maximum_are_refused,
    large_batches_insert_in_chunks_all_or_nothing,
    pool_exhaustion_names_the_cause,
);

mod cases {
    use axum::body::Body;
    use axum::http::{header, Method, Request, StatusCode};
    use axum::Router;
    use http_body_util::BodyExt;
    use porter::http::{router, HttpConfig};
    use porter::store::JobInsertParams;
    use porter::{InsertOpts, JobState, Store};
    use serde_json::{json, Value};
    use tower::ServiceExt;

    use crate::common::TestDb;
    use crate::surfaces;

    const TOKEN: &str = "hostile-test-token-0123456789";
    const HOST: &str = "127.0.0.1:8080";
    const EVIL: &str = "http://evil.example";

    fn app(db: &TestDb, config: HttpConfig) -> Router {
        router(surfaces::app_state(db.store.clone(), config))
    }

    /// A request as a browser on the dashboard's own host sends it (Host set, no Origin).
    fn req(method: Method, uri: &str) -> axum::http::request::Builder {
        Request::builder()
            .method(method)
            .uri(uri)
            .header(header::HOST, HOST)
    }

    /// A JSON POST with the right content type, from a client on the server's host, plus
    /// `extra` headers.
    fn json_post(uri: &str, body: &Value, extra: &[(&str, &str)]) -> Request<Body> {
        let mut builder = req(Method::POST, uri).header(header::CONTENT_TYPE, "application/json");
        for (name, value) in extra {
            builder = builder.header(*name, *value);
        }
        builder.body(Body::from(body.to_string())).unwrap()
    }

    async fn send(app: &Router, req: Request<Body>) -> (StatusCode, Vec<u8>) {
        let response = app.clone().oneshot(req).await.unwrap();
        let status = response.status();
        (
            status,
            response
                .into_body()
                .collect()
                .await
                .unwrap()
                .to_bytes()
                .to_vec(),
        )
    }

    async fn send_json(app: &Router, req: Request<Body>) -> (StatusCode, Value) {
        let (status, bytes) = send(app, req).await;
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    async fn job_count(store: &dyn Store) -> usize {
        surfaces::all_jobs(store).await.len()
    }

    fn big_args(n: usize) -> Value {
        json!({ "blob": "x".repeat(n) })
    }

    async fn insert_many(store: &dyn Store, n: usize, args: Value) -> Vec<i64> {
        let params = (0..n)
            .map(|_| JobInsertParams::new("noop", args.clone(), InsertOpts::default()).unwrap())
            .collect();
        store
            .job_insert_many(params)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.job.id)
            .collect()
    }

    /// Args over 1 MiB (as JSON) are refused with a clear 422 even when the body limit lets
    /// them through; the store refuses them too, before anything is written.
    pub async fn args_over_the_maximum_are_refused(db: TestDb) {
        let app = app(
            &db,
            HttpConfig {
                max_json_bytes: 4 * 1024 * 1024,
                ..HttpConfig::default()
            },
        );
        let over = json!({"kind": "noop", "args": big_args(1024 * 1024)});
        let (status, body) = send_json(&app, json_post("/admin/jobs", &over, &[])).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert!(
            body["error"].as_str().unwrap().contains("1048576 bytes"),
            "{body}"
        );
        let over_meta = InsertOpts {
            metadata: Some(big_args(1024 * 1024)),
            ..InsertOpts::default()
        };
        assert!(
            JobInsertParams::new("noop", json!({}), over_meta).is_err(),
            "metadata has the same limit"
        );
        assert_eq!(job_count(db.store.as_ref()).await, 0);
        let (status, body) = send_json(
            &app,
            json_post(
                "/admin/jobs",
                &json!({"kind": "noop", "args": big_args(1_000_000)}),
                &[],
            ),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "just under the limit: {body}");
    }

    /// A batch far over one chunk (40 jobs of ~900 KB: 36 MB) is sent in byte-sized chunks in
    /// one transaction: every job in order, or, when its last job is refused, none.
    pub async fn large_batches_insert_in_chunks_all_or_nothing(db: TestDb) {
        let ids = insert_many(db.store.as_ref(), 40, big_args(900_000)).await;
        assert_eq!(ids.len(), 40);
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "ids ascend in input order"
        );
        assert_eq!(
            db.store.job_get(ids[39]).await.unwrap().unwrap().args,
            big_args(900_000)
        );

        surfaces::refuse_cleanup_jobs(&db.url, db.store.as_ref(), db.sqlite_path()).await;
        let mut batch: Vec<JobInsertParams> = (0..40)
            .map(|_| {
                JobInsertParams::new("noop", big_args(900_000), InsertOpts::default()).unwrap()
            })
            .collect();
        batch.push(
            JobInsertParams::new("orphan_file_cleanup", json!({}), InsertOpts::default()).unwrap(),
        );
        assert!(
            db.store.job_insert_many(batch).await.is_err(),
            "the last job is refused"
        );
        assert_eq!(
            job_count(db.store.as_ref()).await,
            40,
            "none of the second batch stayed"
        );
    }

    /// A pool too small for the load answers with its cause: the pool size, what is busy, and
    /// which setting to raise. (SQLite has no server pool: the setting is accepted there.)
    pub async fn pool_exhaustion_names_the_cause(db: TestDb) {
        let options = porter::store::OpenOptions { pool_size: Some(2) };
        match db.store.backend() {
            porter::Backend::Sqlite => {
                let store = porter::store::open_with(&db.url, &options).await.unwrap();
                insert_many(store.as_ref(), 3, json!({})).await;
            }
            porter::Backend::Postgres => {
                #[cfg(feature = "postgres")]
                {
                    let store = porter::store::postgres::PgStore::open_with(&db.url, &options)
                        .await
                        .unwrap();
                    let pool = store.pool().clone();
                    // The LISTEN task holds one connection; this holds the other.
                    let _held = pool.acquire().await.unwrap();
                    let store: std::sync::Arc<dyn Store> = std::sync::Arc::new(store);
                    let app = router(surfaces::app_state(store.clone(), HttpConfig::default()));
                    let (status, body) = send_json(
                        &app,
                        json_post("/admin/jobs", &json!({"kind": "noop"}), &[]),
                    )
                    .await;
                    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
                    let error = body["error"].as_str().unwrap();
                    for needle in [
                        "pool",
                        "2 connections",
                        "PORTER_DB_POOL_SIZE",
                        "max_connections",
                    ] {
                        assert!(error.contains(needle), "{needle:?} in {error:?}");
                    }
                    assert!(
                        !error.contains("pool timed out while waiting"),
                        "not the bare driver words: {error}"
                    );
                }
            }
        }
    }
}
