//! Stored files: the object store (through the `object_store` crate) and the orphan-file
//! cleanup.
//!
//! # Object stores
//! [`object_store_from_url`] opens the store `--object-store-url` names:
//!
//! | URL | store |
//! |---|---|
//! | `file://DIR` (default `file://./porter-objects`) | a directory, created when missing; relative paths are relative to the working directory |
//! | `s3://BUCKET` | S3 or any S3-compatible server (MinIO, moto, ...), configured from the `AWS_*` and `S3_*` variables |
//! | `memory://` | a fresh in-memory store (tests) |
//!
//! # Keys
//! A tablo's files live under `tablos/{tablo_id}/`, one object per file
//! ([`object_key_for`]). The `tablo_files` rows are the only index: the cleanup never lists the
//! bucket, it deletes the objects that orphan rows name.
//!
//! # Orphan cleanup
//! [`cleanup_orphans`] runs one pass over the `tablo_files` rows whose tablo is gone, one page
//! (one query) at a time:
//!
//! 1. every key is checked: it must parse as an object path, unchanged (no `..`, no empty
//!    segment, no leading or trailing `/`), and lie strictly under the configured prefix. A key
//!    that fails is a *failure*: logged, counted, never deleted, its row kept;
//! 2. the page's objects are deleted with [`ObjectStore::delete_stream`] (bulk requests on S3,
//!    concurrent single deletes elsewhere; what a bulk request that failed as a whole left is
//!    deleted one at a time, unless the first few of those fail too); "not found" counts as
//!    deleted. An object that a
//!    live tablo's file or an upload under way also names is left (its orphan row still goes);
//! 3. the rows of the objects that are gone are deleted, and only those.
//!
//! A pass first checks that the store is the web's: one without this database's mark
//! ([`mark_object_store`]) is refused with nothing deleted ([`check_object_store`]).
//!
//! Objects go before rows, so a crash in between leaves rows whose objects are already gone,
//! and the next pass finishes them ("not found" is success). Several passes may run at once,
//! in one process or many: an object or a row that another pass deleted first is not an error.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::Utc;
use futures::stream::{self, StreamExt, TryStreamExt};
use futures::FutureExt;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, PutPayload};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::app::store::{
    TabloFileOrphansParams, TabloFileRow, TabloFileUploadCommitParams, TabloFileUploadDeleteParams,
    TabloFileUploadsAbandonedParams, TabloStore,
};
use crate::error::{Error, Result};

/// The object store used when none is configured.
pub const DEFAULT_OBJECT_STORE_URL: &str = "file://./porter-objects";
/// Where tablos' files live; the cleanup touches nothing outside it.
pub const DEFAULT_PREFIX: &str = "tablos/";
/// Orphan rows read (and objects deleted) per page.
pub const DEFAULT_PAGE_SIZE: u32 = 1000;
/// Pages worked on at once.
pub const DEFAULT_PAGES_IN_FLIGHT: usize = 2;
/// The longest file name kept in an object key.
const MAX_NAME_IN_KEY: usize = 100;

/// Opens the object store a URL names; see the module docs for the schemes.
///
/// For `s3://BUCKET` the usual `AWS_*` variables apply (`AWS_ENDPOINT`, `AWS_REGION`,
/// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, ...), then the web backend's own variables
/// override them when set: `S3_ENDPOINT`, `S3_REGION`, `S3_ACCESS_KEY`, `S3_SECRET_KEY`,
/// `S3_USE_PATH_STYLE` (`true`, the default, or `false` for virtual-hosted buckets), and
/// `S3_BUCKET` when the URL names no bucket (`s3://`; else `AWS_BUCKET` or `AWS_BUCKET_NAME`).
/// A bucket from any of these is checked as one in the URL is. Plain-http endpoints are allowed, for
/// S3-compatible servers on a private network or loopback.
pub fn object_store_from_url(url: &str) -> Result<Arc<dyn ObjectStore>> {
    let invalid = |message: String| Error::invalid("object store url", message);
    // Printed only with its credentials hidden (a key or secret given in the URL).
    let shown = crate::store::redact_url(url);
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(invalid(format!(
            "{shown:?} has no scheme; use file://DIR, s3://BUCKET or memory://"
        )));
    };
    match scheme {
        "file" => {
            let dir = if rest.is_empty() { "." } else { rest };
            // What the directory refuses is the machine's doing, not the URL's: `Invalid` is
            // only a URL's form.
            let refused = Error::ObjectStore;
            std::fs::create_dir_all(dir)
                .map_err(|e| refused(format!("cannot create the object directory {dir:?}: {e}")))?;
            let fs = LocalFileSystem::new_with_prefix(dir)
                .map_err(|e| refused(format!("cannot use {dir:?} as an object store: {e}")))?
                // Removes a deleted file's empty parent directories (up to the root), so the
                // directories of deleted tablos do not pile up.
                .with_automatic_cleanup(true);
            let root = std::fs::canonicalize(dir)
                .map_err(|e| refused(format!("cannot use {dir:?} as an object store: {e}")))?;
            Ok(Arc::new(LocalObjects { fs, root }))
        }
        "memory" => {
            if !rest.is_empty() {
                return Err(invalid(format!("memory:// takes no path (got {shown:?})")));
            }
            Ok(Arc::new(InMemory::new()))
        }
        "s3" => {
            let (bucket, path) = rest.split_once('/').unwrap_or((rest, ""));
            if !path.trim_matches('/').is_empty() {
                return Err(invalid(format!(
                    "{shown:?}: a path inside the bucket is not supported; use s3://BUCKET (keys start with {DEFAULT_PREFIX})"
                )));
            }
            if !bucket.is_empty() {
                check_bucket(bucket).map_err(|why| invalid(format!("{shown:?}: {why}")))?;
            }
            Ok(Arc::new(s3_from_env(bucket)?))
        }
        other => Err(invalid(format!(
            "unknown scheme {other:?} in {shown:?}; use file://DIR, s3://BUCKET or memory://"
        ))),
    }
}

/// A `file://` store: object_store's local file system, whose delete also removes what a put
/// left half-written. Its put writes the object to `KEY#1` first and renames it into place;
/// a web process killed during an upload left `KEY#1` behind, which no listing shows and no
/// delete of `KEY` removed, so the cleanup deleted the abandoned upload's row and the object
/// stayed for good, named by nothing (review of 7 Dec). porter's keys are each written once
/// (a file's id is in its key), so `#1` is the only such name a key gets.
#[derive(Debug)]
struct LocalObjects {
    fs: LocalFileSystem,
    /// The store's directory (canonical), below which emptied directories are removed.
    root: std::path::PathBuf,
}

impl LocalObjects {
    /// Removes what a put of `location` left half-written; whether there was such a file.
    async fn delete_staged(
        &self,
        location: &Path,
    ) -> object_store::Result<Option<std::path::PathBuf>> {
        let mut staged = self.fs.path_to_filesystem(location)?.into_os_string();
        staged.push("#1");
        let staged = std::path::PathBuf::from(staged);
        match tokio::fs::remove_file(&staged).await {
            Ok(()) => Ok(Some(staged)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(object_store::Error::Generic {
                store: "LocalFileSystem",
                source: format!("cannot delete the half-written {}: {e}", staged.display()).into(),
            }),
        }
    }

    /// Removes the empty directories above `file`, below the root, as the local store does
    /// after a delete of its own (which it does not do when the object itself was missing).
    async fn remove_empty_parents(&self, file: &std::path::Path) {
        let mut dir = file.parent();
        while let Some(d) = dir.filter(|d| d.starts_with(&self.root) && *d != self.root) {
            if tokio::fs::remove_dir(d).await.is_err() {
                break;
            }
            dir = d.parent();
        }
    }
}

impl std::fmt::Display for LocalObjects {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.fs.fmt(f)
    }
}

#[async_trait::async_trait]
impl ObjectStore for LocalObjects {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: object_store::PutOptions,
    ) -> object_store::Result<object_store::PutResult> {
        self.fs.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: object_store::PutMultipartOptions,
    ) -> object_store::Result<Box<dyn object_store::MultipartUpload>> {
        self.fs.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: object_store::GetOptions,
    ) -> object_store::Result<object_store::GetResult> {
        self.fs.get_opts(location, options).await
    }

    /// The half-written file first, so that the object's delete leaves its directory empty
    /// and removes it; when only the half-written file was there, its emptied directories are
    /// removed here.
    async fn delete(&self, location: &Path) -> object_store::Result<()> {
        let staged = self.delete_staged(location).await?;
        let deleted = self.fs.delete(location).await;
        if let (Some(staged), Err(object_store::Error::NotFound { .. })) = (&staged, &deleted) {
            self.remove_empty_parents(staged).await;
        }
        deleted
    }

    fn list(
        &self,
        prefix: Option<&Path>,
    ) -> futures::stream::BoxStream<'static, object_store::Result<object_store::ObjectMeta>> {
        self.fs.list(prefix)
    }

    async fn list_with_delimiter(
        &self,
        prefix: Option<&Path>,
    ) -> object_store::Result<object_store::ListResult> {
        self.fs.list_with_delimiter(prefix).await
    }

    async fn copy(&self, from: &Path, to: &Path) -> object_store::Result<()> {
        self.fs.copy(from, to).await
    }

    async fn copy_if_not_exists(&self, from: &Path, to: &Path) -> object_store::Result<()> {
        self.fs.copy_if_not_exists(from, to).await
    }
}

/// A bucket name is letters, digits, `.`, `-` and `_` (S3's rules, with the capitals and
/// underscores some S3-compatible servers allow). Anything else would end up in every
/// request's URL: a `?` or `#` there made the store's mark a HEAD of the bucket itself, which
/// answers 200, so the check that a store belongs to its database passed for any store
/// (review of 7 Dec).
fn check_bucket(bucket: &str) -> std::result::Result<(), String> {
    let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_');
    if bucket.len() <= 255 && bucket.chars().all(ok) {
        Ok(())
    } else {
        // Not printed: a `user:secret@` is not a bucket name either.
        Err("not a bucket name (letters, digits, '.', '-' and '_' only)".to_string())
    }
}

/// An S3 client from the environment: `AWS_*` first, the web backend's `S3_*` on top.
fn s3_from_env(bucket: &str) -> Result<object_store::aws::AmazonS3> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let mut builder = AmazonS3Builder::from_env().with_allow_http(true);
    if !bucket.is_empty() {
        builder = builder.with_bucket_name(bucket);
    } else if let Some(b) = var("S3_BUCKET") {
        check_bucket(&b)
            .map_err(|why| Error::invalid("object store url", format!("S3_BUCKET: {why}")))?;
        builder = builder.with_bucket_name(b);
    } else {
        // Read by `from_env` above; checked here like the others (until 7 Dec they were not).
        let named: Vec<(&str, String)> = ["AWS_BUCKET", "AWS_BUCKET_NAME"]
            .into_iter()
            .filter_map(|name| var(name).map(|b| (name, b)))
            .collect();
        if named.is_empty() {
            return Err(Error::invalid(
                "object store url",
                "s3:// names no bucket; use s3://BUCKET or set S3_BUCKET",
            ));
        }
        for (name, b) in named {
            check_bucket(&b)
                .map_err(|why| Error::invalid("object store url", format!("{name}: {why}")))?;
        }
    }
    if let Some(endpoint) = var("S3_ENDPOINT") {
        builder = builder.with_endpoint(endpoint);
    }
    if let Some(region) = var("S3_REGION") {
        builder = builder.with_region(region);
    }
    if let Some(key) = var("S3_ACCESS_KEY") {
        builder = builder.with_access_key_id(key);
    }
    if let Some(secret) = var("S3_SECRET_KEY") {
        builder = builder.with_secret_access_key(secret);
    }
    if let Some(path_style) = var("S3_USE_PATH_STYLE") {
        let path_style = match path_style.to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => true,
            "0" | "false" | "no" | "off" => false,
            _ => {
                return Err(Error::invalid(
                    "S3_USE_PATH_STYLE",
                    format!("{path_style:?} is not true or false"),
                ))
            }
        };
        builder = builder.with_virtual_hosted_style_request(!path_style);
    }
    builder.build().map_err(|e| {
        Error::invalid(
            "object store url",
            format!(
                "{}: {e}",
                crate::store::redact_url(&format!("s3://{bucket}"))
            ),
        )
    })
}

/// The object key for a new file of a tablo: `tablos/{tablo_id}/{file_id}`, followed by
/// `-{name}` when the file name has anything worth keeping. The name is reduced to ASCII
/// letters, digits, `.`, `-` and `_` (anything else becomes `_`) and cut to 100 bytes, so a
/// key is always a valid object path whatever the client sent.
pub fn object_key_for(tablo_id: Uuid, file_id: Uuid, file_name: &str) -> String {
    let mut name: String = file_name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .take(MAX_NAME_IN_KEY)
        .collect();
    // Leading dots would make hidden files on file://; a name of only dots and underscores
    // says nothing.
    name = name.trim_start_matches('.').to_string();
    if name.chars().all(|c| matches!(c, '.' | '_')) {
        format!("{}{tablo_id}/{file_id}", DEFAULT_PREFIX)
    } else {
        format!("{}{tablo_id}/{file_id}-{name}", DEFAULT_PREFIX)
    }
}

/// Where an object store's marks live: `porter-store-marks/{mark}`, one object per database
/// whose web uploads there (outside the cleanup's prefix, so never an orphan's).
pub const STORE_MARK_PREFIX: &str = "porter-store-marks/";

/// The path of the mark object of the database whose mark is `mark`.
fn mark_path(mark: uuid::Uuid) -> Path {
    Path::from(format!("{STORE_MARK_PREFIX}{mark}"))
}

/// Marks `objects` as the store this database's files are uploaded to: writes the database's
/// mark ([`TabloStore::tablo_store_mark`], made on the first call) as the object
/// `porter-store-marks/{mark}` when it is not there. The web does this as it starts, and
/// [`save_tablo_file`] before an upload; the orphan cleanup deletes nothing in a store without
/// the mark ([`check_object_store`]).
pub async fn mark_object_store(store: &dyn TabloStore, objects: &dyn ObjectStore) -> Result<()> {
    let mark = store.tablo_store_mark().await?;
    write_mark(objects, mark).await
}

/// Writes the mark object of `mark` into `objects` when it is not there.
async fn write_mark(objects: &dyn ObjectStore, mark: uuid::Uuid) -> Result<()> {
    let path = mark_path(mark);
    match objects.head(&path).await {
        Ok(_) => Ok(()),
        Err(object_store::Error::NotFound { .. }) => {
            let body = serde_json::json!({
                "porter_store_mark": mark,
                "written_at": Utc::now(),
                "what": "the porter database with this mark uploads its tablos' files to this store; its orphan cleanup deletes nothing in a store without this object",
            });
            objects
                .put(&path, PutPayload::from(body.to_string().into_bytes()))
                .await
                .map_err(object_err)?;
            Ok(())
        }
        Err(e) => Err(object_err(e)),
    }
}

/// [`mark_object_store`] once per process for each database and store.
async fn mark_object_store_once(store: &dyn TabloStore, objects: &dyn ObjectStore) -> Result<()> {
    static MARKED: std::sync::Mutex<Vec<(uuid::Uuid, String, usize)>> =
        std::sync::Mutex::new(Vec::new());
    // A read: the mark exists once any process wrote it (the write only the first time).
    let mark = match store.tablo_store_mark_get().await? {
        Some(mark) => mark,
        None => store.tablo_store_mark().await?,
    };
    // The store by what it says it is and where it lives in this process (two stores in memory
    // print alike).
    let which = (
        mark,
        objects.to_string(),
        objects as *const dyn ObjectStore as *const () as usize,
    );
    if MARKED
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .contains(&which)
    {
        return Ok(());
    }
    write_mark(objects, mark).await?;
    MARKED.lock().unwrap_or_else(|p| p.into_inner()).push(which);
    Ok(())
}

/// Refuses an object store this database's web does not upload to: one without the
/// database's mark ([`mark_object_store`]), when the database has one. The cleanup counts
/// "not found" as deleted, so in another store (an empty directory, `memory://`, another
/// bucket) it would delete every orphan's row and leave the objects, named by nothing, where
/// the web keeps them (review of 6 Dec). A database with no mark (no web of this version has
/// run on it) is taken as it is.
pub async fn check_object_store(store: &dyn TabloStore, objects: &dyn ObjectStore) -> Result<()> {
    let Some(mark) = store.tablo_store_mark_get().await? else {
        return Ok(());
    };
    match objects.head(&mark_path(mark)).await {
        Ok(_) => Ok(()),
        Err(object_store::Error::NotFound { .. }) => Err(Error::ObjectStore(format!(
            "the object store {objects} holds no mark of this database ({STORE_MARK_PREFIX}{mark}), which the web writes into the store it uploads to: it is not the web's store (check --object-store-url, OBJECT_STORE_URL and S3_BUCKET, and the directory a file:// path is relative to); nothing was deleted"
        ))),
        Err(e) => Err(object_err(e)),
    }
}

/// Stores one object under `key`, which must be a valid object path.
pub async fn put_file(objects: &dyn ObjectStore, key: &str, bytes: Bytes) -> Result<()> {
    let path =
        parse_key(key).map_err(|why| Error::invalid("object key", format!("{key:?}: {why}")))?;
    objects
        .put(&path, PutPayload::from_bytes(bytes))
        .await
        .map_err(object_err)?;
    Ok(())
}

/// How long an upload may take from its first write to its commit. An upload begun longer ago
/// and never committed (its request was dropped, timed out, or its process died) is abandoned:
/// its commit is refused and the orphan cleanup deletes its object and row. Far above the web
/// process's request timeout (30 s by default), which bounds every upload through the API.
pub const UPLOAD_GRACE: Duration = Duration::from_secs(3600);

/// Stores a new file of a tablo, so that every stored object is named by a row or found by
/// the cleanup, and no saved file loses its object:
/// 1. an upload row is written (no file of the tablo yet);
/// 2. the object is stored;
/// 3. the upload becomes the tablo's file in one transaction.
///
/// A request dropped between any two steps leaves an upload row, which the orphan cleanup
/// finds once it is older than [`UPLOAD_GRACE`] and deletes with its object. When the commit
/// fails, the object is left in place: the commit may have happened (an answer lost on the
/// way back), and if it did not, the cleanup removes the upload. An unknown tablo is
/// [`Error::NotFound`], and so is a tablo deleted before the commit: the upload is not
/// committed, and its object is deleted (or, if that fails, removed with the upload by the
/// cleanup past the grace); so is an upload whose commit is refused as abandoned, or given up
/// on past half the grace. A tablo deleted after the commit has the file among those its
/// cleanup job deletes (on PostgreSQL the delete waits for a commit under way).
pub async fn save_tablo_file(
    store: &dyn TabloStore,
    objects: &dyn ObjectStore,
    tablo_id: Uuid,
    file_name: &str,
    bytes: Bytes,
) -> Result<TabloFileRow> {
    if store.tablo_get(tablo_id).await?.is_none() {
        return Err(Error::not_found("tablo", tablo_id));
    }
    let id = Uuid::new_v4();
    let s3_key = object_key_for(tablo_id, id, file_name);
    let size = i64::try_from(bytes.len()).unwrap_or(i64::MAX);
    let upload = TabloFileRow {
        id,
        tablo_id,
        s3_key,
        size,
        created_at: Utc::now(),
    };
    let started = std::time::Instant::now();
    mark_object_store_once(store, objects).await?;
    // From here on the upload writes: a web request is no longer cut short by its timeout.
    crate::store::watch::write_begins();
    store.tablo_file_upload_begin(upload.clone()).await?;
    put_file(objects, &upload.s3_key, bytes).await?;
    // A caller without a request timeout past half the grace gives up rather than racing the
    // cleanup, which may already be deleting the object of an upload that old. The object is
    // never committed now: deleted here (the cleanup may have taken the upload's row already).
    if started.elapsed() > UPLOAD_GRACE / 2 {
        delete_uncommitted(objects, &upload.s3_key, "given up on past half the grace").await;
        return Err(Error::Timeout(UPLOAD_GRACE / 2));
    }
    let params = TabloFileUploadCommitParams {
        id,
        grace: UPLOAD_GRACE,
    };
    match store.tablo_file_upload_commit(params).await? {
        Some(file) => Ok(file),
        None if store.tablo_get(tablo_id).await?.is_none() => {
            delete_uncommitted(objects, &upload.s3_key, "whose tablo was deleted meanwhile").await;
            Err(Error::not_found("tablo", tablo_id))
        }
        None => {
            // Abandoned: past the grace, or its row already taken by the cleanup (after a stall
            // of this process longer than the grace), which then found no object to delete and
            // will not look again (until 6 Dec the object was left to it, named by nothing).
            delete_uncommitted(objects, &upload.s3_key, "abandoned before it committed").await;
            Err(Error::Conflict(format!(
                "the upload of file {id} was abandoned before it committed; send the file again"
            )))
        }
    }
}

/// Deletes the object of an upload that is never committed. Only this upload knows its key;
/// should the delete fail, the upload's row (if the cleanup has not taken it yet) has the
/// cleanup remove it past the grace.
async fn delete_uncommitted(objects: &dyn ObjectStore, key: &str, why: &str) {
    if let Ok(path) = parse_key(key) {
        if let Err(e) = objects.delete(&path).await {
            tracing::warn!(error = %e, key = %key, upload = why, "deleting the object of an upload that is not committed failed; the orphan cleanup removes it past the grace if its upload row is still there");
        }
    }
}

/// Maps an object-store error into the library's error.
fn object_err(e: object_store::Error) -> Error {
    Error::ObjectStore(e.to_string())
}

/// Parses a key as an object path, refusing anything the parse would change (a leading or
/// trailing `/`) as well as what it rejects (`.` and `..` segments, empty segments, control
/// characters).
fn parse_key(key: &str) -> std::result::Result<Path, String> {
    let path = Path::parse(key).map_err(|e| e.to_string())?;
    if path.as_ref() != key {
        return Err(format!(
            "it is not in canonical form (it parses as {:?})",
            path.as_ref()
        ));
    }
    if key.is_empty() {
        return Err("it is empty".to_string());
    }
    Ok(path)
}

/// Settings for one cleanup pass.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CleanupConfig {
    /// Only keys strictly under this prefix are deleted (segment-wise: `tablos/` covers
    /// `tablos/x` but not `tablos_old/x`). Default `tablos/`.
    pub prefix: String,
    /// Orphan rows per page: one query, one batch of deletes (default 1000, S3's bulk limit).
    pub page_size: u32,
    /// Pages worked on at once (default 2): one page's objects are deleted while the next
    /// page is read and the previous one has its rows deleted. Within a page the store's
    /// `delete_stream` sets the pace: one bulk request on S3, concurrent single deletes
    /// elsewhere.
    pub pages_in_flight: usize,
    /// Count what would be deleted, delete nothing.
    pub dry_run: bool,
    /// Only orphans of this tablo.
    pub tablo_id: Option<Uuid>,
}

impl Default for CleanupConfig {
    fn default() -> Self {
        CleanupConfig {
            prefix: DEFAULT_PREFIX.to_string(),
            page_size: DEFAULT_PAGE_SIZE,
            pages_in_flight: DEFAULT_PAGES_IN_FLIGHT,
            dry_run: false,
            tablo_id: None,
        }
    }
}

/// What one cleanup pass did (or, in a dry run, would do).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CleanupCounts {
    /// Orphan rows read.
    pub orphans_seen: u64,
    /// Distinct objects deleted or found already gone.
    pub objects_deleted: u64,
    /// Orphan rows deleted.
    pub rows_deleted: u64,
    /// Orphan rows left in place: a refused key, or an object that could not be deleted.
    pub failures: u64,
}

impl std::ops::AddAssign for CleanupCounts {
    fn add_assign(&mut self, o: Self) {
        self.orphans_seen += o.orphans_seen;
        self.objects_deleted += o.objects_deleted;
        self.rows_deleted += o.rows_deleted;
        self.failures += o.failures;
    }
}

impl std::fmt::Display for CleanupCounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "orphans seen {}, objects deleted {}, rows deleted {}, failures {}",
            self.orphans_seen, self.objects_deleted, self.rows_deleted, self.failures
        )
    }
}

/// Runs one cleanup pass over every orphan (or one tablo's); see the module docs.
///
/// Errors only when the database fails or the config is unusable; what fails object by object
/// is counted in [`CleanupCounts::failures`] and logged.
pub async fn cleanup_orphans(
    store: &dyn TabloStore,
    objects: &dyn ObjectStore,
    cfg: &CleanupConfig,
) -> Result<CleanupCounts> {
    cleanup_orphans_until(store, objects, cfg, &CancellationToken::new()).await
}

/// [`cleanup_orphans`] that stops between pages once `cancel` is cancelled (the counts then
/// cover the pages done; the rest is left for the next pass).
pub async fn cleanup_orphans_until(
    store: &dyn TabloStore,
    objects: &dyn ObjectStore,
    cfg: &CleanupConfig,
    cancel: &CancellationToken,
) -> Result<CleanupCounts> {
    let prefix = parse_prefix(&cfg.prefix)?;
    if cfg.page_size == 0 {
        return Err(Error::invalid("page_size", "must be at least 1"));
    }
    check_object_store(store, objects).await?;
    let mut total = CleanupCounts::default();
    if cfg.tablo_id.is_none() {
        total += cleanup_abandoned_uploads(store, objects, cfg, &prefix, cancel).await?;
    }
    // Pages are read one after the other (keyset paging needs the previous page's last id,
    // not its outcome), and worked on `pages_in_flight` at a time: while one page's objects
    // are being deleted, the next page is read and the one before has its rows deleted.
    let pages = stream::try_unfold((None, false), |(after, last_page)| async move {
        if last_page || cancel.is_cancelled() {
            return Ok(None);
        }
        let page = store
            .tablo_file_orphans(TabloFileOrphansParams {
                after,
                tablo_id: cfg.tablo_id,
                limit: cfg.page_size,
            })
            .await?;
        // Rows left in place (failures) are not read again in this pass.
        let Some(next) = page.last().map(|r| r.id) else {
            return Ok(None);
        };
        let short = page.len() < cfg.page_size as usize;
        Ok(Some((page, (Some(next), short))))
    })
    .boxed();
    let mut done = pages
        .map_ok(|page| cleanup_page(store, objects, cfg, &prefix, page, Rows::Orphans).boxed())
        .try_buffered(cfg.pages_in_flight.max(1));
    while let Some(counts) = done.try_next().await? {
        total += counts;
    }
    Ok(total)
}

/// Uploads abandoned before their commit ([`UPLOAD_GRACE`]): their objects (if any were
/// stored), then their rows, page by page, the same way as orphans.
async fn cleanup_abandoned_uploads(
    store: &dyn TabloStore,
    objects: &dyn ObjectStore,
    cfg: &CleanupConfig,
    prefix: &Path,
    cancel: &CancellationToken,
) -> Result<CleanupCounts> {
    let mut total = CleanupCounts::default();
    let mut after = None;
    while !cancel.is_cancelled() {
        let params = TabloFileUploadsAbandonedParams {
            older_than: UPLOAD_GRACE,
            after,
            limit: cfg.page_size,
        };
        let page = store.tablo_file_uploads_abandoned(params).await?;
        let Some(last) = page.last().map(|r| r.id) else {
            break;
        };
        let short = page.len() < cfg.page_size as usize;
        total += cleanup_page(store, objects, cfg, prefix, page, Rows::AbandonedUploads).await?;
        if short {
            break;
        }
        after = Some(last);
    }
    Ok(total)
}

/// Which rows a page of the cleanup deletes once their objects are gone.
#[derive(Debug, Clone, Copy)]
enum Rows {
    /// Files whose tablo is gone (only while it still is).
    Orphans,
    /// Uploads never committed (only while still past the grace).
    AbandonedUploads,
}

/// The prefix as an object path; an empty prefix would let the cleanup delete anything.
fn parse_prefix(prefix: &str) -> Result<Path> {
    let path = Path::parse(prefix)
        .map_err(|e| Error::invalid("cleanup prefix", format!("{prefix:?}: {e}")))?;
    if path.as_ref().is_empty() {
        return Err(Error::invalid(
            "cleanup prefix",
            "must not be empty: the cleanup would reach every object",
        ));
    }
    Ok(path)
}

/// Checks a row's key: a canonical object path strictly under the prefix.
fn checked_path(key: &str, prefix: &Path) -> std::result::Result<Path, String> {
    let path = parse_key(key)?;
    let strictly_under = path
        .prefix_match(prefix)
        .is_some_and(|mut rest| rest.next().is_some());
    if strictly_under {
        Ok(path)
    } else {
        Err(format!("it is outside the prefix {:?}", prefix.as_ref()))
    }
}

async fn cleanup_page(
    store: &dyn TabloStore,
    objects: &dyn ObjectStore,
    cfg: &CleanupConfig,
    prefix: &Path,
    page: Vec<TabloFileRow>,
    rows: Rows,
) -> Result<CleanupCounts> {
    let mut counts = CleanupCounts {
        orphans_seen: page.len() as u64,
        ..Default::default()
    };
    let mut valid: Vec<(Uuid, Path)> = Vec::with_capacity(page.len());
    for row in &page {
        match checked_path(&row.s3_key, prefix) {
            Ok(path) => valid.push((row.id, path)),
            Err(why) => {
                counts.failures += 1;
                tracing::warn!(file_id = %row.id, tablo_id = %row.tablo_id, key = ?row.s3_key,
                    "orphan file's key refused, object and row left in place: {why}");
            }
        }
    }
    // Two rows may name one object: delete it once.
    let mut seen = HashSet::with_capacity(valid.len());
    let paths: Vec<Path> = valid
        .iter()
        .filter(|(_, p)| seen.insert(p.clone()))
        .map(|(_, p)| p.clone())
        .collect();
    // An object that a live tablo's file or an upload under way also names is not this row's
    // to delete (a row another program wrote, say, naming a live file's key: until 6 Dec the
    // cleanup deleted the live file's object). Its row goes; the object stays. Compared as
    // text: `Path::from` would percent-encode a key's `[`, `%` or space, which the keys parsed
    // above keep, and no key in use would match (until 7 Dec such an object was deleted).
    let keys = paths.iter().map(|p| p.as_ref().to_string()).collect();
    let in_use: HashSet<String> = store
        .tablo_file_keys_in_use(keys, UPLOAD_GRACE)
        .await?
        .into_iter()
        .collect();
    let (kept, paths): (Vec<Path>, Vec<Path>) =
        paths.into_iter().partition(|p| in_use.contains(p.as_ref()));
    if !kept.is_empty() {
        tracing::warn!(objects = kept.len(), example_key = %kept[0],
            "orphan rows name objects a live file or an upload also names: their rows go, the objects stay");
    }

    if cfg.dry_run {
        counts.objects_deleted = paths.len() as u64;
        counts.rows_deleted = valid.len() as u64;
        return Ok(counts);
    }

    let mut gone = delete_objects(objects, paths).await;
    counts.objects_deleted = gone.len() as u64;
    // Rows naming an object in use are gone from this pass's point of view: their rows go.
    gone.extend(kept);
    let mut ids = Vec::with_capacity(valid.len());
    for (id, path) in valid {
        if gone.contains(&path) {
            ids.push(id);
        } else {
            counts.failures += 1;
        }
    }
    if !ids.is_empty() {
        // A row another pass deleted first is simply not counted here.
        counts.rows_deleted = match rows {
            Rows::Orphans => store.tablo_file_delete_many(ids).await?,
            Rows::AbandonedUploads => {
                let params = TabloFileUploadDeleteParams {
                    ids,
                    older_than: UPLOAD_GRACE,
                };
                store.tablo_file_upload_delete_many(params).await?
            }
        };
    }
    Ok(counts)
}

/// Single deletes under way at once after a bulk request failed as a whole.
const SINGLE_DELETES_AT_ONCE: usize = 10;

/// Single deletes tried first after a bulk request failed as a whole: when all of them fail,
/// the store is failing, and the rest are not tried this pass.
const SINGLE_DELETE_PROBES: usize = 3;

/// Deletes each path on its own; "not found" counts as deleted. A failure is the error's
/// words.
async fn single_deletes(
    objects: &dyn ObjectStore,
    paths: Vec<Path>,
) -> Vec<(Path, std::result::Result<(), String>)> {
    stream::iter(paths)
        .map(|path| async move {
            let result = match objects.delete(&path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(e.to_string()),
            };
            (path, result)
        })
        .buffer_unordered(SINGLE_DELETES_AT_ONCE)
        .collect()
        .await
}

/// Deletes objects; returns those that are gone (deleted now, or not found). Failures are
/// logged, and their objects are not in the result.
async fn delete_objects(objects: &dyn ObjectStore, paths: Vec<Path>) -> HashSet<Path> {
    let mut gone = HashSet::with_capacity(paths.len());
    if paths.is_empty() {
        return gone;
    }
    let n = paths.len();
    let results: Vec<object_store::Result<Path>> = objects
        .delete_stream(stream::iter(paths.clone()).map(Ok).boxed())
        .collect()
        .await;
    let mut failed: HashMap<Path, String> = HashMap::new();
    if results.len() == n {
        // One result per path, in order (the trait's contract when no bulk call failed whole).
        for (path, result) in paths.into_iter().zip(results) {
            match result {
                Ok(_) | Err(object_store::Error::NotFound { .. }) => {
                    gone.insert(path);
                }
                Err(e) => {
                    failed.insert(path, e.to_string());
                }
            }
        }
    } else {
        // A bulk request failed as a whole: what it covered is unknown, so the paths not
        // reported deleted are deleted again one at a time. One key the bulk request cannot
        // carry (S3's is XML, which has no U+FFFF) then fails alone; until 7 Dec it failed
        // every path of its request, on every pass.
        gone.extend(results.into_iter().flatten());
        let mut left: Vec<Path> = paths.into_iter().filter(|p| !gone.contains(p)).collect();
        // A few first: when each of them fails too, the store is failing (an outage,
        // throttling, credentials gone), not a key, and the rest wait for the next pass
        // rather than a request each, with its retries. Drawn at random, so that a page whose
        // first keys fail alone (a policy that keeps them) is not judged by the same keys at
        // every pass (review of 7 Dec).
        fastrand::shuffle(&mut left);
        let mut left = left.into_iter();
        let probes =
            single_deletes(objects, left.by_ref().take(SINGLE_DELETE_PROBES).collect()).await;
        let store_failing = probes.iter().all(|(_, r)| r.is_err());
        let mut singles = probes;
        if store_failing {
            let why = singles
                .last()
                .and_then(|(_, r)| r.as_ref().err().cloned())
                .unwrap_or_default();
            for path in left {
                failed.insert(path, why.clone());
            }
        } else {
            singles.extend(single_deletes(objects, left.collect()).await);
        }
        for (path, result) in singles {
            match result {
                Ok(()) => {
                    gone.insert(path);
                }
                Err(e) => {
                    failed.insert(path, e);
                }
            }
        }
    }
    if let Some((path, why)) = failed.iter().next() {
        tracing::warn!(failed = failed.len(), example_key = %path, error = %why,
            "orphan file objects could not be deleted; their rows stay for the next pass");
    }
    gone
}
