//! `AppError`: the one place where errors become HTTP statuses and `{"error": "..."}` bodies.

use std::time::Duration;

use axum::extract::rejection::{BytesRejection, FormRejection, PathRejection, QueryRejection};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::error::Error;

/// An error answer: a status and a message, sent as `{"error": message}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppError {
    /// The HTTP status.
    pub status: StatusCode,
    /// What went wrong, for the client.
    pub message: String,
}

impl AppError {
    /// An error with a status and a message.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        AppError {
            status,
            message: message.into(),
        }
    }

    /// 401, with the message a client needs to fix it.
    pub fn unauthorized() -> Self {
        AppError::new(
            StatusCode::UNAUTHORIZED,
            "missing or wrong admin token: send Authorization: Bearer <PORTER_ADMIN_TOKEN>",
        )
    }

    /// A body that is not JSON at all is 400; JSON of the wrong shape is 422.
    pub fn from_json(e: serde_json::Error) -> Self {
        use serde_json::error::Category;
        let status = match e.classify() {
            Category::Data => StatusCode::UNPROCESSABLE_ENTITY,
            Category::Syntax | Category::Eof | Category::Io => StatusCode::BAD_REQUEST,
        };
        AppError::new(status, format!("invalid JSON body: {e}"))
    }
}

/// The status an error is answered with; see the module docs of [`crate::http`].
pub(crate) fn status_for(e: &Error) -> StatusCode {
    match e {
        Error::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
        Error::NotFound { .. } => StatusCode::NOT_FOUND,
        Error::Conflict(_) | Error::Fenced { .. } => StatusCode::CONFLICT,
        Error::Unavailable(_) | Error::Closed | Error::Timeout(_) => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        Error::ObjectStore(_) => StatusCode::BAD_GATEWAY,
        Error::DatabaseTooNew { .. }
        | Error::Database(_)
        | Error::Migration(_)
        | Error::Panicked(_)
        | Error::StillRunning(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl From<Error> for AppError {
    fn from(e: Error) -> Self {
        let status = status_for(&e);
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            // The driver's words stay in the log; the client learns only that it failed.
            tracing::error!(error = %e, "request failed");
            return AppError::new(status, "internal error (see the server log)");
        }
        if status.is_server_error() {
            tracing::warn!(error = %e, "request failed");
        }
        if let Error::ObjectStore(_) = e {
            // The store's words name the server's directories (file://), or its S3 endpoint,
            // bucket and request ids: they stay in the log.
            return AppError::new(status, "object store error (see the server log)");
        }
        AppError::new(status, e.to_string())
    }
}

macro_rules! from_rejection {
    ($($t:ty),*) => {$(
        impl From<$t> for AppError {
            fn from(r: $t) -> Self {
                // axum answers a malformed path or query with 400 (or 422 for a path that
                // parses but does not deserialize); a body over the limit with 413.
                let status = match r.status() {
                    StatusCode::UNPROCESSABLE_ENTITY => StatusCode::BAD_REQUEST,
                    s => s,
                };
                AppError::new(status, r.body_text())
            }
        }
    )*};
}
from_rejection!(BytesRejection, FormRejection, PathRejection, QueryRejection);

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            Json(serde_json::json!({ "error": self.message })),
        )
            .into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// The body limits a 413 names: JSON bodies ([`super::HttpConfig::max_json_bytes`]) and
/// uploads ([`super::HttpConfig::max_file_bytes`]).
#[derive(Debug, Clone, Copy)]
pub(super) struct BodyLimits {
    pub json: usize,
    pub file: usize,
}

/// Names the limit in a 413, whose message was axum's "length limit exceeded": an upload's
/// (`POST /api/tablos/{id}/files`) or every other body's.
pub(super) async fn name_the_body_limit(
    State(limits): State<BodyLimits>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path();
    let upload = path.starts_with("/api/tablos/") && path.ends_with("/files");
    let response = next.run(request).await;
    if response.status() != StatusCode::PAYLOAD_TOO_LARGE {
        return response;
    }
    let message = if upload {
        format!(
            "the file is over this server's limit of {} bytes for an upload",
            limits.file
        )
    } else {
        format!(
            "the request body is over this server's limit of {} bytes",
            limits.json
        )
    };
    AppError::new(StatusCode::PAYLOAD_TOO_LARGE, message).into_response()
}

/// Gives the error answers that come without a body of their own (the router's 405 for a
/// method a route does not answer, the timeout's 408) the `{"error": ...}` body of every
/// other error, keeping their headers (`Allow`). The outermost layer, so it sees the 408;
/// `timeout` is the request timeout, for its message.
pub(super) async fn bodiless_errors_as_json(
    State(timeout): State<Duration>,
    request: Request,
    next: Next,
) -> Response {
    let method = request.method().clone();
    let response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error())
        || response.headers().contains_key(header::CONTENT_TYPE)
    {
        return response;
    }
    let message = match status {
        StatusCode::METHOD_NOT_ALLOWED => format!(
            "{method} is not allowed on this route (allowed: {})",
            response
                .headers()
                .get(header::ALLOW)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("none")
        ),
        StatusCode::REQUEST_TIMEOUT => format!(
            "the request took longer than the request timeout ({} s)",
            timeout.as_secs_f64()
        ),
        s => s.canonical_reason().unwrap_or("error").to_string(),
    };
    let (parts, _) = response.into_parts();
    let mut answer = AppError::new(status, message).into_response();
    for (name, value) in &parts.headers {
        if name != header::CONTENT_LENGTH && !answer.headers().contains_key(name) {
            answer.headers_mut().insert(name, value.clone());
        }
    }
    answer
}

/// The web process answers the tablo app's routes like its own.
impl crate::app::api::ApiError for AppError {
    fn unsupported_media_type(message: String) -> Self {
        AppError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, message)
    }

    fn busy(message: String) -> Self {
        AppError::new(StatusCode::SERVICE_UNAVAILABLE, message)
    }

    fn too_large(message: String) -> Self {
        AppError::new(StatusCode::PAYLOAD_TOO_LARGE, message)
    }

    fn from_json(e: serde_json::Error) -> Self {
        AppError::from_json(e)
    }
}

impl std::fmt::Display for AppError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.status, self.message)
    }
}
