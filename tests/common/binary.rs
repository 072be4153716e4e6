//! Running the real `porter` binary as a user runs it: one-shot commands (bounded, output
//! collected) and long-running ones (stderr lines collected as they come). Shared by the
//! `cli` and `hostile_cli` suites.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What one run printed.
#[derive(Debug)]
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// Asserts exit 1 and exactly one line on stderr, `error: ...` containing `needle`.
    pub fn assert_error(&self, needle: &str) {
        assert_eq!(self.code, 1, "{self:#?}");
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "exactly one stderr line: {self:#?}");
        assert!(lines[0].starts_with("error: "), "{self:#?}");
        assert!(lines[0].contains(needle), "{needle:?} in {:?}", lines[0]);
        assert!(self.stdout.is_empty(), "nothing on stdout: {self:#?}");
    }

    /// Asserts a usage error: exit 2 and exactly one `error: ...` line containing `needle`.
    pub fn assert_usage_error(&self, needle: &str) {
        assert_eq!(self.code, 2, "a usage error exits 2: {self:#?}");
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "exactly one stderr line: {self:#?}");
        assert!(lines[0].starts_with("error: "), "{self:#?}");
        assert!(lines[0].contains(needle), "{needle:?} in {:?}", lines[0]);
        assert!(self.stdout.is_empty(), "nothing on stdout: {self:#?}");
    }

    pub fn ok(self) -> Self {
        assert_eq!(self.code, 0, "{self:#?}");
        self
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is JSON ({e}): {self:#?}"))
    }
}

/// The binary, with a clean environment, run in `dir`.
pub fn porter_cmd(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_porter"));
    cmd.current_dir(dir)
        .env_remove("DATABASE_URL")
        .env_remove("OBJECT_STORE_URL")
        .env_remove("PORTER_ADMIN_TOKEN")
        .env_remove("PORTER_LISTEN")
        .env_remove("PORTER_DB_POOL_SIZE")
        .env_remove("PORTER_ALLOWED_HOSTS")
        .env_remove("RUST_LOG");
    cmd
}

/// Runs a one-shot command to its end: bounded, so that a command that does not exit fails
/// the test instead of hanging it.
pub fn run(cmd: &mut Command) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run porter");
    let read_all = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            String::from_utf8_lossy(&bytes).into_owned()
        })
    };
    let stdout = read_all(Box::new(child.stdout.take().unwrap()));
    let stderr = read_all(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for porter") {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let out = Output {
        code: status.and_then(|s| s.code()).unwrap_or(-1),
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    };
    assert!(
        status.is_some(),
        "porter {:?} did not exit within 60 s: {out:#?}",
        cmd.get_args().collect::<Vec<_>>()
    );
    out
}

/// Runs `porter ARGS` with no database flags, in a fresh directory.
pub fn bare(args: &[&str]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    run(porter_cmd(dir.path()).args(args))
}

/// A child process whose stderr lines are collected as they come.
pub struct Running {
    pub child: Child,
    pub lines: Arc<Mutex<Vec<String>>>,
    /// The thread reading its stderr (it ends at the pipe's end).
    reader: std::thread::JoinHandle<()>,
}

impl Running {
    pub fn spawn(cmd: &mut Command) -> Running {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn porter");
        let stderr = child.stderr.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Running {
            child,
            lines,
            reader,
        }
    }

    /// Waits (bounded) for a stderr line containing `needle`; returns it.
    pub fn wait_for_line(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Some(line) = self
                .lines
                .lock()
                .unwrap()
                .iter()
                .find(|l| l.contains(needle))
            {
                return line.clone();
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "porter exited ({status}) before logging {needle:?}: {:#?}",
                    self.lines.lock().unwrap()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("no {needle:?} in {:#?}", self.lines.lock().unwrap());
    }

    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits (bounded) for the exit; returns the code and every stderr line.
    pub fn wait(mut self) -> (i32, Vec<String>) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Every line read: the reader ends at the pipe's end (a fixed pause here could
                // lose the last lines on a loaded machine).
                let read = Instant::now() + Duration::from_secs(60);
                while !self.reader.is_finished() && Instant::now() < read {
                    std::thread::sleep(Duration::from_millis(10));
                }
                return (
                    status.code().unwrap_or(-1),
                    self.lines.lock().unwrap().clone(),
                );
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("porter did not exit: {:#?}", self.lines.lock().unwrap());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
