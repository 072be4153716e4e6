//! The `porter` binary against hostile input, on both backends (`sqlite::case`,
//! `postgres::case`), run as a user runs it: credentials in database URLs never reach output
//! or logs, listings stay bounded in bytes, args over the maximum are refused (and larger
//! ones can come from a file or stdin), `--count` with large args inserts in bounded chunks,
//! and the Postgres pool size is a setting (issue 12).

#[path = "common/binary.rs"]
mod binary;
mod common;
#[path = "common/surfaces.rs"]
mod surfaces;

on_both_backends!(cases:
    db_pool_size_is_a_setting,
);

mod cases {
    use std::io::Write;
    use std::process::{Command, Stdio};

    use porter::Store;
    use serde_json::{json, Value};

    use crate::binary::{porter_cmd, run, Output, Running};
    use crate::common::TestDb;
    use crate::surfaces;

    const SECRET: &str = "hunter2-query-secret";
    const SSL_SECRET: &str = "hunter3-sslpassword-secret";

    struct Env {
        db: TestDb,
        dir: tempfile::TempDir,
    }

    impl Env {
        fn new(db: TestDb) -> Env {
            Env {
                db,
                dir: tempfile::tempdir().unwrap(),
            }
        }

        fn cmd_with_url(&self, url: &str) -> Command {
            let mut cmd = porter_cmd(self.dir.path());
            cmd.args(["--database-url", url])
                .arg("--object-store-url")
                .arg("memory://");
            cmd
        }

        fn cmd(&self) -> Command {
            self.cmd_with_url(&self.db.url)
        }

        fn run(&self, args: &[&str]) -> Output {
            run(self.cmd().args(args))
        }

        fn store(&self) -> &dyn Store {
            self.db.store.as_ref()
        }
    }

    fn ids(out: &Output) -> Vec<i64> {
        out.stdout
            .lines()
            .map(|l| {
                l.parse()
                    .unwrap_or_else(|_| panic!("an id per line: {out:#?}"))
            })
            .collect()
    }

    /// Runs a long-running command until it logs `ready` or exits; then stops it. Returns its
    /// stderr lines.
    fn run_briefly(cmd: &mut Command, ready: &str) -> Vec<String> {
        let mut child = Running::spawn(cmd);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            if child
                .lines
                .lock()
                .unwrap()
                .iter()
                .any(|l| l.contains(ready))
            {
                child.signal("-TERM");
                break;
            }
            if let Ok(Some(_)) = child.child.try_wait() {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{:#?}",
                child.lines.lock().unwrap()
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        child.wait().1
    }

    fn big_args(n: usize) -> Value {
        json!({ "blob": "x".repeat(n) })
    }

    /// `--db-pool-size` (env PORTER_DB_POOL_SIZE) sets the Postgres pool; nonsense is a usage
    /// error; SQLite accepts it and has no use for it.
    pub async fn db_pool_size_is_a_setting(db: TestDb) {
        let env = Env::new(db);
        env.run(&["--db-pool-size", "3", "enqueue", "noop"]).ok();
        run(env.cmd().env("PORTER_DB_POOL_SIZE", "2").args(["stats"])).ok();
        let zero = env.run(&["--db-pool-size", "0", "stats"]);
        assert_eq!(zero.code, 2, "{zero:#?}");
        let help = run(porter_cmd(env.dir.path()).arg("--help")).ok();
        assert!(
            help.stdout.contains("--db-pool-size") && help.stdout.contains("PORTER_DB_POOL_SIZE"),
            "{help:#?}"
        );
    }
}
