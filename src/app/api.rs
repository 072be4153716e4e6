//! The tablo app's HTTP routes: tablos and their files, as an axum [`Router`] that a web
//! process merges into its own (`porter web` does, beside its admin API).
//!
//! | route | answer |
//! |---|---|
//! | `POST /api/tablos` `{"name"}` | 201 `{"id"}` |
//! | `POST /api/tablos/{id}/files` (body = the file, header `x-file-name`) | 201 `{"id","s3_key","size"}` |
//! | `GET /api/tablos/{id}/files?limit=&after=` | 200 `[file, ...]`: a page, in id order (see [`LIST_FILES_BUDGET`]); a `Link` header (`rel="next"`) names the next |
//! | `DELETE /api/tablos/{id}` | 202 `{"job_id"}`: the row delete and its `orphan_file_cleanup` job in one transaction |
//!
//! The host process decides how errors are answered, through [`ApiError`] (the app knows no
//! status codes of its own beyond what the trait asks for), and what happens when a job is
//! inserted ([`Tablos::on_insert`], for its metrics).

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{DefaultBodyLimit, FromRequest, Path, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::routing::{delete, post};
use axum::{Json, Router};
use futures::StreamExt;
use serde::Deserialize;
use serde_json::{json, Value};
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};
use uuid::Uuid;

use std::sync::Arc;

use axum::extract::FromRef;
use axum::response::IntoResponse;
use object_store::ObjectStore;

use crate::app::store::{TabloFilePageParams, TabloStore};
use crate::error::Error;
use crate::store::{list_page_size, read_list_limit, InsertResult, MAX_JSON_DEPTH, MAX_LIST_LIMIT};

/// Longest tablo name.
const MAX_TABLO_NAME: usize = 200;

/// Called with every job the routes inserted.
pub type OnInsert = Arc<dyn Fn(&InsertResult) + Send + Sync>;

/// What the routes need: the app's tables, its objects, and a hook for inserted jobs.
#[derive(Clone)]
pub struct Tablos {
    /// The tablo store.
    pub store: Arc<dyn TabloStore>,
    /// Where tablos' files are stored.
    pub objects: Arc<dyn ObjectStore>,
    /// Called with every job the routes inserted (the cleanup job of a deleted tablo).
    pub on_insert: Option<OnInsert>,
    /// The memory for upload bodies, one permit a byte, shared by every request of the
    /// process ([`Tablos::upload_memory`]): an upload takes permits for its bytes as they
    /// arrive and holds them until its file is saved; one that finds too few is answered 503.
    pub uploads: Arc<tokio::sync::Semaphore>,
}

impl Tablos {
    /// The memory for [`Tablos::uploads`], `bytes` in all: one per process, made once.
    pub fn upload_memory(bytes: usize) -> Arc<tokio::sync::Semaphore> {
        Arc::new(tokio::sync::Semaphore::new(
            bytes.min(tokio::sync::Semaphore::MAX_PERMITS),
        ))
    }
}

impl std::fmt::Debug for Tablos {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tablos")
            .field("backend", &self.store.backend())
            .field("objects", &self.objects.to_string())
            .finish_non_exhaustive()
    }
}

/// The error answer of the host process, which the routes return: built from the library's
/// errors, from axum's rejections of a path or a body, and from the two cases below.
pub trait ApiError:
    IntoResponse + From<Error> + From<PathRejection> + From<BytesRejection> + Send + 'static
{
    /// A JSON body without a JSON `Content-Type` (415).
    fn unsupported_media_type(message: String) -> Self;
    /// The server cannot take the request now; it may be sent again shortly (503).
    fn busy(message: String) -> Self;
    /// A body over the limit (413).
    fn too_large(message: String) -> Self;
    /// A JSON body that does not parse (400) or has the wrong shape (422).
    fn from_json(e: serde_json::Error) -> Self;
}

/// The routes, answering errors as `E`; uploads up to `max_file_bytes`.
pub fn routes<S, E>(max_file_bytes: usize) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    Tablos: FromRef<S>,
    E: ApiError,
{
    Router::new()
        .route("/api/tablos", post(create_tablo::<E>))
        .route(
            "/api/tablos/{id}/files",
            post(move |state, id, request| upload_file::<E>(state, id, request, max_file_bytes))
                .layer(DefaultBodyLimit::max(max_file_bytes))
                .get(list_files::<E>),
        )
        .route("/api/tablos/{id}", delete(delete_tablo::<E>))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewTablo {
    name: String,
}

/// Parses a JSON body, which must say `Content-Type: application/json` (or a `+json` type):
/// 415 otherwise. A browser page of another site can send text/plain or a form without asking
/// first (no CORS preflight), so a lenient server would take its JSON.
pub fn json_body<T: serde::de::DeserializeOwned, E: ApiError>(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<T, E> {
    let content_type = headers
        .get(axum::http::header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let essence = content_type
        .as_deref()
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if essence != "application/json"
        && !(essence.starts_with("application/") && essence.ends_with("+json"))
    {
        return Err(E::unsupported_media_type(
            format!(
                "a JSON body needs Content-Type: application/json (got {}); with curl: -H 'content-type: application/json'",
                content_type.as_deref().map_or_else(|| "none".to_string(), |c| format!("{c:?}"))
            ),
        ));
    }
    let body = body?;
    // serde_json's own limit (128 levels) counted the request's object, so args of exactly
    // MAX_JSON_DEPTH levels, which the store and the CLI take, were a 400 "recursion limit
    // exceeded". Bodies are read without that limit instead, once their nesting is known to be
    // no deeper than any request porter takes: args one level deeper still reach the store's
    // clear refusal, and anything deeper is refused here in the same words (422, even for a
    // body that would not have parsed).
    if !nests_within(&body, MAX_BODY_DEPTH) {
        return Err(Error::invalid(
            "JSON body",
            format!(
                "nests arrays and objects more than {MAX_BODY_DEPTH} levels deep: porter takes args at most {MAX_JSON_DEPTH} levels deep, as deep as it reads back"
            ),
        )
        .into());
    }
    // An object: serde's derived structs also take an array of their fields in order, which
    // made the fields' order part of the API (until 7 Dec such a body inserted a job).
    if body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
        return Err(Error::invalid(
            "JSON body",
            "is an array: send an object, {\"field\": value, ...}",
        )
        .into());
    }
    let mut reader = serde_json::Deserializer::from_slice(&body);
    reader.disable_recursion_limit();
    let value = T::deserialize(&mut reader).map_err(E::from_json)?;
    reader.end().map_err(E::from_json)?;
    // Once it parsed: malformed text is the parser's to name (`5-` is no integer).
    crate::store::refuse_wide_integers("JSON body", &body)?;
    Ok(value)
}

/// The deepest JSON body read: a request's object, its args at most [`MAX_JSON_DEPTH`] levels
/// deep, and one level more (which the store refuses by name).
const MAX_BODY_DEPTH: usize = MAX_JSON_DEPTH + 2;

/// Whether JSON text nests arrays and objects at most `limit` levels deep (strings skipped;
/// malformed text is left to the parser).
fn nests_within(text: &[u8], limit: usize) -> bool {
    let mut depth = 0usize;
    for (_, b) in crate::store::json_outside_strings(text) {
        match b {
            b'[' | b'{' => {
                depth += 1;
                if depth > limit {
                    return false;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    true
}

async fn create_tablo<E: ApiError>(
    State(state): State<Tablos>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Value>), E> {
    let NewTablo { name } = json_body::<_, E>(&headers, body)?;
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_TABLO_NAME {
        return Err(Error::invalid(
            "name",
            format!("a tablo name has 1 to {MAX_TABLO_NAME} characters"),
        )
        .into());
    }
    // NUL would be stored by SQLite and refused by PostgreSQL (a 500); the other control
    // characters (newline, escape, ...) could forge lines wherever the name is shown.
    if name.chars().any(char::is_control) {
        return Err(Error::invalid(
            "name",
            "a tablo name has no control characters (NUL, newline, tab, escape, ...)",
        )
        .into());
    }
    // Zero-width spaces, byte order marks, soft hyphens, directional marks (Unicode's format
    // characters) show nothing: a name of those and spaces reads as blank.
    if !name
        .chars()
        .any(|c| !c.is_whitespace() && c.general_category() != GeneralCategory::Format)
    {
        return Err(Error::invalid(
            "name",
            "a tablo name has a visible character (not only spaces, zero-width or formatting characters)",
        )
        .into());
    }
    crate::store::watch::write_begins();
    let tablo = state.store.tablo_insert(name).await?;
    Ok((StatusCode::CREATED, Json(json!({ "id": tablo.id }))))
}

async fn upload_file<E: ApiError>(
    State(state): State<Tablos>,
    id: Result<Path<Uuid>, PathRejection>,
    request: Request,
    max_file_bytes: usize,
) -> Result<(StatusCode, Json<Value>), E> {
    let Path(tablo_id) = id?;
    let name = match request.headers().get("x-file-name") {
        None => String::new(),
        Some(v) => v
            .to_str()
            .map_err(|_| {
                Error::invalid(
                    "x-file-name",
                    "must be visible ASCII; percent-encode other characters",
                )
            })?
            .to_string(),
    };
    // An unknown tablo is 404 whatever the body (even one over the limit), which is not read.
    if state.store.tablo_get(tablo_id).await?.is_none() {
        return Err(Error::not_found("tablo", tablo_id).into());
    }
    // A length over the limit, said up front, is refused before the body is read.
    let said = request
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if said.is_some_and(|n| n > max_file_bytes as u64) {
        return Err(E::too_large(format!(
            "the file is over this server's limit of {max_file_bytes} bytes for an upload"
        )));
    }
    // The body is read (within the route's limit) taking a permit of the process's upload
    // memory for each byte as it arrives, held until the file is saved: the bodies in memory
    // stay within it however many requests come, and a slow upload holds only what it sent.
    // One that finds too few is answered 503 at once (waiting, uploads that each held part
    // of the memory would wait for one another until their timeouts).
    let held = Arc::new(std::sync::Mutex::new(
        None::<tokio::sync::OwnedSemaphorePermit>,
    ));
    let short = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (parts, body) = request.into_parts();
    let counted = {
        let (memory, held, short) = (state.uploads.clone(), held.clone(), short.clone());
        body.into_data_stream().map(move |chunk| {
            let chunk = chunk?;
            let n = u32::try_from(chunk.len()).unwrap_or(u32::MAX);
            match memory.clone().try_acquire_many_owned(n) {
                Ok(permit) => {
                    let mut held = held.lock().unwrap_or_else(|p| p.into_inner());
                    match held.as_mut() {
                        Some(all) => all.merge(permit),
                        None => *held = Some(permit),
                    }
                    Ok(chunk)
                }
                Err(_) => {
                    short.store(true, std::sync::atomic::Ordering::SeqCst);
                    Err(axum::Error::new("the upload memory is taken"))
                }
            }
        })
    };
    let request = Request::from_parts(parts, axum::body::Body::from_stream(counted));
    let body = match Bytes::from_request(request, &()).await {
        Ok(body) => body,
        Err(_) if short.load(std::sync::atomic::Ordering::SeqCst) => {
            return Err(E::busy(
                "the uploads under way hold all the memory this server gives uploads; send the file again shortly".to_string(),
            ));
        }
        Err(e) => return Err(e.into()),
    };
    let file = crate::app::files::save_tablo_file(
        state.store.as_ref(),
        state.objects.as_ref(),
        tablo_id,
        &name,
        body,
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "id": file.id, "s3_key": file.s3_key, "size": file.size })),
    ))
}

/// Most bytes of file rows (as JSON) in one answer of `GET /api/tablos/{id}/files`: 4 MiB, as
/// the admin listings. At least one row is always answered.
pub const LIST_FILES_BUDGET: usize = 4 * 1024 * 1024;

/// Rows read from the database at a time while a page of files is answered: few, so that
/// rows another program wrote with huge keys are not read far past the byte budget.
const LIST_FILES_FETCH: u32 = 50;

/// `GET /api/tablos/{id}/files?limit=&after=`: the tablo's files in id order, as a JSON array,
/// at most `limit` of them (default 100, at most 10,000) and no more than
/// [`LIST_FILES_BUDGET`] bytes; `after` (a file id) starts past that file. When more files may
/// follow, a `Link` header names the next page (`rel="next"`). Until 6 Dec the route answered
/// every file of the tablo in one body (a million files: 200 MB, and a gigabyte of the web
/// process's memory, for one request).
async fn list_files<E: ApiError>(
    State(state): State<Tablos>,
    id: Result<Path<Uuid>, PathRejection>,
    RawQuery(query): RawQuery,
) -> Result<(HeaderMap, Json<Value>), E> {
    let Path(tablo_id) = id?;
    let (limit, mut after) = list_files_params(query.as_deref())?;
    if state.store.tablo_get(tablo_id).await?.is_none() {
        return Err(Error::not_found("tablo", tablo_id).into());
    }
    let mut files = Vec::new();
    let mut bytes = 2usize;
    let mut more = false;
    'pages: loop {
        let want = (limit - files.len()).min(LIST_FILES_FETCH as usize) as u32 + 1;
        let page = state
            .store
            .tablo_file_page(TabloFilePageParams {
                tablo_id,
                after,
                limit: want,
            })
            .await?;
        let short = page.len() < want as usize;
        for file in page {
            let row = json!(file);
            let size = row.to_string().len() + 1;
            if files.len() == limit || (!files.is_empty() && bytes + size > LIST_FILES_BUDGET) {
                more = true;
                break 'pages;
            }
            bytes += size;
            after = Some(file.id);
            files.push(row);
        }
        if short {
            break;
        }
    }
    let mut headers = HeaderMap::new();
    if let (true, Some(last)) = (more, after) {
        let next =
            format!("</api/tablos/{tablo_id}/files?after={last}&limit={limit}>; rel=\"next\"");
        if let Ok(value) = HeaderValue::from_str(&next) {
            headers.insert(axum::http::header::LINK, value);
        }
    }
    Ok((headers, Json(Value::Array(files))))
}

/// `limit` and `after` of `GET /api/tablos/{id}/files`; anything else is refused.
fn list_files_params(query: Option<&str>) -> Result<(usize, Option<Uuid>), Error> {
    let (mut limit, mut after) = (None, None);
    for (key, value) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        let twice = || Error::invalid("query", format!("{key:?} is given more than once"));
        match key.as_ref() {
            "limit" => {
                // As the admin listings read it (0 listed one file, and a number too long for
                // a u32 was refused, until 6 Dec).
                let n: u32 = read_list_limit(&value).ok_or_else(|| {
                    Error::invalid(
                        "limit",
                        format!("{value:?} is not a number from 1 to {MAX_LIST_LIMIT}"),
                    )
                })?;
                if limit.replace(n).is_some() {
                    return Err(twice());
                }
            }
            "after" => {
                let id = Uuid::parse_str(&value)
                    .map_err(|_| Error::invalid("after", format!("{value:?} is not a file id")))?;
                if after.replace(id).is_some() {
                    return Err(twice());
                }
            }
            other => {
                return Err(Error::invalid(
                    "query",
                    format!("unknown parameter {other:?} (use limit, after)"),
                ))
            }
        }
    }
    Ok((list_page_size(limit) as usize, after))
}

async fn delete_tablo<E: ApiError>(
    State(state): State<Tablos>,
    id: Result<Path<Uuid>, PathRejection>,
) -> Result<(StatusCode, Json<Value>), E> {
    let Path(tablo_id) = id?;
    crate::store::watch::write_begins();
    match state.store.tablo_delete_enqueue(tablo_id).await? {
        Some(inserted) => {
            if let Some(on_insert) = &state.on_insert {
                on_insert(&inserted);
            }
            Ok((
                StatusCode::ACCEPTED,
                Json(json!({ "job_id": inserted.job.id })),
            ))
        }
        None => Err(Error::not_found("tablo", tablo_id).into()),
    }
}
