//! The server's side of [`app::backend::Backend`]: what the pages' server functions call.
//!
//! Each method reads the member from the session itself (the request's parts are in the Leptos
//! context while a server function or a page renders), so the pages never handle an identity.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use app::backend::Backend;
use app::error::AppError;
use app::member::{Dashboard, FileView, SourceFiles};
use app::project::ProjectSummary;
use tokio::sync::RwLock;
use tower_sessions::Session;

use crate::AppState;
use crate::enrollment::{self, MEMBER_KEY};
use crate::members;
use crate::openhumans::{MemberData, OhError, OhFile, ProjectInfo};
use crate::tokens::TokenError;

/// How long the signup page reuses the project's description before reading it again.
pub(crate) const SIGNUP_CACHE_TTL: Duration = Duration::from_secs(60);
/// How long the dashboard reuses it: short, so that a newly requested source is noticed soon.
const DASHBOARD_CACHE_TTL: Duration = Duration::from_secs(5);

/// The project info endpoint's answer, kept briefly.
#[derive(Debug, Default)]
pub struct ProjectCache {
    entry: RwLock<Option<(Instant, ProjectInfo)>>,
}

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

    /// The project as Open Humans describes it, from the cache when fresh. It needs a token:
    /// the given member's, or the master token ohkit was configured with.
    pub(crate) async fn project_info(
        &self,
        access_token: Option<&str>,
        max_age: Duration,
    ) -> Option<ProjectInfo> {
        if let Some((at, info)) = &*self.state.project_cache.entry.read().await
            && at.elapsed() < max_age
        {
            return Some(info.clone());
        }
        let master = self.state.master_token();
        let token = access_token.map(str::to_owned).or(master)?;
        match self.state.oh_client.project_info(&token).await {
            Ok(info) => {
                *self.state.project_cache.entry.write().await =
                    Some((Instant::now(), info.clone()));
                Some(info)
            }
            Err(err) => {
                tracing::warn!(error = %err, "could not read the project info from Open Humans");
                None
            }
        }
    }

    async fn session(&self) -> Result<Session, AppError> {
        leptos_axum::extract::<Session>().await.map_err(|err| {
            tracing::error!(%err, "no session on the request");
            AppError::Internal
        })
    }

    /// The signed-in member's ID.
    async fn member_id(&self, session: &Session) -> Result<String, AppError> {
        match session.get::<String>(MEMBER_KEY).await {
            Ok(Some(id)) => Ok(id),
            Ok(None) => Err(AppError::NotSignedIn),
            Err(err) => {
                tracing::error!(%err, "could not read the session");
                Err(AppError::Internal)
            }
        }
    }

    async fn reauth_dashboard(&self, member: members::Member) -> Dashboard {
        Dashboard {
            project_member_id: member.project_member_id,
            username: member.username,
            sources_shared: member.sources_shared,
            shared: Vec::new(),
            returned: Vec::new(),
            needs_reauthorization: true,
            missing_sources: Vec::new(),
            connections_url: self.connections_url(),
        }
    }

    fn connections_url(&self) -> String {
        self.state
            .oh
            .base_url
            .join("member/me/connections/")
            .map(|url| url.to_string())
            .unwrap_or_default()
    }
}

/// A working access token for the member, or the error the page should show.
///
/// A refresh that failed in transit is tried once more at once: if the platform committed the
/// rotation before the answer was lost, the old refresh token is now spent and the second try
/// ends in `invalid_grant`, which marks the member for reauthorization instead of leaving them in
/// front of an error page.
async fn member_token(state: &AppState, member_id: &str) -> Result<String, AppError> {
    match state.tokens.access_token(member_id).await {
        Err(TokenError::Upstream(err)) => {
            tracing::info!(error = %err, "token refresh failed in transit; trying once more");
            state.tokens.access_token(member_id).await.map_err(token_error)
        }
        other => other.map_err(token_error),
    }
}

/// Runs `call` with the member's token. After "Expired token." it gets a newer token (another
/// request's, or a refresh) and tries once more; after "Invalid token." it tries once more when
/// the token was rotated meanwhile, and otherwise marks the member for reauthorization.
pub(crate) async fn with_member_token<T, F, Fut>(
    state: &AppState,
    member_id: &str,
    call: F,
) -> Result<T, AppError>
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Result<T, OhError>>,
{
    let token = member_token(state, member_id).await?;
    let retry = match call(token.clone()).await {
        Ok(value) => return Ok(value),
        Err(OhError::ExpiredToken) => match state.tokens.after_expired(member_id, &token).await {
            Err(TokenError::Upstream(err)) => {
                tracing::info!(error = %err, "token refresh failed in transit; trying once more");
                member_token(state, member_id).await?
            }
            other => other.map_err(token_error)?,
        },
        Err(err) if err.needs_reauthorization() => {
            match state.tokens.after_invalid(member_id, &token).await.map_err(token_error)? {
                Some(newer) => newer,
                None => return Err(AppError::NeedsReauthorization),
            }
        }
        Err(err) => return Err(api_error(err)),
    };
    match call(retry.clone()).await {
        Ok(value) => Ok(value),
        Err(err) if err.needs_reauthorization() => {
            if state.tokens.after_invalid(member_id, &retry).await.map_err(token_error)?.is_none() {
                return Err(AppError::NeedsReauthorization);
            }
            // Rotated away twice in a row: say so rather than loop.
            tracing::warn!(member = member_id, "the member's token changed twice during one call");
            Err(AppError::Upstream)
        }
        Err(err) => Err(api_error(err)),
    }
}

/// Maps a failed Open Humans call (other than a token problem) to what the page shows, and logs
/// it: this is where such failures reach the boundary.
pub(crate) fn api_error(err: OhError) -> AppError {
    match err {
        OhError::Rejected { status, body } => {
            tracing::info!(status, body = %body, "Open Humans refused a request");
            AppError::Invalid(
                "Open Humans refused the request. Please check what you entered.".into(),
            )
        }
        err if err.needs_reauthorization() => AppError::NeedsReauthorization,
        err => {
            tracing::warn!(error = %err, "Open Humans API call failed");
            AppError::Upstream
        }
    }
}

/// Maps a token failure to what the page shows.
fn token_error(err: TokenError) -> AppError {
    match err {
        TokenError::NeedsReauthorization => AppError::NeedsReauthorization,
        TokenError::UnknownMember => AppError::NotSignedIn,
        // The token manager has logged the refresh failure where it happened.
        TokenError::Upstream(_) => AppError::Upstream,
        other => {
            tracing::error!(error = %other, "token storage failed");
            AppError::Internal
        }
    }
}

fn file_view(file: &OhFile) -> FileView {
    FileView {
        id: file.id,
        basename: file.basename.clone(),
        created: file.created.clone(),
        description: file.description().to_owned(),
        tags: file.tags(),
    }
}

/// The sources the project requests, as `direct-sharing-<id>` labels: derived from the relative
/// `/api/public/project/<id>/` URLs, or taken from the legacy list when those are absent.
fn requested_source_labels(info: &ProjectInfo) -> Vec<String> {
    let from_urls: Vec<String> = info
        .requested_sources
        .iter()
        .filter_map(|url| {
            let id = url.trim_end_matches('/').rsplit('/').next()?;
            id.parse::<u64>().ok().map(|id| format!("direct-sharing-{id}"))
        })
        .collect();
    if from_urls.is_empty() { info.request_sources_access.clone() } else { from_urls }
}

/// Splits the member's files into the sources they share and what the project returned.
fn group_files(data: &MemberData, own_source: Option<&str>) -> (Vec<SourceFiles>, Vec<FileView>) {
    let mut shared: BTreeMap<String, Vec<FileView>> = BTreeMap::new();
    let mut returned = Vec::new();
    for file in &data.files {
        if Some(file.source.as_str()) == own_source {
            returned.push(file_view(file));
        } else {
            shared.entry(file.source.clone()).or_default().push(file_view(file));
        }
    }
    let shared = shared.into_iter().map(|(source, files)| SourceFiles { source, files }).collect();
    (shared, returned)
}

#[async_trait::async_trait]
impl Backend for ServerBackend {
    async fn project(&self) -> Result<ProjectSummary, AppError> {
        let config = &self.state.config;
        let info = self.project_info(None, SIGNUP_CACHE_TTL).await;
        let mut requests = vec!["Permission to send you messages".to_owned()];
        let summary = match info {
            Some(info) => {
                if info.request_username_access {
                    requests.insert(0, "Access to your Open Humans username".to_owned());
                }
                requests.extend(
                    requested_source_labels(&info)
                        .into_iter()
                        .map(|label| format!("Your data from {label}")),
                );
                if let Some(text) = info.returned_data_description.filter(|t| !t.is_empty()) {
                    requests.push(format!("Adding data to your account: {text}"));
                }
                ProjectSummary {
                    name: info.name,
                    leader: info.leader.unwrap_or_default(),
                    organization: info.organization.filter(|org| !org.is_empty()),
                    short_description: info.short_description,
                    long_description: info.long_description,
                    requests,
                    active: info.active,
                }
            }
            None => ProjectSummary {
                name: config.project_name.clone(),
                leader: config.project_leader.clone(),
                organization: config.project_organization.clone().filter(|org| !org.is_empty()),
                short_description: config.project_short_description.clone(),
                long_description: config.project_description.clone(),
                requests: config.project_requests.clone(),
                active: true,
            },
        };
        Ok(summary)
    }

    async fn complete_enrollment(
        &self,
        code: Option<String>,
        state: Option<String>,
        error: Option<String>,
    ) -> Result<(), AppError> {
        let session = self.session().await?;
        enrollment::complete(&self.state, &session, code, state, error).await
    }

    async fn dashboard(&self) -> Result<Dashboard, AppError> {
        let session = self.session().await?;
        let member_id = self.member_id(&session).await?;
        let Some(member) = members::find(&self.state.db, &member_id).await.map_err(|err| {
            tracing::error!(error = %err, "could not read a member");
            AppError::Internal
        })?
        else {
            // Erased (by the member, or after an erasure request): the session is stale.
            let _ = session.flush().await;
            return Err(AppError::NotSignedIn);
        };
        if member.needs_reauth {
            return Ok(self.reauth_dashboard(member).await);
        }
        let client = &self.state.oh_client;
        let data = match with_member_token(&self.state, &member_id, |token| async move {
            client.exchange_member(&token).await
        })
        .await
        {
            Ok(data) => data,
            Err(AppError::NeedsReauthorization) => return Ok(self.reauth_dashboard(member).await),
            Err(err) => return Err(err),
        };
        if data.username != member.username || data.sources_shared != member.sources_shared {
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            if let Err(err) = members::upsert(
                &self.state.db,
                &member_id,
                data.username.as_deref(),
                &data.sources_shared,
                now,
            )
            .await
            {
                tracing::warn!(error = %err, "could not update a member's details");
            }
        }
        let token = member_token(&self.state, &member_id).await.ok();
        let info = self.project_info(token.as_deref(), DASHBOARD_CACHE_TTL).await;
        let own_source = info.as_ref().map(|info| info.id_label.clone());
        let missing_sources = info
            .as_ref()
            .map(|info| {
                requested_source_labels(info)
                    .into_iter()
                    .filter(|label| !data.sources_shared.contains(label))
                    .collect()
            })
            .unwrap_or_default();
        let (shared, returned) = group_files(&data, own_source.as_deref());
        Ok(Dashboard {
            project_member_id: data.project_member_id.clone(),
            username: data.username.clone(),
            sources_shared: data.sources_shared.clone(),
            shared,
            returned,
            needs_reauthorization: false,
            missing_sources,
            connections_url: self.connections_url(),
        })
    }

    async fn delete_returned_file(&self, file_id: i64) -> Result<(), AppError> {
        let session = self.session().await?;
        let member_id = self.member_id(&session).await?;
        let client = &self.state.oh_client;
        // The platform limits deletion to this project's files of the token's member, so a
        // member can never delete someone else's file through this call.
        let deleted = with_member_token(&self.state, &member_id, |token| async move {
            client.delete_file(&token, file_id).await
        })
        .await?;
        if deleted.is_empty() {
            return Err(AppError::Invalid("That file no longer exists.".into()));
        }
        tracing::info!(project_member_id = %member_id, file_id, "returned file deleted");
        Ok(())
    }

    async fn delete_my_data(&self) -> Result<(), AppError> {
        let session = self.session().await?;
        let member_id = self.member_id(&session).await?;
        let client = &self.state.oh_client;
        match with_member_token(&self.state, &member_id, |token| async move {
            client.remove_self(&token).await
        })
        .await
        {
            Ok(()) => {}
            // The member's own token no longer works: the project's master token can still
            // remove them, so the platform does not keep a member ohkit has forgotten.
            Err(AppError::NeedsReauthorization) => match self.state.master_token() {
                Some(master) => match client.remove_member(&master, &member_id).await {
                    Ok(()) => {}
                    Err(OhError::Rejected { status, body }) => {
                        tracing::info!(status, body = %body, "Open Humans no longer lists the member");
                    }
                    Err(err) => return Err(api_error(err)),
                },
                None => tracing::warn!(
                    project_member_id = %member_id,
                    "erasing a member whose token no longer works, without a master token to \
                     remove them on Open Humans"
                ),
            },
            Err(err) => return Err(err),
        }
        members::delete(&self.state.db, &member_id).await.map_err(|err| {
            tracing::error!(error = %err, "could not erase a member");
            AppError::Internal
        })?;
        let _ = session.flush().await;
        tracing::info!(project_member_id = %member_id, "member left and their data was erased");
        Ok(())
    }

    async fn logout(&self) -> Result<(), AppError> {
        let session = self.session().await?;
        session.flush().await.map_err(|err| {
            tracing::error!(%err, "could not end a session");
            AppError::Internal
        })
    }
}
