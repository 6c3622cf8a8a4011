//! The project as members see it before they join, and the server functions that read it.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::AppError;

/// What the signup page shows about the project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectSummary {
    /// The project's name.
    pub name: String,
    /// Who leads it.
    pub leader: String,
    /// The organisation behind it, when there is one.
    pub organization: Option<String>,
    /// One or two sentences.
    pub short_description: String,
    /// Everything else a member should know before joining.
    pub long_description: String,
    /// The permissions and data sources the project will ask a member to grant.
    pub requests: Vec<String>,
    /// Whether the project accepts new members.
    pub active: bool,
}

/// Finishes an enrollment on the callback page, while the page renders on the server.
#[server(prefix = "/api", endpoint = "complete-enrollment")]
pub async fn complete_enrollment(
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
) -> Result<(), AppError> {
    crate::backend::backend()?.complete_enrollment(code, state, error).await?;
    leptos_axum::redirect("/dashboard");
    Ok(())
}

/// The project's summary, rendered into the signup page on the server.
#[server(prefix = "/api", endpoint = "project")]
pub async fn get_project() -> Result<ProjectSummary, AppError> {
    crate::backend::backend()?.project().await
}

/// What the project will ask a member to share, fetched when the member wants to see it.
#[server(prefix = "/api", endpoint = "project-requests")]
pub async fn get_project_requests() -> Result<Vec<String>, AppError> {
    Ok(crate::backend::backend()?.project().await?.requests)
}
