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
    }
}
