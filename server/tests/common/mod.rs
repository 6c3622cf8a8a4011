//! Helpers shared by the server's integration tests: fresh databases of both kinds and an app
//! router over them.

#![allow(dead_code)] // Each test file uses a different subset of these helpers.

pub mod sandbox;

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

/// A whole ohkit on the embedded default (SQLite in a temporary directory, the sandbox mounted
/// in-process), serving on a loopback port of its own.
pub struct LiveOhkit {
    /// `http://127.0.0.1:<port>` without a trailing slash.
    pub base: String,
    /// The state the server runs with.
    pub state: server::AppState,
    _dir: tempfile::TempDir,
}

impl LiveOhkit {
    /// Starts one.
    pub async fn start() -> Self {
        // With RUST_LOG set, the server's logs show in the test output (`--nocapture`).
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let dir = tempfile::tempdir().expect("temporary directory");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
        let addr = listener.local_addr().expect("local address");
        let config = Config::parse_from([
            "ohkit serve",
            "--addr",
            &addr.to_string(),
            "--data-dir",
            &dir.path().display().to_string(),
        ]);
        let leptos_options = leptos::config::LeptosOptions::builder().output_name("ohkit").build();
        let state = server::build_state(config, leptos_options).await.expect("ohkit starts");
        let router = server::routes::app(state.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Self { base: format!("http://{addr}"), state, _dir: dir }
    }

    /// The same app as a router, for in-process requests.
    pub fn router(&self) -> axum::Router {
        server::routes::app(self.state.clone())
    }
}
