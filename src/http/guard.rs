//! What a browser page of another site must not do: act (cross-origin state changes) or read
//! (DNS rebinding). Runs before routing, for every route.
//!
//! * **Host** (when [`HttpConfig::loopback_hosts_only`], i.e. the listen address is
//!   loopback): only `localhost`, `*.localhost`, `127.x.y.z` and `[::1]` (any port), plus the
//!   names of [`HttpConfig::allowed_hosts`], are served; any other `Host` is 403. A page of
//!   `evil.example` whose name an attacker re-points to 127.0.0.1 (DNS rebinding) is
//!   same-origin with itself, so the browser would let it read the answers; its requests
//!   still carry `Host: evil.example`, which is refused here. A request without a `Host`
//!   (HTTP/1.0, tests through `oneshot`) comes from no browser and is served.
//! * **Origin** of a state-changing request (any method but GET, HEAD, OPTIONS): refused with
//!   403 when the browser says it comes from another origin, either by an `Origin` header that
//!   is not this server (`Origin: null` included) or, without `Origin`, by
//!   `Sec-Fetch-Site: cross-site` or `same-site` (another port of localhost is same-site but
//!   not same-origin). Clients that send neither (curl, scripts, the CLI) are not browsers
//!   and pass, to the admin token's check when one is set. "This server" is the request's own
//!   `Host`, or `X-Forwarded-Host` behind a proxy (a page cannot set that header on a
//!   cross-origin request without a CORS preflight, which porter never grants).
//!
//! JSON bodies must also say `Content-Type: application/json` (see `app::api::json_body`): the
//! only content types a cross-site page can send without a preflight are form and text types.

use std::net::{Ipv4Addr, Ipv6Addr};

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{AppError, AppState, HttpConfig};

/// Middleware: the Host check, then the Origin check for state-changing requests.
///
/// An HTTP/2 request names its host in the URI's authority and has no `Host` header: the
/// authority is copied into one, as RFC 9113 (8.3.1) asks of an intermediary that turns such a
/// request into HTTP/1.1, so that every check after this one reads the same host. (The
/// dashboard's check of its own forms read `Host` alone, and refused its own pages' actions
/// over HTTP/2 that `/admin` took.)
pub(super) async fn guard(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    if !request.headers().contains_key(header::HOST) {
        let authority = request.uri().authority().map(|a| a.as_str());
        if let Some(value) = authority.and_then(|a| HeaderValue::from_str(a).ok()) {
            request.headers_mut().insert(header::HOST, value);
        }
    }
    let host = request_host(&request);
    if let Some(host) = host.as_deref() {
        if let Err(e) = check_host(&state.config, host) {
            return e.into_response();
        }
    }
    if changes_state(request.method()) {
        if let Err(e) = check_origin(request.headers(), host.as_deref()) {
            return e.into_response();
        }
    }
    next.run(request).await
}

fn changes_state(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The `Host` header, or the URI's authority (HTTP/2).
fn request_host(request: &Request) -> Option<String> {
    match request.headers().get(header::HOST) {
        Some(v) => Some(String::from_utf8_lossy(v.as_bytes()).into_owned()),
        None => request.uri().authority().map(|a| a.as_str().to_string()),
    }
}

/// The name part of a `Host` value, lowercased, without port or a trailing dot.
fn host_name(host: &str) -> String {
    let host = host.trim();
    let name = if host.starts_with('[') {
        host.split_inclusive(']').next().unwrap_or(host)
    } else {
        host.rsplit_once(':').map_or(host, |(name, _port)| name)
    };
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// Whether an allowed-hosts entry names a host: its name (port and brackets aside) is not
/// empty and holds only what a host name or an IP address does.
pub(super) fn names_a_host(entry: &str) -> bool {
    let name = host_name(entry);
    let bare = name.trim_start_matches('[').trim_end_matches(']');
    !bare.is_empty()
        && bare
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | ':' | '_'))
}

/// Whether a host name is a loopback name: `localhost`, `*.localhost` (RFC 6761 keeps both on
/// loopback), an IPv4 address in 127.0.0.0/8, or `[::1]`.
fn is_loopback_name(name: &str) -> bool {
    if name == "localhost" || name.ends_with(".localhost") {
        return true;
    }
    if let Some(inner) = name.strip_prefix('[').and_then(|n| n.strip_suffix(']')) {
        return inner.parse::<Ipv6Addr>().is_ok_and(|ip| ip.is_loopback());
    }
    name.parse::<Ipv4Addr>().is_ok_and(|ip| ip.is_loopback())
}

fn check_host(config: &HttpConfig, host: &str) -> Result<(), AppError> {
    if !config.loopback_hosts_only {
        return Ok(());
    }
    let name = host_name(host);
    if is_loopback_name(&name)
        || config
            .allowed_hosts
            .iter()
            .any(|allowed| host_name(allowed) == name)
    {
        return Ok(());
    }
    Err(AppError::new(
        StatusCode::FORBIDDEN,
        format!(
            "Host {name:?} is not served: porter listens on a loopback address and answers only \
             localhost, *.localhost, 127.0.0.1 and [::1] (a guard against DNS rebinding); to serve \
             this name, add it to PORTER_ALLOWED_HOSTS or --allowed-hosts"
        ),
    ))
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// Whether an `Origin` names this server: its host is the request's `host` or, behind a
/// proxy, its `X-Forwarded-Host` (a page cannot set that header on a request it sends), compared
/// without case. The dashboard's own checks of its forms use the same rule.
///
/// A proxy chain's `X-Forwarded-Host` lists the hosts it passed, the client's first: that one
/// is compared. A host that names the scheme's default port (`:443` for `https`, `:80` for
/// `http`) is the origin without it.
pub(super) fn origin_is_ours(origin: &str, headers: &HeaderMap, host: Option<&str>) -> bool {
    let Some((scheme, origin_host)) = origin
        .split_once("://")
        .map(|(scheme, rest)| (scheme, rest.trim_end_matches('/')))
    else {
        return false;
    };
    // Only a web page's origin names this server. (The scheme is not compared: behind a proxy
    // that terminates TLS, our own pages are `https` where this server is `http`.)
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "https" => ":443",
        "http" => ":80",
        _ => return false,
    };
    let forwarded = header_str(headers, "x-forwarded-host").and_then(|h| h.split(',').next());
    [host, forwarded].iter().flatten().any(|h| {
        let h = h.trim();
        let h = match h.len().checked_sub(default_port.len()) {
            Some(cut)
                if !default_port.is_empty()
                    && h.is_char_boundary(cut)
                    && h[cut..] == *default_port =>
            {
                &h[..cut]
            }
            _ => h,
        };
        !h.is_empty() && origin_host.eq_ignore_ascii_case(h)
    })
}

fn check_origin(headers: &HeaderMap, host: Option<&str>) -> Result<(), AppError> {
    let refuse = |why: String| {
        Err(AppError::new(
            StatusCode::FORBIDDEN,
            format!(
                "cross-origin request refused: {why}; porter acts only on requests from its own \
                 pages or from clients that are not browsers (curl, scripts)"
            ),
        ))
    };
    // A browser that says where a request comes from is taken at its word first: it compares
    // schemes, which `origin_is_ours` cannot (behind a proxy that ends TLS our own pages are
    // `https` where this server is `http`). Until 7 Dec the Origin was looked at first, so with
    // porter on port 80 a page of another service on the same host's 443 was taken as ours.
    if let Some(site @ ("cross-site" | "same-site")) = header_str(headers, "sec-fetch-site") {
        return refuse(format!(
            "the browser says this request comes from another origin (Sec-Fetch-Site: {site})"
        ));
    }
    if let Some(origin) = header_str(headers, "origin") {
        if origin_is_ours(origin, headers, host) {
            return Ok(());
        }
        let this = host.unwrap_or("(no Host header)");
        return refuse(format!(
            "the request's origin {origin:?} is not this server ({this})"
        ));
    }
    // Without either, a browser still names the page a form was posted from, unless told not
    // to (old browsers, some privacy extensions): a page of another origin is refused as its
    // Origin would be (until 6 Dec it was taken).
    match header_str(headers, "referer") {
        None => Ok(()),
        Some(referer) => {
            let origin = url::Url::parse(referer)
                .ok()
                .map(|u| u.origin().ascii_serialization());
            match origin {
                Some(origin) if origin_is_ours(&origin, headers, host) => Ok(()),
                _ => refuse(format!(
                    "the request comes from a page of another origin (Referer {referer:?})"
                )),
            }
        }
    }
}

/// Every response forbids being framed by another page: a foreign page that framed a
/// dashboard form would have its click sent from the dashboard's own origin, which the
/// origin checks cannot tell from the user's own (clickjacking). Both the old header and the
/// CSP one, for every browser. And every response forbids content sniffing: a JSON error or a
/// metrics page quoting the user's text is read as what its type says, never as a page to run.
pub(super) async fn safe_headers(
    mut response: axum::response::Response,
) -> axum::response::Response {
    let headers = response.headers_mut();
    headers.insert(
        axum::http::header::X_CONTENT_TYPE_OPTIONS,
        axum::http::HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        axum::http::header::X_FRAME_OPTIONS,
        axum::http::HeaderValue::from_static("DENY"),
    );
    headers.insert(
        axum::http::header::CONTENT_SECURITY_POLICY,
        axum::http::HeaderValue::from_static("frame-ancestors 'none'"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowed_hosts_entries_must_name_a_host() {
        for good in [
            "app.test",
            "App.Test:8080",
            "127.0.0.1:9000",
            "[::1]:8080",
            "my_box",
        ] {
            assert!(names_a_host(good), "{good}");
        }
        for bad in ["", " ", ":8080", "[]:80", "a b", "evil\u{0}.test", "é.test"] {
            assert!(!names_a_host(bad), "{bad:?}");
        }
    }

    #[test]
    fn host_names_are_read_and_judged() {
        assert_eq!(host_name("LocalHost:8080"), "localhost");
        assert_eq!(host_name("[::1]:8080"), "[::1]");
        assert_eq!(host_name("localhost."), "localhost");
        for loopback in [
            "localhost",
            "app.localhost",
            "127.0.0.1",
            "127.9.9.9",
            "[::1]",
        ] {
            assert!(is_loopback_name(loopback), "{loopback}");
        }
        for other in [
            "evil.example",
            "localhost.evil.example",
            "10.0.0.1",
            "[::2]",
            "0.0.0.0",
            "127.0.0.1.nip.io",
        ] {
            assert!(!is_loopback_name(other), "{other}");
        }
    }
}
