//! §2: the consent page, the authorization redirect rules and the token endpoint, including
//! every error of §2.5.

mod common;

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use base64::Engine;
use common::{REDIRECT, env, query_param};
use sha2::{Digest, Sha256};

#[tokio::test]
async fn unknown_client_is_404_and_anonymous_goes_to_login_and_back() {
    let env = env().await;
    let reply = env
        .get("/direct-sharing/projects/oauth2/authorize/?client_id=nope&response_type=code", None)
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);

    let path = env.authorize_path("&state=xyz");
    let reply = env.get(&path, None).await;
    assert_eq!(reply.status, StatusCode::FOUND);
    assert_eq!(reply.location(), "/oh/account/login/");
    let set_cookie = reply.header("set-cookie");
    assert!(set_cookie.starts_with("ohsandbox_session="), "{set_cookie}");
    assert!(set_cookie.contains("Path=/oh"), "{set_cookie}");
    assert!(set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Lax"));
    let cookie = set_cookie.split(';').next().unwrap_or_default().to_owned();

    let login = env.get("/account/login/", Some(&cookie)).await;
    assert!(
        login.body.contains(
            "Please log in or sign up to Open Humans to authorize &quot;Daily Rhythms Study&quot;"
        ),
        "{}",
        login.body
    );
    let reply = env.post_form("/account/login/", Some(&cookie), &[("username", "bob")]).await;
    assert_eq!(reply.status, StatusCode::FOUND);
    assert_eq!(reply.location(), format!("/oh{path}"));
}

#[tokio::test]
async fn consent_page_lists_what_the_spec_lists() {
    let env = env().await;
    let cookie = env.login("alice").await;
    let page = env.get(&env.authorize_path(""), Some(&cookie)).await;
    assert_eq!(page.status, StatusCode::OK);
    let body = &page.body;
    for needle in [
        "Authorize 'Daily Rhythms Study'",
        "This project is in development.",
        "Leader",
        "Dr. Ada Okafor",
        "Organization",
        "Contact address",
        "mailto:rhythms@example.org",
        "&quot;Daily Rhythms Study&quot; is requesting these permissions:",
        "Access to your Open Humans username, &quot;alice&quot;.",
        "Permission to send you messages.",
        "Fitbit Connection",
        "Diet Survey",
        "Authorization for adding data.",
        "Weekly sleep and mood summaries (JSON).",
        "<label for=\"hide-membership\">Hide membership</label>",
        "Authorize project",
        "Cancel",
    ] {
        assert!(body.contains(needle), "missing {needle:?}");
    }
    assert!(!body.contains("Project previously authorized."));
    assert!(!body.contains("23andMe Upload"));
}

#[tokio::test]
async fn authorize_then_exchange_and_refresh_rotates() {
    let env = env().await;
    let cookie = env.login("alice").await;
    let location = env.authorize(&cookie, "&state=s%20t").await;
    assert!(location.starts_with(REDIRECT), "{location}");
    let code = query_param(&location, "code").expect("code");
    assert_eq!(code.len(), 30);
    assert!(code.chars().all(|c| c.is_ascii_alphanumeric()));
    assert_eq!(query_param(&location, "state").as_deref(), Some("s t"));
    assert!(location.ends_with("&origin=external"), "{location}");

    let reply = env
        .token(&[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", REDIRECT)])
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("cache-control"), "no-store");
    assert_eq!(reply.header("pragma"), "no-cache");
    assert_eq!(reply.header("content-type"), "application/json");
    let json = reply.json();
    let access = json["access_token"].as_str().expect("access").to_owned();
    let refresh = json["refresh_token"].as_str().expect("refresh").to_owned();
    assert_eq!(
        reply.body,
        format!(
            "{{\"access_token\": \"{access}\", \"expires_in\": 36000, \"token_type\": \"Bearer\", \"scope\": \"read write american-gut go-viral pgp wildlife open-humans\", \"refresh_token\": \"{refresh}\"}}"
        )
    );

    // Single use.
    let again = env
        .token(&[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", REDIRECT)])
        .await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST);
    assert_eq!(again.body, r#"{"error": "invalid_grant"}"#);

    // Refresh rotates and kills the old access token at once.
    assert_eq!(env.api_get("/api/direct-sharing/project/", &access).await.status, StatusCode::OK);
    let rotated = env.token(&[("grant_type", "refresh_token"), ("refresh_token", &refresh)]).await;
    assert_eq!(rotated.status, StatusCode::OK);
    let new_access = rotated.json()["access_token"].as_str().expect("access").to_owned();
    assert_ne!(new_access, access);
    let old = env.api_get("/api/direct-sharing/project/", &access).await;
    assert_eq!(old.status, StatusCode::UNAUTHORIZED);
    assert_eq!(old.body, r#"{"detail":"Invalid token."}"#);
    assert_eq!(
        env.api_get("/api/direct-sharing/project/", &new_access).await.status,
        StatusCode::OK
    );
    let reused = env.token(&[("grant_type", "refresh_token"), ("refresh_token", &refresh)]).await;
    assert_eq!(reused.status, StatusCode::BAD_REQUEST);
    assert_eq!(reused.body, r#"{"error": "invalid_grant"}"#);

    // The platform-side counters see one code exchanged and one refresh: refused attempts do not
    // count.
    let stats = env.get("/sandbox/stats/", None).await;
    assert_eq!(stats.status, StatusCode::OK);
    assert_eq!(stats.json(), serde_json::json!({"codes_exchanged": 1, "refreshes": 1}));
}

#[tokio::test]
async fn token_endpoint_errors_match_the_spec() {
    let env = env().await;
    let cookie = env.login("bob").await;
    let code = query_param(&env.authorize(&cookie, "").await, "code").expect("code");

    let bad_client = env
        .post_form(
            "/oauth2/token/",
            None,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("client_id", "x"),
                ("client_secret", "y"),
            ],
        )
        .await;
    assert_eq!(bad_client.status, StatusCode::UNAUTHORIZED);
    assert_eq!(bad_client.body, r#"{"error": "invalid_client"}"#);
    assert_eq!(bad_client.header("www-authenticate"), "Bearer error=\"invalid_client\"");

    let no_auth = env
        .post_form(
            "/oauth2/token/",
            None,
            &[("grant_type", "refresh_token"), ("refresh_token", "abc")],
        )
        .await;
    assert_eq!(no_auth.status, StatusCode::UNAUTHORIZED);

    let missing_code = env.token(&[("grant_type", "authorization_code")]).await;
    assert_eq!(missing_code.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        missing_code.body,
        r#"{"error": "invalid_request", "error_description": "Missing code parameter."}"#
    );

    let missing_refresh = env.token(&[("grant_type", "refresh_token")]).await;
    assert_eq!(
        missing_refresh.body,
        r#"{"error": "invalid_request", "error_description": "Missing refresh token parameter."}"#
    );

    let unsupported = env.token(&[("grant_type", "password")]).await;
    assert_eq!(unsupported.status, StatusCode::BAD_REQUEST);
    assert_eq!(unsupported.body, r#"{"error": "unsupported_grant_type"}"#);

    let mismatch = env
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "http://127.0.0.1:3000/other/"),
        ])
        .await;
    assert_eq!(mismatch.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        mismatch.body,
        r#"{"error": "invalid_request", "error_description": "Mismatching redirect URI."}"#
    );

    let unknown = env
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", "nope"),
            ("redirect_uri", REDIRECT),
        ])
        .await;
    assert_eq!(unknown.body, r#"{"error": "invalid_grant"}"#);

    // The mismatch did not consume the code; omitting redirect_uri uses the registered one.
    let ok = env.token(&[("grant_type", "authorization_code"), ("code", &code)]).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
    let refresh = ok.json()["refresh_token"].as_str().expect("refresh").to_owned();

    let scope = env
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh),
            ("scope", "read admin"),
        ])
        .await;
    assert_eq!(scope.status, StatusCode::BAD_REQUEST);
    assert_eq!(scope.body, r#"{"error": "invalid_scope"}"#);

    // JSON bodies are not parsed.
    let json_body = env
        .send(
            Request::post("/oauth2/token/")
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(r#"{"grant_type":"refresh_token"}"#))
                .expect("request"),
        )
        .await;
    assert_eq!(json_body.body, r#"{"error": "unsupported_grant_type"}"#);
}

#[tokio::test]
async fn basic_auth_is_unquoted_after_base64() {
    let env = env().await;
    let (_, refresh) = env.enroll("carmen").await;
    let creds = format!("{}:{}", env.client_id(), env.client_secret());
    let basic = base64::engine::general_purpose::STANDARD.encode(creds);
    let body = format!("grant_type=refresh_token&refresh_token={refresh}");
    let reply = env
        .send(
            Request::post("/oauth2/token/")
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .header(header::AUTHORIZATION, format!("Basic {basic}"))
                .body(Body::from(body))
                .expect("request"),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let wrong =
        base64::engine::general_purpose::STANDARD.encode(format!("{}:wrong", env.client_id()));
    let reply = env
        .send(
            Request::post("/oauth2/token/")
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .header(header::AUTHORIZATION, format!("Basic {wrong}"))
                .body(Body::from("grant_type=refresh_token&refresh_token=x"))
                .expect("request"),
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn codes_expire_after_thirty_minutes() {
    let env = env().await;
    let cookie = env.login("dmitri").await;
    let code = query_param(&env.authorize(&cookie, "").await, "code").expect("code");
    env.sandbox.advance_clock(Duration::from_secs(1801));
    let reply = env
        .token(&[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", REDIRECT)])
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.body, r#"{"error": "invalid_grant"}"#);
}

#[tokio::test]
async fn access_tokens_expire_with_the_configured_lifetime() {
    let env = common::env_with(|c| c.access_token_lifetime = Duration::from_secs(5)).await;
    let cookie = env.login("esi").await;
    let code = query_param(&env.authorize(&cookie, "").await, "code").expect("code");
    let reply = env
        .token(&[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", REDIRECT)])
        .await;
    assert_eq!(reply.json()["expires_in"], 5);
    let access = reply.json()["access_token"].as_str().expect("access").to_owned();
    env.sandbox.advance_clock(Duration::from_secs(6));
    let expired = env.api_get("/api/direct-sharing/project/exchange-member/", &access).await;
    assert_eq!(expired.status, StatusCode::UNAUTHORIZED);
    assert_eq!(expired.body, r#"{"detail":"Expired token."}"#);
    assert!(expired.header("www-authenticate").starts_with("Bearer realm=\"api\""));
}

#[tokio::test]
async fn redirect_uri_rules_and_cancel() {
    let env = env().await;
    let cookie = env.login("alice").await;
    let bad = env
        .get(&env.authorize_path("&redirect_uri=https%3A%2F%2Fevil.example%2Fcb"), Some(&cookie))
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.body.contains("Mismatching redirect URI."));
    assert!(bad.header("location").is_empty());

    let no_type = env
        .get(
            &format!(
                "/direct-sharing/projects/oauth2/authorize/?client_id={}&state=k",
                env.client_id()
            ),
            Some(&cookie),
        )
        .await;
    assert_eq!(no_type.status, StatusCode::FOUND);
    assert_eq!(
        no_type.location(),
        format!(
            "{REDIRECT}?error=invalid_request&error_description=Missing+response_type+parameter.&state=k"
        )
    );

    let path = env.authorize_path("&state=abc");
    let page = env.get(&path, Some(&cookie)).await;
    let pairs = common::hidden_fields(&page.body);
    let refs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let cancel = env.post_form(&path, Some(&cookie), &refs).await;
    assert_eq!(cancel.status, StatusCode::FOUND);
    assert_eq!(cancel.location(), format!("{REDIRECT}?error=access_denied&state=abc"));
}

#[tokio::test]
async fn loopback_redirect_accepts_any_port() {
    let env =
        common::env_with(|c| c.project.redirect_url = Some("http://127.0.0.1/cb".to_owned())).await;
    let cookie = env.login("alice").await;
    let location =
        env.authorize(&cookie, "&redirect_uri=http%3A%2F%2F127.0.0.1%3A49152%2Fcb").await;
    assert!(location.starts_with("http://127.0.0.1:49152/cb?code="), "{location}");
}

#[tokio::test]
async fn pkce_s256_and_plain() {
    let env = env().await;
    let cookie = env.login("alice").await;
    let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(Sha256::digest(verifier.as_bytes()));
    let location = env
        .authorize(&cookie, &format!("&code_challenge={challenge}&code_challenge_method=S256"))
        .await;
    let code = query_param(&location, "code").expect("code");
    let missing = env.token(&[("grant_type", "authorization_code"), ("code", &code)]).await;
    assert_eq!(
        missing.body,
        r#"{"error": "invalid_request", "error_description": "Code verifier required."}"#
    );
    let wrong = env
        .token(&[("grant_type", "authorization_code"), ("code", &code), ("code_verifier", "nope")])
        .await;
    assert_eq!(wrong.body, r#"{"error": "invalid_grant"}"#);
    let right = env
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("code_verifier", verifier),
        ])
        .await;
    assert_eq!(right.status, StatusCode::OK, "{}", right.body);

    let location = env.authorize(&cookie, "&code_challenge=plainvalue&approval_prompt=force").await;
    let code = query_param(&location, "code").expect("code");
    let ok = env
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("code_verifier", "plainvalue"),
        ])
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
}

#[tokio::test]
async fn inactive_project_redirects_to_the_inactive_page() {
    let env = env().await;
    let pairs = [
        ("is_study", "study"),
        ("name", "Daily Rhythms Study"),
        ("leader", "Dr. Ada Okafor"),
        ("contact_email", "rhythms@example.org"),
        ("info_url", "https://example.org/rhythms"),
        ("short_description", "Sleep and mood."),
        ("long_description", "Sleep and mood over weeks."),
        ("returned_data_description", "Summaries."),
        ("add_data", "on"),
        ("enrollment_url", "http://127.0.0.1:3000/"),
        ("terms_url", "http://127.0.0.1:3000/terms"),
        ("redirect_url", REDIRECT),
    ];
    let saved = env.post_form("/direct-sharing/projects/oauth2/1001/edit/", None, &pairs).await;
    assert_eq!(saved.status, StatusCode::FOUND, "{}", saved.body);
    let reply = env.get(&env.authorize_path(""), None).await;
    assert_eq!(reply.status, StatusCode::FOUND);
    assert_eq!(reply.location(), "/oh/direct-sharing/authorize-inactive/");
    let page = env.get("/direct-sharing/authorize-inactive/", None).await;
    assert!(page.body.contains("Unfortunately, this project is not currently active."));
}

#[tokio::test]
async fn project_member_id_is_created_on_view_and_stable() {
    let env = env().await;
    let (access, _) = env.enroll("alice").await;
    let first = env.api_get("/api/direct-sharing/project/exchange-member/", &access).await.json();
    let pmid = first["project_member_id"].as_str().expect("pmid").to_owned();
    assert_eq!(pmid.len(), 8);
    assert!(pmid.chars().all(|c| c.is_ascii_digit()));
    let cookie = env.login("alice").await;
    let page = env.get(&env.authorize_path("&approval_prompt=force"), Some(&cookie)).await;
    assert!(page.body.contains("Project previously authorized."));
    let location = env.authorize(&cookie, "&approval_prompt=force").await;
    let code = query_param(&location, "code").expect("code");
    let tokens = env.token(&[("grant_type", "authorization_code"), ("code", &code)]).await.json();
    let again = env
        .api_get(
            "/api/direct-sharing/project/exchange-member/",
            tokens["access_token"].as_str().expect("access"),
        )
        .await
        .json();
    assert_eq!(again["project_member_id"], pmid.as_str());
}

#[tokio::test]
async fn auto_approval_skips_the_page_without_refreshing_the_snapshot() {
    let env = env().await;
    let (_access, _) = env.enroll("alice").await;
    let cookie = env.login("alice").await;
    let reply = env.get(&env.authorize_path("&state=q"), Some(&cookie)).await;
    assert_eq!(reply.status, StatusCode::FOUND);
    let location = reply.location();
    assert!(
        location.starts_with(REDIRECT)
            && location.contains("code=")
            && location.contains("&state=q&origin=external")
    );
    let forced = env.get(&env.authorize_path("&approval_prompt=force"), Some(&cookie)).await;
    assert_eq!(forced.status, StatusCode::OK);
}

#[tokio::test]
async fn empty_refresh_token_is_looked_up_like_any_other() {
    // oauthlib 3.2.2 raises "Missing refresh token parameter." only when the parameter is
    // absent (`request.refresh_token is None`); DOT's body keeps blank values, so an empty one
    // is authenticated and looked up, and no refresh token is empty.
    let env = env().await;
    let empty = env.token(&[("grant_type", "refresh_token"), ("refresh_token", "")]).await;
    assert_eq!(empty.status, StatusCode::BAD_REQUEST);
    assert_eq!(empty.body, r#"{"error": "invalid_grant"}"#);
    let no_auth = env
        .post_form(
            "/oauth2/token/",
            None,
            &[("grant_type", "refresh_token"), ("refresh_token", "")],
        )
        .await;
    assert_eq!(no_auth.status, StatusCode::UNAUTHORIZED);
    assert_eq!(no_auth.body, r#"{"error": "invalid_client"}"#);
}

#[tokio::test]
async fn member_cap_also_refuses_the_consent_post() {
    let env = env().await;
    for user in ["alice", "bob", "carmen", "dmitri", "esi"] {
        env.enroll(user).await;
    }
    for i in 0..16 {
        let name = format!("tester{i}");
        let reply = env
            .post_form("/account/signup/", None, &[("new_username", &name), ("new_name", &name)])
            .await;
        assert_eq!(reply.status, StatusCode::FOUND, "{}", reply.body);
        env.enroll(&name).await;
    }
    let reply = env
        .post_form("/account/signup/", None, &[("new_username", "late"), ("new_name", "Late")])
        .await;
    assert_eq!(reply.status, StatusCode::FOUND);
    let cookie = env.login("late").await;
    let path = env.authorize_path("");
    let page = env.get(&path, Some(&cookie)).await;
    assert_eq!(page.status, StatusCode::OK);
    let mut pairs = common::hidden_fields(&page.body);
    pairs.push(("allow".into(), "Authorize project".into()));
    let refs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();

    // 21 authorized members: the page opened before the cap was switched on cannot be submitted.
    env.sandbox.set_enforce_member_cap(true);
    let refused = env.post_form(&path, Some(&cookie), &refs).await;
    assert_eq!(refused.status, StatusCode::FOUND);
    assert_eq!(refused.location(), "/oh/member/me/data/");
    let data = env.get("/member/me/data/", Some(&cookie)).await;
    assert!(data.body.contains("has exceeded the 20 member limit for unapproved projects."));
    let viewed = env.get(&path, Some(&cookie)).await;
    assert_eq!(viewed.location(), "/oh/member/me/data/");

    env.sandbox.set_approved(true);
    let allowed = env.post_form(&path, Some(&cookie), &refs).await;
    assert_eq!(allowed.status, StatusCode::FOUND);
    assert!(allowed.location().starts_with(REDIRECT), "{}", allowed.location());
}
