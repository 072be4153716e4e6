//! The one mock of the file tests: an object store that passes everything to a real store but
//! misbehaves on deletes in a chosen way. A real store cannot be made to fail on demand, and a
//! crash cannot be placed between two statements from outside.

use std::collections::HashSet;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use futures::stream::{self, BoxStream, StreamExt};
use futures::FutureExt;
use object_store::path::Path;
use object_store::{
    GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult,
};

/// How deletes misbehave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Deletes of the chosen keys fail (and the objects stay); others go through.
    FailChosen,
    /// Every delete happens, then is reported failed (a lost answer, or a crash before the
    /// caller could act on it).
    DeleteThenFail,
    /// Every delete of the first batch happens, then the process aborts: a crash between the
    /// object deletes and the row deletes.
    DeleteThenAbort,
    /// Every put stores its object, then never answers: a request dropped (timed out, its
    /// client gone) right after the object was written.
    HangAfterPut,
    /// Every put waits until [`FaultyStore::open_puts`] (a slow upload), then stores its
    /// object.
    GatedPut,
    /// The store is down: every delete request fails as a whole (a bulk one answers one
    /// error for all its keys), and deletes nothing.
    Down,
    /// A bulk delete (more than one key) fails as a whole and deletes nothing, as S3's does
    /// for a key its XML cannot carry; single deletes of the chosen keys fail (a policy that
    /// keeps them), the others go through.
    NoBulk,
}

/// A real store with faulty deletes; see [`Fault`].
#[derive(Debug)]
pub struct FaultyStore {
    inner: Arc<dyn ObjectStore>,
    fault: Fault,
    fail: Mutex<HashSet<Path>>,
    /// The largest batch one `delete_stream` call was given.
    pub max_batch: AtomicUsize,
    /// Delete requests made (`delete_stream` calls; a single `delete` is one).
    pub delete_requests: AtomicUsize,
    /// Puts waiting for [`Fault::GatedPut`]'s gate.
    puts_waiting: AtomicUsize,
    puts: tokio::sync::Semaphore,
}

impl FaultyStore {
    pub fn new(inner: Arc<dyn ObjectStore>, fault: Fault) -> Self {
        FaultyStore {
            inner,
            fault,
            fail: Mutex::new(HashSet::new()),
            max_batch: AtomicUsize::new(0),
            delete_requests: AtomicUsize::new(0),
            puts_waiting: AtomicUsize::new(0),
            puts: tokio::sync::Semaphore::new(0),
        }
    }

    /// How many puts wait at the gate ([`Fault::GatedPut`]).
    pub fn puts_waiting(&self) -> usize {
        self.puts_waiting.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Lets every put through ([`Fault::GatedPut`]).
    pub fn open_puts(&self) {
        self.puts
            .add_permits(tokio::sync::Semaphore::MAX_PERMITS / 2);
    }

    /// Deletes of these keys fail from now on ([`Fault::FailChosen`]).
    pub fn fail_keys<'a>(&self, keys: impl IntoIterator<Item = &'a str>) {
        self.fail
            .lock()
            .unwrap()
            .extend(keys.into_iter().map(Path::from));
    }

    /// Deletes work again.
    pub fn heal(&self) {
        self.fail.lock().unwrap().clear();
    }

    fn injected(path: &Path) -> object_store::Error {
        object_store::Error::Generic {
            store: "FaultyStore",
            source: format!("injected delete failure for {path}").into(),
        }
    }
}

impl fmt::Display for FaultyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FaultyStore({})", self.inner)
    }
}

#[async_trait::async_trait]
impl ObjectStore for FaultyStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        if self.fault == Fault::GatedPut {
            self.puts_waiting
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            self.puts.acquire().await.expect("the gate stays").forget();
        }
        let put = self.inner.put_opts(location, payload, opts).await;
        if self.fault == Fault::HangAfterPut {
            return std::future::pending().await;
        }
        put
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    async fn delete(&self, location: &Path) -> object_store::Result<()> {
        let mut results = self
            .delete_stream(stream::iter([Ok(location.clone())]).boxed())
            .collect::<Vec<_>>()
            .await;
        results.pop().expect("one result").map(drop)
    }

    /// Passes the deletes that are not to fail to the real store's `delete_stream` (bulk on
    /// S3), then answers in input order as the trait requires.
    fn delete_stream<'a>(
        &'a self,
        locations: BoxStream<'a, object_store::Result<Path>>,
    ) -> BoxStream<'a, object_store::Result<Path>> {
        async move {
            let paths: Vec<Path> = locations
                .filter_map(|p| async move { p.ok() })
                .collect()
                .await;
            self.max_batch.fetch_max(paths.len(), Ordering::SeqCst);
            self.delete_requests.fetch_add(1, Ordering::SeqCst);
            if self.fault == Fault::Down || (self.fault == Fault::NoBulk && paths.len() > 1) {
                let down: Vec<object_store::Result<Path>> = match paths.first() {
                    Some(p) => vec![Err(Self::injected(p))],
                    None => Vec::new(),
                };
                return stream::iter(down);
            }
            let failing = self.fail.lock().unwrap().clone();
            let passed: Vec<Path> = match self.fault {
                Fault::FailChosen | Fault::NoBulk => paths
                    .iter()
                    .filter(|p| !failing.contains(*p))
                    .cloned()
                    .collect(),
                Fault::DeleteThenFail
                | Fault::DeleteThenAbort
                | Fault::HangAfterPut
                | Fault::GatedPut
                | Fault::Down => paths.clone(),
            };
            let inner: Vec<object_store::Result<Path>> = self
                .inner
                .delete_stream(stream::iter(passed.clone()).map(Ok).boxed())
                .collect()
                .await;
            assert_eq!(
                inner.len(),
                passed.len(),
                "the real store answered every delete"
            );
            if self.fault == Fault::DeleteThenAbort {
                eprintln!(
                    "FaultyStore: {} objects deleted; aborting the process now",
                    passed.len()
                );
                std::process::abort();
            }
            let mut inner = inner.into_iter();
            let out: Vec<object_store::Result<Path>> = paths
                .into_iter()
                .map(|p| match self.fault {
                    Fault::FailChosen | Fault::NoBulk if failing.contains(&p) => {
                        Err(Self::injected(&p))
                    }
                    Fault::FailChosen
                    | Fault::NoBulk
                    | Fault::HangAfterPut
                    | Fault::GatedPut
                    | Fault::Down => inner.next().expect("answer"),
                    Fault::DeleteThenFail | Fault::DeleteThenAbort => {
                        let _ = inner.next();
                        Err(Self::injected(&p))
                    }
                })
                .collect();
            stream::iter(out)
        }
        .flatten_stream()
        .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy(&self, from: &Path, to: &Path) -> object_store::Result<()> {
        self.inner.copy(from, to).await
    }

    async fn copy_if_not_exists(&self, from: &Path, to: &Path) -> object_store::Result<()> {
        self.inner.copy_if_not_exists(from, to).await
    }
}
