//! The application's routes: tablos and their files.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{delete, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

use super::{AppError, AppState, HttpConfig};
use crate::error::Error;

/// Longest tablo name.
const MAX_TABLO_NAME: usize = 200;

pub(super) fn routes(config: &HttpConfig) -> Router<AppState> {
    Router::new()
        .route("/api/tablos", post(create_tablo))
        .route(
            "/api/tablos/{id}/files",
            post(upload_file)
                .layer(DefaultBodyLimit::max(config.max_file_bytes))
                .get(list_files),
        )
        .route("/api/tablos/{id}", delete(delete_tablo))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewTablo {
    name: String,
}

/// Parses a JSON body, which must say `Content-Type: application/json` (or a `+json` type):
/// 415 otherwise. A browser page of another site can send text/plain or a form without asking
/// first (no CORS preflight), so a lenient server would take its JSON.
pub(super) fn json_body<T: serde::de::DeserializeOwned>(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<T, AppError> {
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
        return Err(AppError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "a JSON body needs Content-Type: application/json (got {}); with curl: -H 'content-type: application/json'",
                content_type.as_deref().map_or_else(|| "none".to_string(), |c| format!("{c:?}"))
            ),
        ));
    }
    let body = body?;
    serde_json::from_slice(&body).map_err(AppError::from_json)
}

async fn create_tablo(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Value>), AppError> {
    let NewTablo { name } = json_body(&headers, body)?;
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_TABLO_NAME {
        return Err(Error::invalid(
            "name",
            format!("a tablo name has 1 to {MAX_TABLO_NAME} characters"),
        )
        .into());
    }
    let tablo = state.tablos.tablo_insert(name).await?;
    Ok((StatusCode::CREATED, Json(json!({ "id": tablo.id }))))
}

async fn upload_file(
    State(state): State<AppState>,
    id: Result<Path<Uuid>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Value>), AppError> {
    let Path(tablo_id) = id?;
    let name = match headers.get("x-file-name") {
        None => "",
        Some(v) => v.to_str().map_err(|_| {
            Error::invalid(
                "x-file-name",
                "must be visible ASCII; percent-encode other characters",
            )
        })?,
    };
    // An unknown tablo is 404 whatever the body (even one over the limit).
    if state.tablos.tablo_get(tablo_id).await?.is_none() {
        return Err(Error::not_found("tablo", tablo_id).into());
    }
    let body = body?;
    let file = crate::app::files::save_tablo_file(
        state.tablos.as_ref(),
        state.objects.as_ref(),
        tablo_id,
        name,
        body,
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "id": file.id, "s3_key": file.s3_key, "size": file.size })),
    ))
}

async fn list_files(
    State(state): State<AppState>,
    id: Result<Path<Uuid>, PathRejection>,
) -> Result<Json<Value>, AppError> {
    let Path(tablo_id) = id?;
    if state.tablos.tablo_get(tablo_id).await?.is_none() {
        return Err(Error::not_found("tablo", tablo_id).into());
    }
    let files = state.tablos.tablo_file_list(tablo_id).await?;
    Ok(Json(json!(files)))
}

async fn delete_tablo(
    State(state): State<AppState>,
    id: Result<Path<Uuid>, PathRejection>,
) -> Result<(StatusCode, Json<Value>), AppError> {
    let Path(tablo_id) = id?;
    match state.tablos.tablo_delete_enqueue(tablo_id).await? {
        Some(inserted) => {
            state
                .metrics
                .inserted(&inserted.job.queue, &inserted.job.kind, inserted.inserted);
            Ok((
                StatusCode::ACCEPTED,
                Json(json!({ "job_id": inserted.job.id })),
            ))
        }
        None => Err(Error::not_found("tablo", tablo_id).into()),
    }
}
