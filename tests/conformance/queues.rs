//! Queues: pause, resume, list.

use porter::job::InsertOpts;
use porter::Error;

use crate::{backend_case, insert, job_with};

backend_case! {
    async fn queue_pause_resume_list(db: TestDb) {
        let s = &*db.store;
        insert(
            s,
            job_with(
                "noop",
                InsertOpts {
                    queue: Some("mail".into()),
                    ..Default::default()
                },
            ),
        )
        .await;
        s.queue_pause("reports").await.unwrap();
        let qs = s.queue_list().await.unwrap();
        assert_eq!(
            qs.iter()
                .map(|q| (q.name.as_str(), q.paused_at.is_some()))
                .collect::<Vec<_>>(),
            vec![("mail", false), ("reports", true)]
        );
        s.queue_resume("reports").await.unwrap();
        assert!(s
            .queue_list()
            .await
            .unwrap()
            .iter()
            .all(|q| q.paused_at.is_none()));
        assert!(matches!(
            s.queue_pause("Bad Queue").await,
            Err(Error::Invalid { .. })
        ));
        assert!(matches!(
            s.queue_resume("x';--").await,
            Err(Error::Invalid { .. })
        ));
        assert_eq!(s.queue_list().await.unwrap().len(), 2);
        // Resuming a queue porter has never seen (a typo) changes nothing: it made a record
        // of the name, listed for good (found by review). A queue that has jobs but no record
        // is not paused: nothing to do there either.
        s.queue_resume("mial").await.unwrap();
        s.queue_resume("mail").await.unwrap();
        let names: Vec<String> = s.queue_list().await.unwrap().into_iter().map(|q| q.name).collect();
        assert_eq!(names, ["mail", "reports"]);
        assert_eq!(db.raw_count("SELECT count(*) FROM porter_queues WHERE name IN ('mial', 'mail')").await, 0);
    }
}

backend_case! {
    /// What `/metrics` reports per queue: depth counts the jobs due to run (available, and
    /// scheduled or retryable ones whose time has come; not running, not future ones), lag is
    /// how long the oldest of them has been due, by the database clock.
    async fn queue_lag_is_the_age_of_the_oldest_due_job(db: TestDb) {
        use std::time::Duration;
        let clock = porter::store::clock::Clock::new();
        let s = porter::store::open_with_clock(&db.url, clock.clone())
            .await
            .unwrap();
        let real = s.now().await.unwrap();
        let start = chrono::DateTime::from_timestamp_millis(real.timestamp_millis()).unwrap()
            + chrono::Duration::days(365);
        clock.set(start);
        let in_queue = |queue: &str, delay: Option<Duration>| {
            job_with(
                "noop",
                InsertOpts {
                    queue: Some(queue.into()),
                    schedule_in: delay,
                    ..Default::default()
                },
            )
        };
        for _ in 0..3 {
            insert(&s, in_queue("default", None)).await;
        }
        insert(&s, in_queue("mail", Some(Duration::from_secs(60)))).await;
        insert(&s, in_queue("mail", Some(Duration::from_secs(3600)))).await;
        insert(&s, in_queue("later", Some(Duration::from_secs(3600)))).await;
        let claimed = s
            .job_claim(crate::claim("default", &["noop"], 1, crate::W))
            .await
            .unwrap();
        assert_eq!(claimed.len(), 1);
        clock.set(start + chrono::Duration::seconds(90));
        let mut lag = s.queue_lag().await.unwrap();
        lag.sort_by(|a, b| a.queue.cmp(&b.queue));
        let seen: Vec<(&str, i64, Duration)> = lag
            .iter()
            .map(|q| (q.queue.as_str(), q.depth, q.lag))
            .collect();
        assert_eq!(
            seen,
            vec![
                ("default", 2, Duration::from_secs(90)),
                ("mail", 1, Duration::from_secs(30)),
            ]
        );
    }
}

backend_case! {
    /// Queues are listed a page at a time, by name after a cursor: queues that only jobs name,
    /// queues that only a pause or a limit names, and queues that both name, each once.
    async fn queues_are_listed_a_page_at_a_time_by_name(db: TestDb) {
        let s = &*db.store;
        let mut names = Vec::new();
        for i in 0..12 {
            let name = format!("q{i:02}");
            match i % 3 {
                0 => {
                    insert(s, job_with("noop", InsertOpts { queue: Some(name.clone()), ..Default::default() })).await;
                }
                1 => s.queue_pause(&name).await.unwrap(),
                _ => {
                    insert(s, job_with("noop", InsertOpts { queue: Some(name.clone()), ..Default::default() })).await;
                    s.queue_pause(&name).await.unwrap();
                }
            }
            names.push(name);
        }
        let mut seen = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = s.queue_page(after.clone(), 5).await.unwrap();
            assert!(page.len() <= 5);
            seen.extend(page.iter().map(|q| q.name.clone()));
            match page.last() {
                Some(last) if page.len() == 5 => after = Some(last.name.clone()),
                _ => break,
            }
        }
        assert_eq!(seen, names, "each queue once, in name order");
        let rest = s.queue_page(Some("q09".into()), 1000).await.unwrap();
        assert_eq!(
            rest.iter().map(|q| q.name.as_str()).collect::<Vec<_>>(),
            vec!["q10", "q11"]
        );
        assert_eq!(s.queue_list().await.unwrap().len(), 12, "the whole list reads every page");
    }
}

backend_case! {
    /// Queues (and the jobs nobody will run) are listed in the order of their names' bytes on
    /// both backends, and paged by it, whatever collation PostgreSQL's database has. Review of
    /// 6 Dec: under a database created with an en-US collation (the usual default), PostgreSQL
    /// listed `a_c, a-b-c, a-z, a.b, a0, aa, ab` where SQLite lists `a-b-c, a-z, a.b, a0, a_c,
    /// aa, ab`, and a page after `a0` left `a_c` out there, where SQLite gave it. Here the
    /// columns are given that collation as such a database gives them.
    async fn queues_are_listed_in_byte_order_whatever_the_collation(db: TestDb) {
        let s = &*db.store;
        let names = ["a-z", "a.b", "a_c", "ab", "a0", "a-b-c", "aa"];
        for q in names {
            insert(s, job_with("noop", InsertOpts { queue: Some(q.into()), ..Default::default() })).await;
        }
        s.queue_pause("a_c").await.unwrap();
        if db.sqlite_path().is_none() {
            crate::raw_exec(
                &db,
                "ALTER TABLE porter_queues ALTER COLUMN name TYPE text COLLATE \"en-US-x-icu\";
                 ALTER TABLE porter_jobs ALTER COLUMN queue TYPE text COLLATE \"en-US-x-icu\";
                 ALTER TABLE porter_jobs ALTER COLUMN kind TYPE text COLLATE \"en-US-x-icu\"",
            )
            .await;
        }
        let mut want: Vec<&str> = names.to_vec();
        want.sort();
        let listed: Vec<String> = s.queue_list().await.unwrap().into_iter().map(|q| q.name).collect();
        assert_eq!(listed, want);
        let after: Vec<String> =
            s.queue_page(Some("a0".into()), 10).await.unwrap().into_iter().map(|q| q.name).collect();
        assert_eq!(after, want[want.iter().position(|n| *n == "a0").unwrap() + 1..].to_vec());
        let unserved: Vec<String> = s.job_unserved().await.unwrap().into_iter().map(|u| u.queue).collect();
        assert_eq!(unserved, want);
    }
}
