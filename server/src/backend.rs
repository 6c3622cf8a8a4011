//! The server's side of [`app::backend::Backend`]: what the pages' server functions call.

use app::backend::Backend;
use app::error::AppError;
use app::project::ProjectSummary;

use crate::AppState;

/// The implementation handed to every request through the Leptos context.
#[derive(Clone)]
pub struct ServerBackend {
    state: AppState,
}

impl ServerBackend {
    /// Wraps the server state.
    pub fn new(state: AppState) -> Self {
        Self { state }
    }
}

#[async_trait::async_trait]
impl Backend for ServerBackend {
    async fn project(&self) -> Result<ProjectSummary, AppError> {
        let config = &self.state.config;
        Ok(ProjectSummary {
            name: config.project_name.clone(),
            leader: config.project_leader.clone(),
            organization: config.project_organization.clone().filter(|org| !org.is_empty()),
            short_description: config.project_short_description.clone(),
            long_description: config.project_description.clone(),
            requests: config.project_requests.clone(),
        })
    }
}
