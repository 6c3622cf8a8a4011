//! Token lifecycle against a live sandbox over loopback, on SQLite and PostgreSQL: stored
//! tokens are used as they are, expiring ones are refreshed exactly once however many callers
//! and instances ask at the same time, and a refresh the platform refuses marks the member as
//! needing to authorize again.

mod common;

use std::sync::Arc;
use std::time::Duration;

use ::sandbox::Faults;
use base64::Engine;
use common::TestDb;
use common::sandbox::{self, LiveSandbox};
use server::crypto::TokenCipher;
use server::members;
use server::openhumans::{OhError, TokenSet};
use server::storage::Db;
use server::tokens::{TokenError, TokenManager};
use sqlx::Row;

fn cipher() -> TokenCipher {
    let key = base64::engine::general_purpose::STANDARD.encode([42u8; 32]);
    TokenCipher::from_base64_key(&key).expect("test key")
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .expect("clock after 1970")
}

/// Enrolls `username` through the consent page and stores the member and their tokens.
async fn enroll(live: &LiveSandbox, manager: &TokenManager, username: &str) -> (String, TokenSet) {
    let client = live.client();
    let tokens = live.enroll(&client, username).await;
    let member = client.exchange_member(&tokens.access_token).await.expect("exchange-member");
    manager
        .store_enrollment(
            &member.project_member_id,
            member.username.as_deref(),
            &member.sources_shared,
            &tokens,
        )
        .await
        .expect("store the enrollment");
    (member.project_member_id, tokens)
}

/// Makes the stored token look expired to ohkit, and moves the sandbox past its expiry too.
async fn expire(live: &LiveSandbox, db: &Db, id: &str) {
    sqlx::query("UPDATE members SET token_expires_at = $1 WHERE project_member_id = $2")
        .bind(now() - 1)
        .bind(id)
        .execute(db.pool())
        .await
        .expect("expire");
    live.sandbox.advance_clock(Duration::from_secs(36_001));
}

async fn column(db: &Db, id: &str, name: &str) -> Option<String> {
    let row = sqlx::query(&format!(
        "SELECT CAST({name} AS TEXT) AS value FROM members WHERE project_member_id = $1"
    ))
    .bind(id)
    .fetch_one(db.pool())
    .await
    .expect("row");
    row.try_get("value").expect("value")
}

async fn stored_token_is_used_as_it_is(db: Db) {
    let live = sandbox::start().await;
    let manager = TokenManager::new(db.clone(), cipher(), live.client());
    let (id, tokens) = enroll(&live, &manager, "alice").await;
    let before = live.token_requests();
    assert_eq!(manager.access_token(&id).await.expect("token"), tokens.access_token);
    assert_eq!(live.token_requests(), before);
    assert_eq!(manager.refresh_count(), 0);
    assert_eq!(column(&db, &id, "needs_reauth").await.as_deref(), Some("0"));
    let sealed: Vec<u8> =
        sqlx::query("SELECT access_token FROM members WHERE project_member_id = $1")
            .bind(&id)
            .fetch_one(db.pool())
            .await
            .expect("row")
            .try_get("access_token")
            .expect("blob");
    assert!(!String::from_utf8_lossy(&sealed).contains(&tokens.access_token), "stored encrypted");
    assert!(matches!(manager.access_token("99999999").await, Err(TokenError::UnknownMember)));
}

async fn expiring_token_is_refreshed(db: Db) {
    let live = sandbox::start().await;
    let client = live.client();
    let manager = TokenManager::new(db.clone(), cipher(), client.clone());
    let (id, tokens) = enroll(&live, &manager, "bob").await;
    expire(&live, &db, &id).await;
    let expired = client.exchange_member(&tokens.access_token).await;
    assert!(matches!(expired, Err(OhError::ExpiredToken)), "{expired:?}");
    let fresh = manager.access_token(&id).await.expect("refreshed token");
    assert_ne!(fresh, tokens.access_token);
    assert_eq!(manager.refresh_count(), 1);
    client.exchange_member(&fresh).await.expect("the new token works");
    let old = client.exchange_member(&tokens.access_token).await;
    assert!(matches!(old, Err(OhError::InvalidToken)), "{old:?}");
    assert_eq!(manager.access_token(&id).await.expect("cached"), fresh);
    assert_eq!(manager.refresh_count(), 1);
    let forced = manager.refresh_now(&id).await.expect("forced refresh");
    assert_ne!(forced, fresh);
    assert_eq!(manager.refresh_count(), 2);
    client.exchange_member(&forced).await.expect("the forced token works");
}

async fn many_callers_share_one_refresh(db: Db) {
    let live = sandbox::start().await;
    let manager = TokenManager::new(db.clone(), cipher(), live.client());
    let (id, tokens) = enroll(&live, &manager, "carmen").await;
    expire(&live, &db, &id).await;
    let before = live.token_requests();
    let id = Arc::new(id);
    let calls: Vec<_> = (0..1000)
        .map(|_| {
            let manager = manager.clone();
            let id = id.clone();
            tokio::spawn(async move { manager.access_token(&id).await })
        })
        .collect();
    let mut results = Vec::new();
    for call in calls {
        results.push(call.await.expect("task").expect("token"));
    }
    assert_eq!(live.token_requests() - before, 1, "exactly one refresh reached Open Humans");
    assert_eq!(manager.refresh_count(), 1);
    assert!(results.iter().all(|t| *t == results[0]), "every caller got the same token");
    assert_ne!(results[0], tokens.access_token);
    live.client().exchange_member(&results[0]).await.expect("the shared token works");
}

async fn two_instances_share_one_refresh(first: Db, second: Db) {
    let live = sandbox::start().await;
    let one = TokenManager::new(first.clone(), cipher(), live.client());
    let two = TokenManager::new(second, cipher(), live.client());
    let (id, _) = enroll(&live, &one, "dmitri").await;
    expire(&live, &first, &id).await;
    let before = live.token_requests();
    let id = Arc::new(id);
    let calls: Vec<_> = (0..1000)
        .map(|n| {
            let manager = if n % 2 == 0 { one.clone() } else { two.clone() };
            let id = id.clone();
            tokio::spawn(async move { manager.access_token(&id).await })
        })
        .collect();
    let mut results = Vec::new();
    for call in calls {
        results.push(call.await.expect("task").expect("token"));
    }
    assert_eq!(live.token_requests() - before, 1, "exactly one refresh across both instances");
    assert_eq!(one.refresh_count() + two.refresh_count(), 1);
    assert!(results.iter().all(|t| *t == results[0]), "both instances hand out the same token");
    live.client().exchange_member(&results[0]).await.expect("the shared token works");
    assert_eq!(column(&first, &id, "refresh_lease_owner").await, None, "lease released");
}

async fn refused_refresh_needs_reauthorization(db: Db) {
    let live = sandbox::start().await;
    let client = live.client();
    let manager = TokenManager::new(db.clone(), cipher(), client.clone());

    let (left, tokens) = enroll(&live, &manager, "esi").await;
    client.remove_self(&tokens.access_token).await.expect("member leaves");
    expire(&live, &db, &left).await;
    let result = manager.access_token(&left).await;
    assert!(matches!(result, Err(TokenError::NeedsReauthorization)), "{result:?}");
    assert_eq!(column(&db, &left, "needs_reauth").await.as_deref(), Some("1"));
    let before = live.token_requests();
    assert!(matches!(manager.access_token(&left).await, Err(TokenError::NeedsReauthorization)));
    assert!(matches!(manager.refresh_now(&left).await, Err(TokenError::NeedsReauthorization)));
    assert_eq!(live.token_requests(), before, "no further refresh is attempted");

    let (rotated, tokens) = enroll(&live, &manager, "alice").await;
    client.refresh(&tokens.refresh_token).await.expect("someone else spends the refresh token");
    expire(&live, &db, &rotated).await;
    let result = manager.access_token(&rotated).await;
    assert!(matches!(result, Err(TokenError::NeedsReauthorization)), "{result:?}");
    assert_eq!(column(&db, &rotated, "needs_reauth").await.as_deref(), Some("1"));

    let fresh = live.enroll(&client, "alice").await;
    manager.store_enrollment(&rotated, Some("alice"), &[], &fresh).await.expect("reauthorized");
    assert_eq!(column(&db, &rotated, "needs_reauth").await.as_deref(), Some("0"));
    assert_eq!(manager.access_token(&rotated).await.expect("usable again"), fresh.access_token);
}

async fn lost_refresh_answer_then_reauthorization(db: Db) {
    let live = sandbox::start().await;
    let manager = TokenManager::new(db.clone(), cipher(), live.client());
    let (id, _) = enroll(&live, &manager, "bob").await;
    expire(&live, &db, &id).await;
    live.sandbox.set_faults(Faults { drop_refresh_response: true, ..Faults::default() });
    let first = manager.access_token(&id).await;
    assert!(
        matches!(first, Err(TokenError::Upstream(OhError::Unavailable { status: 502 }))),
        "{first:?}"
    );
    assert_eq!(column(&db, &id, "needs_reauth").await.as_deref(), Some("0"));
    assert_eq!(column(&db, &id, "refresh_lease_owner").await, None, "lease released");
    live.sandbox.set_faults(Faults::default());
    let second = manager.access_token(&id).await;
    assert!(matches!(second, Err(TokenError::NeedsReauthorization)), "{second:?}");
    assert_eq!(column(&db, &id, "needs_reauth").await.as_deref(), Some("1"));
}

async fn sweep_refreshes_only_members_due(db: Db) {
    let live = sandbox::start().await;
    let manager = TokenManager::new(db.clone(), cipher(), live.client());
    let (due, due_tokens) = enroll(&live, &manager, "carmen").await;
    let (fine, fine_tokens) = enroll(&live, &manager, "dmitri").await;
    let (gone, gone_tokens) = enroll(&live, &manager, "esi").await;
    let marked = manager.after_invalid(&gone, &gone_tokens.access_token).await.expect("mark");
    assert_eq!(marked, None);
    for id in [&due, &gone] {
        sqlx::query("UPDATE members SET token_expires_at = $1 WHERE project_member_id = $2")
            .bind(now() + 120)
            .bind(id)
            .execute(db.pool())
            .await
            .expect("near expiry");
    }
    let report = manager.sweep(Duration::from_secs(300)).await.expect("sweep");
    assert_eq!((report.due, report.refreshed, report.failed), (1, 1, 0), "{report:?}");
    assert_ne!(manager.access_token(&due).await.expect("token"), due_tokens.access_token);
    assert_eq!(manager.access_token(&fine).await.expect("token"), fine_tokens.access_token);
    let again = manager.sweep(Duration::from_secs(300)).await.expect("sweep");
    assert_eq!(again.due, 0, "{again:?}");
    assert_eq!(manager.refresh_count(), 1);
}

macro_rules! on_both {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let test = super::TestDb::sqlite().await;
                    super::$case(test.db.clone()).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                #[ignore = "needs PostgreSQL at OHKIT_TEST_POSTGRES_URL; scripts/test.sh runs it when one answers"]
                async fn $case() {
                    let test = super::TestDb::postgres().await;
                    super::$case(test.db.clone()).await;
                    test.cleanup().await;
                }
            )*
        }
    };
}

/// A request that still holds the token a refresh elsewhere has just rotated away gets "Invalid
/// token." or "Expired token." from the API: it must get the new token, not lock the member out
/// or spend the new refresh token.
async fn a_token_rotated_elsewhere_is_no_lockout(db: Db) {
    let live = sandbox::start().await;
    let manager = TokenManager::new(db.clone(), cipher(), live.client());
    let (id, first) = enroll(&live, &manager, "alice").await;
    let second = manager.refresh_now(&id).await.expect("refresh elsewhere");
    assert_ne!(second, first.access_token);

    let retry = manager.after_invalid(&id, &first.access_token).await.expect("after invalid");
    assert_eq!(retry.as_deref(), Some(second.as_str()));
    assert_eq!(column(&db, &id, "needs_reauth").await.as_deref(), Some("0"));
    let retry = manager.after_expired(&id, &first.access_token).await.expect("after expired");
    assert_eq!(retry, second);
    assert_eq!(manager.refresh_count(), 1, "no second refresh");

    // The same answer for the token ohkit holds now means the authorization is gone.
    assert_eq!(manager.after_invalid(&id, &second).await.expect("after invalid"), None);
    assert_eq!(column(&db, &id, "needs_reauth").await.as_deref(), Some("1"));
    assert!(matches!(manager.access_token(&id).await, Err(TokenError::NeedsReauthorization)));
}

/// An enrollment stores the member and their tokens in one statement; a returning member's
/// reauthorization replaces the tokens and the snapshot and clears the need to reauthorize.
async fn an_enrollment_is_stored_whole(db: Db) {
    let live = sandbox::start().await;
    let manager = TokenManager::new(db.clone(), cipher(), live.client());
    let client = live.client();
    let first = live.enroll(&client, "bob").await;
    let member = client.exchange_member(&first.access_token).await.expect("exchange-member");
    let id = member.project_member_id.clone();
    manager
        .store_enrollment(&id, Some("bob"), &["direct-sharing-102".to_owned()], &first)
        .await
        .expect("first enrollment");
    assert_eq!(manager.access_token(&id).await.expect("token"), first.access_token);
    let stored = members::find(&db, &id).await.expect("query").expect("row");
    assert_eq!(stored.sources_shared, vec!["direct-sharing-102".to_owned()]);

    manager.after_invalid(&id, &first.access_token).await.expect("mark");
    let second = live.enroll(&client, "bob").await;
    let sources = vec!["direct-sharing-102".to_owned(), "direct-sharing-128".to_owned()];
    manager.store_enrollment(&id, None, &sources, &second).await.expect("reauthorization");
    let stored = members::find(&db, &id).await.expect("query").expect("row");
    assert!(!stored.needs_reauth);
    assert_eq!(stored.username, None);
    assert_eq!(stored.sources_shared, sources);
    assert_eq!(manager.access_token(&id).await.expect("token"), second.access_token);
    assert_eq!(column(&db, &id, "token_version").await.as_deref(), Some("1"));
}

on_both!(
    an_enrollment_is_stored_whole,
    a_token_rotated_elsewhere_is_no_lockout,
    stored_token_is_used_as_it_is,
    expiring_token_is_refreshed,
    many_callers_share_one_refresh,
    refused_refresh_needs_reauthorization,
    lost_refresh_answer_then_reauthorization,
    sweep_refreshes_only_members_due,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_one_sqlite_file() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("shared.sqlite3").display());
    let first = Db::connect(&url, 4).await.expect("first instance");
    let second = Db::connect(&url, 4).await.expect("second instance");
    two_instances_share_one_refresh(first, second).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL at OHKIT_TEST_POSTGRES_URL; scripts/test.sh runs it when one answers"]
async fn two_instances_on_one_postgres_database() {
    let test = TestDb::postgres().await;
    two_instances_share_one_refresh(test.db.clone(), test.db.clone()).await;
    test.cleanup().await;
}
