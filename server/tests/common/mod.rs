//! Helpers shared by the server's integration tests: fresh databases of both kinds and an app
//! router over them.

#![allow(dead_code)] // Each test file uses a different subset of these helpers.

pub mod sandbox;

use std::sync::Arc;

use clap::Parser;
use server::config::Config;
use server::storage::Db;
use sqlx::{Connection, Executor};

/// A database that lives as long as the value: a SQLite file in a temporary directory, or a
/// PostgreSQL database created for one test and dropped by [`TestDb::cleanup`].
pub struct TestDb {
    pub db: Db,
    _dir: Option<tempfile::TempDir>,
    pg_name: Option<String>,
}

impl TestDb {
    /// A fresh SQLite database.
    pub async fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("test.sqlite3").display());
        let db = Db::connect(&url, 4).await.expect("SQLite opens and migrates");
        Self { db, _dir: Some(dir), pg_name: None }
    }

    /// A fresh PostgreSQL database on the server named by `OHKIT_TEST_POSTGRES_URL`.
    pub async fn postgres() -> Self {
        let admin_url = postgres_url();
        let name = format!("ohkit_test_{}", uuid::Uuid::new_v4().simple());
        let mut admin = sqlx::PgConnection::connect(&admin_url)
            .await
            .expect("PostgreSQL answers at OHKIT_TEST_POSTGRES_URL");
        admin.execute(format!("CREATE DATABASE {name}").as_str()).await.expect("create database");
        let url = replace_database(&admin_url, &name);
        let db = Db::connect(&url, 4).await.expect("PostgreSQL migrates");
        Self { db, _dir: None, pg_name: Some(name) }
    }

    /// Drops the PostgreSQL database, if this is one.
    pub async fn cleanup(self) {
        if let Some(name) = self.pg_name {
            self.db.pool().close().await;
            let mut admin =
                sqlx::PgConnection::connect(&postgres_url()).await.expect("PostgreSQL answers");
            admin
                .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                .await
                .expect("drop database");
        }
    }
}

fn postgres_url() -> String {
    std::env::var("OHKIT_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

fn replace_database(url: &str, name: &str) -> String {
    let mut parsed = url::Url::parse(url).expect("a valid PostgreSQL URL");
    parsed.set_path(&format!("/{name}"));
    parsed.to_string()
}

/// Settings as `ohkit serve` would read them with no flags and no environment.
pub fn default_config() -> Config {
    Config::parse_from(["ohkit serve"])
}

/// The app's router over a database, as `ohkit serve` builds it.
pub fn app(db: Db) -> axum::Router {
    let leptos_options = leptos::config::LeptosOptions::builder().output_name("ohkit").build();
    let oh = server::openhumans_settings::OhSettings {
        base_url: url::Url::parse("http://127.0.0.1:9/").expect("URL"),
        client_id: "test-client".to_owned(),
        client_secret: "test-secret".parse().expect("secret"),
        redirect_url: url::Url::parse("http://127.0.0.1:3000/oauth/callback").expect("URL"),
    };
    server::routes::app(server::AppState {
        leptos_options,
        db,
        config: Arc::new(default_config()),
        oh: Arc::new(oh),
        sandbox: None,
    })
}
