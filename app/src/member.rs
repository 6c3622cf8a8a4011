//! What a signed-in member sees: their membership, the files they share with the project and the
//! files the project returned to them, and the server functions that change them.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::AppError;

/// Everything the dashboard shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dashboard {
    /// The member's Open Humans project member ID.
    pub project_member_id: String,
    /// Their Open Humans username, when they share it with the project.
    pub username: Option<String>,
    /// The sources they share, by their Open Humans labels.
    pub sources_shared: Vec<String>,
    /// Their shared files, grouped by source. Empty when `needs_reauthorization`.
    pub shared: Vec<SourceFiles>,
    /// Files the project returned to the member.
    pub returned: Vec<FileView>,
    /// Open Humans refused the member's tokens: they must authorize again.
    pub needs_reauthorization: bool,
    /// Sources the project now requests that the member's authorization does not cover.
    pub missing_sources: Vec<String>,
    /// Where the member manages their connections on Open Humans (to leave the project).
    pub connections_url: String,
}

/// The files of one source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceFiles {
    /// The source's label, e.g. `direct-sharing-128`.
    pub source: String,
    /// Its files, oldest first.
    pub files: Vec<FileView>,
}

/// One file as the dashboard lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileView {
    /// The Open Humans file ID.
    pub id: i64,
    /// The file name.
    pub basename: String,
    /// When it was created (ISO 8601).
    pub created: String,
    /// Its description from the metadata.
    pub description: String,
    /// Its tags from the metadata.
    pub tags: Vec<String>,
}

/// The signed-in member's dashboard.
#[server(prefix = "/api", endpoint = "dashboard")]
pub async fn load_dashboard() -> Result<Dashboard, AppError> {
    crate::backend::backend()?.dashboard().await
}

/// Deletes one file the project returned to the member.
#[server(prefix = "/api", endpoint = "delete-returned-file")]
pub async fn delete_returned_file(file_id: i64) -> Result<(), AppError> {
    crate::backend::backend()?.delete_returned_file(file_id).await
}

/// Removes the member from the project on Open Humans and erases what ohkit holds about them.
#[server(prefix = "/api", endpoint = "delete-my-data")]
pub async fn delete_my_data() -> Result<(), AppError> {
    crate::backend::backend()?.delete_my_data().await?;
    leptos_axum::redirect("/?left=1");
    Ok(())
}

/// Ends the member's session.
#[server(prefix = "/api", endpoint = "logout")]
pub async fn logout() -> Result<(), AppError> {
    crate::backend::backend()?.logout().await?;
    leptos_axum::redirect("/");
    Ok(())
}

/// Checks a returned file's description and tags before it is sent, in the browser and again on
/// the server. The platform only requires a string description and a list of tags; ohkit is
/// stricter on purpose, so that returned files stay findable: it asks for a description of at
/// most the 100 characters Open Humans' documentation recommends, and for one to twenty tags of
/// at most 40 characters, without commas (the form separates tags with commas).
///
/// # Errors
///
/// A message saying what to change.
pub fn validate_file_metadata(description: &str, tags: &[String]) -> Result<(), String> {
    let description = description.trim();
    if description.is_empty() {
        return Err("Please describe the file.".into());
    }
    if description.chars().count() > 100 {
        return Err("Please keep the description to 100 characters.".into());
    }
    if tags.is_empty() {
        return Err("Please give at least one tag.".into());
    }
    if tags.len() > 20 {
        return Err("Please use at most 20 tags.".into());
    }
    for tag in tags {
        if tag.is_empty() || tag.chars().count() > 40 {
            return Err("Each tag must be 1 to 40 characters long.".into());
        }
    }
    Ok(())
}

/// Splits the comma-separated tags field of the upload form.
pub fn parse_tags(field: &str) -> Vec<String> {
    field.split(',').map(str::trim).filter(|tag| !tag.is_empty()).map(str::to_owned).collect()
}

/// The largest file ohkit returns to a member's account (512 MiB).
pub const MAX_UPLOAD_BYTES: u64 = 512 * 1024 * 1024;

/// Checks a file's size for upload, before any byte is sent.
///
/// # Errors
///
/// A message saying what to change.
pub fn validate_file_size(bytes: u64) -> Result<(), String> {
    if bytes == 0 {
        return Err("The file is empty.".into());
    }
    if bytes > MAX_UPLOAD_BYTES {
        return Err("The file is larger than 512 MiB.".into());
    }
    Ok(())
}

/// Checks a file name for upload.
///
/// # Errors
///
/// A message saying what to change.
pub fn validate_file_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("Please choose a file.".into());
    }
    if name.len() > 255 || name.contains(['/', '\\']) {
        return Err("The file name is too long or contains a slash.".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_rules() {
        let tags = parse_tags(" sleep, steps ,, ");
        assert_eq!(tags, vec!["sleep".to_owned(), "steps".to_owned()]);
        assert_eq!(validate_file_metadata("Weekly summary", &tags), Ok(()));
        assert!(validate_file_metadata("  ", &tags).is_err());
        assert!(validate_file_metadata(&"x".repeat(101), &tags).is_err());
        assert!(validate_file_metadata("ok", &[]).is_err());
        assert!(validate_file_metadata("ok", &["a".repeat(41)]).is_err());
        assert!(validate_file_name("report.csv").is_ok());
        assert!(validate_file_name("../etc/passwd").is_err());
        assert!(validate_file_name("").is_err());
        assert!(validate_file_size(0).is_err());
        assert!(validate_file_size(1).is_ok());
        assert!(validate_file_size(MAX_UPLOAD_BYTES).is_ok());
        assert!(validate_file_size(MAX_UPLOAD_BYTES + 1).is_err());
    }
}
