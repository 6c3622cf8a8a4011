//! The boundary between the pages and the rest of ohkit (server only).
//!
//! Server functions run inside the `app` crate, but storage, the Open Humans client and the
//! configuration live in the `server` crate, which depends on this one. The server puts an
//! implementation of [`Backend`] into the Leptos context of every request, and server functions
//! take it back out with [`backend`].

use std::sync::Arc;

use leptos::prelude::use_context;

use crate::error::AppError;
use crate::member::Dashboard;
use crate::project::ProjectSummary;

/// What the pages need from the server.
#[async_trait::async_trait]
pub trait Backend: Send + Sync + 'static {
    /// The project as members should see it on the signup page.
    async fn project(&self) -> Result<ProjectSummary, AppError>;

    /// Finishes an enrollment: checks `state` against the session, exchanges `code`, stores the
    /// member and their tokens and signs them in. `error` is the `error` parameter Open Humans
    /// sent instead of a code.
    async fn complete_enrollment(
        &self,
        code: Option<String>,
        state: Option<String>,
        error: Option<String>,
    ) -> Result<(), AppError>;

    /// The signed-in member's dashboard.
    async fn dashboard(&self) -> Result<Dashboard, AppError>;

    /// Deletes a file the project returned to the signed-in member.
    async fn delete_returned_file(&self, file_id: i64) -> Result<(), AppError>;

    /// Removes the signed-in member from the project and erases ohkit's data about them.
    async fn delete_my_data(&self) -> Result<(), AppError>;

    /// Signs the member out.
    async fn logout(&self) -> Result<(), AppError>;
}

/// The form in which the backend travels through the Leptos context.
pub type SharedBackend = Arc<dyn Backend>;

/// The backend of the current request.
///
/// # Errors
///
/// [`AppError::Internal`] when the server did not provide one, which is a wiring bug.
pub fn backend() -> Result<SharedBackend, AppError> {
    use_context::<SharedBackend>().ok_or_else(|| {
        tracing::error!("no backend in the Leptos context");
        AppError::Internal
    })
}
