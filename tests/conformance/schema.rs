//! The schema: a database newer than the binary is refused; SQLite runs in WAL mode.

use porter::store::*;
use porter::Error;

use crate::{backend_case, raw_exec};

backend_case! {
    async fn database_newer_than_binary_is_refused(db: TestDb) {
        let sql = match db.store.backend() {
            // porter's own bookkeeping, on both backends (see tests/migrations.rs).
            Backend::Sqlite => "INSERT INTO porter_migrations (set_name, version, name, applied_at) VALUES ('porter', 99, 'from the future', 'x')",
            Backend::Postgres => "INSERT INTO porter_migrations (set_name, version, name, applied_at) VALUES ('porter', 99, 'from the future', now())",
        };
        raw_exec(&db, sql).await;
        match porter::store::open(&db.url).await {
            Err(Error::DatabaseTooNew { found, known, .. }) => assert!(found == 99 && known < 99),
            Err(e) => panic!("wrong error: {e}"),
            Ok(_) => panic!("a newer database must be refused"),
        }
    }
}

backend_case! {
    async fn journal_mode_is_wal_on_sqlite(db: TestDb) {
        // The journal mode is the file's: a connection of our own reads what the store set.
        if db.store.backend() == Backend::Sqlite {
            let path = db.url.strip_prefix("sqlite://").expect("a sqlite:// URL");
            let conn = rusqlite::Connection::open(path).unwrap();
            let mode: String = conn
                .query_row("PRAGMA journal_mode", [], |r| r.get(0))
                .unwrap();
            assert_eq!(mode, "wal");
        }
    }
}
