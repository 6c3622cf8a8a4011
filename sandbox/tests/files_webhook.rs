//! §4.6–§4.10 (uploads, direct upload, delete, download_url) and §5/§7.2 (withdrawal,
//! remove-members and the deauthorization webhook, received by a real loopback server).

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Request, StatusCode, header};
use common::env;

const EXCHANGE: &str = "/api/direct-sharing/project/exchange-member/";

fn multipart(fields: &[(&str, &str)], file: Option<(&str, &[u8])>) -> (String, Vec<u8>) {
    let boundary = "sandboxtestboundary";
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    if let Some((filename, bytes)) = file {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"data_file\"; filename=\"{filename}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

async fn upload(
    env: &common::Env,
    token: &str,
    fields: &[(&str, &str)],
    file: Option<(&str, &[u8])>,
) -> common::Reply {
    let (content_type, body) = multipart(fields, file);
    env.send(
        Request::post(format!("/api/direct-sharing/project/files/upload/?access_token={token}"))
            .header(header::CONTENT_TYPE, content_type)
            .body(Body::from(body))
            .expect("request"),
    )
    .await
}

const META: &str = r#"{"description": "Weekly summary", "tags": ["summary", "json"]}"#;

#[tokio::test]
async fn simple_upload_metadata_rules_and_download() {
    let env = env().await;
    let (access, _) = env.enroll("alice").await;
    let missing_file = upload(&env, &access, &[("metadata", META)], None).await;
    assert_eq!(missing_file.status, StatusCode::BAD_REQUEST);
    assert_eq!(missing_file.body, r#"{"data_file":["This field is required."]}"#);

    for (metadata, error) in [
        ("not json", "could not parse the uploaded metadata"),
        (r#"{"tags": []}"#, "\\\"description\\\" is a required field of the metadata"),
        (r#"{"description": 3, "tags": []}"#, "\\\"description\\\" must be a string"),
        (r#"{"description": ""}"#, "\\\"tags\\\" is a required field of the metadata"),
        (r#"{"description": "", "tags": "x"}"#, "\\\"tags\\\" must be an array of strings"),
        (
            r#"{"description": "", "tags": [], "start_date": "yesterday"}"#,
            "Dates must be in ISO 8601 format",
        ),
        (r#"{"description": "", "tags": [], "md5": "abc"}"#, "Invalid MD5 specified"),
    ] {
        let reply = upload(&env, &access, &[("metadata", metadata)], Some(("a.json", b"{}"))).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{metadata}");
        assert_eq!(reply.body, format!("{{\"metadata\":[\"{error}\"]}}"), "{metadata}");
    }
    let unknown_type = upload(
        &env,
        &access,
        &[("metadata", META), ("datatypes", r#"["Nope"]"#)],
        Some(("a.json", b"{}")),
    )
    .await;
    assert_eq!(
        unknown_type.body,
        r#"{"datatypes":["The following datatypes don't match items in our database: ['Nope']"]}"#
    );
    let unregistered =
        upload(&env, &access, &[("metadata", META), ("datatypes", "[1]")], Some(("a.json", b"{}")))
            .await;
    assert_eq!(
        unregistered.body,
        r#"{"datatypes":["The following datatypes aren't registered for this project: [1]"]}"#
    );

    let created = upload(
        &env,
        &access,
        &[
            ("metadata", r#"{"description": "", "tags": [], "creation_date": "2024-02-01"}"#),
            ("datatypes", r#"["Sleep"]"#),
        ],
        Some(("my summary (1).json", b"{\"ok\":true}")),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let id = created.json()["id"].as_i64().expect("id");
    assert_eq!(created.body, format!("{{\"id\":{id}}}"));

    let listing = env.api_get(EXCHANGE, &access).await.json();
    let file = listing["data"]
        .as_array()
        .expect("data")
        .iter()
        .find(|f| f["id"] == id)
        .expect("uploaded file listed")
        .clone();
    assert_eq!(file["basename"], "my_summary_1.json");
    assert_eq!(file["source"], "direct-sharing-1001");
    let url = file["download_url"].as_str().expect("url");
    let path = url.strip_prefix("http://sandbox.test/oh").expect("on base");
    let redirect = env.get(path, None).await;
    assert_eq!(redirect.status, StatusCode::FOUND);
    let blob = redirect.location();
    assert!(blob.contains("&x-oh-key="), "{blob}");
    let blob_path = blob.strip_prefix("http://sandbox.test/oh").expect("on base");
    let bytes = env.get(blob_path, None).await;
    assert_eq!(bytes.status, StatusCode::OK);
    assert_eq!(bytes.body, "{\"ok\":true}");

    // The blob URL lasts 10 minutes, the key one hour.
    env.sandbox.advance_clock(Duration::from_secs(601));
    assert_eq!(env.get(blob_path, None).await.status, StatusCode::FORBIDDEN);
    env.sandbox.advance_clock(Duration::from_secs(3000));
    let expired = env.get(path, None).await;
    assert_eq!(expired.status, StatusCode::FORBIDDEN);
    assert_eq!(expired.body, "<h1>You are not authorized to view this file.</h1>");
    let forged = env
        .get(
            &format!(
                "/data-management/datafile-download/{id}/?key=7c9e6679-7425-40de-944b-e07fc1f90ae7"
            ),
            None,
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn master_upload_needs_an_active_member() {
    let env = env().await;
    let master = env.master();
    let reply = upload(
        &env,
        &master,
        &[("metadata", META), ("project_member_id", "12345678")],
        Some(("a.txt", b"x")),
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.body, r#"{"project_member_id":"project_member_id is invalid"}"#);
}

#[tokio::test]
async fn direct_upload_then_complete_then_delete() {
    let env = env().await;
    let (access, _) = env.enroll("bob").await;
    let start = env
        .api_post(
            "/api/direct-sharing/project/files/upload/direct/",
            &access,
            &[("filename", "weekly summary.json"), ("metadata", META)],
        )
        .await;
    assert_eq!(start.status, StatusCode::CREATED, "{}", start.body);
    let json = start.json();
    let id = json["id"].as_i64().expect("id");
    let url = json["url"].as_str().expect("url").to_owned();
    assert!(url.starts_with("http://sandbox.test/oh/"));
    let put_path = url.strip_prefix("http://sandbox.test/oh").expect("on base").to_owned();

    let early = env
        .api_post(
            "/api/direct-sharing/project/files/upload/complete/",
            &access,
            &[("file_id", &id.to_string())],
        )
        .await;
    assert_eq!(early.body, r#"{"detail":"file not present"}"#);
    let no_id =
        env.api_post("/api/direct-sharing/project/files/upload/complete/", &access, &[]).await;
    assert_eq!(no_id.body, r#"{"detail":"file does not exist"}"#);

    let with_type = env
        .send(
            Request::put(&put_path)
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from("{}"))
                .expect("request"),
        )
        .await;
    assert_eq!(with_type.status, StatusCode::FORBIDDEN);
    let put =
        env.send(Request::put(&put_path).body(Body::from("{\"week\":1}")).expect("request")).await;
    assert_eq!(put.status, StatusCode::OK);
    assert!(!put.header("etag").is_empty());

    let done = env
        .api_post(
            "/api/direct-sharing/project/files/upload/complete/",
            &access,
            &[("file_id", &id.to_string())],
        )
        .await;
    assert_eq!(done.status, StatusCode::OK);
    assert_eq!(done.body, r#"{"status":"ok","size":10}"#);
    let listing = env.api_get(EXCHANGE, &access).await.json();
    assert!(
        listing["data"]
            .as_array()
            .expect("data")
            .iter()
            .any(|f| f["basename"] == "weekly summary.json")
    );

    let delete = "/api/direct-sharing/project/files/delete/";
    let none = env.api_post(delete, &access, &[]).await;
    assert_eq!(
        none.body,
        r#"{"missing_field":"one of file_id, file_basename, or all_files is required"}"#
    );
    let many = env.api_post(delete, &access, &[("file_id", "1"), ("all_files", "true")]).await;
    assert_eq!(
        many.body,
        r#"{"too_many":"one of file_id, file_basename, or all_files is required"}"#
    );
    let other_source = env.api_post(delete, &access, &[("file_id", "5004")]).await;
    assert_eq!(other_source.body, r#"{"ids":[]}"#);
    let by_name = env.api_post(delete, &access, &[("file_basename", "weekly summary.json")]).await;
    assert_eq!(by_name.body, format!("{{\"ids\":[{id}]}}"));

    // Expired presigned PUT.
    let start = env
        .api_post(
            "/api/direct-sharing/project/files/upload/direct/",
            &access,
            &[("filename", "b.json"), ("metadata", META)],
        )
        .await
        .json();
    let url = start["url"].as_str().expect("url").to_owned();
    env.sandbox.advance_clock(Duration::from_secs(6 * 3600 + 1));
    let late = env
        .send(
            Request::put(url.strip_prefix("http://sandbox.test/oh").expect("base"))
                .body(Body::from("x"))
                .expect("request"),
        )
        .await;
    assert_eq!(late.status, StatusCode::FORBIDDEN);
}

#[derive(Clone, Default)]
struct Received(Arc<Mutex<Vec<(HeaderMap, Bytes)>>>);

/// A loopback webhook receiver answering the given statuses in turn (then 200).
async fn receiver(statuses: Vec<u16>) -> (String, Received) {
    let received = Received::default();
    let statuses = Arc::new(Mutex::new(statuses.into_iter()));
    let store = received.clone();
    let app = axum::Router::new().route(
        "/deauth/",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let store = store.clone();
            let statuses = statuses.clone();
            async move {
                store.0.lock().expect("lock").push((headers, body));
                let code = statuses.lock().expect("lock").next().unwrap_or(200);
                StatusCode::from_u16(code).unwrap_or(StatusCode::OK)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}/deauth/"), received)
}

#[tokio::test]
async fn withdrawal_with_erasure_sends_a_signed_webhook() {
    let (url, received) = receiver(vec![]).await;
    let env = common::env_with(|c| {
        c.project.deauth_webhook = Some(url.clone());
        c.project.webhook_secret = Some("abcdefghijklmnop".to_owned());
    })
    .await;
    let (access, _) = env.enroll("alice").await;
    let pmid = env.api_get(EXCHANGE, &access).await.json()["project_member_id"]
        .as_str()
        .expect("pmid")
        .to_owned();
    let cookie = env.login("alice").await;
    let connections = env.get("/member/me/connections/", Some(&cookie)).await;
    assert!(connections.body.contains("Withdraw from project &amp; revoke authorization"));
    let href = connections
        .body
        .split("href=\"/oh/direct-sharing/projects/leave/")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("leave link")
        .to_owned();
    let leave_path = format!("/direct-sharing/projects/leave/{href}");
    let page = env.get(&leave_path, Some(&cookie)).await;
    assert!(
        page.body
            .contains("Are you sure you want to leave the project &#39;Daily Rhythms Study&#39;?")
            || page
                .body
                .contains("Are you sure you want to leave the project 'Daily Rhythms Study'?")
    );
    assert!(page.body.contains("Remove my data files for Daily Rhythms Study from Open Humans"));
    assert!(page.body.contains("Request that Daily Rhythms Study deletes my data"));
    let reply = env.post_form(&leave_path, Some(&cookie), &[("erasure_requested", "on")]).await;
    assert_eq!(reply.status, StatusCode::FOUND);
    assert_eq!(reply.location(), "/oh/member/me/connections/");

    let got = received.0.lock().expect("lock").clone();
    assert_eq!(got.len(), 1);
    let (headers, body) = &got[0];
    let text = std::str::from_utf8(body).expect("utf8");
    let prefix = format!(
        "{{\"project_member_id\": \"{pmid}\", \"erasure_requested\": true, \"timestamp\": \""
    );
    assert!(text.starts_with(&prefix), "{text}");
    assert!(text.ends_with("+00:00\"}"), "{text}");
    assert_eq!(headers.get("content-type").and_then(|v| v.to_str().ok()), Some("application/json"));
    let signature = headers
        .get("x-openhumans-webhooks-signature")
        .and_then(|v| v.to_str().ok())
        .expect("signed");
    assert_eq!(signature, sandbox::webhook_signature("abcdefghijklmnop", body));
    assert_eq!(env.api_get(EXCHANGE, &access).await.body, r#"{"detail":"Invalid token."}"#);
    let log = env.get("/sandbox/webhooks/", None).await;
    assert!(log.body.contains("HTTP 200") && log.body.contains("signed"));
}

#[tokio::test]
async fn remove_members_webhook_and_legacy_retry() {
    let (url, received) = receiver(vec![500]).await;
    let env = common::env_with(|c| {
        c.project.deauth_webhook = Some(url.clone());
        c.project.webhook_secret = Some("abcdefghijklmnop".to_owned());
    })
    .await;
    let (access, _) = env.enroll("dmitri").await;
    let pmid = env.api_get(EXCHANGE, &access).await.json()["project_member_id"]
        .as_str()
        .expect("pmid")
        .to_owned();
    let reply = env
        .api_post(
            "/api/direct-sharing/project/remove-members/",
            &env.master(),
            &[("project_member_ids", &pmid)],
        )
        .await;
    assert_eq!(reply.body, r#""success""#);
    let got = received.0.lock().expect("lock").clone();
    assert_eq!(got.len(), 2, "one signed attempt and one legacy retry");
    let first = std::str::from_utf8(&got[0].1).expect("utf8").to_owned();
    assert!(first.contains("\"erasure_requested\": false"));
    let legacy = std::str::from_utf8(&got[1].1).expect("utf8");
    assert_eq!(legacy, serde_json::to_string(&first).expect("string literal"));
    assert!(got[1].0.get("x-openhumans-webhooks-signature").is_none());
}

#[tokio::test]
async fn documented_signature_example() {
    let body = r#"{"project_member_id": "12345678", "erasure_requested": true, "timestamp": "2020-06-30T20:00:00.000000+00:00"}"#;
    assert_eq!(
        sandbox::webhook_signature("abcdefghijklmnop", body.as_bytes()),
        "sha1=ebda5c0a38593a4350ad8401b7d8c8f1cd08ec67"
    );
    let built = sandbox::webhook_payload(
        "12345678",
        false,
        time::macros::datetime!(2020-06-30 20:00:00.5 UTC),
    );
    assert_eq!(
        built,
        r#"{"project_member_id": "12345678", "erasure_requested": false, "timestamp": "2020-06-30T20:00:00.500000+00:00"}"#
    );
}

#[tokio::test]
async fn sandbox_persists_across_restarts() {
    let dir = std::env::temp_dir().join(format!("ohsandbox-test-{}", std::process::id()));
    let path = dir.join("sandbox.sqlite3");
    let _ = std::fs::remove_dir_all(&dir);
    let make = || {
        let path = path.clone();
        common::env_with(move |c| c.database = Some(path))
    };
    let first = make().await;
    let creds = first.sandbox.project_credentials();
    let (access, _) = first.enroll("alice").await;
    first.sandbox.flush().await;
    drop(first);
    let second = make().await;
    assert_eq!(second.sandbox.project_credentials().client_id, creds.client_id);
    assert_eq!(second.sandbox.project_credentials().master_access_token, creds.master_access_token);
    let reply = second.api_get(EXCHANGE, &access).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn user_token_with_json_bodies_reaches_the_file_endpoints() {
    let env = env().await;
    let (access, _) = env.enroll("carmen").await;
    let base = "/api/direct-sharing/project/files";
    let simple = env
        .api_post_json(&format!("{base}/upload/"), &access, &serde_json::json!({"metadata": META}))
        .await;
    assert_eq!(simple.status, StatusCode::BAD_REQUEST);
    assert_eq!(simple.body, r#"{"data_file":["This field is required."]}"#);

    let start = env
        .api_post_json(
            &format!("{base}/upload/direct/"),
            &access,
            &serde_json::json!({"filename": "json.csv", "metadata": META}),
        )
        .await;
    assert_eq!(start.status, StatusCode::CREATED, "{}", start.body);
    let json = start.json();
    let id = json["id"].as_i64().expect("id");
    let url = json["url"].as_str().expect("url");
    let put_path = url.strip_prefix("http://sandbox.test/oh").expect("on base").to_owned();
    let put = env.send(Request::put(&put_path).body(Body::from("a,b\n")).expect("request")).await;
    assert_eq!(put.status, StatusCode::OK);

    let done = env
        .api_post_json(
            &format!("{base}/upload/complete/"),
            &access,
            &serde_json::json!({"file_id": id}),
        )
        .await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    assert_eq!(done.body, r#"{"status":"ok","size":4}"#);

    let deleted = env
        .api_post_json(&format!("{base}/delete/"), &access, &serde_json::json!({"file_id": id}))
        .await;
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.body);
    assert_eq!(deleted.body, format!("{{\"ids\":[{id}]}}"));
}

/// The seeded project's `approved` flag as the project-info endpoint reports it.
async fn approved(env: &common::Env) -> serde_json::Value {
    env.api_get("/api/direct-sharing/project/", &env.master()).await.json()["approved"].clone()
}

#[tokio::test]
async fn approval_saved_on_the_switches_page_survives_a_restart() {
    let dir = std::env::temp_dir().join(format!("ohsandbox-approval-{}", std::process::id()));
    let path = dir.join("sandbox.sqlite3");
    let _ = std::fs::remove_dir_all(&dir);
    let make = |approved: bool| {
        let path = path.clone();
        common::env_with(move |c| {
            c.database = Some(path);
            c.approved = approved;
        })
    };
    let first = make(false).await;
    assert_eq!(approved(&first).await, false);
    let saved = first
        .post_form(
            "/sandbox/switches/",
            None,
            &[("approved", "on"), ("legacy_webhook_retry", "on")],
        )
        .await;
    assert_eq!(saved.status, StatusCode::FOUND);
    assert_eq!(approved(&first).await, true);
    first.sandbox.flush().await;
    drop(first);

    let second = make(false).await;
    assert_eq!(approved(&second).await, true);
    second.sandbox.set_approved(false);
    second.sandbox.flush().await;
    drop(second);

    let third = make(true).await;
    assert_eq!(approved(&third).await, true);
    let _ = std::fs::remove_dir_all(&dir);
}
