//! The Open Humans client: the OAuth2 flow (authorization URL with PKCE and `state`, the code
//! exchange, the refresh) and the project API calls ohkit makes with a member's token.
//!
//! One `reqwest::Client` serves the token endpoint, the API and the presigned uploads. It never
//! follows redirects and gives up after [`REQUEST_TIMEOUT`]. Tokens travel in the
//! `Authorization` header, never in a query string, so no URL that may end up in an error or a
//! log carries one. No value of this module's `Display` or `Debug` shows a token, a code, the
//! client secret or a PKCE verifier.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use oauth2::basic::{BasicClient, BasicErrorResponseType, BasicRequestTokenError};
use oauth2::{
    AsyncHttpClient, AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken,
    EndpointNotSet, EndpointSet, HttpRequest, HttpResponse, PkceCodeChallenge, PkceCodeVerifier,
    RedirectUrl, RefreshToken, RequestTokenError, TokenResponse, TokenUrl,
};
use reqwest::header::{CONTENT_LENGTH, HeaderValue};
use serde::{Deserialize, Serialize};
use url::Url;

use crate::openhumans_settings::OhSettings;

/// How long any single request to Open Humans (or its storage) may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// The slowest upload throughput a presigned PUT is given time for, in bytes per second.
const SLOWEST_UPLOAD_BYTES_PER_SEC: u64 = 256 * 1024;

/// How long the presigned PUT of `len` bytes may take: [`REQUEST_TIMEOUT`] plus the time the
/// bytes need at [`SLOWEST_UPLOAD_BYTES_PER_SEC`].
fn upload_timeout(len: u64) -> Duration {
    REQUEST_TIMEOUT + Duration::from_secs(len / SLOWEST_UPLOAD_BYTES_PER_SEC)
}

/// Lifetime assumed when a token response leaves out `expires_in` (the platform's default).
const DEFAULT_EXPIRES_IN: u64 = 36_000;

/// Upper bound on the pages of one `exchange-member` listing (100 files each).
const MAX_PAGES: usize = 1_000;

/// Longest error body kept in [`OhError::Rejected`].
const MAX_ERROR_BODY: usize = 2_000;

/// A failed call to Open Humans. Never carries a token, code or secret.
#[derive(Debug, thiserror::Error)]
pub enum OhError {
    /// The token endpoint refused the code or refresh token (`invalid_grant`): the code was
    /// used, expired or unknown, or the refresh token was rotated out or revoked.
    #[error("Open Humans refused the grant (invalid_grant)")]
    InvalidGrant,
    /// The API does not know the access token (`401 "Invalid token."`): it was replaced by a
    /// refresh or the member left the project.
    #[error("Open Humans does not accept the access token (Invalid token.)")]
    InvalidToken,
    /// The access token has expired (`401 "Expired token."`); a refresh fixes it.
    #[error("the access token has expired (Expired token.)")]
    ExpiredToken,
    /// The member declined the authorization (`error=access_denied` on the redirect).
    #[error("the member declined the authorization")]
    AccessDenied,
    /// The token endpoint does not accept ohkit's client ID and secret: a configuration error.
    #[error("Open Humans does not accept the client ID and secret (invalid_client)")]
    InvalidClient,
    /// Any other 4xx answer; `body` is the platform's error document (no secrets in it).
    #[error("Open Humans rejected the request with HTTP {status}: {body}")]
    Rejected {
        /// The HTTP status.
        status: u16,
        /// The error body, shortened.
        body: String,
    },
    /// Open Humans answered with a server error.
    #[error("Open Humans is unavailable (HTTP {status})")]
    Unavailable {
        /// The HTTP status.
        status: u16,
    },
    /// The request did not complete: connection refused, timeout, response cut off.
    #[error("could not reach Open Humans: {0}")]
    Transport(String),
    /// The answer could not be understood.
    #[error("unexpected answer from Open Humans: {0}")]
    Protocol(String),
}

impl OhError {
    /// Whether only a new authorization by the member can fix this.
    pub fn needs_reauthorization(&self) -> bool {
        matches!(self, Self::InvalidGrant | Self::InvalidToken)
    }

    /// A short name of the kind of failure, for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::InvalidGrant => "invalid_grant",
            Self::InvalidToken => "invalid_token",
            Self::ExpiredToken => "expired_token",
            Self::AccessDenied => "access_denied",
            Self::InvalidClient => "invalid_client",
            Self::Rejected { .. } => "rejected",
            Self::Unavailable { .. } => "unavailable",
            Self::Transport(_) => "transport",
            Self::Protocol(_) => "protocol",
        }
    }
}

/// The tokens the token endpoint issued.
#[derive(Clone)]
pub struct TokenSet {
    /// The bearer token for the API.
    pub access_token: String,
    /// The single-use refresh token (rotated by every refresh).
    pub refresh_token: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
}

impl fmt::Debug for TokenSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSet")
            .field("access_token", &"<redacted>")
            .field("refresh_token", &"<redacted>")
            .field("expires_in", &self.expires_in)
            .finish()
    }
}

/// Where to send the member to authorize ohkit, with what the callback must check it against.
pub struct AuthorizeRequest {
    /// The platform's consent page with every parameter.
    pub url: Url,
    /// The `state` value to expect back (keep it in the member's session).
    pub state: String,
    /// The PKCE verifier for the code exchange (keep it in the member's session).
    pub pkce_verifier: String,
}

impl fmt::Debug for AuthorizeRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The query repeats the state, so only the address before it is shown.
        let mut url = self.url.clone();
        url.set_query(None);
        f.debug_struct("AuthorizeRequest")
            .field("url", &url.as_str())
            .field("state", &"<redacted>")
            .field("pkce_verifier", &"<redacted>")
            .finish()
    }
}

/// Compares the `state` the callback received with the one kept in the session, in constant
/// time.
pub fn state_matches(expected: &str, received: &str) -> bool {
    use subtle::ConstantTimeEq;
    !expected.is_empty() && bool::from(expected.as_bytes().ct_eq(received.as_bytes()))
}

/// One file as `exchange-member` lists it.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct OhFile {
    /// The platform's file ID.
    pub id: i64,
    /// The file name.
    pub basename: String,
    /// When it was uploaded (ISO 8601).
    pub created: String,
    /// A temporary (1 hour) download link; fetch it again rather than keeping it.
    pub download_url: String,
    /// The metadata exactly as uploaded.
    #[serde(default)]
    pub metadata: serde_json::Value,
    /// The project that uploaded it (`direct-sharing-<id>`).
    pub source: String,
}

impl OhFile {
    /// The metadata's description, or an empty string.
    pub fn description(&self) -> &str {
        self.metadata.get("description").and_then(serde_json::Value::as_str).unwrap_or_default()
    }

    /// The metadata's tags that are strings.
    pub fn tags(&self) -> Vec<String> {
        self.metadata
            .get("tags")
            .and_then(serde_json::Value::as_array)
            .map(|tags| tags.iter().filter_map(|t| t.as_str().map(str::to_owned)).collect())
            .unwrap_or_default()
    }
}

/// The member behind a token and every file the project may see.
#[derive(Debug, Clone, PartialEq)]
pub struct MemberData {
    /// The project member ID (8 digits; text because of leading zeros).
    pub project_member_id: String,
    /// The username, when the project asked for it and the member shared it.
    pub username: Option<String>,
    /// The sources the member granted (`direct-sharing-<id>`).
    pub sources_shared: Vec<String>,
    /// When the membership was first created (ISO 8601).
    pub created: String,
    /// Every visible file, across all pages.
    pub files: Vec<OhFile>,
}

/// The project as the platform describes it.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct ProjectInfo {
    /// The platform's project ID.
    #[serde(default)]
    pub id: Option<i64>,
    /// The project's name.
    pub name: String,
    /// The project leader.
    #[serde(default)]
    pub leader: Option<String>,
    /// The organization running the project.
    #[serde(default)]
    pub organization: Option<String>,
    /// The one-line description.
    #[serde(default)]
    pub short_description: String,
    /// The long description.
    #[serde(default)]
    pub long_description: String,
    /// The project's own source label (`direct-sharing-<id>`).
    #[serde(default)]
    pub id_label: String,
    /// The requested sources, as relative URLs (`/api/public/project/<id>/`).
    #[serde(default)]
    pub requested_sources: Vec<String>,
    /// The requested sources as id_labels (the legacy field).
    #[serde(default)]
    pub request_sources_access: Vec<String>,
    /// Whether the project asks for the member's username.
    #[serde(default)]
    pub request_username_access: bool,
    /// Whether the project accepts new members.
    #[serde(default)]
    pub active: bool,
    /// Whether the platform approved the project.
    #[serde(default)]
    pub approved: bool,
    /// The project's contact address.
    #[serde(default)]
    pub contact_email: Option<String>,
    /// What the project returns to members.
    #[serde(default)]
    pub returned_data_description: Option<String>,
    /// The project's URL slug.
    #[serde(default)]
    pub slug: Option<String>,
    /// The project's information page.
    #[serde(default)]
    pub info_url: Option<String>,
    /// How many members have authorized the project.
    #[serde(default)]
    pub authorized_members: Option<i64>,
}

/// The metadata Open Humans requires on every uploaded file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileMetadata {
    /// What the file holds.
    pub description: String,
    /// Search tags.
    pub tags: Vec<String>,
}

/// A started presigned upload.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct DirectUpload {
    /// The file ID to complete.
    pub id: i64,
    /// The presigned PUT URL (a credential for a few hours: do not log it).
    pub url: String,
}

type OauthClient =
    BasicClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointSet>;

struct Inner {
    oauth: OauthClient,
    http: reqwest::Client,
    base_url: Url,
}

/// The Open Humans client; clones share one connection pool.
#[derive(Clone)]
pub struct OhClient {
    inner: Arc<Inner>,
}

impl fmt::Debug for OhClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OhClient").field("base_url", &self.inner.base_url.as_str()).finish()
    }
}

impl OhClient {
    /// A client for the platform and project described by `settings`.
    ///
    /// # Errors
    ///
    /// [`OhError::Protocol`] when a URL cannot be built from the base URL, or the HTTP client
    /// cannot be set up.
    pub fn new(settings: &OhSettings) -> Result<Self, OhError> {
        let mut base_url = settings.base_url.clone();
        if !base_url.path().ends_with('/') {
            base_url.set_path(&format!("{}/", base_url.path()));
        }
        let join = |path: &str| {
            base_url.join(path).map_err(|err| OhError::Protocol(format!("base URL: {err}")))
        };
        let auth_url = AuthUrl::from_url(join("direct-sharing/projects/oauth2/authorize/")?);
        let token_url = TokenUrl::from_url(join("oauth2/token/")?);
        let oauth = BasicClient::new(ClientId::new(settings.client_id.clone()))
            .set_client_secret(ClientSecret::new(settings.client_secret.expose().to_owned()))
            .set_auth_uri(auth_url)
            .set_token_uri(token_url)
            .set_redirect_uri(RedirectUrl::from_url(settings.redirect_url.clone()))
            .set_auth_type(AuthType::BasicAuth);
        let http = reqwest::Client::builder()
            // Never follow a redirect: a redirected POST would lose its body, and following
            // one would carry the client secret or a member's token to wherever it points.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(Duration::from_secs(5))
            .user_agent(concat!("ohkit/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|err| OhError::Protocol(format!("HTTP client: {err}")))?;
        Ok(Self { inner: Arc::new(Inner { oauth, http, base_url }) })
    }

    /// The consent page URL, with a fresh `state` and PKCE (S256) challenge. With
    /// `force_prompt` the platform shows the page even to a member who already authorized, so
    /// they see the current permissions (reauthorization).
    pub fn authorize_url(&self, force_prompt: bool) -> AuthorizeRequest {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request =
            self.inner.oauth.authorize_url(CsrfToken::new_random).set_pkce_challenge(challenge);
        if force_prompt {
            request = request.add_extra_param("approval_prompt", "force");
        }
        let (url, state) = request.url();
        AuthorizeRequest {
            url,
            state: state.secret().clone(),
            pkce_verifier: verifier.secret().clone(),
        }
    }

    /// Trades an authorization code (single use) for tokens.
    ///
    /// # Errors
    ///
    /// [`OhError::InvalidGrant`] for a used, expired or unknown code (or a wrong verifier);
    /// the other variants as for any call.
    #[tracing::instrument(skip_all)]
    pub async fn exchange_code(
        &self,
        code: &str,
        pkce_verifier: &str,
    ) -> Result<TokenSet, OhError> {
        let transport = TokenTransport::new(&self.inner.http);
        let result = self
            .inner
            .oauth
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier.to_owned()))
            .request_async(&transport)
            .await;
        token_result(result, &transport)
    }

    /// Spends a refresh token for new tokens. The platform rotates on every refresh: the old
    /// refresh and access tokens stop working at once, whether or not the answer arrives.
    ///
    /// # Errors
    ///
    /// [`OhError::InvalidGrant`] when the refresh token was already spent or revoked; the
    /// other variants as for any call.
    #[tracing::instrument(skip_all)]
    pub async fn refresh(&self, refresh_token: &str) -> Result<TokenSet, OhError> {
        let transport = TokenTransport::new(&self.inner.http);
        let token = RefreshToken::new(refresh_token.to_owned());
        let result =
            self.inner.oauth.exchange_refresh_token(&token).request_async(&transport).await;
        token_result(result, &transport)
    }

    /// The member behind the token with every file the project may see (all pages).
    ///
    /// # Errors
    ///
    /// [`OhError::ExpiredToken`] / [`OhError::InvalidToken`] for a token the API refuses, and
    /// the other variants as for any call.
    #[tracing::instrument(skip_all)]
    pub async fn exchange_member(&self, access_token: &str) -> Result<MemberData, OhError> {
        let mut url = self.api_url("api/direct-sharing/project/exchange-member/")?;
        let mut member: Option<MemberData> = None;
        for _ in 0..MAX_PAGES {
            let response = self.send(self.inner.http.get(url.clone()), access_token).await?;
            let page: ExchangePage = read_json(response).await?;
            let next = page.next.clone();
            match &mut member {
                None => {
                    member = Some(MemberData {
                        project_member_id: page.project_member_id,
                        username: page.username,
                        sources_shared: page.sources_shared,
                        created: page.created,
                        files: page.data,
                    });
                }
                Some(member) => member.files.extend(page.data),
            }
            match next {
                None => {
                    return member.ok_or_else(|| OhError::Protocol("no member page".to_owned()));
                }
                Some(next) => {
                    let next = Url::parse(&next)
                        .map_err(|_| OhError::Protocol("a `next` link is not a URL".to_owned()))?;
                    if next.origin() != self.inner.base_url.origin() || next == url {
                        return Err(OhError::Protocol(
                            "a `next` link leaves Open Humans or repeats the page".to_owned(),
                        ));
                    }
                    url = next;
                }
            }
        }
        Err(OhError::Protocol(format!("more than {MAX_PAGES} pages of files")))
    }

    /// The project's description.
    ///
    /// # Errors
    ///
    /// As for any API call.
    #[tracing::instrument(skip_all)]
    pub async fn project_info(&self, access_token: &str) -> Result<ProjectInfo, OhError> {
        let url = self.api_url("api/direct-sharing/project/")?;
        read_json(self.send(self.inner.http.get(url), access_token).await?).await
    }

    /// Uploads a file in one multipart request; returns its ID. Suits small files: the
    /// platform cuts requests off after about 30 seconds.
    ///
    /// # Errors
    ///
    /// [`OhError::Rejected`] with the platform's field errors for invalid metadata, and the
    /// other variants as for any API call.
    #[tracing::instrument(skip_all, fields(bytes = bytes.len()))]
    pub async fn upload_file(
        &self,
        access_token: &str,
        filename: &str,
        bytes: Vec<u8>,
        metadata: &FileMetadata,
    ) -> Result<i64, OhError> {
        let url = self.api_url("api/direct-sharing/project/files/upload/")?;
        let part = reqwest::multipart::Part::bytes(bytes).file_name(filename.to_owned());
        let form = reqwest::multipart::Form::new()
            .text("metadata", metadata_string(metadata)?)
            .part("data_file", part);
        let response = self.send(self.inner.http.post(url).multipart(form), access_token).await?;
        let created: Created = read_json(response).await?;
        Ok(created.id)
    }

    /// Starts a presigned upload: the platform creates an incomplete file and returns its ID
    /// and the URL to PUT the bytes to.
    ///
    /// # Errors
    ///
    /// As for [`OhClient::upload_file`].
    #[tracing::instrument(skip_all)]
    pub async fn start_direct_upload(
        &self,
        access_token: &str,
        filename: &str,
        metadata: &FileMetadata,
    ) -> Result<DirectUpload, OhError> {
        let url = self.api_url("api/direct-sharing/project/files/upload/direct/")?;
        let metadata = metadata_string(metadata)?;
        let form = [("filename", filename), ("metadata", metadata.as_str())];
        read_json(self.send(self.inner.http.post(url).form(&form), access_token).await?).await
    }

    /// PUTs the bytes to a presigned URL. No `Content-Type` is sent: the URL was signed
    /// without one and storage refuses a request that has one.
    ///
    /// # Errors
    ///
    /// [`OhError::Rejected`] with the storage's error code, and the transport variants.
    #[tracing::instrument(skip_all, fields(bytes = len))]
    pub async fn put_presigned(
        &self,
        url: &str,
        body: reqwest::Body,
        len: u64,
    ) -> Result<(), OhError> {
        let url =
            Url::parse(url).map_err(|_| OhError::Protocol("the upload URL is invalid".into()))?;
        let response = self
            .inner
            .http
            .put(url)
            .header(CONTENT_LENGTH, HeaderValue::from(len))
            // The client's overall limit is sized for API calls; a large file needs longer.
            .timeout(upload_timeout(len))
            .body(body)
            .send()
            .await
            .map_err(transport_error)?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        if status.is_server_error() {
            return Err(OhError::Unavailable { status: status.as_u16() });
        }
        let text = response.text().await.unwrap_or_default();
        Err(OhError::Rejected { status: status.as_u16(), body: storage_error_code(&text) })
    }

    /// Completes a presigned upload; returns the stored size in bytes.
    ///
    /// # Errors
    ///
    /// [`OhError::Rejected`] (`file not present`) when the bytes never arrived, and the other
    /// variants as for any API call.
    #[tracing::instrument(skip_all)]
    pub async fn complete_direct_upload(
        &self,
        access_token: &str,
        file_id: i64,
    ) -> Result<u64, OhError> {
        let url = self.api_url("api/direct-sharing/project/files/upload/complete/")?;
        let form = [("file_id", file_id.to_string())];
        let done: Completed =
            read_json(self.send(self.inner.http.post(url).form(&form), access_token).await?)
                .await?;
        Ok(done.size)
    }

    /// Deletes one of the project's files of this member; returns the IDs deleted (empty when
    /// nothing matched).
    ///
    /// # Errors
    ///
    /// As for any API call.
    #[tracing::instrument(skip_all)]
    pub async fn delete_file(&self, access_token: &str, file_id: i64) -> Result<Vec<i64>, OhError> {
        let url = self.api_url("api/direct-sharing/project/files/delete/")?;
        let form = [("file_id", file_id.to_string())];
        let deleted: Deleted =
            read_json(self.send(self.inner.http.post(url).form(&form), access_token).await?)
                .await?;
        Ok(deleted.ids)
    }

    /// Removes the token's member from the project (the platform revokes every token of the
    /// membership and calls the deauthorization webhook).
    ///
    /// # Errors
    ///
    /// As for any API call; [`OhError::Protocol`] if the answer is not `"success"`.
    #[tracing::instrument(skip_all)]
    pub async fn remove_self(&self, access_token: &str) -> Result<(), OhError> {
        self.remove_members(access_token, &[]).await
    }

    /// Removes one member from the project with the project's master token (remove-members with
    /// `project_member_ids`), for when the member's own token no longer works.
    ///
    /// # Errors
    ///
    /// [`OhError::Rejected`] when Open Humans refuses the ID (not, or no longer, a member);
    /// transport and server errors.
    #[tracing::instrument(skip_all)]
    pub async fn remove_member(
        &self,
        master_token: &str,
        project_member_id: &str,
    ) -> Result<(), OhError> {
        self.remove_members(master_token, &[("project_member_ids", project_member_id)]).await
    }

    /// POSTs `form` to remove-members and expects `"success"`.
    async fn remove_members(&self, token: &str, form: &[(&str, &str)]) -> Result<(), OhError> {
        let url = self.api_url("api/direct-sharing/project/remove-members/")?;
        let response = self.send(self.inner.http.post(url).form(form), token).await?;
        let answer: serde_json::Value = read_json(response).await?;
        if answer.as_str() == Some("success") {
            Ok(())
        } else {
            Err(OhError::Protocol("remove-members did not answer \"success\"".to_owned()))
        }
    }

    fn api_url(&self, path: &str) -> Result<Url, OhError> {
        self.inner.base_url.join(path).map_err(|err| OhError::Protocol(format!("API URL: {err}")))
    }

    /// Sends an API request with the bearer token and maps every non-2xx answer.
    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        access_token: &str,
    ) -> Result<reqwest::Response, OhError> {
        let response = request.bearer_auth(access_token).send().await.map_err(transport_error)?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        if status.is_server_error() {
            return Err(OhError::Unavailable { status: status.as_u16() });
        }
        let body = response.text().await.map_err(transport_error)?;
        if status == reqwest::StatusCode::UNAUTHORIZED {
            let detail = serde_json::from_str::<Detail>(&body).ok().map(|d| d.detail);
            match detail.as_deref() {
                Some("Expired token.") => return Err(OhError::ExpiredToken),
                Some("Invalid token.") => return Err(OhError::InvalidToken),
                _ => {}
            }
        }
        // Not logged here: the caller decides whether this is worth a log line, once.
        Err(OhError::Rejected { status: status.as_u16(), body: shorten(&body) })
    }
}

/// One page of `exchange-member`.
#[derive(Deserialize)]
struct ExchangePage {
    next: Option<String>,
    created: String,
    project_member_id: String,
    #[serde(default)]
    sources_shared: Vec<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    data: Vec<OhFile>,
}

#[derive(Deserialize)]
struct Created {
    id: i64,
}

#[derive(Deserialize)]
struct Completed {
    size: u64,
}

#[derive(Deserialize)]
struct Deleted {
    ids: Vec<i64>,
}

#[derive(Deserialize)]
struct Detail {
    detail: String,
}

fn metadata_string(metadata: &FileMetadata) -> Result<String, OhError> {
    serde_json::to_string(metadata).map_err(|err| OhError::Protocol(format!("metadata: {err}")))
}

async fn read_json<T: serde::de::DeserializeOwned>(
    response: reqwest::Response,
) -> Result<T, OhError> {
    let bytes = response.bytes().await.map_err(transport_error)?;
    serde_json::from_slice(&bytes)
        .map_err(|err| OhError::Protocol(format!("unreadable JSON answer: {err}")))
}

/// A transport error, described without its URL (a presigned URL is a credential) but with
/// its causes.
fn transport_error(err: reqwest::Error) -> OhError {
    let err = err.without_url();
    let mut message = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    OhError::Transport(message)
}

fn shorten(body: &str) -> String {
    body.chars().take(MAX_ERROR_BODY).collect()
}

/// The `<Code>` of an S3-style XML error, which unlike the rest of the document carries no
/// part of the signature.
fn storage_error_code(xml: &str) -> String {
    xml.split_once("<Code>")
        .and_then(|(_, rest)| rest.split_once("</Code>"))
        .map_or_else(|| "storage refused the upload".to_owned(), |(code, _)| code.to_owned())
}

/// Why the token endpoint's HTTP call failed before `oauth2` could read an answer.
#[derive(Debug, thiserror::Error)]
enum TokenCallError {
    #[error("{0}")]
    Transport(String),
    #[error("HTTP {0}")]
    Unavailable(u16),
}

/// Runs the token requests `oauth2` builds on the shared client, turning server errors into
/// [`TokenCallError::Unavailable`] (their bodies are not OAuth2 errors) and noting the status
/// of every answer.
struct TokenTransport<'a> {
    http: &'a reqwest::Client,
    status: AtomicU16,
}

impl<'a> TokenTransport<'a> {
    fn new(http: &'a reqwest::Client) -> Self {
        Self { http, status: AtomicU16::new(0) }
    }

    fn status(&self) -> u16 {
        self.status.load(Ordering::Relaxed)
    }
}

impl<'c> AsyncHttpClient<'c> for TokenTransport<'_> {
    type Error = TokenCallError;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, TokenCallError>> + Send + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(async move {
            let request = reqwest::Request::try_from(request)
                .map_err(|err| TokenCallError::Transport(err.without_url().to_string()))?;
            let response =
                self.http.execute(request).await.map_err(|err| match transport_error(err) {
                    OhError::Transport(message) => TokenCallError::Transport(message),
                    other => TokenCallError::Transport(other.to_string()),
                })?;
            let status = response.status();
            self.status.store(status.as_u16(), Ordering::Relaxed);
            if status.is_server_error() {
                return Err(TokenCallError::Unavailable(status.as_u16()));
            }
            let mut builder = oauth2::http::Response::builder().status(status.as_u16());
            for (name, value) in response.headers() {
                builder = builder.header(name.as_str(), value.as_bytes());
            }
            let body = response.bytes().await.map_err(|err| match transport_error(err) {
                OhError::Transport(message) => TokenCallError::Transport(message),
                other => TokenCallError::Transport(other.to_string()),
            })?;
            builder
                .body(body.to_vec())
                .map_err(|err| TokenCallError::Transport(format!("response: {err}")))
        })
    }
}

/// Maps the token endpoint's answer. A 200 body is never quoted: it holds tokens.
fn token_result<R: TokenResponse>(
    result: Result<R, BasicRequestTokenError<TokenCallError>>,
    transport: &TokenTransport<'_>,
) -> Result<TokenSet, OhError> {
    let status = transport.status();
    match result {
        Ok(response) => {
            let refresh_token = response
                .refresh_token()
                .ok_or_else(|| OhError::Protocol("the token answer has no refresh token".into()))?
                .secret()
                .clone();
            Ok(TokenSet {
                access_token: response.access_token().secret().clone(),
                refresh_token,
                expires_in: response.expires_in().map_or(DEFAULT_EXPIRES_IN, |d| d.as_secs()),
            })
        }
        Err(RequestTokenError::ServerResponse(error)) => match error.error() {
            BasicErrorResponseType::InvalidGrant => Err(OhError::InvalidGrant),
            BasicErrorResponseType::InvalidClient => Err(OhError::InvalidClient),
            other => Err(OhError::Rejected {
                status,
                body: serde_json::json!({
                    "error": other.as_ref(),
                    "error_description": error.error_description(),
                })
                .to_string(),
            }),
        },
        Err(RequestTokenError::Request(TokenCallError::Unavailable(status))) => {
            Err(OhError::Unavailable { status })
        }
        Err(RequestTokenError::Request(TokenCallError::Transport(message))) => {
            Err(OhError::Transport(message))
        }
        Err(RequestTokenError::Parse(_, body)) if status >= 400 => {
            Err(OhError::Rejected { status, body: shorten(&String::from_utf8_lossy(&body)) })
        }
        Err(RequestTokenError::Parse(err, _)) => {
            Err(OhError::Protocol(format!("unreadable token answer at {}", err.path())))
        }
        Err(RequestTokenError::Other(message)) if status >= 400 => {
            Err(OhError::Rejected { status, body: shorten(&message) })
        }
        Err(RequestTokenError::Other(message)) => Err(OhError::Protocol(message)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> OhSettings {
        OhSettings {
            base_url: Url::parse("https://oh.example.org/base/").expect("URL"),
            client_id: "client123".to_owned(),
            client_secret: "s3cret".parse().expect("secret"),
            redirect_url: Url::parse("https://app.example.org/oauth/callback").expect("URL"),
        }
    }

    #[test]
    fn authorize_url_has_pkce_state_and_redirect() {
        let client = OhClient::new(&settings()).expect("client");
        let request = client.authorize_url(false);
        assert_eq!(request.url.path(), "/base/direct-sharing/projects/oauth2/authorize/");
        let query: std::collections::HashMap<String, String> =
            request.url.query_pairs().into_owned().collect();
        assert_eq!(query["client_id"], "client123");
        assert_eq!(query["response_type"], "code");
        assert_eq!(query["redirect_uri"], "https://app.example.org/oauth/callback");
        assert_eq!(query["code_challenge_method"], "S256");
        assert_eq!(query["state"], request.state);
        assert!(!query.contains_key("approval_prompt"));
        assert!(!request.url.as_str().contains(&request.pkce_verifier));
        assert!(request.pkce_verifier.len() >= 43);
        let forced = client.authorize_url(true);
        assert!(forced.url.query_pairs().any(|(k, v)| k == "approval_prompt" && v == "force"));
        assert_ne!(forced.state, request.state);
    }

    #[test]
    fn debug_output_hides_secrets() {
        let client = OhClient::new(&settings()).expect("client");
        let request = client.authorize_url(false);
        let shown = format!("{request:?}");
        assert!(!shown.contains(&request.state) && !shown.contains(&request.pkce_verifier));
        let tokens = TokenSet {
            access_token: "AAAAAAAAAA".into(),
            refresh_token: "RRRRRRRRRR".into(),
            expires_in: 5,
        };
        let shown = format!("{tokens:?}");
        assert!(!shown.contains("AAAAAAAAAA") && !shown.contains("RRRRRRRRRR"));
        assert!(!format!("{client:?}").contains("s3cret"));
    }

    #[test]
    fn state_comparison() {
        assert!(state_matches("abc", "abc"));
        assert!(!state_matches("abc", "abd"));
        assert!(!state_matches("abc", "ab"));
        assert!(!state_matches("", ""));
    }

    #[test]
    fn file_helpers_read_metadata() {
        let file = OhFile {
            id: 1,
            basename: "a.json".into(),
            created: "2020-01-01T00:00:00Z".into(),
            download_url: "https://oh.example.org/x".into(),
            metadata: serde_json::json!({"description": "Diet", "tags": ["a", 3, "b"]}),
            source: "direct-sharing-1".into(),
        };
        assert_eq!(file.description(), "Diet");
        assert_eq!(file.tags(), vec!["a".to_owned(), "b".to_owned()]);
    }

    #[test]
    fn storage_errors_keep_only_the_code() {
        let xml = "<Error><Code>SignatureDoesNotMatch</Code><Signature>abc</Signature></Error>";
        assert_eq!(storage_error_code(xml), "SignatureDoesNotMatch");
    }
}
