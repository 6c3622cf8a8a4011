//! The HTTP surface: the Leptos pages and server functions, health checks, static files.

use std::sync::{Arc, OnceLock};

use app::backend::SharedBackend;
use app::{App, shell};
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::extract::{MatchedPath, State};
use axum::http::{Method, Request, StatusCode, header};
use axum::routing::{get, post};
use leptos::prelude::provide_context;
use leptos_axum::{AxumRouteListing, LeptosRoutes, generate_route_list};
use tower_http::trace::TraceLayer;
use tower_sessions::cookie::SameSite;
use tower_sessions::{Expiry, SessionManagerLayer};

use crate::AppState;
use crate::backend::ServerBackend;
use crate::page_cache::{self, PageCache};
use crate::sessions::DbSessionStore;
use crate::{enrollment, files};

/// Where the in-process sandbox is mounted on the embedded default.
pub const SANDBOX_PREFIX: &str = "/oh-sandbox";

/// The Leptos page routes, generated once per process.
///
/// Generating them renders the app with resource loading switched off for the whole process
/// (leptos_server's `SuppressResourceLoad` is a global flag; see leptos-rs/leptos#4773). A page
/// rendering meanwhile, in another ohkit router in the same process, would create its resources
/// while the flag is up and never load them: the page would hang. Generating once, before any
/// router exists, leaves no such window; several routers in one process are what the
/// integration tests run.
fn route_list() -> Vec<AxumRouteListing> {
    static ROUTES: OnceLock<Vec<AxumRouteListing>> = OnceLock::new();
    ROUTES.get_or_init(|| generate_route_list(App)).clone()
}

/// Builds the whole router. It does no input or output of its own, so tests call it directly.
pub fn app(state: AppState) -> Router {
    let routes = route_list();
    let backend: SharedBackend = Arc::new(ServerBackend::new(state.clone()));
    let context = move || provide_context(backend.clone());
    let options = state.leptos_options.clone();

    let secure_cookies = state.config.public_url().scheme() == "https";
    let sessions = SessionManagerLayer::new(DbSessionStore::new(state.db.clone()))
        .with_name("ohkit_session")
        .with_http_only(true)
        .with_same_site(SameSite::Lax)
        .with_secure(secure_cookies)
        .with_expiry(Expiry::OnInactivity(time::Duration::days(14)));
    let upload_limit = DefaultBodyLimit::max(files::MAX_UPLOAD_BYTES as usize + 1024 * 1024);

    let router = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/join", get(enrollment::join))
        .route("/files/{id}/download", get(files::download))
        .route("/files/upload", post(files::upload).layer(upload_limit));
    let router = match &state.sandbox {
        Some(sandbox) => router.nest_service(SANDBOX_PREFIX, sandbox.router()),
        None => router,
    };
    #[cfg(feature = "bench-routes")]
    let router = router.route("/bench/hello", get(|| async { "Hello, World!" }));

    router
        .leptos_routes_with_context(&state, routes, context, move || shell(options.clone()))
        .fallback(leptos_axum::file_and_error_handler::<AppState, _>(shell))
        .layer(sessions)
        .layer(axum::middleware::from_fn_with_state(PageCache::default(), page_cache::signup_page))
        .layer(axum::middleware::from_fn_with_state(state.clone(), same_origin_writes))
        .layer(TraceLayer::new_for_http().make_span_with(|request: &Request<_>| {
            // The matched route, not the raw path, so query strings (which may carry an OAuth
            // code or state) never reach the logs.
            let route = request
                .extensions()
                .get::<MatchedPath>()
                .map_or("unmatched", MatchedPath::as_str)
                .to_owned();
            tracing::info_span!("request", method = %request.method(), route)
        }))
        .with_state(state)
}

/// Refuses state-changing requests that a browser sent from another site.
///
/// Server functions and the upload route accept form posts, which any page could make a
/// member's browser send; the session cookie is `SameSite=Lax`, which keeps it off cross-site
/// posts, and this check also covers sibling subdomains, which count as the same site. A
/// browser names the page's origin in `Origin` (and, in current browsers, its relation to the
/// target in `Sec-Fetch-Site`); requests without either (Open Humans' webhook, curl) are not
/// browser form posts and pass.
async fn same_origin_writes(
    State(state): State<AppState>,
    request: Request<axum::body::Body>,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;

    let method = request.method();
    if method == Method::GET || method == Method::HEAD || method == Method::OPTIONS {
        return next.run(request).await;
    }
    let headers = request.headers();
    let cross_site = headers
        .get("sec-fetch-site")
        .is_some_and(|value| value != "same-origin" && value != "none");
    let foreign_origin = headers.get(header::ORIGIN).is_some_and(|origin| {
        origin.to_str().map_or(true, |origin| {
            origin != state.config.public_url().origin().ascii_serialization()
        })
    });
    if cross_site || foreign_origin {
        let route = request.uri().path().to_owned();
        tracing::warn!(route, "refused a state-changing request sent from another site");
        return (
            StatusCode::FORBIDDEN,
            "This request came from another site and was refused. Please use ohkit's own pages.",
        )
            .into_response();
    }
    next.run(request).await
}

/// The process is up.
async fn healthz() -> &'static str {
    "ok"
}

/// The process can serve: the database answers.
async fn readyz(State(state): State<AppState>) -> (StatusCode, &'static str) {
    if state.db.ping().await {
        (StatusCode::OK, "ready")
    } else {
        tracing::warn!("readiness check failed: the database does not answer");
        (StatusCode::SERVICE_UNAVAILABLE, "database unavailable")
    }
}
