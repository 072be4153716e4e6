//! The admin token: `Authorization: Bearer TOKEN` on `/admin/*`; for the dashboard's actions
//! also a form field or a cookie (see [`super::dashboard`]). Compared in constant time.

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap};
use axum::middleware::Next;
use axum::response::Response;
use subtle::ConstantTimeEq;

use super::{AppError, AppState};

/// The cookie the dashboard's login sets.
pub const TOKEN_COOKIE: &str = "porter_admin_token";

/// Whether `given` is the token. Constant time in the token's contents (a length mismatch
/// fails at once, which tells an attacker only the length).
pub fn token_matches(expected: &str, given: &str) -> bool {
    bool::from(expected.as_bytes().ct_eq(given.as_bytes()))
}

/// The bearer token of a request, if it sent one.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The token cookie of a request, if it sent one.
pub fn cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == TOKEN_COOKIE)
        .map(|(_, value)| value)
}

/// Whether a request carrying these credentials may act: always when no token is set.
pub fn allowed<'a>(
    expected: Option<&str>,
    candidates: impl IntoIterator<Item = Option<&'a str>>,
) -> bool {
    match expected {
        None => true,
        Some(expected) => {
            // Every candidate is compared, so the time taken does not say which one was tried.
            let mut ok = false;
            for given in candidates.into_iter().flatten() {
                ok |= token_matches(expected, given);
            }
            ok
        }
    }
}

/// Middleware for `/admin/*`: 401 unless the bearer token matches (when a token is set).
pub async fn require_admin(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Result<Response, AppError> {
    if allowed(
        state.config.admin_token.as_deref(),
        [bearer(request.headers())],
    ) {
        Ok(next.run(request).await)
    } else {
        Err(AppError::unauthorized())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_and_cookie_are_read() {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, "Bearer s3cret".parse().unwrap());
        h.insert(
            header::COOKIE,
            "a=b; porter_admin_token=tok; c=d".parse().unwrap(),
        );
        assert_eq!(bearer(&h), Some("s3cret"));
        assert_eq!(cookie(&h), Some("tok"));
        assert!(allowed(Some("tok"), [bearer(&h), cookie(&h)]));
        assert!(!allowed(Some("other"), [bearer(&h), cookie(&h)]));
        assert!(allowed(None, [None]));
        assert!(!allowed(Some("x"), [None]));
        assert!(!token_matches("abc", "abcd"));
    }
}
