//! porter: a background-job queue and worker for Rust services, on one SQLite file (zero
//! setup: local runs and tests) or on PostgreSQL (production), with the same code.
//!
//! # Layout
//! Three layers, each using only the ones below it, and no two modules using each other
//! (`tests/layers.rs` checks both from the source):
//!
//! **The queue core** knows nothing of tablos, HTTP or the command line:
//! * [`job`]: job rows, states, insert options, the typed [`JobArgs`] trait.
//! * [`worker`]: the [`Worker`] trait (work, timeout, next_retry) and the [`Workers`] registry.
//! * [`client`]: [`Client`], to insert jobs (one, many, inside a caller's transaction) and
//!   manage them.
//! * [`store`]: the storage seam, [`store::Driver`] (SQL and row mapping), with `sqlite` and
//!   `postgres` backends, wrapped once by [`Store`] (what results mean, wake-ups, counts).
//! * [`runtime`]: producers, executor, batched completer, graceful shutdown.
//! * [`events`]: what a runtime tells an observer (metrics) about the attempts it ends and the
//!   jobs its rescuer moves.
//! * [`maintenance`]: periodic enqueuer, rescuer (leases), retention cleaner.
//! * [`testing`]: helpers for an application's own tests (a throwaway SQLite store, run a
//!   queue's due jobs until none is left, assert a job was inserted, run one worker's work).
//! * [`jobs`]: built-in jobs of the queue (heartbeat, diagnostics).
//! * [`error`]: the one error type, [`Error`].
//!
//! **The tablo app** (feature `app`), built on the core's public API as any application is:
//! * [`app`]: object storage (file://, s3://, memory://), the orphan-file cleanup pass and
//!   its job, the app's own store trait over its own tables, its `/api` routes; and the one
//!   place where the jobs the `porter` binary runs are registered.
//!
//! **The surfaces** (feature `surfaces`, on by default: the `porter` binary needs it):
//! * [`http`]: the web process: the tablo app's routes, admin API, metrics and dashboard, as one
//!   axum router.
//! * [`cli`]: the `porter` command line (the binary is one call to [`cli::main`]).
//! * [`bench`][bench-mod]: `porter bench`, porter's speed next to its database's own limit.
//!
//! An application that wants the queue alone leaves the app and the surfaces out, and with
//! them clap, axum, indicatif and object_store: `porter = { version = "0.1",
//! default-features = false, features = ["postgres"] }`.
//!
//! # Example
//! ```
//! use porter::{Client, Job, JobArgs, JobError, Worker, Workers};
//! use porter::runtime::{Runtime, RuntimeConfig, Shutdown};
//!
//! #[derive(serde::Serialize, serde::Deserialize)]
//! struct Greet { name: String }
//! impl JobArgs for Greet { const KIND: &'static str = "greet"; }
//!
//! struct GreetWorker;
//! #[async_trait::async_trait]
//! impl Worker<Greet> for GreetWorker {
//!     async fn work(&self, job: Job<Greet>) -> Result<(), JobError> {
//!         println!("hello, {}", job.args.name);
//!         Ok(())
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> porter::Result<()> {
//! let dir = tempfile::tempdir().unwrap();
//! let store = porter::store::open(&format!("sqlite://{}/porter.db", dir.path().display())).await?;
//! let client = Client::new(store.clone());
//! let inserted = client.insert(&Greet { name: "tablo".into() }, None).await?;
//!
//! let mut workers = Workers::new();
//! workers.add(GreetWorker)?;
//! let shutdown = Shutdown::new();
//! let runtime = Runtime::new(store.clone(), workers, RuntimeConfig::default());
//! let running = tokio::spawn(runtime.run(shutdown.clone()));
//! while client.get(inserted.job.id).await?.unwrap().state != porter::JobState::Completed {
//!     tokio::time::sleep(std::time::Duration::from_millis(10)).await;
//! }
//! shutdown.soft.cancel();
//! running.await.unwrap()?;
//! # Ok(()) }
//! ```
//!
//! # Insert a job in your own transaction
//! A job inserted with [`Client::insert_tx_sqlite`] (or `Client::insert_tx_pg` on a
//! `sqlx::PgConnection`) exists if and only if your transaction commits: a row and the job
//! that processes it are never one without the other. porter re-exports the driver crates it
//! is built with, [`rusqlite`] 0.32 and `sqlx` 0.8 (feature `postgres`), so your connection is
//! of the type porter takes: use `porter::rusqlite` / `porter::sqlx`, or the same versions.
//! ```
//! use porter::rusqlite;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("app.db");
//! // porter's tables first (opening a store migrates).
//! let store = rt.block_on(porter::store::open(&format!("sqlite://{}", path.display())))?;
//!
//! let mut conn = rusqlite::Connection::open(&path)?;
//! conn.execute_batch("CREATE TABLE orders (id INTEGER PRIMARY KEY, item TEXT)")?;
//! let tx = conn.transaction()?;
//! tx.execute("INSERT INTO orders (item) VALUES (?1)", ["book"])?;
//! let job = porter::Client::insert_tx_sqlite(&tx, &porter::jobs::Noop {}, None)?;
//! tx.commit()?;
//!
//! let client = porter::Client::new(store);
//! assert!(rt.block_on(client.get(job.job.id))?.is_some());
//! # Ok(()) }
//! ```
// Links to the modules a build leaves out point at this section instead.
#![cfg_attr(feature = "surfaces", doc = "[bench-mod]: mod@bench")]
#![cfg_attr(not(feature = "app"), doc = "[`app`]: #layout")]
#![cfg_attr(
    not(feature = "surfaces"),
    doc = "[`http`]: #layout\n[`cli`]: #layout\n[`cli::main`]: #layout\n[bench-mod]: #layout"
)]
#![warn(missing_docs)]

#[cfg(feature = "app")]
pub mod app;
pub mod batch;
#[cfg(feature = "surfaces")]
pub mod bench;
#[cfg(feature = "surfaces")]
pub mod cli;
pub mod client;
pub mod error;
pub mod events;
#[cfg(feature = "surfaces")]
pub mod http;
pub mod job;
pub mod jobs;
pub mod maintenance;
pub mod runtime;
pub mod store;
pub mod testing;
pub mod worker;
pub mod workflow;

pub use client::Client;
pub use error::{Error, Result};
pub use job::{AttemptError, InsertOpts, JobArgs, JobRow, JobState};
/// The rusqlite porter is built with, for [`Client::insert_tx_sqlite`] on your own connection.
pub use rusqlite;
/// The sqlx porter is built with, for `Client::insert_tx_pg` on your own connection.
#[cfg(feature = "postgres")]
pub use sqlx;
pub use store::{Backend, InsertResult, Store};
pub use worker::{Job, JobContext, JobError, ParentOutput, Worker, Workers};
