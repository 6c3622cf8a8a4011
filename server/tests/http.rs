//! The router in-process: health checks, the server-rendered signup page and server functions.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::TestDb;
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
    let test = TestDb::sqlite().await;
    assert_eq!(get(common::app(test.db.clone()), "/healthz").await, (StatusCode::OK, "ok".into()));
    assert_eq!(
        get(common::app(test.db.clone()), "/readyz").await,
        (StatusCode::OK, "ready".into())
    );
}

#[tokio::test]
async fn readiness_fails_when_the_database_is_gone() {
    let test = TestDb::sqlite().await;
    let app = common::app(test.db.clone());
    test.db.pool().close().await;
    let (status, _) = get(app, "/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn the_signup_page_is_rendered_on_the_server() {
    let test = TestDb::sqlite().await;
    let (status, html) = get(common::app(test.db.clone()), "/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("<h1>Sleep and Activity Study</h1>"), "{html}");
    assert!(html.contains("What will this project ask for?"), "{html}");
}

#[tokio::test]
async fn the_requests_server_function_answers() {
    let test = TestDb::sqlite().await;
    let request = Request::post("/api/project-requests")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::empty())
        .expect("request");
    let response = common::app(test.db.clone()).oneshot(request).await.expect("serve");
    assert_eq!(response.status(), StatusCode::OK);
    let bytes = response.into_body().collect().await.expect("body").to_bytes();
    let requests: Vec<String> = serde_json::from_slice(&bytes).expect("a JSON list");
    assert_eq!(requests.len(), 4);
    assert!(requests.contains(&"Permission to send you messages".to_owned()));
}

#[tokio::test]
async fn unknown_paths_answer_404() {
    let test = TestDb::sqlite().await;
    let (status, html) = get(common::app(test.db.clone()), "/no-such-page").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(html.contains("Page not found"), "{html}");
}
