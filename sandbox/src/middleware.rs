//! Platform behaviour that sits outside the views (§1): django-cors-headers with
//! `CORS_ORIGIN_ALLOW_ALL` on `^/api/.*$`, and Django's `APPEND_SLASH` redirect for a path that
//! only matches a route once a slash is appended.

use axum::extract::Request;
use axum::http::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_MAX_AGE, ACCESS_CONTROL_REQUEST_METHOD, CONTENT_LENGTH, CONTENT_TYPE, LOCATION,
    ORIGIN, VARY,
};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::Sandbox;

/// django-cors-headers' `default_headers`, sent as `Access-Control-Allow-Headers`.
const ALLOW_HEADERS: &str =
    "accept, authorization, content-type, user-agent, x-csrftoken, x-requested-with";
/// django-cors-headers' `default_methods`, sent as `Access-Control-Allow-Methods`.
const ALLOW_METHODS: &str = "DELETE, GET, OPTIONS, PATCH, POST, PUT";
/// django-cors-headers' default `CORS_PREFLIGHT_MAX_AGE`, in seconds.
const MAX_AGE: &str = "86400";
/// Django's default content type, used by the preflight answer and the slash redirect.
const DJANGO_HTML: &str = "text/html; charset=utf-8";

/// django-cors-headers 4.x (`CorsMiddleware`) with `CORS_ORIGIN_ALLOW_ALL = True`,
/// `CORS_URLS_REGEX = r"^/api/.*$"` and every other setting at its default. On `/api/` paths:
/// an `OPTIONS` request carrying `Access-Control-Request-Method` is answered at once with an
/// empty 200; every answer gets `Vary: origin`; when the request has an `Origin`, the answer
/// gets `Access-Control-Allow-Origin: *`, and an `OPTIONS` answer also gets the allowed headers,
/// methods and max age. Other paths pass through untouched.
pub(crate) async fn cors(request: Request, next: Next) -> Response {
    if !request.uri().path().starts_with("/api/") {
        return next.run(request).await;
    }
    let has_origin = request.headers().get(ORIGIN).is_some_and(|v| !v.is_empty());
    let is_options = request.method() == Method::OPTIONS;
    let mut response =
        if is_options && request.headers().contains_key(ACCESS_CONTROL_REQUEST_METHOD) {
            (
                StatusCode::OK,
                [
                    (CONTENT_TYPE, HeaderValue::from_static(DJANGO_HTML)),
                    (CONTENT_LENGTH, HeaderValue::from_static("0")),
                ],
            )
                .into_response()
        } else {
            next.run(request).await
        };
    let headers = response.headers_mut();
    patch_vary_origin(headers);
    if has_origin {
        headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
        if is_options {
            headers.insert(ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static(ALLOW_HEADERS));
            headers.insert(ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static(ALLOW_METHODS));
            headers.insert(ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static(MAX_AGE));
        }
    }
    response
}

/// Django's `patch_vary_headers(response, ("origin",))`: appends `origin` to `Vary` unless it
/// is already listed (in any case) or `Vary` is `*`.
fn patch_vary_origin(headers: &mut HeaderMap) {
    let existing: Vec<String> = headers
        .get_all(VARY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
        .collect();
    if existing.iter().any(|v| v == "*" || v.eq_ignore_ascii_case("origin")) {
        return;
    }
    let joined = existing.into_iter().chain(["origin".to_owned()]).collect::<Vec<_>>().join(", ");
    if let Ok(value) = HeaderValue::from_str(&joined) {
        headers.insert(VARY, value);
    }
}

/// Whether a route pattern (`{name}` stands for one non-empty segment) matches a path.
fn route_matches(pattern: &str, path: &str) -> bool {
    let mut pattern_segments = pattern.split('/');
    let mut path_segments = path.split('/');
    loop {
        match (pattern_segments.next(), path_segments.next()) {
            (None, None) => return true,
            (Some(p), Some(s)) if p.starts_with('{') && p.ends_with('}') => {
                if s.is_empty() {
                    return false;
                }
            }
            (Some(p), Some(s)) if p == s => {}
            _ => return false,
        }
    }
}

/// The router's fallback, Django's `CommonMiddleware` with `APPEND_SLASH`: a GET or HEAD whose
/// path lacks the trailing slash but matches one of `routes` with it gets a 301 to the slashed
/// path (base path prefix and query string kept). Anything else is a plain 404.
pub(crate) fn append_slash(sb: &Sandbox, routes: &[&str], method: &Method, uri: &Uri) -> Response {
    let path = uri.path();
    let slashed = format!("{path}/");
    let redirects = matches!(*method, Method::GET | Method::HEAD)
        && !path.ends_with('/')
        && routes.iter().any(|route| route_matches(route, &slashed));
    if !redirects {
        return StatusCode::NOT_FOUND.into_response();
    }
    let mut location = sb.link(&slashed);
    if let Some(query) = uri.query().filter(|q| !q.is_empty()) {
        location.push('?');
        location.push_str(query);
    }
    if let Some(rest) = location.strip_prefix("//") {
        location = format!("/%2F{rest}");
    }
    match HeaderValue::from_str(&location) {
        Ok(value) => (
            StatusCode::MOVED_PERMANENTLY,
            [(CONTENT_TYPE, HeaderValue::from_static(DJANGO_HTML)), (LOCATION, value)],
        )
            .into_response(),
        Err(_) => StatusCode::NOT_FOUND.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::route_matches;

    #[test]
    fn patterns_match_whole_segments() {
        assert!(route_matches("/activity/{slug}/", "/activity/diet-survey/"));
        assert!(!route_matches("/activity/{slug}/", "/activity//"));
        assert!(!route_matches("/activity/{slug}/", "/activity/a/b/"));
        assert!(route_matches("/sandbox/stats/", "/sandbox/stats/"));
        assert!(!route_matches("/sandbox/stats/", "/sandbox/stats"));
        assert!(!route_matches("/sandbox/stats/", "/sandbox/stat/"));
    }
}
