//! §1: the platform-wide HTTP behaviour outside the views: django-cors-headers on `/api/` only,
//! and Django's `APPEND_SLASH` redirect.

mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use common::env;

const ORIGIN: &str = "https://app.example.org";

/// A GET from a page on [`ORIGIN`], the way a browser's script sends one.
fn get_from_origin(path: &str) -> Request<Body> {
    Request::get(path).header(header::ORIGIN, ORIGIN).body(Body::empty()).expect("request")
}

#[tokio::test]
async fn api_answers_carry_cors_headers_for_any_origin() {
    let env = env().await;
    let path = format!("/api/direct-sharing/project/?access_token={}", env.master());
    let with_origin = env.send(get_from_origin(&path)).await;
    assert_eq!(with_origin.status, StatusCode::OK);
    assert_eq!(with_origin.header("access-control-allow-origin"), "*");
    assert_eq!(with_origin.header("vary"), "origin");
    assert_eq!(with_origin.header("access-control-allow-methods"), "");
    assert_eq!(with_origin.header("access-control-allow-credentials"), "");

    let without_origin = env.get(&path, None).await;
    assert_eq!(without_origin.header("access-control-allow-origin"), "");
    assert_eq!(without_origin.header("vary"), "origin");

    // Error answers of the API get them too.
    let unauthorized =
        env.send(get_from_origin("/api/direct-sharing/project/exchange-member/")).await;
    assert_eq!(unauthorized.status, StatusCode::UNAUTHORIZED);
    assert_eq!(unauthorized.header("access-control-allow-origin"), "*");
}

#[tokio::test]
async fn preflight_is_answered_on_api_paths_only() {
    let env = env().await;
    let preflight = |path: &str| {
        Request::builder()
            .method(Method::OPTIONS)
            .uri(path)
            .header(header::ORIGIN, ORIGIN)
            .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
            .header(header::ACCESS_CONTROL_REQUEST_HEADERS, "authorization, content-type")
            .body(Body::empty())
            .expect("request")
    };
    let reply = env.send(preflight("/api/direct-sharing/project/message/")).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, "");
    assert_eq!(reply.header("access-control-allow-origin"), "*");
    assert_eq!(
        reply.header("access-control-allow-methods"),
        "DELETE, GET, OPTIONS, PATCH, POST, PUT"
    );
    assert_eq!(
        reply.header("access-control-allow-headers"),
        "accept, authorization, content-type, user-agent, x-csrftoken, x-requested-with"
    );
    assert_eq!(reply.header("access-control-max-age"), "86400");
    assert_eq!(reply.header("vary"), "origin");

    // The middleware answers before URL resolution, so an unknown /api/ path passes too.
    let unknown = env.send(preflight("/api/nowhere")).await;
    assert_eq!(unknown.status, StatusCode::OK);
    assert_eq!(unknown.header("access-control-allow-origin"), "*");

    // The token endpoint and the pages are outside `^/api/.*$`.
    let token = env.send(preflight("/oauth2/token/")).await;
    assert_eq!(token.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(token.header("access-control-allow-origin"), "");
    let posted = env
        .send(
            Request::post("/oauth2/token/")
                .header(header::ORIGIN, ORIGIN)
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from("grant_type=password"))
                .expect("request"),
        )
        .await;
    assert_eq!(posted.status, StatusCode::BAD_REQUEST);
    assert_eq!(posted.header("access-control-allow-origin"), "");
    assert_eq!(posted.header("vary"), "");
    let page = env.send(get_from_origin("/account/login/")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(page.header("access-control-allow-origin"), "");
}

#[tokio::test]
async fn get_without_trailing_slash_redirects_permanently() {
    let env = env().await;
    let login = env.get("/account/login", None).await;
    assert_eq!(login.status, StatusCode::MOVED_PERMANENTLY);
    assert_eq!(login.location(), "/oh/account/login/");

    let api = env
        .send(get_from_origin(
            "/api/direct-sharing/project/exchange-member?access_token=abc&limit=2",
        ))
        .await;
    assert_eq!(api.status, StatusCode::MOVED_PERMANENTLY);
    assert_eq!(
        api.location(),
        "/oh/api/direct-sharing/project/exchange-member/?access_token=abc&limit=2"
    );
    assert_eq!(api.header("access-control-allow-origin"), "*");

    let with_param = env.get("/activity/diet-survey", None).await;
    assert_eq!(with_param.status, StatusCode::MOVED_PERMANENTLY);
    assert_eq!(with_param.location(), "/oh/activity/diet-survey/");

    let head = env
        .send(
            Request::builder()
                .method(Method::HEAD)
                .uri("/sandbox/stats")
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    assert_eq!(head.status, StatusCode::MOVED_PERMANENTLY);
    assert_eq!(head.location(), "/oh/sandbox/stats/");

    let followed = env.get(&login.location().replacen("/oh", "", 1), None).await;
    assert_eq!(followed.status, StatusCode::OK);
}

#[tokio::test]
async fn other_methods_and_unknown_paths_stay_404() {
    let env = env().await;
    let post = env
        .post_form(
            &format!("/api/direct-sharing/project/message?access_token={}", env.master()),
            None,
            &[("message", "hi"), ("all_members", "true")],
        )
        .await;
    assert_eq!(post.status, StatusCode::NOT_FOUND);
    for path in
        ["/nowhere", "/nowhere/", "/account/login/extra", "/activity", "/sandbox-storage/get/1"]
    {
        let reply = env.get(path, None).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(reply.location(), "", "{path}");
    }
}
