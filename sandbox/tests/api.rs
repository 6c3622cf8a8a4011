//! §3 and §4.1–§4.5: API authentication, exchange-member, members, project info, message
//! and remove-members, plus the permission snapshot of §7.3.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::env;

const EXCHANGE: &str = "/api/direct-sharing/project/exchange-member/";

#[tokio::test]
async fn authentication_errors_are_verbatim() {
    let env = env().await;
    let none = env.get(EXCHANGE, None).await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
    assert_eq!(none.body, r#"{"detail":"Authentication credentials were not provided."}"#);
    assert_eq!(none.header("www-authenticate"), "Bearer realm=\"api\"");
    assert_eq!(
        none.header("cache-control"),
        "max-age=0, no-cache, no-store, must-revalidate, private"
    );

    let invalid = env.api_get(EXCHANGE, "nope").await;
    assert_eq!(invalid.body, r#"{"detail":"Invalid token."}"#);
    assert!(invalid.header("www-authenticate").starts_with("Bearer realm=\"api\""));

    let empty_bearer = env
        .send(
            Request::get("/api/direct-sharing/project/")
                .header(header::AUTHORIZATION, "Bearer")
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    assert_eq!(empty_bearer.body, r#"{"detail":"Invalid token header. No credentials provided."}"#);
    let spaced = env
        .send(
            Request::get("/api/direct-sharing/project/")
                .header(header::AUTHORIZATION, "Bearer a b")
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    assert_eq!(
        spaced.body,
        r#"{"detail":"Invalid token header. Token string should not contain spaces."}"#
    );

    // The query parameter wins over the header.
    let (access, _) = env.enroll("alice").await;
    let both = env
        .send(
            Request::get(format!("/api/direct-sharing/project/?access_token={access}"))
                .header(header::AUTHORIZATION, "Bearer wrong")
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    assert_eq!(both.status, StatusCode::OK);
    let header_only = env
        .send(
            Request::get("/api/direct-sharing/project/")
                .header(header::AUTHORIZATION, format!("Bearer {access}"))
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    assert_eq!(header_only.status, StatusCode::OK);
}

#[tokio::test]
async fn exchange_member_shape_and_visibility() {
    let env = env().await;
    let (access, _) = env.enroll("alice").await;
    let reply = env.api_get(EXCHANGE, &access).await;
    assert_eq!(reply.status, StatusCode::OK);
    let json = reply.json();
    let keys: Vec<&str> = [
        "\"count\"",
        "\"next\"",
        "\"previous\"",
        "\"created\"",
        "\"project_member_id\"",
        "\"sources_shared\"",
        "\"username\"",
        "\"data\"",
    ]
    .into_iter()
    .collect();
    let positions: Vec<usize> =
        keys.iter().map(|k| reply.body.find(k).unwrap_or_else(|| panic!("{k} missing"))).collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "key order: {}", reply.body);
    assert_eq!(json["username"], "alice");
    assert_eq!(
        json["sources_shared"],
        serde_json::json!(["direct-sharing-102", "direct-sharing-131"])
    );
    // Alice has 23andMe, Fitbit and diet files; 23andMe is not requested.
    assert_eq!(json["count"], 2);
    let data = json["data"].as_array().expect("data");
    assert_eq!(data[0]["source"], "direct-sharing-102");
    assert_eq!(data[1]["source"], "direct-sharing-131");
    let file = &data[0];
    let file_keys = [
        "id",
        "basename",
        "created",
        "datatypes",
        "download_url",
        "metadata",
        "source",
        "source_project",
    ];
    let obj = file.as_object().expect("object");
    assert_eq!(obj.len(), file_keys.len());
    assert!(
        file["download_url"]
            .as_str()
            .expect("url")
            .starts_with("http://sandbox.test/oh/data-management/datafile-download/")
    );
    assert_eq!(file["source_project"], "http://sandbox.test/oh/api/public/project/102/");
    assert!(file["created"].as_str().expect("created").ends_with('Z'));
}

#[tokio::test]
async fn pagination_links_keep_the_query() {
    let env = env().await;
    let (access, _) = env.enroll("alice").await;
    let first = env.api_get(&format!("{EXCHANGE}?limit=1"), &access).await.json();
    assert_eq!(first["count"], 2);
    assert_eq!(first["data"].as_array().expect("data").len(), 1);
    assert_eq!(
        first["next"],
        format!("http://sandbox.test/oh{EXCHANGE}?access_token={access}&limit=1&offset=1")
    );
    assert!(first["previous"].is_null());
    let second = env.api_get(&format!("{EXCHANGE}?limit=1&offset=1"), &access).await.json();
    assert!(second["next"].is_null());
    assert_eq!(
        second["previous"],
        format!("http://sandbox.test/oh{EXCHANGE}?access_token={access}&limit=1")
    );
    assert_eq!(second["data"][0]["source"], "direct-sharing-131");
}

#[tokio::test]
async fn master_token_exchange_and_members() {
    let env = env().await;
    let (access, _) = env.enroll("bob").await;
    let pmid = env.api_get(EXCHANGE, &access).await.json()["project_member_id"]
        .as_str()
        .expect("pmid")
        .to_owned();
    let master = env.master();
    assert_eq!(master.len(), 64);
    let by_master = env.api_get(&format!("{EXCHANGE}?project_member_id={pmid}"), &master).await;
    assert_eq!(by_master.status, StatusCode::OK);
    assert_eq!(by_master.json()["project_member_id"], pmid.as_str());
    let bad = env.api_get(&format!("{EXCHANGE}?project_member_id=99999999"), &master).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.body, r#"{"project_member_id":"project_member_id is invalid"}"#);

    let members = env.api_get("/api/direct-sharing/project/members/", &master).await;
    assert_eq!(members.status, StatusCode::OK);
    let json = members.json();
    assert_eq!(json["count"], 1);
    let row = &json["results"][0];
    assert_eq!(row["project_member_id"], pmid.as_str());
    assert_eq!(row["file_count"], 2);
    assert_eq!(
        row["exchange_member"],
        format!("http://sandbox.test/oh{EXCHANGE}?project_member_id={pmid}&access_token={master}")
    );
    let user_token = env.api_get("/api/direct-sharing/project/members/", &access).await;
    assert_eq!(user_token.status, StatusCode::UNAUTHORIZED);
    assert_eq!(user_token.body, r#"{"detail":"Invalid token."}"#);
}

#[tokio::test]
async fn project_info_field_order() {
    let env = env().await;
    let reply = env.api_get("/api/direct-sharing/project/", &env.master()).await;
    assert_eq!(reply.status, StatusCode::OK);
    let order = [
        "active",
        "approved",
        "authorized_members",
        "badge_image",
        "contact_email",
        "id",
        "id_label",
        "info_url",
        "is_academic_or_nonprofit",
        "is_study",
        "leader",
        "long_description",
        "name",
        "organization",
        "registered_datatypes",
        "requested_sources",
        "request_sources_access",
        "request_username_access",
        "returned_data_description",
        "short_description",
        "slug",
        "type",
    ];
    let positions: Vec<usize> = order
        .iter()
        .map(|k| reply.body.find(&format!("\"{k}\":")).unwrap_or_else(|| panic!("{k} missing")))
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{}", reply.body);
    let json = reply.json();
    assert_eq!(json["id_label"], "direct-sharing-1001");
    assert_eq!(json["type"], "oauth2");
    assert_eq!(
        json["requested_sources"],
        serde_json::json!(["/api/public/project/102/", "/api/public/project/131/"])
    );
    assert_eq!(json["approved"], false);
}

#[tokio::test]
async fn snapshot_rule_new_source_needs_reauthorization() {
    let env = env().await;
    let (access, _) = env.enroll("alice").await;
    // The coordinator adds 23andMe (128) to the requested sources.
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
        ("active", "on"),
        ("requested_sources", "102"),
        ("requested_sources", "131"),
        ("requested_sources", "128"),
        ("request_username_access", "on"),
        ("enrollment_url", "http://127.0.0.1:3000/"),
        ("terms_url", "http://127.0.0.1:3000/terms"),
        ("redirect_url", common::REDIRECT),
    ];
    let saved = env.post_form("/direct-sharing/projects/oauth2/1001/edit/", None, &pairs).await;
    assert_eq!(saved.status, StatusCode::FOUND, "{}", saved.body);
    let before = env.api_get(EXCHANGE, &access).await.json();
    assert_eq!(before["count"], 2);
    assert_eq!(before["sources_shared"].as_array().expect("list").len(), 2);
    // Reauthorize explicitly: the snapshot now includes 128.
    let cookie = env.login("alice").await;
    let location = env.authorize(&cookie, "&approval_prompt=force").await;
    let code = common::query_param(&location, "code").expect("code");
    let tokens = env.token(&[("grant_type", "authorization_code"), ("code", &code)]).await.json();
    let after =
        env.api_get(EXCHANGE, tokens["access_token"].as_str().expect("access")).await.json();
    assert_eq!(after["count"], 3);
    assert_eq!(after["data"][0]["source"], "direct-sharing-102");
    assert_eq!(after["data"][1]["source"], "direct-sharing-128");
}

#[tokio::test]
async fn message_rules_and_inbox() {
    let env = env().await;
    let (access, _) = env.enroll("alice").await;
    let (_bob, _) = env.enroll("bob").await;
    let pmid = env.api_get(EXCHANGE, &access).await.json()["project_member_id"]
        .as_str()
        .expect("pmid")
        .to_owned();
    let master = env.master();
    let path = "/api/direct-sharing/project/message/";

    let neither = env.api_post(path, &master, &[("message", "hi")]).await;
    assert_eq!(neither.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        neither.body,
        r#"{"errors":{"__all__":["You must specify either all members or provide a list of IDs."]}}"#
    );
    let both = env
        .api_post(
            path,
            &master,
            &[("message", "hi"), ("all_members", "True"), ("project_member_ids", &pmid)],
        )
        .await;
    assert_eq!(
        both.body,
        r#"{"errors":{"__all__":["You must specify either all members or provide a list of IDs but not both."]}}"#
    );
    let short =
        env.api_post(path, &master, &[("message", "hi"), ("project_member_ids", "1234567")]).await;
    assert_eq!(
        short.body,
        r#"{"errors":{"project_member_ids":["Project member IDs are always 8 digits long."]}}"#
    );
    let unknown =
        env.api_post(path, &master, &[("message", "hi"), ("project_member_ids", "00000001")]).await;
    assert_eq!(
        unknown.body,
        r#"{"errors":{"project_member_ids":["Invalid project member ID(s): 00000001"]}}"#
    );
    let no_message = env.api_post(path, &master, &[("all_members", "true")]).await;
    assert_eq!(no_message.body, r#"{"errors":{"message":["This field is required."]}}"#);

    let ok = env
        .api_post(
            path,
            &master,
            &[
                ("message", "Your id is {{ PROJECT_MEMBER_ID }}."),
                ("subject", "Hello"),
                ("project_member_ids", &pmid),
            ],
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(ok.body, r#""success""#);

    // A user token messages only its own member, even when asking for everyone.
    let own = env.api_post(path, &access, &[("message", "Only me"), ("all_members", "true")]).await;
    assert_eq!(own.body, r#""success""#);

    let cookie = env.login("alice").await;
    let inbox = env.get("/member/me/messages/", Some(&cookie)).await;
    assert!(inbox.body.contains("[Open Humans Project Message] Hello"));
    assert!(inbox.body.contains(&format!("Your id is {pmid}.")));
    assert!(
        inbox.body.contains("[Open Humans Project Message] From &quot;Daily Rhythms Study&quot;")
    );
    let bob_cookie = env.login("bob").await;
    let bob_inbox = env.get("/member/me/messages/", Some(&bob_cookie)).await;
    assert!(!bob_inbox.body.contains("Only me"));
}

#[tokio::test]
async fn remove_members_requires_ids_and_revokes() {
    let env = env().await;
    let (access, refresh) = env.enroll("carmen").await;
    let master = env.master();
    let path = "/api/direct-sharing/project/remove-members/";
    let missing = env.api_post(path, &master, &[]).await;
    assert_eq!(missing.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        missing.body,
        r#"{"errors":{"__all__":["You must provide a list of project member IDs."]}}"#
    );
    // A user token removes its own member with an empty body.
    let removed = env.api_post(path, &access, &[]).await;
    assert_eq!(removed.status, StatusCode::OK);
    assert_eq!(removed.body, r#""success""#);
    let after = env.api_get(EXCHANGE, &access).await;
    assert_eq!(after.body, r#"{"detail":"Invalid token."}"#);
    let refreshed =
        env.token(&[("grant_type", "refresh_token"), ("refresh_token", &refresh)]).await;
    assert_eq!(refreshed.body, r#"{"error": "invalid_grant"}"#);
    let members = env.api_get("/api/direct-sharing/project/members/", &master).await.json();
    assert_eq!(members["count"], 0);
}

#[tokio::test]
async fn master_token_refresh_invalidates_the_old_one() {
    let env = env().await;
    let old = env.master();
    let reply =
        env.post_form("/direct-sharing/projects/oauth2/1001/refresh-token/", None, &[]).await;
    assert_eq!(reply.status, StatusCode::FOUND);
    let new = env.master();
    assert_ne!(old, new);
    assert_eq!(
        env.api_get("/api/direct-sharing/project/", &old).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(env.api_get("/api/direct-sharing/project/", &new).await.status, StatusCode::OK);
    env.sandbox.advance_clock(std::time::Duration::from_secs(24 * 3600 + 1));
    let expired = env.api_get("/api/direct-sharing/project/", &new).await;
    assert_eq!(expired.body, r#"{"detail":"Expired token."}"#);
}

#[tokio::test]
async fn faults_can_fail_every_call() {
    let env = common::env_with(|c| c.fault_error_rate = 1.0).await;
    let reply = env.api_get("/api/direct-sharing/project/", &env.master()).await;
    assert!(
        reply.status == StatusCode::INTERNAL_SERVER_ERROR
            || reply.status == StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        reply.status
    );
    env.sandbox.set_faults(sandbox::Faults::default());
    let reply = env.api_get("/api/direct-sharing/project/", &env.master()).await;
    assert_eq!(reply.status, StatusCode::OK);
}

#[tokio::test]
async fn dropped_refresh_response_still_rotates() {
    let env = env().await;
    let (access, refresh) = env.enroll("esi").await;
    env.sandbox
        .set_faults(sandbox::Faults { drop_refresh_response: true, ..sandbox::Faults::default() });
    let reply = env.token(&[("grant_type", "refresh_token"), ("refresh_token", &refresh)]).await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
    assert_eq!(env.api_get(EXCHANGE, &access).await.status, StatusCode::UNAUTHORIZED);
    env.sandbox.set_faults(sandbox::Faults::default());
    let again = env.token(&[("grant_type", "refresh_token"), ("refresh_token", &refresh)]).await;
    assert_eq!(again.body, r#"{"error": "invalid_grant"}"#);
}

#[tokio::test]
async fn user_token_with_a_json_body_messages_its_own_member() {
    let env = env().await;
    let (access, _) = env.enroll("alice").await;
    let (_bob, _) = env.enroll("bob").await;
    let path = "/api/direct-sharing/project/message/";
    let body = serde_json::json!({"message": "JSON for me", "all_members": true});
    let own = env.api_post_json(path, &access, &body).await;
    assert_eq!(own.status, StatusCode::OK, "{}", own.body);
    assert_eq!(own.body, r#""success""#);
    let cookie = env.login("alice").await;
    let inbox = env.get("/member/me/messages/", Some(&cookie)).await;
    assert!(inbox.body.contains("JSON for me"));
    let bob_cookie = env.login("bob").await;
    let bob_inbox = env.get("/member/me/messages/", Some(&bob_cookie)).await;
    assert!(!bob_inbox.body.contains("JSON for me"));

    let remove = "/api/direct-sharing/project/remove-members/";
    let removed = env.api_post_json(remove, &access, &serde_json::json!({})).await;
    assert_eq!(removed.body, r#""success""#);
    assert_eq!(env.api_get(EXCHANGE, &access).await.body, r#"{"detail":"Invalid token."}"#);
}
