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

#[path = "common/chaos_gated_store.rs"]
mod chaos_gated_store;
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
                "--window-size=1100,760",
                "--hide-scrollbars",
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

        /// What `script` (a function body) returns, run in the page.
        pub async fn eval(&self, script: &str) -> Value {
            self.call(
                reqwest::Method::POST,
                &self.session_path("/execute/sync"),
                json!({"script": script, "args": []}),
            )
            .await
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

    impl Browser {
        /// Saves a PNG of the page to `docs/dashboard-{name}.png` when PORTER_SCREENSHOTS is
        /// set (the README's walkthrough shows them); otherwise does nothing.
        pub async fn screenshot(&self, name: &str) {
            if std::env::var_os("PORTER_SCREENSHOTS").is_none() {
                return;
            }
            let png = self
                .call(
                    reqwest::Method::GET,
                    &self.session_path("/screenshot"),
                    Value::Null,
                )
                .await;
            let bytes = base64_decode(png.as_str().expect("base64 PNG"));
            let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("docs")
                .join(format!("dashboard-{name}.png"));
            std::fs::write(&path, bytes).unwrap();
        }

        /// The value of an element's attribute.
        pub async fn attribute(&self, element: &str, name: &str) -> Option<String> {
            let path = self.session_path(&format!("/element/{element}/attribute/{name}"));
            self.call(reqwest::Method::GET, &path, Value::Null)
                .await
                .as_str()
                .map(str::to_string)
        }
    }

    fn base64_decode(text: &str) -> Vec<u8> {
        let value = |c: u8| match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {c}"),
        };
        let clean: Vec<u8> = text.bytes().filter(|c| !c.is_ascii_whitespace()).collect();
        let mut out = Vec::with_capacity(clean.len() * 3 / 4);
        for chunk in clean.chunks(4) {
            let digits: Vec<u8> = chunk
                .iter()
                .take_while(|c| **c != b'=')
                .map(|c| value(*c))
                .collect();
            let n = digits
                .iter()
                .fold(0u32, |acc, d| (acc << 6) | u32::from(*d))
                << (6 * (4 - digits.len()));
            let bytes = n.to_be_bytes();
            out.extend_from_slice(&bytes[1..digits.len()]);
        }
        out
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
        // Waits for the running job: unfinished too (until 7 Dec the overview left `pending` out).
        let waiting = insert_opts(
            &db,
            "report",
            InsertOpts { depends_on: vec![running.id], ..Default::default() },
        )
        .await;
        assert_eq!(waiting.state, JobState::Pending);
        db.store.queue_pause("mail").await.unwrap();
        let state = surfaces::app_state(db.store.clone(), HttpConfig::default()).await;

        let (status, html) = get_page(&state, "/").await;
        assert_eq!(status, StatusCode::OK);
        let unfinished = between(&html, r#"id="unfinished""#, "</section>");
        assert!(
            unfinished.contains(&format!(r#"data-job-id="{}" data-state="pending""#, waiting.id))
                && unfinished.contains(&format!(r#"action="/dashboard/jobs/{}/cancel""#, waiting.id))
                && !unfinished.contains(&format!(r#"action="/dashboard/jobs/{}/retry""#, waiting.id)),
            "a job that waits is listed, with a cancel and no run now: {unfinished}"
        );
        let row = between(unfinished, &format!(r#"data-job-id="{}" data-state="pending""#, waiting.id), "</tr>");
        assert!(row.contains("when its turn comes"), "not a due time long past: {row}");
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
        assert!(
            again.headers()[header::LOCATION]
                .to_str()
                .unwrap()
                .starts_with(&format!("/?not_cancelled={}&status=409&said=", queued.id)),
            "a finished job cannot be cancelled"
        );
        assert_eq!(state_of(&db, queued.id).await, JobState::Cancelled);
    }
}

backend_case! {
    // Until 7 Dec a refused action answered with its error page at the POST's address, so
    // reloading that page posted the action again: a cancel refused for an ended job cancelled
    // it once someone had retried it. A refused action redirects like a done one.
    async fn a_refused_action_redirects_so_reloading_its_page_posts_nothing(db: TestDb) {
        let job = surfaces::insert(db.store.as_ref(), "noop", "default").await;
        let state = surfaces::app_state(db.store.clone(), HttpConfig::default()).await;
        let open = router(state.clone());
        let cancel = format!("/dashboard/jobs/{}/cancel", job.id);
        assert_eq!(send(&open, post(&cancel, "from=job")).await.0, StatusCode::SEE_OTHER);
        assert_eq!(state_of(&db, job.id).await, JobState::Cancelled);

        let (status, _, location) = send(&open, post(&cancel, "from=job")).await;
        assert_eq!(status, StatusCode::SEE_OTHER, "refused, and sent to a page to read");
        let location = location.unwrap();
        assert!(
            location.starts_with(&format!("/dashboard/jobs/{}?not_cancelled={}&status=409&said=", job.id, job.id)),
            "{location}"
        );
        let retry = format!("/dashboard/jobs/{}/retry", job.id);
        assert_eq!(send(&open, post(&retry, "")).await.0, StatusCode::SEE_OTHER);
        assert_eq!(state_of(&db, job.id).await, JobState::Available);
        // The reload is a GET of that page: it says what was refused, and cancels nothing.
        let (status, html) = get_page(&state, &location).await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            html.contains(&format!("Job {} was not cancelled (409 Conflict): ", job.id)),
            "{html}"
        );
        assert_eq!(state_of(&db, job.id).await, JobState::Available);

        // The refusal's own words, kept by this server for the page (the URL carries a number
        // for them, no text): a retry refused for a unique key another job holds says so
        // (until a review of 7 Dec every 409 read "its state does not allow it").
        let keyed = |key: &str| crate::common::keyed_job("noop", key);
        let first = db.store.job_insert_many(vec![keyed("k1")]).await.unwrap().remove(0).job;
        db.store.job_cancel(first.id).await.unwrap();
        db.store.job_insert_many(vec![keyed("k1")]).await.unwrap();
        let (status, _, location) =
            send(&open, post(&format!("/dashboard/jobs/{}/retry", first.id), "from=job")).await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        let location = location.unwrap();
        assert!(location.contains(&format!("not_retried={}&status=409&said=", first.id)), "{location}");
        let (_, html) = get_page(&state, &location).await;
        assert!(
            html.contains(&format!(
                "Job {} was not retried (409 Conflict): conflict: job {} cannot be retried: an unfinished job holds its unique key &quot;k1&quot;.",
                first.id, first.id
            )),
            "{}",
            between(&html, "id=\"notice\"", "</span>")
        );
        // A number this server did not hand out reads as the status alone.
        let forged = format!("/dashboard/jobs/{}?not_retried={}&status=409&said=987654", first.id, first.id);
        let (_, html) = get_page(&state, &forged).await;
        assert!(html.contains("was not retried (409 Conflict): its state does not allow it"), "{html}");

        // A job that is not there: back to the overview, which has no page of it to show.
        let (status, _, location) = send(&open, post("/dashboard/jobs/999999/retry", "from=job")).await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        let location = location.unwrap();
        assert!(location.starts_with("/?not_retried=999999&status=404&said="), "{location}");
        let (_, html) = get_page(&state, &location).await;
        assert!(html.contains("Job 999999 was not retried (404 Not Found): "), "{html}");
        let (_, html) = get_page(&state, "/?not_retried=999999&status=404").await;
        assert!(html.contains("Job 999999 was not retried (404 Not Found): no such job."), "{html}");
        // Only an error's status makes the notice, and only numbers.
        for query in ["not_retried=5&status=200", "not_retried=5&status=%3Cb%3E", "not_retried=5", "not_retried=x&status=409"] {
            let (_, html) = get_page(&state, &format!("/?{query}")).await;
            assert!(!html.contains(r#"id="notice""#), "{query}: {html}");
        }
    }
}

// ---- the pages (issue 17): job, jobs with filters and bulk actions, queues, workers,
// ---- periodic schedules, the chart -------------------------------------------------------

use porter::store::{JobFailParams, JobInsertParams, PeriodicEnqueueParams, WorkerRegisterParams};
use porter::InsertOpts;

/// Inserts a job with args in a queue.
async fn insert_args(
    db: &TestDb,
    kind: &str,
    queue: &str,
    args: serde_json::Value,
) -> porter::JobRow {
    let opts = InsertOpts {
        queue: Some(queue.to_string()),
        ..Default::default()
    };
    db.store
        .job_insert_many(vec![JobInsertParams::new(kind, args, opts).unwrap()])
        .await
        .unwrap()
        .remove(0)
        .job
}

/// A job that failed twice (the second time for good), with a trace on the first error.
async fn twice_failed_job(db: &TestDb) -> porter::JobRow {
    let opts = InsertOpts {
        queue: Some("mail".to_string()),
        max_attempts: Some(2),
        ..Default::default()
    };
    let params = JobInsertParams::new(
        "fail",
        serde_json::json!({"to": "alice@example.com", "subject": "<b>hi</b>"}),
        opts,
    )
    .unwrap();
    db.store.job_insert_many(vec![params]).await.unwrap();
    for (attempt, (error, trace)) in [
        ("SMTP timeout", Some("at mailer::send (src/mailer.rs:42)")),
        ("554 rejected", None),
    ]
    .into_iter()
    .enumerate()
    {
        let row = surfaces::claim(db.store.as_ref(), "fail", "mail").await;
        assert_eq!(row.attempt, attempt as i32 + 1);
        db.store
            .job_fail(JobFailParams {
                fence: row.fence(),
                error: error.to_string(),
                trace: trace.map(str::to_string),
                retry_in: std::time::Duration::ZERO,
                discard: false,
            })
            .await
            .unwrap();
    }
    let job = db
        .store
        .job_list(Default::default())
        .await
        .unwrap()
        .remove(0);
    assert_eq!(job.state, JobState::Discarded);
    job
}

/// A request as a browser on the same origin would send it.
fn get(uri: &str) -> Request<Body> {
    Request::builder()
        .uri(uri)
        .header(header::HOST, "127.0.0.1:8080")
        .body(Body::empty())
        .unwrap()
}

async fn send(app: &axum::Router, request: Request<Body>) -> (StatusCode, String, Option<String>) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let location = response
        .headers()
        .get(header::LOCATION)
        .map(|l| l.to_str().unwrap().to_string());
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap(), location)
}

fn between<'a>(html: &'a str, start: &str, end: &str) -> &'a str {
    html.split(start)
        .nth(1)
        .unwrap_or_else(|| panic!("{start:?} not in {html}"))
        .split(end)
        .next()
        .unwrap()
}

backend_case! {
    async fn job_page_shows_args_every_attempt_errors_with_traces_and_the_buttons_its_state_allows(db: TestDb) {
        let job = twice_failed_job(&db).await;
        let running = surfaces::running_job(db.store.as_ref()).await;
        let app = router(surfaces::app_state(db.store.clone(), HttpConfig::default()).await);

        let (status, html, _) = send(&app, get(&format!("/dashboard/jobs/{}", job.id))).await;
        assert_eq!(status, StatusCode::OK);
        let args = between(&html, r#"<section id="args">"#, "</section>");
        assert!(args.contains("&quot;to&quot;: &quot;alice@example.com&quot;"), "pretty JSON: {args}");
        assert!(args.contains("&lt;b&gt;hi&lt;/b&gt;"), "escaped: {args}");
        // Args and traces break a long word rather than widen the page past the screen
        // (review of 7 Dec: a 3,300-character message made it 25,000 px wide).
        let rule = between(&html, "pre.json, pre.trace {", "}");
        assert!(rule.contains("overflow-wrap: anywhere"), "{rule}");
        let attempts = between(&html, r#"<section id="attempts">"#, "</section>");
        assert!(attempts.contains(r#"data-attempt="1""#) && attempts.contains(r#"data-attempt="2""#), "{attempts}");
        assert!(attempts.contains("SMTP timeout") && attempts.contains("554 rejected"), "{attempts}");
        assert!(attempts.contains("at mailer::send (src/mailer.rs:42)"), "the trace: {attempts}");
        assert!(attempts.contains(surfaces::TEST_WORKER), "the last attempt's worker: {attempts}");
        assert!(html.contains(&format!(r#"action="/dashboard/jobs/{}/retry""#, job.id)));
        assert!(!html.contains(&format!(r#"action="/dashboard/jobs/{}/cancel""#, job.id)), "a finished job has no cancel");

        let (_, html, _) = send(&app, get(&format!("/dashboard/jobs/{}", job.id))).await;
        assert!(html.contains("No output recorded."), "{html}");
        db.store
            .job_output_record(porter::store::JobRecordParams {
                fence: running.fence(),
                output: Some(serde_json::json!({"sent": 41})),
                progress: Some(serde_json::json!({"done": 41, "of": 100})),
            })
            .await
            .unwrap();
        let (_, html, _) = send(&app, get(&format!("/dashboard/jobs/{}", running.id))).await;
        let progress = between(&html, r#"<section id="progress">"#, "</section>");
        assert!(progress.contains("&quot;done&quot;: 41"), "{progress}");
        let output = between(&html, r#"<section id="output">"#, "</section>");
        assert!(output.contains("&quot;sent&quot;: 41"), "{output}");
        assert!(html.contains(&format!(r#"action="/dashboard/jobs/{}/cancel""#, running.id)));
        assert!(!html.contains(&format!(r#"action="/dashboard/jobs/{}/retry""#, running.id)), "a running job has no retry");

        // The job page's buttons come back to it.
        let (status, _, location) = send(&app, post(&format!("/dashboard/jobs/{}/retry", job.id), "from=job")).await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        assert_eq!(location.unwrap(), format!("/dashboard/jobs/{}?retried={}", job.id, job.id));
        assert_eq!(state_of(&db, job.id).await, JobState::Available);

        let (status, html, _) = send(&app, get("/dashboard/jobs/999999")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(html.contains("no job 999999"), "{html}");
        let (status, _, _) = send(&app, get("/dashboard/jobs/abc")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }
}

backend_case! {
    async fn jobs_page_filters_searches_and_pages_with_a_cursor_it_checks(db: TestDb) {
        for i in 0..55 {
            insert_args(&db, "noop", "bulk", serde_json::json!({"i": i, "to": format!("user{i}@example.com")})).await;
        }
        let alice = insert_args(&db, "mail", "default", serde_json::json!({"to": "alice@example.com"})).await;
        let app = router(surfaces::app_state(db.store.clone(), HttpConfig::default()).await);

        let (status, html, _) = send(&app, get("/dashboard/jobs?q=alice%40example.com")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(html.matches("<tr id=\"job-").count(), 1, "{html}");
        assert!(html.contains(&format!("id=\"job-{}\"", alice.id)));
        let (_, html, _) = send(&app, get("/dashboard/jobs?kind=mail&state=discarded")).await;
        assert!(html.contains("No job matches these filters."), "{html}");
        // The page holding the filter form does not reload itself: the reload threw away a
        // filter half typed in, every 5 s (review of 7 Dec). A link reloads it, filters kept.
        assert!(!html.contains("http-equiv=\"refresh\""), "{html}");
        assert!(!html.contains("refreshes every"), "{html}");
        assert!(html.contains(r#"id="reload" href="/dashboard/jobs?state=discarded&amp;kind=mail""#), "{html}");

        let (_, page1, _) = send(&app, get("/dashboard/jobs?queue=bulk")).await;
        assert_eq!(page1.matches("<tr id=\"job-").count(), 50);
        let next = between(&page1, r#"id="next-page" href=""#, "\"").replace("&amp;", "&");
        let (status, page2, _) = send(&app, get(&next)).await;
        assert_eq!(status, StatusCode::OK, "{page2}");
        assert_eq!(page2.matches("<tr id=\"job-").count(), 5);
        assert!(!page2.contains("id=\"next-page\""), "the last page");

        // A cursor edited by hand, or taken to other filters, is refused with a way back.
        let cursor = next.split("cursor=").nth(1).unwrap().to_string();
        let (id, sum) = cursor.split_once('.').unwrap();
        let edited = format!("{}.{sum}", id.parse::<i64>().unwrap() - 1);
        for bad in [
            format!("/dashboard/jobs?queue=bulk&cursor={edited}"),
            format!("/dashboard/jobs?queue=default&cursor={cursor}"),
            "/dashboard/jobs?cursor=not-a-cursor".to_string(),
        ] {
            let (status, html, _) = send(&app, get(&bad)).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
            assert!(html.contains("this page link was changed"), "{html}");
            assert!(html.contains(r#"id="first-page""#), "{html}");
        }

        // Unknown filters and values that cannot be one: a clear message.
        for (uri, status, message) in [
            ("/dashboard/jobs?colour=red", StatusCode::BAD_REQUEST, "unknown filter &quot;colour&quot;"),
            ("/dashboard/jobs?state=sleeping", StatusCode::BAD_REQUEST, "unknown state &quot;sleeping&quot;"),
            ("/dashboard/jobs?queue=Not+A+Queue", StatusCode::UNPROCESSABLE_ENTITY, "queue"),
        ] {
            let (got, html, _) = send(&app, get(uri)).await;
            assert_eq!(got, status, "{uri}");
            assert!(html.contains(message), "{uri}: {html}");
        }
    }
}

backend_case! {
    /// Jobs with ids below 1 (rows another program wrote) are paged like any other: the page's
    /// own "older jobs" link past such an id was refused as changed (review of 7 Dec).
    async fn jobs_page_pages_past_ids_below_one(db: TestDb) {
        for i in 0..55 {
            insert_args(&db, "noop", "negq", serde_json::json!({"i": i})).await;
        }
        common::raw_exec(&db, "UPDATE porter_jobs SET id = -id WHERE queue = 'negq'").await;
        let app = router(surfaces::app_state(db.store.clone(), HttpConfig::default()).await);
        let (_, page1, _) = send(&app, get("/dashboard/jobs?queue=negq")).await;
        assert_eq!(page1.matches("<tr id=\"job--").count(), 50, "{page1}");
        let next = between(&page1, r#"id="next-page" href=""#, "\"").replace("&amp;", "&");
        assert!(next.contains("cursor=-"), "{next}");
        let (status, page2, _) = send(&app, get(&next)).await;
        assert_eq!(status, StatusCode::OK, "{page2}");
        assert_eq!(page2.matches("<tr id=\"job--").count(), 5, "{page2}");
        assert!(!page2.contains("id=\"next-page\""), "the last page");
    }
}

/// `n` available jobs in queue `bulkq`; returns the confirmed form that cancels them all.
async fn bulk_cancel_form(db: &TestDb, n: usize) -> String {
    let opts = porter::InsertOpts {
        queue: Some("bulkq".to_string()),
        ..Default::default()
    };
    let jobs = (0..n)
        .map(|_| {
            porter::store::JobInsertParams::new("noop", serde_json::json!({}), opts.clone())
                .unwrap()
        })
        .collect();
    let inserted = db.store.job_insert_many(jobs).await.unwrap();
    let max_id = inserted.iter().map(|i| i.job.id).max().unwrap();
    format!("action=cancel&state=available&queue=bulkq&max_id={max_id}&count={n}")
}

async fn bulkq_cancelled(db: &TestDb) -> i64 {
    db.raw_count("SELECT count(*) FROM porter_jobs WHERE queue = 'bulkq' AND state = 'cancelled'")
        .await
}

backend_case! {
    /// A bulk action stopped by an error after some of its batches committed (each commits on
    /// its own) says how many jobs it changed: the confirmation said "Nothing was changed" of
    /// 1,000 jobs cancelled out of 1,200 (review of 7 Dec).
    async fn a_bulk_action_stopped_part_way_says_what_it_changed(db: TestDb) {
        let form = bulk_cancel_form(&db, 1200).await;
        let gated = chaos_gated_store::GatedStore::new(db.store.clone());
        gated.fail_bulk_writes_after(2);
        let app = router(surfaces::app_state(gated.store(), HttpConfig::default()).await);
        let (status, _, location) = send(&app, post("/dashboard/jobs/bulk", &form)).await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        let location = location.unwrap();
        assert!(location.starts_with("/dashboard/jobs/bulk?state=available&queue=bulkq&action=cancel&status="), "{location}");
        assert_eq!(bulkq_cancelled(&db).await, 1000);
        let (status, html, _) = send(&app, get(&location)).await;
        assert_eq!(status, StatusCode::OK, "{html}");
        let notice = between(&html, r#"id="notice">"#, "<");
        assert!(notice.starts_with("1000 jobs were changed, then this stopped the rest ("), "{notice}");
        assert!(notice.contains("(500 Internal Server Error)"), "{notice}");
        assert!(!html.contains("Nothing was changed"), "{html}");
        assert!(html.contains(r#"data-count="200""#), "{html}");
    }
}

backend_case! {
    /// A bulk action answered 408 (its search for its jobs outlasted the request timeout)
    /// writes nothing afterwards: run in a task of its own so that a client going away does
    /// not stop it, it went on to write every batch after its client was told it had timed
    /// out before writing (review of 7 Dec).
    async fn a_bulk_action_answered_408_writes_nothing_after(db: TestDb) {
        let form = bulk_cancel_form(&db, 600).await;
        let gated = chaos_gated_store::GatedStore::new(db.store.clone());
        gated.hold_bulk_reads(true);
        let store = gated.store();
        let config = HttpConfig {
            request_timeout: std::time::Duration::from_millis(300),
            ..HttpConfig::default()
        };
        let app = router(surfaces::app_state(store.clone(), config).await);
        let (status, body, _) = send(&app, post("/dashboard/jobs/bulk", &form)).await;
        assert_eq!(status, StatusCode::REQUEST_TIMEOUT, "{body}");
        gated.hold_bulk_reads(false);
        // The task finds its jobs, then its first write: refused.
        common::eventually("the bulk's first write was tried", || async {
            store.op_stats().get("job_cancel_many").is_some_and(|s| s.calls > 0)
        })
        .await;
        assert_eq!(store.op_stats()["job_cancel_many"].errors, 1);
        assert_eq!(bulkq_cancelled(&db).await, 0, "nothing written after the 408");
    }
}

backend_case! {
    /// A bulk action whose client goes away (a page left, a proxy's timeout) finishes: the
    /// handler was dropped between two batches, and the action stayed part-done (review of
    /// 7 Dec: 17,000 of 40,000 cancelled).
    async fn a_bulk_action_whose_client_went_away_finishes(db: TestDb) {
        let form = bulk_cancel_form(&db, 1200).await;
        let gated = chaos_gated_store::GatedStore::new(db.store.clone());
        gated.hold_bulk_writes_after(1);
        let app = router(surfaces::app_state(gated.store(), HttpConfig::default()).await);
        let request = send(&app, post("/dashboard/jobs/bulk", &form));
        tokio::select! {
            answer = request => panic!("answered while its second batch was held: {answer:?}"),
            () = gated.bulk_write_held() => {}
        }
        // The request is dropped: its client went away.
        assert_eq!(bulkq_cancelled(&db).await, 500);
        gated.release_bulk_writes();
        common::eventually("every counted job cancelled", || async {
            bulkq_cancelled(&db).await == 1200
        })
        .await;
    }
}

backend_case! {
    async fn bulk_actions_confirm_the_count_then_act_only_on_what_was_confirmed(db: TestDb) {
        let failed: Vec<_> = [
            surfaces::discarded_job(db.store.as_ref(), "one").await,
            surfaces::discarded_job(db.store.as_ref(), "two").await,
        ]
        .to_vec();
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

        let (status, html, _) = send(&open, get("/dashboard/jobs/bulk?action=retry&state=discarded")).await;
        assert_eq!(status, StatusCode::OK);
        assert!(html.contains(r#"data-count="2""#), "{html}");
        assert!(html.contains("2 jobs match these filters."), "{html}");
        let max_id = between(&html, r#"name="max_id" value=""#, "\"").to_string();
        assert_eq!(max_id, failed[1].id.to_string());
        // Discarded after the confirmation: past its fence.
        let late = surfaces::discarded_job(db.store.as_ref(), "late").await;

        let form = format!("action=retry&state=discarded&max_id={max_id}");
        let mut cross = post("/dashboard/jobs/bulk", &form);
        cross.headers_mut().insert(header::ORIGIN, "http://evil.example".parse().unwrap());
        assert_eq!(send(&open, cross).await.0, StatusCode::FORBIDDEN);
        assert_eq!(send(&guarded, post("/dashboard/jobs/bulk", &form)).await.0, StatusCode::UNAUTHORIZED);
        let (status, html, _) = send(&guarded, get("/dashboard/jobs/bulk?action=retry&state=discarded")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "reading the count needs the token too");
        assert!(!html.contains("data-count"), "{html}");
        let (status, html, _) = send(&open, post("/dashboard/jobs/bulk", "action=retry&state=discarded")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(html.contains("max_id"), "{html}");
        let (status, _, _) = send(&open, post("/dashboard/jobs/bulk", &format!("action=explode&max_id={max_id}"))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        // The transactions in progress at the count (PostgreSQL's part of the fence, carried
        // by the form when there were any) are numbers.
        let (status, html, _) = send(&open, post("/dashboard/jobs/bulk", &format!("{form}&in_progress=1,x"))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(html.contains("in_progress"), "{html}");
        // The count the page showed goes with the form: more jobs matching is refused.
        let (status, html, _) = send(&open, post("/dashboard/jobs/bulk", &format!("{form}&count=x"))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(html.contains("count"), "{html}");
        // Refused, it goes back to the confirmation, counted afresh, with the refusal's words:
        // until 7 Dec the refusal was an error page at the POST's address, and reloading it
        // posted the action again (a review of afa0c1c).
        let (status, _, location) = send(&open, post("/dashboard/jobs/bulk", &format!("{form}&count=1"))).await;
        assert_eq!(status, StatusCode::SEE_OTHER, "2 match, 1 counted");
        let location = location.unwrap();
        assert!(location.starts_with("/dashboard/jobs/bulk?state=discarded&action=retry&status=409&said="), "{location}");
        for job in &failed {
            assert_eq!(state_of(&db, job.id).await, JobState::Discarded, "nothing changed yet");
        }
        let (status, html, _) = send(&open, get(&location)).await;
        assert_eq!(status, StatusCode::OK);
        let told = between(&html, r#"id="notice">"#, "</span>");
        assert!(
            told.starts_with("Nothing was changed (409 Conflict): ") && told.contains("open the confirmation again"),
            "{told}"
        );
        assert!(html.contains(r#"data-count="3""#), "counted afresh, the late job too: {html}");
        for job in &failed {
            assert_eq!(state_of(&db, job.id).await, JobState::Discarded, "the page changes nothing");
        }

        let (status, _, location) =
            send(&guarded, post("/dashboard/jobs/bulk", &format!("{form}&token={TOKEN}"))).await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        let location = location.unwrap();
        assert!(location.contains("bulk=retry&matched=2&changed=2"), "{location}");
        for job in &failed {
            assert_eq!(state_of(&db, job.id).await, JobState::Available);
        }
        assert_eq!(state_of(&db, late.id).await, JobState::Discarded, "not confirmed, not touched");
        assert_eq!(state_of(&db, queued.id).await, JobState::Available);
        let (_, html, _) = send(&open, get(&location)).await;
        assert!(html.contains("2 of 2 matching jobs retried."), "{html}");

        // A filter that matches nothing says so, offers nothing to submit, changes nothing.
        let (_, html, _) = send(&open, get("/dashboard/jobs/bulk?action=delete&kind=nobody")).await;
        assert!(html.contains("No job matches these filters: there is nothing to delete"), "{html}");
        assert!(!html.contains(r#"id="confirm""#), "{html}");
        let (status, _, location) =
            send(&open, post("/dashboard/jobs/bulk", "action=delete&kind=nobody&max_id=999999")).await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        let (_, html, _) = send(&open, get(&location.unwrap())).await;
        assert!(html.contains("No job matched these filters: nothing was changed."), "{html}");
        assert_eq!(surfaces::all_jobs(db.store.as_ref()).await.len(), 4);

        // A search with a line break cannot go through a form unchanged: a browser rewrites
        // a bare LF in a hidden field as CRLF when it submits, so the post searched for other
        // text than the confirmation counted, and acted on other jobs (review of 7 Dec). The
        // confirmation refuses it, and so does the post, changing nothing.
        for q in ["%2C%0A", "%2C%0D%0A", "a%0Db"] {
            let (status, html, _) = send(&open, get(&format!("/dashboard/jobs/bulk?action=delete&q={q}"))).await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{q}: {html}");
            assert!(!html.contains(r#"id="confirm""#), "{html}");
            assert!(html.contains("line break"), "{html}");
            let (status, _, _) =
                send(&open, post("/dashboard/jobs/bulk", &format!("action=delete&q={q}&max_id=999999"))).await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{q}");
        }
        assert_eq!(surfaces::all_jobs(db.store.as_ref()).await.len(), 4);
    }
}

backend_case! {
    async fn queue_worker_and_periodic_pages_show_their_rows_and_the_queue_buttons_are_guarded(db: TestDb) {
        surfaces::insert(db.store.as_ref(), "noop", "mail").await;
        let running = surfaces::running_job(db.store.as_ref()).await;
        db.store
            .worker_register(WorkerRegisterParams {
                id: surfaces::TEST_WORKER.to_string(),
                host: "box-7".to_string(),
                pid: 4242,
                lease: std::time::Duration::from_secs(15),
                stuck_after: Vec::new(),
                queues: vec!["mail".to_string()],
                kinds: vec!["noop".to_string()],
                unsteady: false,
                since_last: None,
            })
            .await
            .unwrap();
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

        let (status, html, _) = send(&open, get("/dashboard/queues")).await;
        assert_eq!(status, StatusCode::OK);
        let mail = between(&html, r#"<tr id="queue-mail""#, "</tr>");
        assert!(mail.contains(r#"data-state="available">1<"#), "{mail}");
        assert!(mail.contains(r#"action="/dashboard/queues/mail/pause""#), "{mail}");

        let mut cross = post("/dashboard/queues/mail/pause", "");
        cross.headers_mut().insert(header::ORIGIN, "http://evil.example".parse().unwrap());
        assert_eq!(send(&open, cross).await.0, StatusCode::FORBIDDEN);
        assert_eq!(send(&guarded, post("/dashboard/queues/mail/pause", "")).await.0, StatusCode::UNAUTHORIZED);
        assert!(db.store.queue_list().await.unwrap().iter().all(|q| q.paused_at.is_none()));
        let (status, _, location) = send(&open, post("/dashboard/queues/mail/pause", "")).await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        assert_eq!(location.unwrap(), "/dashboard/queues?paused=mail");
        assert!(db.store.queue_list().await.unwrap().iter().any(|q| q.name == "mail" && q.paused_at.is_some()));
        let (_, html, _) = send(&open, get("/dashboard/queues?paused=mail")).await;
        assert!(html.contains(r#"action="/dashboard/queues/mail/resume""#), "{html}");
        assert!(html.contains("Queue mail is paused"), "{html}");
        // Over HTTP/2 the host comes as the URI's authority, with no `Host` header: the
        // dashboard's own origin check reads it as the guard does (found by review: its
        // same-origin resume was refused with 403 while /admin took it).
        let h2 = |origin: &str| {
            Request::builder()
                .method(Method::POST)
                .version(axum::http::Version::HTTP_2)
                .uri("http://127.0.0.1:8080/dashboard/queues/mail/resume")
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .header(header::ORIGIN, origin)
                .body(Body::empty())
                .unwrap()
        };
        assert_eq!(send(&open, h2("http://evil.example")).await.0, StatusCode::FORBIDDEN);
        assert!(db.store.queue_list().await.unwrap().iter().any(|q| q.name == "mail" && q.paused_at.is_some()));
        let (status, _, location) = send(&open, h2("http://127.0.0.1:8080")).await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        assert_eq!(location.unwrap(), "/dashboard/queues?resumed=mail");
        assert!(db.store.queue_list().await.unwrap().iter().all(|q| q.paused_at.is_none()));
        assert_eq!(send(&open, post("/dashboard/queues/Bad%20Queue/pause", "")).await.0, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(send(&open, post("/dashboard/queues/mail/explode", "")).await.0, StatusCode::NOT_FOUND);

        let (status, html, _) = send(&open, get("/dashboard/workers")).await;
        assert_eq!(status, StatusCode::OK);
        let row = between(&html, &format!(r#"data-worker="{}""#, surfaces::TEST_WORKER), "</tr>");
        assert!(row.contains("box-7") && row.contains("4242"), "{row}");
        assert!(row.contains(r#"<td class="n running">1</td>"#), "its running job {}: {row}", running.id);
        assert!(row.contains(r#"<td class="serves">queues mail; kinds noop</td>"#), "what it serves: {row}");

        let slot = |slot: i64| PeriodicEnqueueParams {
            name: "heartbeat".into(),
            slot,
            job: JobInsertParams::new(
                "heartbeat",
                serde_json::json!({}),
                InsertOpts {
                    metadata: Some(serde_json::json!({"periodic": "heartbeat", "slot": slot})),
                    ..Default::default()
                },
            )
            .unwrap(),
        };
        db.store.periodic_enqueue(slot(1_800_000_000_000)).await.unwrap();
        let job = db.store.periodic_enqueue(slot(1_800_000_060_000)).await.unwrap().unwrap().job;
        let (status, html, _) = send(&open, get("/dashboard/periodic")).await;
        assert_eq!(status, StatusCode::OK);
        let row = between(&html, r#"data-schedule="heartbeat""#, "</tr>");
        assert!(row.contains("2027-01-15 08:01:00 UTC"), "last slot: {row}");
        assert!(row.contains("2027-01-15 08:02:00 UTC"), "next slot, every 60 s: {row}");
        assert!(row.contains(&format!(r#"href="/dashboard/jobs/{}""#, job.id)), "{row}");

        // With a token, none of the pages shows anything without it.
        for page in ["/dashboard/queues", "/dashboard/workers", "/dashboard/periodic", "/dashboard/jobs", &format!("/dashboard/jobs/{}", job.id)] {
            let (status, html, _) = send(&guarded, get(page)).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{page}");
            assert!(!html.contains("box-7") && !html.contains("<table"), "{page}: {html}");
            let mut with_bearer = get(page);
            with_bearer.headers_mut().insert(header::AUTHORIZATION, format!("Bearer {TOKEN}").parse().unwrap());
            assert_eq!(send(&guarded, with_bearer).await.0, StatusCode::OK, "{page}");
        }
    }
}

backend_case! {
    async fn overview_draws_the_last_hour_as_svg(db: TestDb) {
        for _ in 0..3 {
            surfaces::insert(db.store.as_ref(), "noop", "default").await;
        }
        let claimed = db
            .store
            .job_claim(porter::store::JobClaimParams {
                queue: "default".into(),
                kinds: vec!["noop".into()],
                limit: 2,
                worker_id: surfaces::TEST_WORKER.into(),
            })
            .await
            .unwrap();
        db.store
            .job_complete_many(claimed.iter().map(|j| j.fence()).collect())
            .await
            .unwrap();
        surfaces::discarded_job(db.store.as_ref(), "x").await;
        let state = surfaces::app_state(db.store.clone(), HttpConfig::default()).await;
        let (status, html) = get_page(&state, "/").await;
        assert_eq!(status, StatusCode::OK);
        let svg = between(&html, "<svg", "</svg>");
        assert!(svg.contains(r#"class="completed""#) && svg.contains(r#"class="failed""#), "{svg}");
        assert!(html.contains(r#"<span id="total-completed">2</span>"#), "{html}");
        assert!(html.contains(r#"<span id="total-failed">1</span>"#), "{html}");
        assert!(svg.contains(r#"id="depth""#), "the depth sampled now (1 available): {svg}");
        assert!(svg.contains("depth 1"), "{svg}");
    }
}

backend_case! {
    needs(porter_browser_tests, "PORTER_TEST_CHROMEDRIVER not set: browser case skipped");
    async fn browser_job_page_shows_the_job_and_its_retry_button_works(db: TestDb) {
        let job = twice_failed_job(&db).await;
        let (base, stop) =
            serve(surfaces::app_state(db.store.clone(), HttpConfig::default()).await).await;
        let browser = Browser::start().await;

        // From the overview's failed list to the job's own page.
        browser.goto(&format!("{base}/")).await;
        browser.click(&browser.find(&format!("#job-{} a", job.id)).await).await;
        let text = browser.wait_for_text("Attempts").await;
        assert!(text.contains(&format!("Job {}", job.id)), "{text}");
        assert!(text.contains("\"to\": \"alice@example.com\""), "pretty args: {text}");
        assert!(text.contains("SMTP timeout") && text.contains("554 rejected"), "{text}");
        let trace = browser.find("#attempts details").await;
        browser.click(&browser.find("#attempts details summary").await).await;
        assert!(browser.text(&trace).await.contains("src/mailer.rs:42"));
        browser.screenshot("job").await;

        browser.click(&browser.find("#actions button.retry").await).await;
        browser.wait_for_text(&format!("Job {} is available again.", job.id)).await;
        assert!(browser.current_url().await.contains(&format!("/dashboard/jobs/{}", job.id)));
        assert_eq!(state_of(&db, job.id).await, JobState::Available);
        drop(browser);
        stop.cancel();
    }
}

backend_case! {
    needs(porter_browser_tests, "PORTER_TEST_CHROMEDRIVER not set: browser case skipped");
    async fn browser_jobs_page_searches_args_and_bulk_cancels_after_confirming_the_count(db: TestDb) {
        for to in ["alice@example.com", "bob@example.com", "alice@example.org"] {
            insert_args(&db, "mail", "mail", serde_json::json!({"to": to})).await;
        }
        let report = insert_args(&db, "report", "default", serde_json::json!({"month": 11})).await;
        surfaces::discarded_job(db.store.as_ref(), "no route to host").await;
        let (base, stop) =
            serve(surfaces::app_state(db.store.clone(), HttpConfig::default()).await).await;
        let browser = Browser::start().await;

        browser.goto(&format!("{base}/dashboard/jobs")).await;
        browser.wait_for_text("bob@example.com").await;
        browser.screenshot("jobs").await;
        let search = browser.find("input[name=q]").await;
        browser.type_text(&search, "alice@").await;
        browser.click(&browser.find("#apply").await).await;
        browser.wait_for_text("alice@example.org").await;
        let text = browser.text(&browser.find("#jobs").await).await;
        assert!(text.contains("alice@example.com") && !text.contains("bob@"), "{text}");

        browser.click(&browser.find("a.bulk[data-action=cancel]").await).await;
        let text = browser.wait_for_text("2 jobs match these filters.").await;
        assert!(text.contains("args contain: alice@"), "{text}");
        browser.screenshot("bulk-confirm").await;
        browser.click(&browser.find("#confirm button").await).await;
        browser.wait_for_text("2 of 2 matching jobs cancelled.").await;
        let mail = surfaces::all_jobs(db.store.as_ref()).await;
        let cancelled: Vec<_> = mail.iter().filter(|j| j.state == JobState::Cancelled).map(|j| j.args["to"].as_str().unwrap_or("").to_string()).collect();
        assert_eq!(cancelled.len(), 2);
        assert!(cancelled.iter().all(|to| to.starts_with("alice@")), "{cancelled:?}");
        assert_eq!(state_of(&db, report.id).await, JobState::Available);
        drop(browser);
        stop.cancel();
    }
}

backend_case! {
    needs(porter_browser_tests, "PORTER_TEST_CHROMEDRIVER not set: browser case skipped");
    async fn browser_queues_workers_and_periodic_pages_show_their_rows_and_pause_works(db: TestDb) {
        surfaces::insert(db.store.as_ref(), "noop", "mail").await;
        surfaces::running_job(db.store.as_ref()).await;
        db.store
            .worker_register(WorkerRegisterParams {
                id: surfaces::TEST_WORKER.to_string(),
                host: "box-7".to_string(),
                pid: 4242,
                lease: std::time::Duration::from_secs(15),
                stuck_after: Vec::new(),
                queues: vec!["mail".to_string()],
                kinds: vec!["noop".to_string()],
                unsteady: false,
                since_last: None,
            })
            .await
            .unwrap();
        let slot = |slot: i64| PeriodicEnqueueParams {
            name: "heartbeat".into(),
            slot,
            job: JobInsertParams::new(
                "heartbeat",
                serde_json::json!({}),
                InsertOpts {
                    metadata: Some(serde_json::json!({"periodic": "heartbeat", "slot": slot})),
                    ..Default::default()
                },
            )
            .unwrap(),
        };
        db.store.periodic_enqueue(slot(1_800_000_000_000)).await.unwrap();
        let beat = db.store.periodic_enqueue(slot(1_800_000_060_000)).await.unwrap().unwrap().job;
        let (base, stop) =
            serve(surfaces::app_state(db.store.clone(), HttpConfig::default()).await).await;
        let browser = Browser::start().await;

        browser.goto(&format!("{base}/")).await;
        browser.click(&browser.find("nav a[href='/dashboard/queues']").await).await;
        browser.wait_for_text("Pause").await;
        browser.screenshot("queues").await;
        browser.click(&browser.find("button.pause[data-queue=mail]").await).await;
        browser.wait_for_text("Queue mail is paused").await;
        assert!(db.store.queue_list().await.unwrap().iter().any(|q| q.name == "mail" && q.paused_at.is_some()));
        browser.click(&browser.find("button.resume[data-queue=mail]").await).await;
        browser.wait_for_text("Queue mail is resumed.").await;
        assert!(db.store.queue_list().await.unwrap().iter().all(|q| q.paused_at.is_none()));

        browser.click(&browser.find("nav a[href='/dashboard/workers']").await).await;
        browser.wait_for_text("box-7").await;
        let row = browser.find(&format!("tr[data-worker='{}']", surfaces::TEST_WORKER)).await;
        let text = browser.text(&row).await;
        assert!(text.contains("4242") && text.ends_with(" 1"), "one job running: {text}");
        assert!(text.contains("queues mail; kinds noop"), "what it serves: {text}");
        browser.screenshot("workers").await;

        browser.click(&browser.find("nav a[href='/dashboard/periodic']").await).await;
        let text = browser.wait_for_text("2027-01-15 08:02:00 UTC").await;
        assert!(text.contains(&format!("job {}", beat.id)), "{text}");
        browser.screenshot("periodic").await;
        drop(browser);
        stop.cancel();
    }
}

backend_case! {
    needs(porter_browser_tests, "PORTER_TEST_CHROMEDRIVER not set: browser case skipped");
    async fn browser_overview_draws_the_chart(db: TestDb) {
        for _ in 0..5 {
            surfaces::insert(db.store.as_ref(), "noop", "default").await;
        }
        let claimed = db
            .store
            .job_claim(porter::store::JobClaimParams {
                queue: "default".into(),
                kinds: vec!["noop".into()],
                limit: 3,
                worker_id: surfaces::TEST_WORKER.into(),
            })
            .await
            .unwrap();
        db.store
            .job_complete_many(claimed.iter().map(|j| j.fence()).collect())
            .await
            .unwrap();
        surfaces::discarded_job(db.store.as_ref(), "disk full").await;
        let (base, stop) =
            serve(surfaces::app_state(db.store.clone(), HttpConfig::default()).await).await;
        let browser = Browser::start().await;
        browser.goto(&format!("{base}/")).await;
        browser.wait_for_text("Last hour").await;
        // The totals under the chart (the bars may straddle a minute boundary).
        assert_eq!(browser.text(&browser.find("#total-completed").await).await, "3");
        assert_eq!(browser.text(&browser.find("#total-failed").await).await, "1");
        let bar = browser.find("svg#throughput g.minute rect.completed").await;
        assert!(browser.attribute(&bar, "height").await.is_some());
        browser.find("svg#throughput polyline#depth").await;
        browser.screenshot("overview").await;
        drop(browser);
        stop.cancel();
    }
}

/// Inserts one job with `opts`.
async fn insert_opts(db: &TestDb, kind: &str, opts: InsertOpts) -> porter::JobRow {
    let params = JobInsertParams::new(kind, serde_json::json!({}), opts).unwrap();
    db.store
        .job_insert_many(vec![params])
        .await
        .unwrap()
        .remove(0)
        .job
}

/// A parent with two children (one that runs whatever the parent ends as), answered in that
/// order.
async fn family(db: &TestDb) -> (porter::JobRow, porter::JobRow, porter::JobRow) {
    let parent = insert_opts(db, "extract", InsertOpts::default()).await;
    let child = |after_any| InsertOpts {
        depends_on: vec![parent.id],
        after_any,
        ..Default::default()
    };
    let load = insert_opts(db, "load", child(false)).await;
    let report = insert_opts(db, "report", child(true)).await;
    (parent, load, report)
}

backend_case! {
    async fn job_page_lists_parents_and_children_with_their_states(db: TestDb) {
        let (parent, load, report) = family(&db).await;
        let seq = InsertOpts {
            sequence_key: Some("<acct & 7>".into()),
            concurrency_key: Some("tenant-9".into()),
            ..Default::default()
        };
        insert_opts(&db, "step", seq.clone()).await;
        let second = insert_opts(&db, "step", seq).await;
        let app = router(surfaces::app_state(db.store.clone(), HttpConfig::default()).await);

        let (status, html, _) = send(&app, get(&format!("/dashboard/jobs/{}", parent.id))).await;
        assert_eq!(status, StatusCode::OK);
        let children = between(&html, r#"<section id="children">"#, "</section>");
        for child in [&load, &report] {
            assert!(children.contains(&format!(r#"href="/dashboard/jobs/{}""#, child.id)), "{children}");
        }
        assert_eq!(children.matches(r#"data-state="pending""#).count(), 2, "{children}");
        assert_eq!(children.matches("runs whatever it ends as").count(), 1, "{children}");
        let parents = between(&html, r#"<section id="parents">"#, "</section>");
        assert!(parents.contains("It waits for no other job."), "{parents}");

        let (_, html, _) = send(&app, get(&format!("/dashboard/jobs/{}", load.id))).await;
        let parents = between(&html, r#"<section id="parents">"#, "</section>");
        assert!(parents.contains(&format!(r#"href="/dashboard/jobs/{}""#, parent.id)), "{parents}");
        assert!(parents.contains(r#"data-state="available""#) && parents.contains("extract"), "{parents}");
        assert!(html.contains(r#"data-state="pending""#), "the child waits: {html}");
        assert!(!html.contains(&format!(r#"action="/dashboard/jobs/{}/retry""#, load.id)), "a waiting job has no retry");
        assert!(html.contains(&format!(r#"action="/dashboard/jobs/{}/cancel""#, load.id)), "but can be cancelled");

        // A parent's end shows on its children's pages.
        db.store.job_cancel(parent.id).await.unwrap();
        let (_, html, _) = send(&app, get(&format!("/dashboard/jobs/{}", load.id))).await;
        let parents = between(&html, r#"<section id="parents">"#, "</section>");
        assert!(parents.contains(r#"data-state="cancelled""#), "{parents}");
        assert!(html.contains(&format!("parent job {} was cancelled", parent.id)), "the reason: {html}");

        // A retried job that waits for its parents again says so (review of 7 Dec: "Job N is
        // available again" over a page showing it pending).
        let waiting = insert_opts(&db, "load", InsertOpts { depends_on: vec![second.id], ..Default::default() }).await;
        db.store.job_cancel(waiting.id).await.unwrap();
        let (status, _, location) = send(&app, post(&format!("/dashboard/jobs/{}/retry", waiting.id), "from=job")).await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        let location = location.unwrap();
        assert_eq!(location, format!("/dashboard/jobs/{}?retried_pending={}", waiting.id, waiting.id));
        assert_eq!(state_of(&db, waiting.id).await, JobState::Pending);
        let (_, html, _) = send(&app, get(&location)).await;
        assert!(html.contains(&format!("Job {} was retried and waits (pending)", waiting.id)), "{html}");

        // The keys, escaped.
        let (_, html, _) = send(&app, get(&format!("/dashboard/jobs/{}", second.id))).await;
        assert!(html.contains(r#"<dd id="sequence-key">&lt;acct &amp; 7&gt;</dd>"#), "{html}");
        assert!(html.contains(r#"<dd id="concurrency-key">tenant-9</dd>"#), "{html}");
        assert!(html.contains(r#"data-state="pending""#), "second of its sequence waits: {html}");
    }
}

backend_case! {
    needs(porter_browser_tests, "PORTER_TEST_CHROMEDRIVER not set: browser case skipped");
    async fn browser_job_page_goes_from_a_child_to_its_parent(db: TestDb) {
        let (parent, load, _) = family(&db).await;
        let (base, stop) =
            serve(surfaces::app_state(db.store.clone(), HttpConfig::default()).await).await;
        let browser = Browser::start().await;
        browser.goto(&format!("{base}/dashboard/jobs/{}", load.id)).await;
        let text = browser.wait_for_text("Waits for").await;
        assert!(text.contains(&format!("#{} extract available", parent.id)), "{text}");
        browser.screenshot("job-waits").await;
        browser.click(&browser.find("#parents li.link a").await).await;
        let text = browser.wait_for_text(&format!("Job {}", parent.id)).await;
        assert!(text.contains(&format!("#{} load pending", load.id)), "{text}");
        drop(browser);
        stop.cancel();
    }
}

backend_case! {
    /// Jobs nobody will run (issue 17.7): the overview names the queue and kind of due jobs no
    /// live worker serves, with a link to them, and says nothing once a worker serves them.
    async fn overview_names_jobs_no_live_worker_serves(db: TestDb) {
        surfaces::insert(db.store.as_ref(), "noop", "mail").await;
        surfaces::insert(db.store.as_ref(), "noop", "mail").await;
        surfaces::insert(db.store.as_ref(), "noop", "default").await;
        surfaces::serving_worker(db.store.as_ref(), "w1", &["default"], &["noop"]).await;
        let state = surfaces::app_state(db.store.clone(), HttpConfig::default()).await;
        let (status, html) = get_page(&state, "/").await;
        assert_eq!(status, StatusCode::OK);
        let section = html
            .split(r#"<section id="unserved">"#)
            .nth(1)
            .unwrap_or_else(|| panic!("an unserved section: {html}"))
            .split("</section>")
            .next()
            .unwrap();
        assert!(
            section.contains("2 jobs in queue &#39;mail&#39; of kind &#39;noop&#39; wait with no live worker serving them")
                || section.contains("2 jobs in queue 'mail' of kind 'noop' wait with no live worker serving them"),
            "{section}"
        );
        assert!(
            section.contains(r#"href="/dashboard/jobs?state=available&amp;state=scheduled&amp;state=retryable&amp;kind=noop&amp;queue=mail""#),
            "{section}"
        );
        assert!(!section.contains("default"), "the served queue is not named: {section}");

        surfaces::serving_worker(db.store.as_ref(), "w2", &["mail"], &["noop"]).await;
        let (_, html) = get_page(&state, "/").await;
        assert!(!html.contains(r#"id="unserved""#), "every job is served: {html}");
    }
}

backend_case! {
    needs(porter_browser_tests, "PORTER_TEST_CHROMEDRIVER not set: browser case skipped");
    async fn browser_overview_names_jobs_no_live_worker_serves(db: TestDb) {
        let mut ids = Vec::new();
        for _ in 0..3 {
            ids.push(surfaces::insert(db.store.as_ref(), "send", "emails").await.id);
        }
        let other = surfaces::insert(db.store.as_ref(), "noop", "default").await;
        let (base, stop) =
            serve(surfaces::app_state(db.store.clone(), HttpConfig::default()).await).await;
        let browser = Browser::start().await;
        browser.goto(&format!("{base}/")).await;
        let line = browser.find("#unserved li[data-queue='emails'][data-kind='send']").await;
        assert_eq!(
            browser.text(&line).await,
            "3 jobs in queue 'emails' of kind 'send' wait with no live worker serving them"
        );
        browser.screenshot("unserved").await;
        // Its link lists exactly those jobs.
        let link = browser.find("#unserved li[data-queue='emails'] a").await;
        browser.click(&link).await;
        browser.wait_for_text("Everything these filters match").await;
        for id in ids {
            browser.find(&format!("#jobs #job-{id}")).await;
        }
        assert!(
            !browser.text(&browser.find("#jobs").await).await.contains(other.kind.as_str()),
            "only the unserved jobs are listed"
        );
        drop(browser);
        stop.cancel();
    }
}

// ---- workflows (issue 16.5): the list, the graph of one, its cancel button ---------------

use porter::workflow::{Step, Workflow, WorkflowInserted};

/// A step running `noop` in a queue of its own, so that each can be claimed alone.
fn queued_step(name: &str, queue: &str) -> Step {
    Step::raw(name, "noop", serde_json::json!({})).opts(InsertOpts {
        queue: Some(queue.to_string()),
        ..Default::default()
    })
}

/// The diamond a -> (b, c) -> d with `a` completed, `b` running, `c` available and `d`
/// pending.
async fn diamond_in_four_states(db: &TestDb) -> WorkflowInserted {
    let workflow = Workflow::new("nightly report")
        .step(queued_step("a", "wf-a"))
        .step(queued_step("b", "wf-b").after(["a"]))
        .step(queued_step("c", "wf-c").after(["a"]))
        .step(queued_step("d", "wf-d").after(["b", "c"]));
    let inserted = db
        .store
        .workflow_insert(workflow.params().unwrap())
        .await
        .unwrap();
    let a = surfaces::claim(db.store.as_ref(), "noop", "wf-a").await;
    db.store.job_complete_many(vec![a.fence()]).await.unwrap();
    surfaces::claim(db.store.as_ref(), "noop", "wf-b").await;
    for (step, state) in [
        ("a", JobState::Completed),
        ("b", JobState::Running),
        ("c", JobState::Available),
        ("d", JobState::Pending),
    ] {
        assert_eq!(
            state_of(db, inserted.job(step).unwrap().id).await,
            state,
            "{step}"
        );
    }
    inserted
}

/// The SVG node of a step (`<a class="node" ...>...</a>`).
fn node(html: &str, job_id: i64) -> &str {
    let start = html
        .find(&format!(
            r#"href="/dashboard/jobs/{job_id}" data-job-id="{job_id}""#
        ))
        .unwrap_or_else(|| panic!("no node for job {job_id}: {html}"));
    &html[start..start + html[start..].find("</a>").unwrap()]
}

backend_case! {
    async fn workflow_page_draws_the_steps_coloured_by_state_with_edges_and_layers(db: TestDb) {
        let wf = diamond_in_four_states(&db).await;
        let plain = surfaces::insert(db.store.as_ref(), "noop", "default").await;
        let app = router(surfaces::app_state(db.store.clone(), HttpConfig::default()).await);
        let id = |step: &str| wf.job(step).unwrap().id;

        // The list: a row linking to the workflow, its steps and states.
        let (status, html, _) = send(&app, get("/dashboard/workflows")).await;
        assert_eq!(status, StatusCode::OK);
        assert!(html.contains(r#"<a href="/dashboard/workflows">Workflows</a>"#), "a nav link: {html}");
        let row = between(&html, &format!(r#"<tr id="workflow-{}""#, wf.id), "</tr>");
        assert!(row.contains(&format!(r#"href="/dashboard/workflows/{}""#, wf.id)), "{row}");
        assert!(row.contains("nightly report") && row.contains(r#"<td class="n">4</td>"#), "{row}");
        for state in ["completed", "running", "available", "pending"] {
            assert!(row.contains(&format!(r#"data-state="{state}""#)), "{state}: {row}");
        }

        let (status, html, _) = send(&app, get(&format!("/dashboard/workflows/{}", wf.id))).await;
        assert_eq!(status, StatusCode::OK, "{html}");
        let svg = between(&html, r#"<svg id="workflow-graph""#, "</svg>");
        assert_eq!(svg.matches(r#"<a class="node""#).count(), 4, "{svg}");
        // Each node: its step, job, state, colour and layer; a link to the job's page.
        for (step, state, fill, layer) in [
            ("a", "completed", "#dcfce7", 0),
            ("b", "running", "#fef3c7", 1),
            ("c", "available", "#dbeafe", 1),
            ("d", "pending", "#f4f4f5", 2),
        ] {
            let node = node(svg, id(step));
            assert!(node.contains(&format!(r#"data-step="{step}""#)), "{node}");
            assert!(node.contains(&format!(r#"data-state="{state}""#)), "{node}");
            assert!(node.contains(&format!(r#"data-layer="{layer}""#)), "{node}");
            assert!(node.contains(&format!(r#"fill="{fill}""#)), "{state} is {fill}: {node}");
            assert!(node.contains(&format!("#{} · {state}", id(step))), "{node}");
        }
        // One edge per dependency, parent to child.
        let mut edges: Vec<(i64, i64)> = svg
            .split(r#"<path class="edge" data-from=""#)
            .skip(1)
            .map(|e| {
                let from = e.split('"').next().unwrap().parse().unwrap();
                let to = e.split(r#"data-to=""#).nth(1).unwrap().split('"').next().unwrap();
                (from, to.parse().unwrap())
            })
            .collect();
        edges.sort();
        let mut want = vec![(id("a"), id("b")), (id("a"), id("c")), (id("b"), id("d")), (id("c"), id("d"))];
        want.sort();
        assert_eq!(edges, want);
        // The legend names every state with its colour.
        let legend = between(&html, r#"<ul class="legend" id="legend""#, "</ul>");
        for state in JobState::ALL {
            assert!(legend.contains(&format!(r#"data-state="{}""#, state.as_str())), "{legend}");
        }
        assert!(legend.contains("#dcfce7") && legend.contains("#f4f4f5"), "{legend}");
        // The table, as `porter workflows show`.
        let table = between(&html, r#"<table id="steps-table">"#, "</table>");
        assert_eq!(table.matches(r#"<tr class="step""#).count(), 4, "{table}");
        assert!(table.contains("b, c"), "d waits for b and c: {table}");
        assert!(!html.contains("graph-note"), "a small workflow is drawn whole");

        // The job page links to its workflow; a job of no workflow has no such link.
        let (_, html, _) = send(&app, get(&format!("/dashboard/jobs/{}", id("b")))).await;
        let link = between(&html, r#"<dd id="workflow">"#, "</dd>");
        assert!(link.contains(&format!(r#"href="/dashboard/workflows/{}""#, wf.id)), "{link}");
        assert!(link.contains("step b of") && link.contains("nightly report"), "{link}");
        let (_, html, _) = send(&app, get(&format!("/dashboard/jobs/{}", plain.id))).await;
        assert!(!html.contains(r#"id="workflow""#), "{html}");

        // Unknown and malformed ids.
        let (status, _, _) = send(&app, get("/dashboard/workflows/999999")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _, _) = send(&app, get("/dashboard/workflows/x")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let (status, _, _) = send(&app, get(&format!("/dashboard/workflows/{}?page=0", wf.id))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }
}

backend_case! {
    async fn workflow_cancel_button_cancels_like_the_cli_and_the_page_says_so(db: TestDb) {
        let wf = diamond_in_four_states(&db).await;
        let app = router(surfaces::app_state(db.store.clone(), HttpConfig::default()).await);
        let (_, html, _) = send(&app, get(&format!("/dashboard/workflows/{}", wf.id))).await;
        let action = format!("/dashboard/workflows/{}/cancel", wf.id);
        assert!(html.contains(&format!(r#"action="{action}""#)), "{html}");

        let (status, _, location) = send(&app, post(&action, "")).await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        let location = location.unwrap();
        assert_eq!(
            location,
            format!("/dashboard/workflows/{}?steps_cancelled=2&steps_stopping=1", wf.id)
        );
        for (step, state) in [
            ("a", JobState::Completed),
            ("b", JobState::Running),
            ("c", JobState::Cancelled),
            ("d", JobState::Cancelled),
        ] {
            assert_eq!(state_of(&db, wf.job(step).unwrap().id).await, state, "{step}");
        }
        let (_, html, _) = send(&app, get(&location)).await;
        assert!(
            html.contains("Workflow cancelled: 2 steps cancelled, 1 running steps asked to stop."),
            "{html}"
        );
        let (status, _, _) = send(&app, post("/dashboard/workflows/999999/cancel", "")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
}

/// A workflow of no-op steps with these names, and the dashboard's router over its store.
async fn named_workflow(
    db: &TestDb,
    name: &str,
    steps: &[&str],
) -> (porter::store::WorkflowInserted, axum::Router) {
    let mut wf = Workflow::new(name);
    for step in steps {
        wf = wf.step(Step::raw(*step, "noop", serde_json::json!({})));
    }
    let wf = db
        .store
        .workflow_insert(wf.params().unwrap())
        .await
        .unwrap();
    let app = router(surfaces::app_state(db.store.clone(), HttpConfig::default()).await);
    (wf, app)
}

backend_case! {
    /// A name holding a mark that reorders text (`\u{202e}exe.live` reads `evil.exe`) is shown
    /// with the mark written out, as the CLI shows it, on every page that names it: the
    /// workflows list, the workflow's page (its table, its graph) and the step's job page.
    async fn names_that_reorder_text_are_shown_with_the_mark_written_out(db: TestDb) {
        let (wf, app) = named_workflow(&db, "report \u{2067}daily", &["\u{202e}exe.live"]).await;
        let job = wf.steps[0].1.id;
        for (uri, shown) in [
            ("/dashboard/workflows".to_string(), "report \\u{2067}daily"),
            (format!("/dashboard/workflows/{}", wf.id), "\\u{202e}exe.live"),
            (format!("/dashboard/jobs/{job}"), "\\u{202e}exe.live"),
        ] {
            let (status, html, _) = send(&app, get(&uri)).await;
            assert_eq!(status, StatusCode::OK, "{uri}");
            assert!(html.contains(shown), "{uri}: {html}");
            assert!(!html.contains(['\u{202e}', '\u{2067}']), "{uri} holds the mark itself");
        }
        // What a form sends back keeps the mark itself: the bulk confirmation's filter (else
        // the action searched for the text `\u{202e}` and touched other jobs than it counted).
        let params = porter::store::JobInsertParams::new("noop", serde_json::json!({"s": "\u{202e}"}), Default::default()).unwrap();
        db.store.job_insert_many(vec![params]).await.unwrap();
        let (status, html, _) = send(&app, get("/dashboard/jobs/bulk?action=delete&q=%E2%80%AE")).await;
        assert_eq!(status, StatusCode::OK);
        assert!(html.contains("name=\"q\" value=\"\u{202e}\""), "{html}");
        let (_, html, _) = send(&app, get("/dashboard/jobs?q=%E2%80%AE")).await;
        assert!(html.contains("value=\"\u{202e}\""), "the filter form: {html}");
    }
}

backend_case! {
    /// Control characters in a name are written out (`\u{1b}`) as the CLI writes them, not
    /// put in the page raw (review of 4 Dec): a NUL or an ESC makes the HTML invalid, and two
    /// step names that differ only in a CR look the same. Line feeds and tabs stay: error
    /// texts and traces are shown as written.
    async fn control_characters_in_names_are_written_out(db: TestDb) {
        let (wf, app) =
            named_workflow(&db, "nightly\u{7}\u{1b}[2J", &["load\r", "load\u{7f}\u{9b}"]).await;
        let job = wf.steps[0].1.id;
        let keyed = porter::store::JobInsertParams::new(
            "noop",
            serde_json::json!({}),
            porter::InsertOpts {
                unique_key: Some("k\u{1b}\u{1}".to_string()),
                ..Default::default()
            },
        )
        .unwrap();
        let keyed = db.store.job_insert_many(vec![keyed]).await.unwrap()[0].job.id;
        for (uri, shown) in [
            ("/dashboard/workflows".to_string(), vec!["nightly\\u{7}\\u{1b}[2J"]),
            (format!("/dashboard/workflows/{}", wf.id), vec!["load\\u{d}", "load\\u{7f}\\u{9b}"]),
            (format!("/dashboard/jobs/{job}"), vec!["load\\u{d}", "nightly\\u{7}\\u{1b}[2J"]),
            (format!("/dashboard/jobs/{keyed}"), vec!["k\\u{1b}\\u{1}"]),
        ] {
            let (status, html, _) = send(&app, get(&uri)).await;
            assert_eq!(status, StatusCode::OK, "{uri}");
            for shown in shown {
                assert!(html.contains(shown), "{uri} shows {shown}: {html}");
            }
            let raw: Vec<char> = html
                .chars()
                .filter(|c| c.is_control() && !matches!(c, '\n' | '\t'))
                .collect();
            assert!(raw.is_empty(), "{uri} holds {raw:?} raw");
        }
    }
}

backend_case! {
    /// Step names and kinds another program wrote at any length are cut on the workflow's
    /// page, in its table and in its graph's node attributes and titles, as the list pages cut
    /// them (review of 7 Dec: names of 250,000 characters made a 125 MB page, each written
    /// three times whole).
    async fn a_workflows_page_cuts_names_of_any_length(db: TestDb) {
        let (wf, app) = named_workflow(&db, "long", &["a", "b", "c"]).await;
        let long = |c: char| c.to_string().repeat(100_000);
        for (i, (_, job)) in wf.steps.iter().enumerate() {
            let (step, kind) = (format!("{i}{}", long('s')), long('k'));
            common::raw_exec(&db, &format!("UPDATE porter_workflow_steps SET step = '{step}' WHERE job_id = {}", job.id)).await;
            common::raw_exec(&db, &format!("UPDATE porter_jobs SET kind = '{kind}', workflow_step = '{step}' WHERE id = {}", job.id)).await;
        }
        let (status, html, _) = send(&app, get(&format!("/dashboard/workflows/{}", wf.id))).await;
        assert_eq!(status, StatusCode::OK);
        assert!(html.len() < 60_000, "the page holds {} bytes", html.len());
        let cut = format!("0{}…", "s".repeat(254));
        assert!(html.contains(&format!("<td>{cut}</td>")), "the table's cell is cut");
        assert!(html.contains(&format!("data-step=\"{cut}\"")), "the node's attribute is cut");
        assert!(html.contains(&format!("<td>{}…</td>", "k".repeat(255))), "the kind's cell is cut");
    }
}

backend_case! {
    needs(porter_browser_tests, "PORTER_TEST_CHROMEDRIVER not set: browser case skipped");
    /// A step name of 255 characters with no break wraps in its cell, on the workflow's page
    /// and its job's: neither page is wider than the window (a review saw the steps table
    /// push the job and state columns off-screen).
    async fn browser_a_long_step_name_wraps_in_its_cell(db: TestDb) {
        let wf = db
            .store
            .workflow_insert(
                Workflow::new("long names")
                    .step(Step::raw("w".repeat(255), "noop", serde_json::json!({})))
                    .params()
                    .unwrap(),
            )
            .await
            .unwrap();
        let (base, stop) =
            serve(surfaces::app_state(db.store.clone(), HttpConfig::default()).await).await;
        let browser = Browser::start().await;
        let job = wf.steps[0].1.id;
        for (uri, text) in [
            (format!("{base}/dashboard/workflows/{}", wf.id), "Steps as a graph".to_string()),
            (format!("{base}/dashboard/jobs/{job}"), format!("Job {job}")),
        ] {
            browser.goto(&uri).await;
            browser.wait_for_text(&text).await;
            let widths = browser
                .eval("return [document.documentElement.scrollWidth, window.innerWidth];")
                .await;
            assert!(widths[0].as_i64().unwrap() <= widths[1].as_i64().unwrap(), "{uri}: {widths}");
        }
        drop(browser);
        stop.cancel();
    }
}

backend_case! {
    needs(porter_browser_tests, "PORTER_TEST_CHROMEDRIVER not set: browser case skipped");
    /// Each step's name and its job line fit the step's box in the graph, whatever the
    /// name's letters: until 7 Dec 22 characters were drawn whatever their width, and 22 `w`
    /// (or wide letters, as CJK's) ran past the box's edge.
    async fn browser_step_names_stay_inside_their_boxes_in_the_graph(db: TestDb) {
        let mut names = vec![
            "w".repeat(255),
            "W".repeat(60),
            "m".repeat(60),
            "\u{6f22}".repeat(60),
            "@".repeat(60),
            // Symbols as wide as capitals (a review of 7 Dec: 19 `=` ran 37 px past).
            "=".repeat(19),
            "#".repeat(60),
            "&~<>^+".repeat(10),
            "ship-the-orders-of-the-whole-week".to_string(),
            "a".to_string(),
        ];
        // And every printable ASCII character, 30 of it (a step for each).
        names.extend((b'!'..=b'~').map(|c| format!("{}-{}", c as char, (c as char).to_string().repeat(30))));
        // A chain, so that every step is drawn (a layer of its own each).
        let mut workflow = Workflow::new("names");
        for (i, name) in names.iter().enumerate() {
            let step = Step::raw(name.clone(), "noop", serde_json::json!({}));
            workflow.push(if i == 0 { step } else { step.after([names[i - 1].as_str()]) });
        }
        let wf = db.store.workflow_insert(workflow.params().unwrap()).await.unwrap();
        let (base, stop) =
            serve(surfaces::app_state(db.store.clone(), HttpConfig::default()).await).await;
        let browser = Browser::start().await;
        browser.goto(&format!("{base}/dashboard/workflows/{}", wf.id)).await;
        browser.wait_for_text("Steps as a graph").await;
        // Each node: its box's width, and each line's drawn width and left offset in the box.
        let nodes = browser
            .eval(
                "return [...document.querySelectorAll('#workflow-graph a.node')].map(a => {
                   const box = a.querySelector('rect').getBoundingClientRect();
                   return [a.dataset.step.length, box.width,
                           ...[...a.querySelectorAll('text')].map(t => {
                              const b = t.getBoundingClientRect();
                              return [b.x - box.x, b.width];
                           })];
                 });",
            )
            .await;
        let nodes = nodes.as_array().unwrap();
        assert_eq!(nodes.len(), names.len(), "{nodes:?}");
        for node in nodes {
            let width = node[1].as_f64().unwrap();
            for line in &node.as_array().unwrap()[2..] {
                let (left, drawn) = (line[0].as_f64().unwrap(), line[1].as_f64().unwrap());
                assert!(
                    left >= 0.0 && left + drawn <= width,
                    "a line of {node:?} is {drawn:.0} px from {left:.0}, in a box of {width:.0}"
                );
            }
        }
        drop(browser);
        stop.cancel();
    }
}

backend_case! {
    /// A workflow of 10,000 steps (one root, a fan-out) draws a bounded graph and pages its
    /// table.
    async fn a_large_workflow_draws_a_bounded_graph_and_pages_its_table(db: TestDb) {
        let mut workflow = Workflow::new("fan-out");
        workflow.push(Step::raw("root", "noop", serde_json::json!({})));
        for i in 1..10_000 {
            workflow.push(Step::raw(format!("child-{i}"), "noop", serde_json::json!({})).after(["root"]));
        }
        let wf = db.store.workflow_insert(workflow.params().unwrap()).await.unwrap();
        let app = router(surfaces::app_state(db.store.clone(), HttpConfig::default()).await);
        let (status, html, _) = send(&app, get(&format!("/dashboard/workflows/{}", wf.id))).await;
        assert_eq!(status, StatusCode::OK);
        let svg = between(&html, r#"<svg id="workflow-graph""#, "</svg>");
        assert_eq!(svg.matches(r#"<a class="node""#).count(), 16, "the root and 15 children");
        assert!(svg.contains(r#"data-hidden="184""#), "a box counts the other drawn children");
        assert!(html.contains("The graph shows the first 200 of 10000 steps"), "{}", between(&html, "<section id=\"graph\">", "<svg"));
        let table = between(&html, r#"<table id="steps-table">"#, "</table>");
        assert_eq!(table.matches(r#"<tr class="step""#).count(), 100);
        assert!(html.contains("Page 1 of 100"));
        assert!(html.len() < 100_000, "{} bytes", html.len());
        let (_, html, _) = send(&app, get(&format!("/dashboard/workflows/{}?page=100", wf.id))).await;
        assert!(html.contains("child-9999") && html.contains("Previous steps") && !html.contains("Next steps"));
        // Read a page at a time, its steps still name their parent (on page 1) by step.
        let table = between(&html, "<table id=\"steps-table\">", "</table>");
        assert_eq!(table.matches("<td>root</td>").count(), 100, "{table}");
        assert!(html.contains("Page 100 of 100"));
        // A page past the last is not shown as an empty page 101 of 100.
        let (status, html, _) = send(&app, get(&format!("/dashboard/workflows/{}?page=101", wf.id))).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{html}");
        assert!(html.contains("100 pages"), "{html}");
        assert!(!html.contains("Page 101"), "{html}");
    }
}

backend_case! {
    needs(porter_browser_tests, "PORTER_TEST_CHROMEDRIVER not set: browser case skipped");
    async fn browser_workflow_page_shows_the_graph_links_nodes_and_cancels(db: TestDb) {
        let wf = diamond_in_four_states(&db).await;
        let (base, stop) =
            serve(surfaces::app_state(db.store.clone(), HttpConfig::default()).await).await;
        let browser = Browser::start().await;

        browser.goto(&format!("{base}/dashboard/workflows")).await;
        browser.wait_for_text("nightly report").await;
        browser.screenshot("workflows").await;
        browser.click(&browser.find(&format!("#workflow-{} a", wf.id)).await).await;
        browser.wait_for_text("Steps as a graph").await;
        for step in ["a", "b", "c", "d"] {
            let node = browser.find(&format!("#workflow-graph a.node[data-step='{step}']")).await;
            assert_eq!(
                browser.attribute(&node, "data-job-id").await,
                Some(wf.job(step).unwrap().id.to_string())
            );
        }
        browser.screenshot("workflow").await;

        // A node leads to its job's page, which leads back.
        let d = wf.job("d").unwrap().id;
        browser.click(&browser.find("#workflow-graph a.node[data-step='d'] rect").await).await;
        let text = browser.wait_for_text(&format!("Job {d}")).await;
        assert!(text.contains("step d of workflow"), "{text}");
        browser.click(&browser.find("#workflow a").await).await;
        browser.wait_for_text("Steps as a graph").await;

        browser.click(&browser.find("#workflow button.cancel").await).await;
        browser.wait_for_text("Workflow cancelled: 2 steps cancelled, 1 running steps asked to stop.").await;
        assert_eq!(state_of(&db, d).await, JobState::Cancelled);
        assert_eq!(state_of(&db, wf.job("c").unwrap().id).await, JobState::Cancelled);
        let node = browser.find("#workflow-graph a.node[data-step='d']").await;
        assert_eq!(browser.attribute(&node, "data-state").await.as_deref(), Some("cancelled"));

        drop(browser);
        stop.cancel();
    }
}

backend_case! {
    /// A queue name is the database's text (another program can write any): one porter
    /// refuses (here `&`, `#`, `/` and a space) gets no link or pause button on the queues page
    /// and the job page (they were percent-encoded, and led to the filter's and the pause's
    /// refusal: see `names_porter_refuses_are_shown_without_links_that_would_refuse_them`); the
    /// page text stays HTML-escaped, and the filter asked for it directly refuses it.
    async fn queue_names_in_links_are_percent_encoded(db: TestDb) {
        let name = "a&state=completed#x/ y";
        common::raw_exec(
            &db,
            &format!("INSERT INTO porter_jobs (kind, queue, args) VALUES ('noop', '{name}', '{{}}')"),
        )
        .await;
        let id = surfaces::all_jobs(db.store.as_ref()).await[0].id;
        let state = surfaces::app_state(db.store.clone(), HttpConfig::default()).await;
        let encoded = "a%26state%3Dcompleted%23x%2F%20y";
        let (status, html) = get_page(&state, "/dashboard/queues").await;
        assert_eq!(status, StatusCode::OK);
        assert!(!html.contains("/dashboard/jobs?queue=a"), "{html}");
        assert!(!html.contains("/dashboard/queues/a"), "{html}");
        assert!(html.contains("a&amp;state=completed#x/ y"), "{html}");
        let (status, html) = get_page(&state, &format!("/dashboard/jobs/{id}")).await;
        assert_eq!(status, StatusCode::OK);
        assert!(!html.contains("/dashboard/jobs?queue=a"), "{html}");
        assert!(html.contains("a&amp;state=completed#x/ y"), "{html}");
        // The link's filter is the whole name (which the job filter refuses as no queue name
        // porter writes, rather than listing every completed job).
        let (status, html) = get_page(&state, &format!("/dashboard/jobs?queue={encoded}")).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{html}");
        assert!(html.contains("a&amp;state=completed#x/ y"), "{html}");
    }
}

backend_case! {
    /// A queue's limits show on the overview and on the queues page, as the README says
    /// (until 6 Dec only the overview had the column).
    async fn both_queue_tables_show_each_queues_limits(db: TestDb) {
        surfaces::insert(db.store.as_ref(), "noop", "default").await;
        db.store
            .queue_limit_set(porter::store::QueueLimitParams {
                queue: "default".into(),
                clear: false,
                set: porter::store::QueueLimits {
                    concurrency: Some(2),
                    rate: Some(porter::store::Rate { limit: 5, period_ms: 1000 }),
                    ..Default::default()
                },
            })
            .await
            .unwrap();
        let state = surfaces::app_state(db.store.clone(), HttpConfig::default()).await;
        for page in ["/", "/dashboard/queues"] {
            let (status, html) = get_page(&state, page).await;
            assert_eq!(status, StatusCode::OK);
            assert!(
                html.contains(r#"<td class="limits">concurrency=2 rate=5/1s</td>"#),
                "{page}: {html}"
            );
        }
    }
}

backend_case! {
    /// The batch pages: the list (mode, jobs, members by state, the callback linked to its
    /// job's page) and one batch; unknown and malformed ids; a callback kind another program
    /// wrote as markup is escaped.
    async fn batch_pages_list_and_show_batches(db: TestDb) {
        let client = porter::Client::new(db.store.clone());
        let mut batch = porter::batch::Batch::new();
        for i in 0..3 {
            batch.push_params(JobInsertParams::new("noop", serde_json::json!({ "i": i }), InsertOpts::default()).unwrap());
        }
        let batch = batch.callback_raw("report", serde_json::json!({}), InsertOpts::default(), true);
        let b = client.insert_batch(batch).await.unwrap();
        let cb = b.callback.id;
        let app = router(surfaces::app_state(db.store.clone(), HttpConfig::default()).await);

        let (status, html, _) = send(&app, get("/dashboard/batches")).await;
        assert_eq!(status, StatusCode::OK, "{html}");
        assert!(html.contains(r#"<a href="/dashboard/batches">Batches</a>"#), "a nav link: {html}");
        let row = between(&html, &format!(r#"<tr id="batch-{}""#, b.id), "</tr>");
        assert!(row.contains(&format!(r#"href="/dashboard/batches/{}""#, b.id)), "{row}");
        assert!(row.contains("on_success") && row.contains(r#"<td class="n">3</td>"#), "{row}");
        assert!(row.contains(r#"data-state="available""#) && row.contains("available 3"), "{row}");
        assert!(row.contains(&format!(r#"href="/dashboard/jobs/{cb}""#)) && row.contains(r#"data-state="pending""#), "{row}");

        let (status, html, _) = send(&app, get(&format!("/dashboard/batches/{}", b.id))).await;
        assert_eq!(status, StatusCode::OK, "{html}");
        assert!(html.contains(r#"<td id="mode">on_success</td>"#) && html.contains(r#"<td id="members">3</td>"#), "{html}");
        assert!(html.contains(&format!(r#"href="/dashboard/jobs/{cb}""#)), "{html}");
        // The callback's and a member's pages link to the batch.
        let member = db.store.job_list(Default::default()).await.unwrap().into_iter().find(|j| j.kind == "noop").unwrap();
        for (job, said) in [(cb, "the callback of "), (member.id, "a member of ")] {
            let (_, html, _) = send(&app, get(&format!("/dashboard/jobs/{job}"))).await;
            let dd = between(&html, r#"<dd id="batch">"#, "</dd>");
            assert!(dd.contains(said) && dd.contains(&format!(r#"href="/dashboard/batches/{}""#, b.id)), "{job}: {dd}");
        }

        for (uri, want) in [
            ("/dashboard/batches/999999", StatusCode::NOT_FOUND),
            ("/dashboard/batches/x", StatusCode::BAD_REQUEST),
            ("/dashboard/batches?before_id=x", StatusCode::BAD_REQUEST),
        ] {
            let (status, _, _) = send(&app, get(uri)).await;
            assert_eq!(status, want, "{uri}");
        }
        let (status, html, _) = send(&app, get(&format!("/dashboard/batches?before_id={}", b.id))).await;
        assert_eq!(status, StatusCode::OK);
        assert!(html.contains("No batches."), "{html}");

        // With a token, neither page shows anything without it.
        let guarded = router(surfaces::app_state(db.store.clone(), HttpConfig { admin_token: Some(TOKEN.to_string()), ..HttpConfig::default() }).await);
        for uri in ["/dashboard/batches".to_string(), format!("/dashboard/batches/{}", b.id)] {
            let (status, html, _) = send(&guarded, get(&uri)).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{uri}");
            assert!(!html.contains("<table"), "{uri}: {html}");
        }

        common::raw_exec(&db, &format!("UPDATE porter_jobs SET kind = '<script>alert(1)</script>\u{202e}exe.txt' WHERE id = {cb}")).await;
        for uri in ["/dashboard/batches".to_string(), format!("/dashboard/batches/{}", b.id)] {
            let (status, html, _) = send(&app, get(&uri)).await;
            assert_eq!(status, StatusCode::OK, "{uri}");
            assert!(!html.contains("<script>alert") && html.contains("&lt;script&gt;alert(1)"), "{uri}: {html}");
            assert!(!html.contains('\u{202e}') && html.contains("\u{fffd}exe.txt"), "no reordering mark: {uri}: {html}");
        }
    }
}

backend_case! {
    /// The overview and the queues page show a bounded number of queues, as every listing is
    /// bounded: any caller of the admin API can name a new queue with each job, and 100,000 of
    /// them made pages of megabytes. The overview shows the first 50 by name and links to the
    /// queues page, which shows 100 at a time with a link to the next ones: every queue is
    /// reachable, once. The overview's jobs nobody will run are bounded alike: the first 50
    /// pairs of queue and kind, and a count of the others.
    async fn the_overview_and_the_queues_page_show_queues_a_page_at_a_time(db: TestDb) {
        let names: Vec<String> = (0..130).map(|i| format!("q{i:03}")).collect();
        let jobs: Vec<porter::store::JobInsertParams> = names
            .iter()
            .map(|q| {
                porter::store::JobInsertParams::new(
                    "noop",
                    serde_json::json!({}),
                    InsertOpts { queue: Some(q.clone()), ..Default::default() },
                )
                .unwrap()
            })
            .collect();
        db.store.job_insert_many(jobs).await.unwrap();
        db.store.queue_pause("q120").await.unwrap();
        let app = router(surfaces::app_state(db.store.clone(), HttpConfig::default()).await);
        let rows = |html: &str| -> Vec<String> {
            html.match_indices("data-queue=\"q")
                .map(|(at, _)| html[at + 12..at + 16].to_string())
                .collect()
        };

        let (status, html, _) = send(&app, get("/")).await;
        assert_eq!(status, StatusCode::OK);
        let counts = between(&html, "id=\"counts\"", "</section>");
        assert_eq!(rows(counts), names[..50].to_vec(), "the first 50 queues by name");
        assert!(counts.contains("href=\"/dashboard/queues?after=q049\""), "{counts}");
        // No worker serves them: so are the pairs of jobs nobody will run (review of 6 Dec:
        // every pair was listed, 4.8 MB for 20,000 queues, reloaded every 5 s).
        let unserved = between(&html, "id=\"unserved\"", "</section>");
        assert_eq!(rows(unserved), names[..50].to_vec(), "the first 50 pairs");
        assert!(unserved.contains("and 80 more queue and kind pairs"), "{unserved}");

        let mut seen = Vec::new();
        let mut uri = "/dashboard/queues".to_string();
        for _ in 0..5 {
            let (status, html, _) = send(&app, get(&uri)).await;
            assert_eq!(status, StatusCode::OK, "{uri}");
            let table = between(&html, "id=\"queues\"", "</table>");
            let shown: Vec<String> = rows(table).into_iter().step_by(2).collect();
            assert!(shown.len() <= 100, "{uri}: {} queues", shown.len());
            seen.extend(shown);
            match html.find("id=\"next-queues\"") {
                Some(at) => {
                    let href = &html[at..];
                    let start = href.find("href=\"").unwrap() + 6;
                    uri = href[start..start + href[start..].find('"').unwrap()].replace("&amp;", "&");
                }
                None => break,
            }
        }
        assert_eq!(seen, names, "every queue once, in name order");
        let (_, html, _) = send(&app, get("/dashboard/queues?after=q119")).await;
        assert!(html.contains("data-queue=\"q120\" data-paused=\"true\""), "{html}");
    }
}

backend_case! {
    /// A queue or kind another program named in a way porter refuses (`Bad Queue`) is shown
    /// as text, without the filter link, the pause button and the unserved-jobs link, which
    /// each led to an error page: the filter and the pause refuse such a name.
    async fn names_porter_refuses_are_shown_without_links_that_would_refuse_them(db: TestDb) {
        common::raw_exec(
            &db,
            "INSERT INTO porter_jobs (kind, queue, args, state) VALUES ('Bad Kind', 'Bad Queue', '{}', 'available')",
        )
        .await;
        surfaces::insert(db.store.as_ref(), "noop", "mail").await;
        let app = router(surfaces::app_state(db.store.clone(), HttpConfig::default()).await);
        let id = db
            .store
            .job_list(porter::store::JobListParams::default())
            .await
            .unwrap()
            .into_iter()
            .find(|j| j.queue == "Bad Queue")
            .unwrap()
            .id;
        for uri in ["/dashboard/queues".to_string(), "/".to_string(), format!("/dashboard/jobs/{id}")] {
            let (status, html, _) = send(&app, get(&uri)).await;
            assert_eq!(status, StatusCode::OK, "{uri}");
            assert!(html.contains("Bad Queue"), "{uri} names it: {html}");
            for link in ["queue=Bad", "/dashboard/queues/Bad", "kind=Bad"] {
                assert!(!html.contains(link), "{uri} links {link}: {html}");
            }
        }
        let (_, html, _) = send(&app, get("/dashboard/queues")).await;
        assert!(html.contains("/dashboard/jobs?queue=mail"), "a valid name keeps its link");
        assert!(html.contains("/dashboard/queues/mail/pause"), "and its button");
    }
}

backend_case! {
    /// A page whose read fails in the database says only that it failed: the database's own
    /// words (table names, the query's text) stay in the server's log, as the admin API's do.
    /// Review of 6 Dec: the overview, the jobs page, the bulk confirmation and a job's page
    /// printed the driver's message (`relation "porter_jobs" does not exist`) and logged
    /// nothing.
    async fn a_page_whose_read_fails_keeps_the_databases_words_to_the_log(db: TestDb) {
        let job = surfaces::insert(db.store.as_ref(), "noop", "mail").await;
        let app = router(surfaces::app_state(db.store.clone(), HttpConfig::default()).await);
        common::raw_exec(&db, "ALTER TABLE porter_jobs RENAME TO porter_jobs_away").await;
        for uri in [
            "/".to_string(),
            "/dashboard/jobs?kind=noop".to_string(),
            format!("/dashboard/jobs/{}", job.id),
        ] {
            let (status, html, _) = send(&app, get(&uri)).await;
            assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{uri}: {html}");
            assert!(html.contains("internal error (see the server log)"), "{uri}: {html}");
            assert!(!html.contains("porter_jobs"), "{uri}: {html}");
        }
        common::raw_exec(&db, "ALTER TABLE porter_jobs_away RENAME TO porter_jobs").await;
    }
}
