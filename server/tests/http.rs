//! The router in-process: health checks, the server-rendered signup page and server functions.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::LiveOhkit;
use http_body_util::BodyExt;
use tower::ServiceExt;

async fn get(app: axum::Router, uri: &str) -> (StatusCode, String) {
    let response =
        app.oneshot(Request::get(uri).body(Body::empty()).expect("request")).await.expect("serve");
    let status = response.status();
    let bytes = response.into_body().collect().await.expect("body").to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

#[tokio::test]
async fn health_and_readiness() {
    let ohkit = LiveOhkit::start().await;
    assert_eq!(get(ohkit.router(), "/healthz").await, (StatusCode::OK, "ok".into()));
    assert_eq!(get(ohkit.router(), "/readyz").await, (StatusCode::OK, "ready".into()));
}

#[tokio::test]
async fn readiness_fails_when_the_database_is_gone() {
    let ohkit = LiveOhkit::start().await;
    let app = ohkit.router();
    ohkit.state.db.pool().close().await;
    let (status, _) = get(app, "/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn the_signup_page_is_rendered_on_the_server() {
    let ohkit = LiveOhkit::start().await;
    let (status, html) = get(ohkit.router(), "/").await;
    assert_eq!(status, StatusCode::OK);
    // Leptos leaves `<!>` hydration markers between text nodes; they are not content.
    let html = html.replace("<!>", "");
    // The sandbox's seeded project, read from its project info endpoint over loopback.
    assert!(html.contains("<h1>Daily Rhythms Study</h1>"), "{html}");
    assert!(html.contains(r#"href="/join""#), "{html}");
    assert!(html.contains("What will this project ask for?"), "{html}");
}

#[tokio::test]
async fn the_requests_server_function_answers() {
    let ohkit = LiveOhkit::start().await;
    let request = Request::post("/api/project-requests")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::empty())
        .expect("request");
    let response = ohkit.router().oneshot(request).await.expect("serve");
    assert_eq!(response.status(), StatusCode::OK);
    let bytes = response.into_body().collect().await.expect("body").to_bytes();
    let requests: Vec<String> = serde_json::from_slice(&bytes).expect("a JSON list");
    assert_eq!(requests.len(), 5, "{requests:?}");
    assert!(requests.contains(&"Permission to send you messages".to_owned()));
}

#[tokio::test]
async fn unknown_paths_answer_404() {
    let ohkit = LiveOhkit::start().await;
    let (status, html) = get(ohkit.router(), "/no-such-page").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(html.contains("Page not found"), "{html}");
}

#[tokio::test]
async fn the_signup_page_is_served_from_a_short_cache_to_anonymous_visitors_only() {
    let ohkit = LiveOhkit::start().await;
    let app = ohkit.router();
    let (_, first) = get(app.clone(), "/").await;
    let (_, second) = get(app.clone(), "/").await;
    // Each render draws a fresh nonce for its scripts, so equal pages came from the cache.
    assert_eq!(first, second);
    let (_, with_query) = get(app.clone(), "/?left=1").await;
    assert_ne!(with_query, first, "a query string is rendered afresh");
    assert!(with_query.contains("You have left the project"), "{with_query}");
    let with_cookie = app
        .clone()
        .oneshot(
            Request::get("/")
                .header("cookie", "ohkit_session=whatever")
                .body(Body::empty())
                .expect("request"),
        )
        .await
        .expect("serve");
    let bytes = with_cookie.into_body().collect().await.expect("body").to_bytes();
    assert_ne!(
        String::from_utf8_lossy(&bytes),
        first,
        "a visitor with a cookie gets a fresh render"
    );
}
