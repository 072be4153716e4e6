//! The tablo app: porter's first users' web application, built on the queue core the way any
//! application is, through its public API only.
//!
//! A *tablo* is the app's record that owns files. The app keeps:
//! * [`files`]: object storage (`file://`, `s3://`, `memory://`), tablo uploads, and the
//!   orphan-file cleanup pass;
//! * [`store`]: the app's tables behind its own trait, [`store::TabloStore`], on SQLite and
//!   PostgreSQL, reached through the queue store's public [`crate::store::Store::database`];
//! * [`orphan_file_cleanup`]: the `orphan_file_cleanup` job that runs that pass (hourly, and
//!   once per deleted tablo), its args in [`args`];
//! * [`api`]: its HTTP routes (`/api/tablos...`), which a web process merges into its own.
//!
//! Nothing in the queue core (`job`, `worker`, `store`, `client`, `runtime`, `maintenance`,
//! `testing`) knows this module; the surfaces (`cli`, `http`) use both.

pub mod api;
pub mod args;
pub mod builtin;
pub mod files;
pub mod orphan_file_cleanup;
pub mod store;
