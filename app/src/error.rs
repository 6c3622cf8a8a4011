//! The error type every server function returns.
//!
//! Its `Display` text is what a member reads, so it never carries internal detail: the server
//! logs the cause once, where it happens, and hands the page one of these variants.

use serde::{Deserialize, Serialize};
use server_fn::codec::JsonEncoding;
use server_fn::error::{FromServerFnError, ServerFnErrorErr};

/// Why a server function could not do what the page asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum AppError {
    /// Open Humans did not answer, or answered with a server error. The detail is in the log.
    #[error("Open Humans could not be reached. Please try again in a minute.")]
    Upstream,
    /// A fault on ohkit's side (database, configuration). The detail is in the log, not here.
    #[error("Something went wrong on our side. Please try again.")]
    Internal,
    /// The request itself was wrong; the text says what to change.
    #[error("{0}")]
    Invalid(String),
    /// The page needs a signed-in member and there is none.
    #[error("Please join the project, or sign in again, to see this page.")]
    NotSignedIn,
    /// Open Humans no longer accepts the member's tokens: they must authorize the project again.
    #[error("Open Humans asks you to authorize this project again.")]
    NeedsReauthorization,
    /// The member pressed Cancel on the Open Humans consent page.
    #[error("You chose not to authorize the project on Open Humans, so nothing was shared.")]
    AccessDenied,
    /// The `state` of the callback does not match the member's session, or there is no session.
    #[error(
        "This sign-in does not match your browser session: it was started in another browser or \
         tab, took too long, or was already used."
    )]
    StateMismatch,
    /// Open Humans refused the authorization code: expired or already used.
    #[error("Open Humans did not accept this sign-in: the link expired or was already used.")]
    CodeRejected,
    /// The project is not accepting members.
    #[error("This project is not accepting new members at the moment.")]
    ProjectInactive,
    /// The call never reached the server function, or its answer could not be read.
    #[error("The request could not be completed: {0}")]
    Transport(String),
}

impl FromServerFnError for AppError {
    type Encoder = JsonEncoding;

    fn from_server_fn_error(value: ServerFnErrorErr) -> Self {
        Self::Transport(value.to_string())
    }
}
