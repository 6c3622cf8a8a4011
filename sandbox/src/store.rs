//! Persistence: the in-memory state is the authority; every change is queued to a single
//! writer task that applies it to the sandbox's SQLite file in batched transactions. Records
//! are JSON documents keyed by (kind, key); file contents live in a separate blob table.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use axum::body::Bytes;
use serde::de::DeserializeOwned;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};
use tokio::sync::{mpsc, oneshot};

use crate::SandboxError;
use crate::model::Entity;

enum Op {
    Put { kind: &'static str, key: String, body: String },
    Delete { kind: &'static str, key: String },
    PutBlob { key: String, data: Bytes },
    DeleteBlob { key: String },
    Flush(oneshot::Sender<()>),
}

/// A handle that queues writes; cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct Store {
    tx: mpsc::UnboundedSender<Op>,
    pool: SqlitePool,
}

impl std::fmt::Debug for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Op")
    }
}

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS records (kind TEXT NOT NULL, key TEXT NOT NULL, body TEXT NOT NULL, PRIMARY KEY (kind, key)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS blobs (key TEXT PRIMARY KEY NOT NULL, data BLOB NOT NULL)",
    "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL)",
];

impl Store {
    /// Opens (creating and migrating) the database; `None` keeps it in memory.
    pub(crate) async fn open(path: Option<&Path>) -> Result<Self, SandboxError> {
        let options = match path {
            Some(path) => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(SandboxError::Io)?;
                }
                SqliteConnectOptions::new()
                    .filename(path)
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
            }
            None => SqliteConnectOptions::from_str("sqlite::memory:")?,
        }
        .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(if path.is_some() { 4 } else { 1 })
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await?;
        for statement in SCHEMA {
            sqlx::query(statement).execute(&pool).await?;
        }
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(writer(pool.clone(), rx));
        Ok(Self { tx, pool })
    }

    /// Loads every record of a kind.
    pub(crate) async fn load<E: Entity + DeserializeOwned>(&self) -> Result<Vec<E>, SandboxError> {
        let rows = sqlx::query("SELECT body FROM records WHERE kind = ?")
            .bind(E::KIND)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                let body: String = row.try_get("body")?;
                serde_json::from_str(&body).map_err(SandboxError::Corrupt)
            })
            .collect()
    }

    /// Reads a metadata value.
    pub(crate) async fn meta(&self, name: &str) -> Result<Option<String>, SandboxError> {
        let row = sqlx::query("SELECT value FROM meta WHERE name = ?")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(row) => Some(row.try_get("value")?),
            None => None,
        })
    }

    /// Writes a metadata value immediately.
    pub(crate) async fn set_meta(&self, name: &str, value: &str) -> Result<(), SandboxError> {
        sqlx::query("INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = excluded.value")
            .bind(name)
            .bind(value)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Queues a record write.
    pub(crate) fn put<E: Entity>(&self, record: &E) {
        match serde_json::to_string(record) {
            Ok(body) => {
                let _ = self.tx.send(Op::Put { kind: E::KIND, key: record.key(), body });
            }
            Err(error) => tracing::error!(%error, kind = E::KIND, "cannot serialize a record"),
        }
    }

    /// Queues a record deletion.
    pub(crate) fn delete<E: Entity>(&self, key: String) {
        let _ = self.tx.send(Op::Delete { kind: E::KIND, key });
    }

    /// Queues a blob write.
    pub(crate) fn put_blob(&self, key: String, data: Bytes) {
        let _ = self.tx.send(Op::PutBlob { key, data });
    }

    /// Queues a blob deletion.
    pub(crate) fn delete_blob(&self, key: String) {
        let _ = self.tx.send(Op::DeleteBlob { key });
    }

    /// Waits until every write queued so far is in the database.
    pub(crate) async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Op::Flush(tx)).is_ok() {
            let _ = rx.await;
        }
    }

    /// Reads a blob (callers flush first when they just wrote it).
    pub(crate) async fn blob(&self, key: &str) -> Result<Option<Vec<u8>>, SandboxError> {
        let row = sqlx::query("SELECT data FROM blobs WHERE key = ?")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(row) => Some(row.try_get("data")?),
            None => None,
        })
    }
}

async fn writer(pool: SqlitePool, mut rx: mpsc::UnboundedReceiver<Op>) {
    let mut batch = Vec::with_capacity(256);
    while rx.recv_many(&mut batch, 512).await > 0 {
        let mut waiters = Vec::new();
        if let Err(error) = apply(&pool, &mut batch, &mut waiters).await {
            tracing::error!(%error, "sandbox database write failed");
        }
        batch.clear();
        for waiter in waiters {
            let _ = waiter.send(());
        }
    }
}

async fn apply(
    pool: &SqlitePool,
    batch: &mut Vec<Op>,
    waiters: &mut Vec<oneshot::Sender<()>>,
) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    for op in batch.drain(..) {
        match op {
            Op::Put { kind, key, body } => {
                sqlx::query("INSERT INTO records (kind, key, body) VALUES (?, ?, ?) ON CONFLICT(kind, key) DO UPDATE SET body = excluded.body")
                    .bind(kind)
                    .bind(key)
                    .bind(body)
                    .execute(&mut *tx)
                    .await?;
            }
            Op::Delete { kind, key } => {
                sqlx::query("DELETE FROM records WHERE kind = ? AND key = ?")
                    .bind(kind)
                    .bind(key)
                    .execute(&mut *tx)
                    .await?;
            }
            Op::PutBlob { key, data } => {
                sqlx::query("INSERT INTO blobs (key, data) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET data = excluded.data")
                    .bind(key)
                    .bind(data.to_vec())
                    .execute(&mut *tx)
                    .await?;
            }
            Op::DeleteBlob { key } => {
                sqlx::query("DELETE FROM blobs WHERE key = ?").bind(key).execute(&mut *tx).await?;
            }
            Op::Flush(waiter) => waiters.push(waiter),
        }
    }
    tx.commit().await
}
