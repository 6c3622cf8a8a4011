//! Members of the project, as ohkit stores them.

use sqlx::Row;

use crate::storage::{Db, StorageError};

/// A member who joined through the signup page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The Open Humans project member ID: 8 digits (16 for a few legacy members), kept as text
    /// because leading zeros matter.
    pub project_member_id: String,
    /// The member's Open Humans username, when they share it.
    pub username: Option<String>,
    /// The data sources (`direct-sharing-<id>`) the member granted.
    pub sources_shared: Vec<String>,
    /// Open Humans refused the member's tokens; they must authorize again.
    pub needs_reauth: bool,
    /// Unix seconds when ohkit first saw the member.
    pub created_at: i64,
    /// Unix seconds of the last change.
    pub updated_at: i64,
}

/// The `sources_shared` column's form of a member's sources: a JSON list of labels.
pub(crate) fn encode_sources(sources_shared: &[String]) -> String {
    serde_json::to_string(sources_shared).unwrap_or_else(|_| "[]".to_owned())
}

/// Creates the member, or updates username and sources when they already exist.
///
/// # Errors
///
/// When the database fails.
pub async fn upsert(
    db: &Db,
    project_member_id: &str,
    username: Option<&str>,
    sources_shared: &[String],
    now: i64,
) -> Result<Member, StorageError> {
    let sources = encode_sources(sources_shared);
    sqlx::query(
        "INSERT INTO members (project_member_id, username, sources_shared, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $4) \
         ON CONFLICT (project_member_id) DO UPDATE \
         SET username = excluded.username, sources_shared = excluded.sources_shared, \
             updated_at = excluded.updated_at",
    )
    .bind(project_member_id)
    .bind(username)
    .bind(&sources)
    .bind(now)
    .execute(db.pool())
    .await?;
    find(db, project_member_id).await?.ok_or(StorageError::Sqlx(sqlx::Error::RowNotFound))
}

/// The member with this ID, if ohkit knows them.
///
/// # Errors
///
/// When the database fails.
pub async fn find(db: &Db, project_member_id: &str) -> Result<Option<Member>, StorageError> {
    let row = sqlx::query(
        "SELECT project_member_id, username, sources_shared, needs_reauth, created_at, \
         updated_at FROM members WHERE project_member_id = $1",
    )
    .bind(project_member_id)
    .fetch_optional(db.pool())
    .await?;
    row.map(|row| {
        let sources: String = row.try_get("sources_shared")?;
        Ok(Member {
            project_member_id: row.try_get("project_member_id")?,
            username: row.try_get("username")?,
            sources_shared: serde_json::from_str(&sources).unwrap_or_default(),
            needs_reauth: row.try_get::<i64, _>("needs_reauth")? != 0,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        })
    })
    .transpose()
    .map_err(StorageError::Sqlx)
}

/// Erases the member and everything ohkit holds about them (tokens included).
///
/// # Errors
///
/// When the database fails.
pub async fn delete(db: &Db, project_member_id: &str) -> Result<bool, StorageError> {
    let deleted = sqlx::query("DELETE FROM members WHERE project_member_id = $1")
        .bind(project_member_id)
        .execute(db.pool())
        .await?;
    Ok(deleted.rows_affected() == 1)
}
