//! The web process against hostile input, on both backends (`sqlite::case`,
//! `postgres::case`), through the router without a socket: a foreign browser page can neither
//! act nor read (Origin, Content-Type and Host rules), a token guards reading too, listings
//! stay bounded in bytes, args over the maximum are refused, large batches insert in chunks
//! and all or nothing, and an exhausted Postgres pool says so (issue 12).

mod common;
#[path = "common/surfaces.rs"]
mod surfaces;

on_both_backends!(cases:
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
