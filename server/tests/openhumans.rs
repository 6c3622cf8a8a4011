//! The Open Humans client against a live sandbox over loopback: the code exchange, the
//! refresh, the member listing across pages, the project description, both upload paths,
//! deletion, leaving the project, and how every kind of failure is reported.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use ::sandbox::Faults;
use common::sandbox::{self, LiveSandbox};
use server::openhumans::{FileMetadata, OhClient, OhError};

fn metadata(description: &str) -> FileMetadata {
    FileMetadata { description: description.to_owned(), tags: vec!["test".into(), "csv".into()] }
}

async fn enrolled(username: &str) -> (LiveSandbox, OhClient, String, String) {
    let live = sandbox::start().await;
    let client = live.client();
    let tokens = live.enroll(&client, username).await;
    (live, client, tokens.access_token, tokens.refresh_token)
}

#[tokio::test]
async fn a_code_is_exchanged_once() {
    let live = sandbox::start().await;
    let client = live.client();
    let (code, verifier) = live.authorize(&client, "alice").await;
    let tokens = client.exchange_code(&code, &verifier).await.expect("first exchange");
    assert_eq!(tokens.expires_in, 36_000);
    assert_eq!(tokens.access_token.len(), 30);
    assert_ne!(tokens.access_token, tokens.refresh_token);
    let again = client.exchange_code(&code, &verifier).await;
    assert!(matches!(again, Err(OhError::InvalidGrant)), "{again:?}");
    assert!(again.err().is_some_and(|e| e.needs_reauthorization()));
    let member = client.exchange_member(&tokens.access_token).await.expect("token works");
    assert_eq!(member.project_member_id.len(), 8);
}

#[tokio::test]
async fn a_wrong_pkce_verifier_is_an_invalid_grant() {
    let live = sandbox::start().await;
    let client = live.client();
    let (code, _verifier) = live.authorize(&client, "bob").await;
    let wrong = client.authorize_url(false).pkce_verifier;
    let result = client.exchange_code(&code, &wrong).await;
    assert!(matches!(result, Err(OhError::InvalidGrant)), "{result:?}");
}

#[tokio::test]
async fn a_wrong_client_secret_is_invalid_client() {
    let live = sandbox::start().await;
    let (code, verifier) = live.authorize(&live.client(), "alice").await;
    let mut settings = live.settings();
    settings.client_secret = "not-the-secret".parse().expect("secret");
    let client = OhClient::new(&settings).expect("client");
    let result = client.exchange_code(&code, &verifier).await;
    assert!(matches!(result, Err(OhError::InvalidClient)), "{result:?}");
}

#[tokio::test]
async fn a_refresh_rotates_both_tokens() {
    let (_live, client, access, refresh) = enrolled("carmen").await;
    let fresh = client.refresh(&refresh).await.expect("refresh");
    assert_ne!(fresh.access_token, access);
    assert_ne!(fresh.refresh_token, refresh);
    client.exchange_member(&fresh.access_token).await.expect("the new token works");
    let old = client.exchange_member(&access).await;
    assert!(matches!(old, Err(OhError::InvalidToken)), "{old:?}");
    let reused = client.refresh(&refresh).await;
    assert!(matches!(reused, Err(OhError::InvalidGrant)), "{reused:?}");
}

#[tokio::test]
async fn the_member_listing_follows_every_page() {
    let (_live, client, access, _) = enrolled("alice").await;
    let before = client.exchange_member(&access).await.expect("listing");
    let mut uploaded = HashSet::new();
    for n in 0..105 {
        let id = client
            .upload_file(
                &access,
                &format!("part-{n:03}.csv"),
                format!("n\n{n}\n").into_bytes(),
                &metadata("A part"),
            )
            .await
            .expect("upload");
        uploaded.insert(id);
    }
    assert_eq!(uploaded.len(), 105);
    let member = client.exchange_member(&access).await.expect("listing");
    assert_eq!(member.files.len(), before.files.len() + 105);
    let ids: HashSet<i64> = member.files.iter().map(|f| f.id).collect();
    assert_eq!(ids.len(), member.files.len(), "no file is listed twice");
    assert!(uploaded.is_subset(&ids), "every uploaded file is listed");
    let one = member.files.iter().find(|f| f.basename == "part-104.csv").expect("last file");
    assert_eq!(one.description(), "A part");
    assert_eq!(one.tags(), vec!["test".to_owned(), "csv".to_owned()]);
    assert!(one.download_url.contains("/data-management/datafile-download/"));
}

#[tokio::test]
async fn the_project_is_described() {
    let (_live, client, access, _) = enrolled("bob").await;
    let project = client.project_info(&access).await.expect("project info");
    assert!(!project.name.is_empty());
    assert!(project.id_label.starts_with("direct-sharing-"));
    assert!(project.active);
    assert!(project.requested_sources.iter().all(|s| s.starts_with("/api/public/project/")));
}

#[tokio::test]
async fn simple_and_direct_uploads_then_deletion() {
    let (_live, client, access, _) = enrolled("dmitri").await;
    let simple = client
        .upload_file(&access, "simple.csv", b"a,b\n1,2\n".to_vec(), &metadata("Simple upload"))
        .await
        .expect("simple upload");

    let bytes = b"x,y\n3,4\n5,6\n".to_vec();
    let direct = client
        .start_direct_upload(&access, "direct.csv", &metadata("Direct upload"))
        .await
        .expect("start");
    let early = client.complete_direct_upload(&access, direct.id).await;
    assert!(
        matches!(&early, Err(OhError::Rejected { status: 400, body }) if body.contains("file not present")),
        "{early:?}"
    );
    let len = bytes.len() as u64;
    client
        .put_presigned(&direct.url, reqwest::Body::from(bytes), len)
        .await
        .expect("presigned PUT");
    let size = client.complete_direct_upload(&access, direct.id).await.expect("complete");
    assert_eq!(size, len);

    let member = client.exchange_member(&access).await.expect("listing");
    let names: Vec<&str> = member.files.iter().map(|f| f.basename.as_str()).collect();
    assert!(names.contains(&"simple.csv") && names.contains(&"direct.csv"), "{names:?}");
    let listed = member.files.iter().find(|f| f.id == direct.id).expect("direct file listed");
    assert_eq!(listed.description(), "Direct upload");

    assert_eq!(client.delete_file(&access, simple).await.expect("delete"), vec![simple]);
    assert_eq!(client.delete_file(&access, simple).await.expect("delete again"), Vec::<i64>::new());
    let member = client.exchange_member(&access).await.expect("listing");
    assert!(member.files.iter().all(|f| f.id != simple));
    assert!(member.files.iter().any(|f| f.id == direct.id));
}

#[tokio::test]
async fn storage_refuses_a_presigned_put_with_a_content_type() {
    let (_live, client, access, _) = enrolled("esi").await;
    let direct =
        client.start_direct_upload(&access, "typed.csv", &metadata("Typed")).await.expect("start");
    let typed = reqwest::Client::new()
        .put(&direct.url)
        .header(reqwest::header::CONTENT_TYPE, "text/csv")
        .body("a\n1\n")
        .send()
        .await
        .expect("storage answers");
    assert!(typed.status().is_client_error(), "a typed PUT is refused: {}", typed.status());
    client.put_presigned(&direct.url, reqwest::Body::from("a\n1\n"), 4).await.expect("untyped PUT");
    assert_eq!(client.complete_direct_upload(&access, direct.id).await.expect("complete"), 4);
}

#[tokio::test]
async fn leaving_the_project_revokes_every_token() {
    let (_live, client, access, refresh) = enrolled("bob").await;
    client.remove_self(&access).await.expect("remove-members");
    let listing = client.exchange_member(&access).await;
    assert!(matches!(listing, Err(OhError::InvalidToken)), "{listing:?}");
    let refreshed = client.refresh(&refresh).await;
    assert!(matches!(refreshed, Err(OhError::InvalidGrant)), "{refreshed:?}");
}

#[tokio::test]
async fn api_failures_are_told_apart() {
    let (live, client, access, _) = enrolled("alice").await;

    let unknown = client.exchange_member("000000000000000000000000000000").await;
    assert!(matches!(unknown, Err(OhError::InvalidToken)), "{unknown:?}");

    live.sandbox.set_faults(Faults { error_rate: 1.0, ..Faults::default() });
    let down = client.project_info(&access).await;
    assert!(matches!(down, Err(OhError::Unavailable { status: 500 | 503 })), "{down:?}");
    let token_down = client.refresh("whatever").await;
    assert!(matches!(token_down, Err(OhError::Unavailable { .. })), "{token_down:?}");
    live.sandbox.set_faults(Faults::default());

    live.sandbox.advance_clock(Duration::from_secs(36_001));
    let expired = client.exchange_member(&access).await;
    assert!(matches!(expired, Err(OhError::ExpiredToken)), "{expired:?}");
    assert!(!expired.err().is_some_and(|e| e.needs_reauthorization()));
}

#[tokio::test]
async fn a_closed_port_is_a_transport_error() {
    let live = sandbox::start().await;
    let mut settings = live.settings();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    drop(listener);
    settings.base_url = url::Url::parse(&format!("http://127.0.0.1:{port}/")).expect("URL");
    let client = OhClient::new(&settings).expect("client");
    let api = client.project_info("token").await;
    assert!(matches!(api, Err(OhError::Transport(_))), "{api:?}");
    let token = client.refresh("token").await;
    assert!(matches!(token, Err(OhError::Transport(_))), "{token:?}");
}

#[tokio::test]
async fn a_dropped_refresh_answer_spends_the_refresh_token() {
    let (live, client, _, refresh) = enrolled("carmen").await;
    live.sandbox.set_faults(Faults { drop_refresh_response: true, ..Faults::default() });
    let dropped = client.refresh(&refresh).await;
    assert!(matches!(dropped, Err(OhError::Unavailable { status: 502 })), "{dropped:?}");
    live.sandbox.set_faults(Faults::default());
    let retried = client.refresh(&refresh).await;
    assert!(matches!(retried, Err(OhError::InvalidGrant)), "{retried:?}");
}
