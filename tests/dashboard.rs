//! The dashboard in a real headless Chromium, driven through chromedriver's WebDriver API, on
//! both backends (`case::sqlite`, `case::postgres`): it loads, shows a failed job's error,
//! and its retry button makes that job available again (with and without an admin token; with
//! one, the page shows nothing before the login).
//! Plus what needs no browser: escaping, counts, refresh, and refused cross-site actions.
//!
//! Chromium and chromedriver come from Debian's `chromium` and `chromium-driver` packages,
//! which `scripts/setup` installs; `scripts/test` names chromedriver in
//! PORTER_TEST_CHROMEDRIVER. The browser cases (`browser_*`) run when that variable or `CI`
//! was set at build time (build.rs), and fail when chromedriver is then missing; otherwise they
//! are reported ignored.

mod common;
#[path = "common/surfaces.rs"]
mod surfaces;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use http_body_util::BodyExt;
use porter::http::{router, AppState, HttpConfig};
use porter::JobState;
use tower::ServiceExt;

use crate::common::TestDb;
use crate::webdriver::Browser;

mod webdriver {
    //! The least of the W3C WebDriver protocol the tests need, over reqwest.

    use std::net::TcpListener;
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    use serde_json::{json, Value};

    const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

    /// The chromedriver to start; the browser cases only run when it was named at build time
    /// (or under CI), so its absence now fails them.
    fn chromedriver() -> String {
        let path = crate::common::server("PORTER_TEST_CHROMEDRIVER", "chromedriver");
        assert!(
            std::path::Path::new(&path).exists(),
            "PORTER_TEST_CHROMEDRIVER={path} does not exist: apt-get install chromium chromium-driver (scripts/setup does)"
        );
        path
    }

    /// A chromedriver process and one browser session; both end on drop.
    pub struct Browser {
        driver: Child,
        base: String,
        session: String,
        http: reqwest::Client,
        _profile: tempfile::TempDir,
    }

    impl Browser {
        pub async fn start() -> Browser {
            let port = TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let driver = Command::new(chromedriver())
                .arg(format!("--port={port}"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start chromedriver");
            let base = format!("http://127.0.0.1:{port}");
            let http = reqwest::Client::new();
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                if let Ok(r) = http.get(format!("{base}/status")).send().await {
                    if r.json::<Value>()
                        .await
                        .map(|v| v["value"]["ready"] == true)
                        .unwrap_or(false)
                    {
                        break;
                    }
                }
                assert!(
                    Instant::now() < deadline,
                    "chromedriver did not become ready"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let profile = tempfile::tempdir().unwrap();
            let mut args: Vec<String> = [
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            args.push(format!("--user-data-dir={}", profile.path().display()));
            let mut browser = Browser {
                driver,
                base,
                session: String::new(),
                http,
                _profile: profile,
            };
            let mut options = json!({ "args": args });
            if std::path::Path::new("/usr/bin/chromium").exists() {
                options["binary"] = json!("/usr/bin/chromium");
            }
            let created = browser
                .call(
                    reqwest::Method::POST,
                    "/session",
                    json!({"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": options}}}),
                )
                .await;
            browser.session = created["sessionId"]
                .as_str()
                .expect("a session id")
                .to_string();
            browser
        }

        async fn call(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
            self.try_call(method, path, body)
                .await
                .unwrap_or_else(|e| panic!("{e}"))
        }

        async fn try_call(
            &self,
            method: reqwest::Method,
            path: &str,
            body: Value,
        ) -> Result<Value, String> {
            let mut req = self.http.request(method, format!("{}{path}", self.base));
            if !body.is_null() {
                req = req.json(&body);
            }
            let response = req.send().await.expect("chromedriver answers");
            let status = response.status();
            let value: Value = response.json().await.expect("chromedriver answers JSON");
            if status.is_success() {
                Ok(value["value"].clone())
            } else {
                Err(format!(
                    "WebDriver {path}: {status} {}",
                    value["value"]["message"]
                ))
            }
        }

        fn session_path(&self, rest: &str) -> String {
            format!("/session/{}{rest}", self.session)
        }

        pub async fn goto(&self, url: &str) {
            self.call(
                reqwest::Method::POST,
                &self.session_path("/url"),
                json!({"url": url}),
            )
            .await;
        }

        pub async fn title(&self) -> String {
            self.call(
                reqwest::Method::GET,
                &self.session_path("/title"),
                Value::Null,
            )
            .await
            .as_str()
            .unwrap()
            .to_string()
        }

        pub async fn current_url(&self) -> String {
            self.call(
                reqwest::Method::GET,
                &self.session_path("/url"),
                Value::Null,
            )
            .await
            .as_str()
            .unwrap()
            .to_string()
        }

        /// The element a CSS selector finds (the request fails if none).
        pub async fn find(&self, css: &str) -> String {
            let found = self
                .call(
                    reqwest::Method::POST,
                    &self.session_path("/element"),
                    json!({"using": "css selector", "value": css}),
                )
                .await;
            found[ELEMENT]
                .as_str()
                .unwrap_or_else(|| panic!("no element {css}"))
                .to_string()
        }

        pub async fn text(&self, element: &str) -> String {
            let path = self.session_path(&format!("/element/{element}/text"));
            self.call(reqwest::Method::GET, &path, Value::Null)
                .await
                .as_str()
                .unwrap()
                .to_string()
        }

        pub async fn click(&self, element: &str) {
            self.call(
                reqwest::Method::POST,
                &self.session_path(&format!("/element/{element}/click")),
                json!({}),
            )
            .await;
        }

        pub async fn type_text(&self, element: &str, text: &str) {
            let path = self.session_path(&format!("/element/{element}/value"));
            self.call(reqwest::Method::POST, &path, json!({"text": text}))
                .await;
        }

        /// Waits (bounded) until the page's body text contains `needle`; returns the text. A
        /// page still loading (no body yet, or a body replaced meanwhile) is waited out.
        pub async fn wait_for_text(&self, needle: &str) -> String {
            let deadline = Instant::now() + Duration::from_secs(30);
            let mut last = String::new();
            loop {
                let found = self
                    .try_call(
                        reqwest::Method::POST,
                        &self.session_path("/element"),
                        json!({"using": "css selector", "value": "body"}),
                    )
                    .await;
                if let Ok(element) =
                    found.map(|v| v[ELEMENT].as_str().unwrap_or_default().to_string())
                {
                    let path = self.session_path(&format!("/element/{element}/text"));
                    if let Ok(text) = self
                        .try_call(reqwest::Method::GET, &path, Value::Null)
                        .await
                    {
                        last = text.as_str().unwrap_or_default().to_string();
                        if last.contains(needle) {
                            return last;
                        }
                    }
                }
                assert!(
                    Instant::now() < deadline,
                    "{needle:?} never appeared; the page says:\n{last}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }

    impl Drop for Browser {
        fn drop(&mut self) {
            // Ending the session closes Chromium; killing chromedriver alone could leave it.
            if !self.session.is_empty() {
                let url = format!("{}/session/{}", self.base, self.session);
                let _ = std::thread::spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .unwrap();
                    rt.block_on(async {
                        let _ = tokio::time::timeout(
                            Duration::from_secs(10),
                            reqwest::Client::new().delete(url).send(),
                        )
                        .await;
                    });
                })
                .join();
            }
            let _ = self.driver.kill();
            let _ = self.driver.wait();
        }
    }
}

const TOKEN: &str = "dashboard-test-token-42";

/// Serves the app on 127.0.0.1:0; returns its base URL and the server's stop token.
async fn serve(state: AppState) -> (String, tokio_util::sync::CancellationToken) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let stop = tokio_util::sync::CancellationToken::new();
    tokio::spawn(porter::http::serve(
        listener,
        state,
        stop.clone().cancelled_owned(),
    ));
    (base, stop)
}

async fn state_of(db: &TestDb, id: i64) -> JobState {
    db.store.job_get(id).await.unwrap().unwrap().state
}

backend_case! {
    needs(porter_browser_tests, "PORTER_TEST_CHROMEDRIVER not set: browser case skipped");
    async fn browser_shows_a_failed_job_and_its_retry_button_makes_it_available(db: TestDb) {
        let error = "SMTP said 554 <b>rejected</b> & gave up";
        let failed = surfaces::discarded_job(db.store.as_ref(), error).await;
        let other = surfaces::discarded_job(db.store.as_ref(), "another failure").await;
        let (base, stop) =
            serve(surfaces::app_state(db.store.clone(), HttpConfig::default()).await).await;
        let browser = Browser::start().await;

        browser.goto(&format!("{base}/")).await;
        assert_eq!(browser.title().await, "porter");
        let row = browser.find(&format!("#job-{}", failed.id)).await;
        let row_text = browser.text(&row).await;
        assert!(
            row_text.contains(error),
            "the error, shown as text: {row_text}"
        );

        let button = browser
            .find(&format!("#job-{} button.retry", failed.id))
            .await;
        browser.click(&button).await;
        browser
            .wait_for_text(&format!("Job {} is available again.", failed.id))
            .await;
        assert_eq!(state_of(&db, failed.id).await, JobState::Available);
        assert_eq!(
            state_of(&db, other.id).await,
            JobState::Discarded,
            "only the clicked job moved"
        );
        assert!(
            browser.current_url().await.starts_with(&base),
            "redirected back to the dashboard"
        );

        drop(browser);
        stop.cancel();
    }
}

backend_case! {
    needs(porter_browser_tests, "PORTER_TEST_CHROMEDRIVER not set: browser case skipped");
    async fn browser_with_a_token_needs_a_login_before_the_retry_button_works(db: TestDb) {
        let failed = surfaces::discarded_job(db.store.as_ref(), "needs a human").await;
        let config = HttpConfig {
            admin_token: Some(TOKEN.to_string()),
            ..HttpConfig::default()
        };
        let (base, stop) = serve(surfaces::app_state(db.store.clone(), config).await).await;
        let browser = Browser::start().await;

        // Without the token the dashboard shows no job data, only the login form.
        browser.goto(&format!("{base}/")).await;
        let text = browser
            .wait_for_text("the dashboard needs the admin token")
            .await;
        assert!(
            !text.contains("needs a human"),
            "no job data before the login: {text}"
        );
        assert_eq!(state_of(&db, failed.id).await, JobState::Discarded);

        // The 401 page offers the login form; a wrong token is refused.
        let input = browser.find("input[name=token]").await;
        browser.type_text(&input, "not-the-token").await;
        browser
            .click(&browser.find("form[action='/dashboard/login'] button").await)
            .await;
        browser.wait_for_text("wrong admin token").await;

        let input = browser.find("input[name=token]").await;
        browser.type_text(&input, TOKEN).await;
        browser
            .click(&browser.find("form[action='/dashboard/login'] button").await)
            .await;
        browser.wait_for_text("Logged in").await;
        let button = browser
            .find(&format!("#job-{} button.retry", failed.id))
            .await;
        browser.click(&button).await;
        browser
            .wait_for_text(&format!("Job {} is available again.", failed.id))
            .await;
        assert_eq!(state_of(&db, failed.id).await, JobState::Available);

        drop(browser);
        stop.cancel();
    }
}

async fn get_page(state: &AppState, uri: &str) -> (StatusCode, String) {
    let response = router(state.clone())
        .oneshot(Request::builder().uri(uri).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

backend_case! {
    async fn page_escapes_errors_counts_jobs_and_refreshes_itself(db: TestDb) {
        let failed = surfaces::discarded_job(
            db.store.as_ref(),
            "<script>alert('x')</script> & \"quotes\"",
        )
        .await;
        surfaces::insert(db.store.as_ref(), "noop", "mail").await;
        surfaces::insert(db.store.as_ref(), "noop", "mail").await;
        let running = surfaces::running_job(db.store.as_ref()).await;
        db.store.queue_pause("mail").await.unwrap();
        let state = surfaces::app_state(db.store.clone(), HttpConfig::default()).await;

        let (status, html) = get_page(&state, "/").await;
        assert_eq!(status, StatusCode::OK);
        assert!(!html.contains("<script>alert"), "the error is escaped");
        assert!(
            html.contains("&lt;script&gt;alert('x')&lt;/script&gt; &amp; &quot;quotes&quot;"),
            "{html}"
        );
        assert!(
            html.contains(r#"<meta http-equiv="refresh" content="5; url=/">"#),
            "refreshes itself: {html}"
        );
        assert!(html.contains(&format!(r#"action="/dashboard/jobs/{}/retry""#, failed.id)));
        assert!(
            html.contains(&format!(
                r#"action="/dashboard/jobs/{}/cancel""#,
                running.id
            )),
            "unfinished jobs can be cancelled"
        );
        assert!(
            !html.contains(&format!(r#"action="/dashboard/jobs/{}/retry""#, running.id)),
            "a running job has no retry"
        );
        let mail_row = html
            .split(r#"<tr data-queue="mail">"#)
            .nth(1)
            .unwrap()
            .split("</tr>")
            .next()
            .unwrap();
        assert!(mail_row.contains("(paused)"), "{mail_row}");
        assert!(
            mail_row.contains(r#"data-state="available">2<"#),
            "{mail_row}"
        );
        let total = html
            .split(r#"<tr data-queue="">"#)
            .nth(1)
            .unwrap()
            .split("</tr>")
            .next()
            .unwrap();
        assert!(
            total.contains(r#"data-state="available">2<"#)
                && total.contains(r#"data-state="running">1<"#),
            "{total}"
        );
        assert!(total.contains(r#"data-state="discarded">1<"#), "{total}");

        let (_, html) = get_page(&state, "/?retried=7").await;
        assert!(html.contains("Job 7 is available again."));
        let (_, html) = get_page(&state, "/?retried=%3Cb%3Ehi").await;
        assert!(!html.contains(r#"id="notice""#), "only ids make a notice");
    }
}

fn post(uri: &str, body: &str) -> Request<Body> {
    Request::builder()
        .method(Method::POST)
        .uri(uri)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::HOST, "127.0.0.1:8080")
        .body(Body::from(body.to_string()))
        .unwrap()
}

backend_case! {
    async fn actions_redirect_back_and_refuse_other_sites_and_missing_tokens(db: TestDb) {
        let failed = surfaces::discarded_job(db.store.as_ref(), "x").await;
        let queued = surfaces::insert(db.store.as_ref(), "noop", "default").await;
        let open = router(surfaces::app_state(db.store.clone(), HttpConfig::default()).await);
        let guarded = router(
            surfaces::app_state(
                db.store.clone(),
                HttpConfig {
                    admin_token: Some(TOKEN.to_string()),
                    ..HttpConfig::default()
                },
            )
            .await,
        );
        let retry = format!("/dashboard/jobs/{}/retry", failed.id);

        let mut cross = post(&retry, "");
        cross
            .headers_mut()
            .insert(header::ORIGIN, "http://evil.example".parse().unwrap());
        assert_eq!(
            open.clone().oneshot(cross).await.unwrap().status(),
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            guarded
                .clone()
                .oneshot(post(&retry, ""))
                .await
                .unwrap()
                .status(),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            guarded
                .clone()
                .oneshot(post(&retry, "token=wrong"))
                .await
                .unwrap()
                .status(),
            StatusCode::UNAUTHORIZED
        );
        let mut wrong_cookie = post(&retry, "");
        wrong_cookie
            .headers_mut()
            .insert(header::COOKIE, "porter_admin_token=wrong".parse().unwrap());
        assert_eq!(
            guarded
                .clone()
                .oneshot(wrong_cookie)
                .await
                .unwrap()
                .status(),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            state_of(&db, failed.id).await,
            JobState::Discarded,
            "nothing changed"
        );

        let mut same_site = post(&retry, &format!("token={TOKEN}"));
        same_site
            .headers_mut()
            .insert(header::ORIGIN, "http://127.0.0.1:8080".parse().unwrap());
        let response = guarded.clone().oneshot(same_site).await.unwrap();
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        assert_eq!(
            response.headers()[header::LOCATION],
            format!("/?retried={}", failed.id).as_str()
        );
        assert_eq!(state_of(&db, failed.id).await, JobState::Available);

        let login = guarded
            .clone()
            .oneshot(post("/dashboard/login", &format!("token={TOKEN}")))
            .await
            .unwrap();
        assert_eq!(login.status(), StatusCode::SEE_OTHER);
        let cookie = login.headers()[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .to_string();
        assert!(
            cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
            "{cookie}"
        );
        let mut with_cookie = post(&format!("/dashboard/jobs/{}/cancel", queued.id), "");
        with_cookie.headers_mut().insert(
            header::COOKIE,
            cookie.split(';').next().unwrap().parse().unwrap(),
        );
        assert_eq!(
            guarded.clone().oneshot(with_cookie).await.unwrap().status(),
            StatusCode::SEE_OTHER
        );
        assert_eq!(state_of(&db, queued.id).await, JobState::Cancelled);

        let again = open
            .clone()
            .oneshot(post(&format!("/dashboard/jobs/{}/cancel", queued.id), ""))
            .await
            .unwrap();
        assert_eq!(
            again.status(),
            StatusCode::CONFLICT,
            "a finished job cannot be cancelled"
        );
        let missing = open
            .clone()
            .oneshot(post("/dashboard/jobs/999999/retry", ""))
            .await
            .unwrap();
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    }
}
