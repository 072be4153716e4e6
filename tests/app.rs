//! The tablo app's store ([`porter::app::store::TabloStore`]): every behaviour written once
//! and run on SQLite (always) and on PostgreSQL (when PORTER_TEST_DATABASE_URL is set), each
//! case on its own fresh database, beside the queue it uses through its public API.

mod common;

use std::time::Duration;

use chrono::Utc;
use porter::app::store::*;
use porter::store::Store;
use porter::{Backend, JobState};

use crate::common::{raw_exec, TestDb};

async fn total(s: &Store) -> i64 {
    s.job_counts().await.unwrap().total.values().sum()
}

backend_case! {
    /// An upload is no file until it commits; one never committed within the grace is found
    /// as abandoned, can no longer commit, and its row goes only while it stays abandoned.
    async fn tablo_file_uploads_commit_once_or_are_abandoned(db: TestDb) {
        let clock = porter::store::clock::Clock::new();
        let core = porter::store::open_with_clock(&db.url, clock.clone())
            .await
            .unwrap();
        clock.set(core.now().await.unwrap());
        let s = &*open(core).await.unwrap();
        let tablo = s.tablo_insert("t").await.unwrap();
        let upload = |n: u32| TabloFileRow {
            id: uuid::Uuid::new_v4(),
            tablo_id: tablo.id,
            s3_key: format!("tablos/{}/{n}", tablo.id),
            size: 3,
            created_at: Utc::now(),
        };
        let hour = Duration::from_secs(3600);
        let (done, dropped) = (upload(1), upload(2));
        s.tablo_file_upload_begin(done.clone()).await.unwrap();
        s.tablo_file_upload_begin(dropped.clone()).await.unwrap();
        assert!(
            s.tablo_file_list(tablo.id).await.unwrap().is_empty(),
            "uploads are no files yet"
        );
        let commit = |id| TabloFileUploadCommitParams { id, grace: hour };
        let file = s
            .tablo_file_upload_commit(commit(done.id))
            .await
            .unwrap()
            .expect("committed");
        assert_eq!(
            (file.id, file.s3_key.as_str(), file.size),
            (done.id, done.s3_key.as_str(), 3)
        );
        assert_eq!(
            s.tablo_file_list(tablo.id).await.unwrap(),
            vec![file.clone()]
        );
        assert_eq!(
            s.tablo_file_upload_commit(commit(done.id)).await.unwrap(),
            None,
            "once"
        );

        let abandoned = |older_than| TabloFileUploadsAbandonedParams {
            older_than,
            after: None,
            limit: 10,
        };
        assert!(s
            .tablo_file_uploads_abandoned(abandoned(hour))
            .await
            .unwrap()
            .is_empty());
        let delete = |ids: Vec<uuid::Uuid>| TabloFileUploadDeleteParams {
            ids,
            older_than: hour,
        };
        assert_eq!(
            s.tablo_file_upload_delete_many(delete(vec![dropped.id]))
                .await
                .unwrap(),
            0,
            "not abandoned yet"
        );
        clock.advance(hour + Duration::from_secs(1));
        let found = s
            .tablo_file_uploads_abandoned(abandoned(hour))
            .await
            .unwrap();
        assert_eq!(
            found.iter().map(|f| f.id).collect::<Vec<_>>(),
            vec![dropped.id]
        );
        assert_eq!(found[0].s3_key, dropped.s3_key);
        assert_eq!(
            s.tablo_file_upload_commit(commit(dropped.id))
                .await
                .unwrap(),
            None,
            "too late to commit"
        );
        assert_eq!(
            s.tablo_file_upload_delete_many(delete(vec![dropped.id, done.id]))
                .await
                .unwrap(),
            1
        );
        assert!(s
            .tablo_file_uploads_abandoned(abandoned(hour))
            .await
            .unwrap()
            .is_empty());
        assert_eq!(s.tablo_file_list(tablo.id).await.unwrap(), vec![file]);
    }
}

backend_case! {
    async fn tablo_files_and_orphans(db: TestDb) {
        let s = &*db.tablos().await;
        let live = s.tablo_insert("live").await.unwrap();
        let gone = s.tablo_insert("gone").await.unwrap();
        assert_eq!(s.tablo_get(live.id).await.unwrap().unwrap().name, "live");
        let file = |t: uuid::Uuid, key: &str| TabloFileRow {
            id: uuid::Uuid::new_v4(),
            tablo_id: t,
            s3_key: key.into(),
            size: 3,
            created_at: Utc::now(),
        };
        for i in 0..5 {
            s.tablo_file_insert(file(gone.id, &format!("tablos/{}/{i}", gone.id)))
                .await
                .unwrap();
        }
        s.tablo_file_insert(file(live.id, "tablos/live/a"))
            .await
            .unwrap();
        assert_eq!(s.tablo_file_list(gone.id).await.unwrap().len(), 5);
        assert!(s
            .tablo_file_orphans(TabloFileOrphansParams {
                after: None,
                tablo_id: None,
                limit: 100
            })
            .await
            .unwrap()
            .is_empty());
        let r = s
            .tablo_delete_enqueue(gone.id)
            .await
            .unwrap()
            .expect("deleted");
        assert_eq!(r.job.kind, "orphan_file_cleanup");
        assert_eq!(r.job.args, serde_json::json!({"tablo_id": gone.id}));
        assert!(
            s.tablo_delete_enqueue(gone.id).await.unwrap().is_none(),
            "already gone"
        );
        assert!(s.tablo_get(gone.id).await.unwrap().is_none());
        let p1 = s
            .tablo_file_orphans(TabloFileOrphansParams {
                after: None,
                tablo_id: None,
                limit: 3,
            })
            .await
            .unwrap();
        let p2 = s
            .tablo_file_orphans(TabloFileOrphansParams {
                after: Some(p1[2].id),
                tablo_id: None,
                limit: 3,
            })
            .await
            .unwrap();
        assert_eq!((p1.len(), p2.len()), (3, 2));
        assert!(p1.iter().chain(&p2).all(|f| f.tablo_id == gone.id));
        assert!(s
            .tablo_file_orphans(TabloFileOrphansParams {
                after: None,
                tablo_id: Some(live.id),
                limit: 9
            })
            .await
            .unwrap()
            .is_empty());
        let mut ids: Vec<_> = p1.iter().map(|f| f.id).collect();
        ids.push(s.tablo_file_list(live.id).await.unwrap()[0].id);
        assert_eq!(
            s.tablo_file_delete_many(ids).await.unwrap(),
            3,
            "a live tablo's file is never deleted"
        );
        assert_eq!(s.tablo_file_list(live.id).await.unwrap().len(), 1);
        assert_eq!(s.tablo_file_list(gone.id).await.unwrap().len(), 2);
    }
}

backend_case! {
    async fn tablo_delete_enqueue_is_one_transaction(db: TestDb) {
        let (core, s) = (&*db.store, &*db.tablos().await);
        let t = s.tablo_insert("t").await.unwrap();
        // Make the job insert fail for real: a unique key held by an unfinished job cannot
        // fail, so use a trigger that refuses the cleanup job.
        raw_exec(&db, TRIGGER_SQL[backend_index(&db)]).await;
        assert!(s.tablo_delete_enqueue(t.id).await.is_err());
        assert!(
            s.tablo_get(t.id).await.unwrap().is_some(),
            "rolled back: the tablo is still there"
        );
        assert_eq!(total(core).await, 0, "and no job");
        raw_exec(&db, DROP_TRIGGER_SQL[backend_index(&db)]).await;
        let r = s
            .tablo_delete_enqueue(t.id)
            .await
            .unwrap()
            .expect("deleted");
        assert!(s.tablo_get(t.id).await.unwrap().is_none());
        assert_eq!(total(core).await, 1);
        assert_eq!(
            core.job_get(r.job.id).await.unwrap().unwrap().state,
            JobState::Available,
            "committed with the delete"
        );
    }
}

const TRIGGER_SQL: [&str; 2] = [
    "CREATE TRIGGER refuse BEFORE INSERT ON porter_jobs WHEN NEW.kind = 'orphan_file_cleanup' BEGIN SELECT RAISE(ABORT, 'refused by test trigger'); END",
    "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN IF NEW.kind = 'orphan_file_cleanup' THEN RAISE EXCEPTION 'refused by test trigger'; END IF; RETURN NEW; END $$; CREATE TRIGGER refuse BEFORE INSERT ON porter_jobs FOR EACH ROW EXECUTE FUNCTION refuse()",
];

const DROP_TRIGGER_SQL: [&str; 2] = ["DROP TRIGGER refuse", "DROP TRIGGER refuse ON porter_jobs"];

fn backend_index(db: &TestDb) -> usize {
    match db.store.backend() {
        Backend::Sqlite => 0,
        Backend::Postgres => 1,
    }
}

backend_case! {
    /// A queue store's database has none of the app's tables; the app's open migrates them
    /// from its own set (recorded as `tablo` in porter_migrations), once.
    async fn the_app_migrates_its_own_tables(db: TestDb) {
        let s = from_core(db.store.clone());
        assert!(
            s.tablo_get(uuid::Uuid::new_v4()).await.is_err(),
            "opening the queue created no tablo table"
        );
        let s = open(db.store.clone()).await.unwrap();
        assert!(s.tablo_get(uuid::Uuid::new_v4()).await.unwrap().is_none());
        let t = s.tablo_insert("kept").await.unwrap();
        // Again (another process starting): nothing changes.
        let s = open(db.reopen().await).await.unwrap();
        assert_eq!(s.tablo_get(t.id).await.unwrap(), Some(t));
        let recorded = db.raw_count(
            "SELECT count(*) FROM porter_migrations WHERE set_name = 'tablo'",
        )
        .await;
        assert_eq!(recorded, MIGRATIONS.migrations.len() as i64);
    }
}

/// The app's migration set is numbered like every set: ascending from 1.
#[test]
fn the_app_set_is_in_ascending_version_order_from_1() {
    let set = porter::app::store::MIGRATIONS;
    let versions: Vec<i64> = set.migrations.iter().map(|m| m.version).collect();
    let expected: Vec<i64> = (1..=set.migrations.len() as i64).collect();
    assert_eq!(versions, expected);
    assert_eq!(set.name, "tablo");
}
