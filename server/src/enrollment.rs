//! Enrollment: `/join` sends a member to Open Humans, the callback page brings them back.
//!
//! `/join` draws a random `state` and a PKCE verifier, keeps both in the member's session and
//! redirects to the authorize page. The callback (a Leptos page, see `app::pages::CallbackPage`)
//! calls [`complete`], which checks `state` in constant time, exchanges the code at once, reads
//! the member from Open Humans, stores them with their encrypted tokens, and renews the session
//! ID before signing them in.

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use time::OffsetDateTime;
use tower_sessions::Session;

use app::error::AppError;

use crate::AppState;
use crate::backend::{SIGNUP_CACHE_TTL, ServerBackend};
use crate::members;
use crate::openhumans::OhError;

/// Session key of the authorization in progress.
const PENDING_KEY: &str = "oauth_pending";
/// Session key of the signed-in member's project member ID.
pub const MEMBER_KEY: &str = "member";
/// How long a member may spend on Open Humans between `/join` and the callback (the platform's
/// codes live 30 minutes too).
const PENDING_LIFETIME_SECS: i64 = 30 * 60;

/// An authorization in progress, kept in the session until the callback.
#[derive(Serialize, Deserialize)]
struct Pending {
    state: String,
    pkce_verifier: String,
    started_at: i64,
}

/// Query of `/join`.
#[derive(Debug, Deserialize)]
pub struct JoinQuery {
    /// Present when the dashboard asks the member to authorize again: Open Humans then shows
    /// the consent page even when it could skip it, so the permissions snapshot is renewed.
    reauthorize: Option<String>,
}

/// `GET /join`: starts the OAuth2 authorization.
pub async fn join(
    State(state): State<AppState>,
    session: Session,
    Query(query): Query<JoinQuery>,
) -> Response {
    // A project that says it is closed would only show the member Open Humans' "not active"
    // page, with no way back: the signup page says so instead. When the description cannot be
    // read (no master token, Open Humans unreachable), the member goes on and Open Humans decides.
    let backend = ServerBackend::new(state.clone());
    if let Some(info) = backend.project_info(None, SIGNUP_CACHE_TTL).await
        && !info.active
    {
        tracing::info!("join refused: the project is not active on Open Humans");
        return Redirect::to("/").into_response();
    }
    let request = state.oh_client.authorize_url(query.reauthorize.is_some());
    let pending = Pending {
        state: request.state.clone(),
        pkce_verifier: request.pkce_verifier.clone(),
        started_at: OffsetDateTime::now_utc().unix_timestamp(),
    };
    if let Err(err) = session.insert(PENDING_KEY, pending).await {
        tracing::error!(%err, "could not store the authorization in the session");
        return (
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            "Something went wrong on our side. Please try again.",
        )
            .into_response();
    }
    Redirect::to(request.url.as_str()).into_response()
}

/// Finishes an enrollment for the callback page.
///
/// # Errors
///
/// The [`AppError`] the page explains: `AccessDenied`, `StateMismatch`, `CodeRejected`,
/// `Upstream`, `Internal`.
pub async fn complete(
    state: &AppState,
    session: &Session,
    code: Option<String>,
    returned_state: Option<String>,
    error: Option<String>,
) -> Result<(), AppError> {
    // The pending authorization is single-use, whatever the outcome.
    let pending: Option<Pending> = session.remove(PENDING_KEY).await.map_err(|err| {
        tracing::error!(%err, "could not read the session");
        AppError::Internal
    })?;
    if let Some(error) = error {
        if error == "access_denied" {
            tracing::info!("a member cancelled on the consent page");
            return Err(AppError::AccessDenied);
        }
        // The value comes from the query string: keep the log line short whatever it holds.
        let error: String = error.chars().take(64).collect();
        tracing::warn!(error = %error, "Open Humans returned an authorization error");
        return Err(AppError::Upstream);
    }
    // A signed-in member reloading the callback (or coming back to it) has nothing pending: their
    // dashboard is the right place, and the spent code is not sent again.
    if pending.is_none() && session.get::<String>(MEMBER_KEY).await.ok().flatten().is_some() {
        tracing::info!("callback revisited by a signed-in member");
        return Ok(());
    }
    let (Some(code), Some(returned_state), Some(pending)) = (code, returned_state, pending) else {
        tracing::info!("callback without a code, a state or a pending authorization");
        return Err(AppError::StateMismatch);
    };
    // Constant time, so the comparison leaks nothing about the expected value.
    let matches: bool = pending.state.as_bytes().ct_eq(returned_state.as_bytes()).into();
    let now = OffsetDateTime::now_utc().unix_timestamp();
    if !matches || now - pending.started_at > PENDING_LIFETIME_SECS {
        tracing::info!(state_matches = matches, "callback state rejected");
        return Err(AppError::StateMismatch);
    }

    let tokens =
        state.oh_client.exchange_code(&code, &pending.pkce_verifier).await.map_err(|err| {
            match err {
                OhError::InvalidGrant => {
                    tracing::info!("Open Humans refused an authorization code");
                    AppError::CodeRejected
                }
                OhError::InvalidClient => {
                    tracing::error!("Open Humans refused the client credentials: check OHKIT_OH_CLIENT_ID and OHKIT_OH_CLIENT_SECRET");
                    AppError::Internal
                }
                other => {
                    tracing::warn!(error = %other, "code exchange failed");
                    AppError::Upstream
                }
            }
        })?;
    let member = state.oh_client.exchange_member(&tokens.access_token).await.map_err(|err| {
        tracing::warn!(error = %err, "exchange-member failed after a code exchange");
        AppError::Upstream
    })?;

    let existed = members::find(&state.db, &member.project_member_id).await.map_err(internal)?;
    state
        .tokens
        .store_enrollment(
            &member.project_member_id,
            member.username.as_deref(),
            &member.sources_shared,
            &tokens,
        )
        .await
        .map_err(internal)?;

    // A new session ID at the moment of signing in, so an ID planted before it is worthless.
    session.cycle_id().await.map_err(internal)?;
    session.insert(MEMBER_KEY, member.project_member_id.clone()).await.map_err(internal)?;
    tracing::info!(
        project_member_id = %member.project_member_id,
        returning = existed.is_some(),
        "member joined"
    );
    Ok(())
}

fn internal(err: impl std::fmt::Display) -> AppError {
    tracing::error!(error = %err, "enrollment failed on ohkit's side");
    AppError::Internal
}
