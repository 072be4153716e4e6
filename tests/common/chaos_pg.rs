//! A throwaway PostgreSQL cluster of the test's own, for the scenarios that stop and restart
//! the server: never the shared dev cluster, never the one `scripts/test` starts. Run as the
//! `porter-pg` user (through `runuser`) when the tests run as root, since initdb refuses root.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

/// The OS user that owns the cluster when we are root (the one `scripts/test` uses too).
const PG_OS_USER: &str = "porter-pg";
/// The cluster's superuser, trusted on 127.0.0.1.
const PG_DB_USER: &str = "porter";
/// The database the tests use.
const PG_DB: &str = "porter_chaos";

/// A cluster in a temp dir. Dropping it stops it (immediate mode) and removes the directory.
pub struct PgCluster {
    bin: PathBuf,
    dir: tempfile::TempDir,
    /// The TCP port on 127.0.0.1.
    pub port: u16,
    as_user: Option<&'static str>,
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn find_bin() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("initdb").exists() && p.join("pg_ctl").exists())
        .collect();
    dirs.sort_by_key(|p| {
        p.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    dirs.pop()
}

/// A TCP port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl PgCluster {
    /// initdb in a fresh temp dir, without starting it. Its callers run with the Postgres half
    /// (build.rs), so PostgreSQL's binaries or the cluster's user missing fails them.
    pub fn init() -> PgCluster {
        let bin = find_bin().expect(
            "no /usr/lib/postgresql/*/bin/initdb: this test runs its own cluster (scripts/setup installs PostgreSQL)",
        );
        let as_user = if is_root() { Some(PG_OS_USER) } else { None };
        if let Some(user) = as_user {
            if !Command::new("id")
                .arg("-u")
                .arg(user)
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false)
            {
                panic!("running as root without the {user} user, which runs this test's own cluster (scripts/setup creates it)");
            }
        }
        let dir = tempfile::Builder::new()
            .prefix("porter-chaos-pg.")
            .tempdir()
            .expect("temp dir");
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        if let Some(user) = as_user {
            let ok = Command::new("chown")
                .arg(user)
                .arg(dir.path())
                .status()
                .unwrap()
                .success();
            assert!(ok, "chown the cluster dir to {user}");
        }
        let cluster = PgCluster {
            bin,
            dir,
            port: free_port(),
            as_user,
        };
        let data = cluster.data();
        let out = cluster.pg(
            "initdb",
            &[
                "-D",
                &data,
                "-U",
                PG_DB_USER,
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-locale",
                "--no-sync",
            ],
        );
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        cluster
    }

    /// initdb and start, with the test database created.
    pub fn start_new() -> PgCluster {
        let cluster = Self::init();
        cluster.start();
        cluster.create_db();
        cluster
    }

    /// Creates the test database (the server must be up).
    pub fn create_db(&self) {
        let out = self.pg(
            "createdb",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                PG_DB_USER,
                PG_DB,
            ],
        );
        assert!(
            out.status.success(),
            "createdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn log(&self) -> String {
        self.dir.path().join("postgres.log").display().to_string()
    }

    /// The server's log so far.
    pub fn server_log(&self) -> String {
        std::fs::read_to_string(self.log()).unwrap_or_default()
    }

    /// Runs one of PostgreSQL's programs as the cluster's owner.
    fn pg(&self, program: &str, args: &[&str]) -> Output {
        let exe = self.bin.join(program);
        let mut cmd = match self.as_user {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(&exe);
                c
            }
            None => Command::new(&exe),
        };
        cmd.args(args)
            .current_dir(self.dir.path())
            .output()
            .unwrap_or_else(|e| panic!("run {program}: {e}"))
    }

    fn options(&self) -> String {
        format!(
            "-c listen_addresses=127.0.0.1 -p {} -c unix_socket_directories={} -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200",
            self.port,
            self.dir.path().display()
        )
    }

    /// Starts the server (waits until it accepts connections).
    pub fn start(&self) {
        let opts = self.options();
        let out = self.pg(
            "pg_ctl",
            &[
                "-D",
                &self.data(),
                "-l",
                &self.log(),
                "-w",
                "-t",
                "60",
                "-o",
                &opts,
                "start",
            ],
        );
        assert!(
            out.status.success(),
            "pg_ctl start: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.server_log()
        );
    }

    /// `pg_ctl restart -m fast`: every connection is cut, the server comes back on the same port.
    pub fn restart_fast(&self) {
        let opts = self.options();
        let out = self.pg(
            "pg_ctl",
            &[
                "-D",
                &self.data(),
                "-l",
                &self.log(),
                "-w",
                "-t",
                "60",
                "-m",
                "fast",
                "-o",
                &opts,
                "restart",
            ],
        );
        assert!(
            out.status.success(),
            "pg_ctl restart: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.server_log()
        );
    }

    /// `pg_ctl stop -m fast`.
    pub fn stop(&self) {
        let out = self.pg(
            "pg_ctl",
            &["-D", &self.data(), "-w", "-t", "60", "-m", "fast", "stop"],
        );
        assert!(
            out.status.success(),
            "pg_ctl stop: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The URL of the test database.
    pub fn url(&self) -> String {
        format!("postgres://{PG_DB_USER}@127.0.0.1:{}/{PG_DB}", self.port)
    }

    /// The data directory (for messages).
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let data = self.data();
        let stopped = self.pg(
            "pg_ctl",
            &["-D", &data, "-w", "-t", "20", "-m", "immediate", "stop"],
        );
        if !stopped.status.success() {
            // Whatever pg_ctl said, no postmaster of ours may outlive the test.
            if let Ok(pid) = std::fs::read_to_string(self.dir.path().join("data/postmaster.pid")) {
                if let Some(pid) = pid.lines().next() {
                    let _ = Command::new("kill").arg("-9").arg(pid.trim()).status();
                }
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
