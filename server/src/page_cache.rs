//! A short-lived cache of the signup page as anonymous visitors get it.
//!
//! The signup page is the project's public address: every visitor without a session sees the
//! same HTML, built from the project's description (itself cached for a minute). Rendering it
//! costs far more than sending it, so the rendered page is kept for [`PAGE_TTL`] and served from
//! memory meanwhile. Only a plain `GET /` without a cookie or query string is cached, only a 200
//! answer without `Set-Cookie`, so nothing personal is ever stored or served to someone else.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::RwLock;

/// How long a rendered signup page is served from memory.
pub const PAGE_TTL: Duration = Duration::from_secs(5);

/// The largest page kept (the signup page is a few kilobytes).
const MAX_PAGE_BYTES: usize = 256 * 1024;

/// The cached page, shared by every request.
#[derive(Debug, Clone, Default)]
pub struct PageCache {
    entry: Arc<RwLock<Option<Entry>>>,
}

#[derive(Debug)]
struct Entry {
    at: Instant,
    headers: HeaderMap,
    body: Bytes,
}

/// Whether a request may be answered from, or stored in, the cache.
fn cacheable(request: &Request) -> bool {
    request.method() == Method::GET
        && request.uri().path() == "/"
        && request.uri().query().is_none()
        && !request.headers().contains_key(header::COOKIE)
}

/// Middleware: answers anonymous `GET /` from the cache while it is fresh, and fills it otherwise.
pub async fn signup_page(State(cache): State<PageCache>, request: Request, next: Next) -> Response {
    if !cacheable(&request) {
        return next.run(request).await;
    }
    if let Some(entry) = &*cache.entry.read().await
        && entry.at.elapsed() < PAGE_TTL
    {
        return (StatusCode::OK, entry.headers.clone(), Body::from(entry.body.clone()))
            .into_response();
    }
    let response = next.run(request).await;
    if response.status() != StatusCode::OK || response.headers().contains_key(header::SET_COOKIE) {
        return response;
    }
    let (parts, body) = response.into_parts();
    let body = match axum::body::to_bytes(body, MAX_PAGE_BYTES).await {
        Ok(body) => body,
        Err(err) => {
            tracing::warn!(%err, "could not read the signup page to cache it");
            return (StatusCode::INTERNAL_SERVER_ERROR, "Please try again.").into_response();
        }
    };
    let mut headers = parts.headers.clone();
    // The body is whole now: let the server frame it afresh.
    headers.remove(header::TRANSFER_ENCODING);
    headers.remove(header::CONTENT_LENGTH);
    *cache.entry.write().await =
        Some(Entry { at: Instant::now(), headers: headers.clone(), body: body.clone() });
    (parts.status, headers, Body::from(body)).into_response()
}
