//! Storage against real databases: SQLite always, PostgreSQL when one answers (scripts/test.sh
//! runs the ignored PostgreSQL tests whenever its server is reachable).

mod common;

use common::TestDb;
use server::members;
use server::storage::Db;

async fn members_round_trip(db: &Db) {
    assert_eq!(members::find(db, "01234567").await.expect("query"), None);

    let created = members::upsert(db, "01234567", None, &["direct-sharing-128".to_owned()], 100)
        .await
        .expect("insert");
    assert_eq!(created.project_member_id, "01234567", "leading zeros are kept");
    assert_eq!(created.username, None);
    assert_eq!(created.sources_shared, vec!["direct-sharing-128".to_owned()]);
    assert_eq!((created.created_at, created.updated_at), (100, 100));

    let updated = members::upsert(db, "01234567", Some("alice"), &[], 200).await.expect("update");
    assert_eq!(updated.username.as_deref(), Some("alice"));
    assert!(updated.sources_shared.is_empty());
    assert_eq!((updated.created_at, updated.updated_at), (100, 200), "created_at survives");
    assert!(!updated.needs_reauth);

    assert!(members::delete(db, "01234567").await.expect("delete"));
    assert_eq!(members::find(db, "01234567").await.expect("query"), None);
    assert!(!members::delete(db, "01234567").await.expect("delete again"));

    assert!(db.ping().await);
}

#[tokio::test]
async fn sqlite_members_round_trip() {
    let test = TestDb::sqlite().await;
    members_round_trip(&test.db).await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL at OHKIT_TEST_POSTGRES_URL; scripts/test.sh runs it when one answers"]
async fn postgres_members_round_trip() {
    let test = TestDb::postgres().await;
    members_round_trip(&test.db).await;
    test.cleanup().await;
}

#[tokio::test]
async fn sqlite_migrations_are_idempotent_across_restarts() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("nested/dir/db.sqlite3").display());
    let first = Db::connect(&url, 2).await.expect("first start creates the directory and migrates");
    members::upsert(&first, "12345678", None, &[], 1).await.expect("insert");
    first.pool().close().await;
    let second = Db::connect(&url, 2).await.expect("second start finds the migrations applied");
    assert!(members::find(&second, "12345678").await.expect("query").is_some());
}

#[tokio::test]
async fn unsupported_urls_are_refused() {
    let err = Db::connect("mysql://localhost/ohkit", 1).await.expect_err("MySQL is not supported");
    assert!(err.to_string().contains("unsupported database URL"), "{err}");
}
