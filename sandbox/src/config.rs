//! Configuration of the sandbox: the library-level [`SandboxConfig`] and the command-line
//! flags of the standalone server ([`SandboxArgs`]).

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::SandboxError;

/// Overrides for the seeded project; `None` keeps the deterministic default. Values that are
/// set are applied every time the sandbox opens, also to an existing database.
#[derive(Debug, Clone, Default)]
pub struct ProjectSeed {
    /// Project name.
    pub name: Option<String>,
    /// Registered OAuth2 redirect URI.
    pub redirect_url: Option<String>,
    /// Deauthorization webhook URL (empty string disables it).
    pub deauth_webhook: Option<String>,
    /// Webhook signing secret (empty string disables signing).
    pub webhook_secret: Option<String>,
    /// The project's enrollment (landing) page.
    pub enrollment_url: Option<String>,
    /// OAuth2 client id.
    pub client_id: Option<String>,
    /// OAuth2 client secret.
    pub client_secret: Option<String>,
}

/// How the sandbox behaves.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// Public URL where the sandbox is reachable (may carry a path prefix); every absolute
    /// URL the sandbox produces is built on it.
    pub base_url: url::Url,
    /// SQLite file; `None` keeps everything in memory.
    pub database: Option<PathBuf>,
    /// Lifetime of issued access tokens (`expires_in`).
    pub access_token_lifetime: Duration,
    /// Enforce the 20-member cap of unapproved projects on the consent page.
    pub enforce_member_cap: bool,
    /// Mark the seeded project approved on every open. `false` leaves the stored approval
    /// as it is (not approved when first seeded, or whatever the switches page saved).
    pub approved: bool,
    /// Probability in `[0, 1]` of answering 500 or 503 on API and token calls.
    pub fault_error_rate: f64,
    /// Delay added to every API and token response.
    pub fault_latency: Duration,
    /// Commit a refresh, then answer 502 instead of returning the new tokens.
    pub fault_drop_refresh_response: bool,
    /// After a non-2xx webhook answer, retry once with the legacy double-encoded body.
    pub legacy_webhook_retry: bool,
    /// Overrides for the seeded project.
    pub project: ProjectSeed,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            base_url: url::Url::parse("http://127.0.0.1:8700")
                .expect("the default base URL is a valid URL"),
            database: None,
            access_token_lifetime: Duration::from_secs(36000),
            enforce_member_cap: false,
            approved: false,
            fault_error_rate: 0.0,
            fault_latency: Duration::ZERO,
            fault_drop_refresh_response: false,
            legacy_webhook_retry: true,
            project: ProjectSeed::default(),
        }
    }
}

/// Command-line flags of the standalone sandbox server.
#[derive(Debug, Clone, clap::Args)]
pub struct SandboxArgs {
    /// TCP port to listen on.
    #[arg(long, env = "OHKIT_SANDBOX_PORT", default_value_t = 8700)]
    pub port: u16,
    /// Address to bind.
    #[arg(long, env = "OHKIT_SANDBOX_BIND", default_value = "127.0.0.1")]
    pub bind: IpAddr,
    /// Public base URL of the sandbox (default: http://<bind>:<port>); absolute URLs in
    /// responses, redirects and links are built on it.
    #[arg(long, env = "OHKIT_SANDBOX_BASE_URL")]
    pub base_url: Option<url::Url>,
    /// SQLite file holding the sandbox's state (created when missing).
    #[arg(long, env = "OHKIT_SANDBOX_DATABASE", default_value = "./data/sandbox.sqlite3")]
    pub database: PathBuf,
    /// Keep all state in memory and forget it on exit (ignores --database).
    #[arg(long, env = "OHKIT_SANDBOX_EPHEMERAL")]
    pub ephemeral: bool,
    /// Access token lifetime in seconds (`expires_in`); the platform uses 36000.
    #[arg(long, env = "OHKIT_SANDBOX_TOKEN_LIFETIME", default_value_t = 36000)]
    pub token_lifetime: u64,
    /// Enforce the 20-member cap for unapproved projects (the platform does not for OAuth2
    /// projects).
    #[arg(long, env = "OHKIT_SANDBOX_MEMBER_CAP")]
    pub member_cap: bool,
    /// Mark the seeded project approved (removes the "in development" note). Without the flag
    /// the stored approval is kept, so an approval saved on the switches page survives a restart.
    #[arg(long, env = "OHKIT_SANDBOX_APPROVED")]
    pub approved: bool,
    /// Probability in [0, 1] that an API or token call answers 500 or 503.
    #[arg(long, env = "OHKIT_SANDBOX_FAULT_ERROR_RATE", default_value_t = 0.0)]
    pub fault_error_rate: f64,
    /// Milliseconds added to every API and token response.
    #[arg(long, env = "OHKIT_SANDBOX_FAULT_LATENCY_MS", default_value_t = 0)]
    pub fault_latency_ms: u64,
    /// Commit each refresh-token rotation, then answer 502 instead of the new tokens.
    #[arg(long, env = "OHKIT_SANDBOX_FAULT_DROP_REFRESH_RESPONSE")]
    pub fault_drop_refresh_response: bool,
    /// Do not retry a failed webhook with the legacy double-encoded, unsigned body.
    #[arg(long, env = "OHKIT_SANDBOX_NO_LEGACY_WEBHOOK_RETRY")]
    pub no_legacy_webhook_retry: bool,
    /// Registered redirect URI of the seeded project.
    #[arg(long, env = "OHKIT_SANDBOX_REDIRECT_URL")]
    pub redirect_url: Option<String>,
    /// Deauthorization webhook URL of the seeded project ("" disables it).
    #[arg(long, env = "OHKIT_SANDBOX_WEBHOOK_URL")]
    pub webhook_url: Option<String>,
    /// Webhook signing secret of the seeded project (at least 16 characters; "" disables).
    #[arg(long, env = "OHKIT_SANDBOX_WEBHOOK_SECRET", hide_env_values = true)]
    pub webhook_secret: Option<String>,
    /// Enrollment (landing page) URL of the seeded project.
    #[arg(long, env = "OHKIT_SANDBOX_ENROLLMENT_URL")]
    pub enrollment_url: Option<String>,
    /// Name of the seeded project.
    #[arg(long, env = "OHKIT_SANDBOX_PROJECT_NAME")]
    pub project_name: Option<String>,
    /// OAuth2 client id of the seeded project (default: derived from a fixed seed).
    #[arg(long, env = "OHKIT_SANDBOX_CLIENT_ID")]
    pub client_id: Option<String>,
    /// OAuth2 client secret of the seeded project (default: derived from a fixed seed).
    #[arg(long, env = "OHKIT_SANDBOX_CLIENT_SECRET", hide_env_values = true)]
    pub client_secret: Option<String>,
}

impl SandboxArgs {
    /// The library configuration these flags describe.
    pub fn to_config(&self) -> Result<SandboxConfig, SandboxError> {
        let base_url = match &self.base_url {
            Some(url) => url.clone(),
            None => {
                let host = match self.bind {
                    IpAddr::V6(v6) => format!("[{v6}]"),
                    IpAddr::V4(v4) if v4.is_unspecified() => "127.0.0.1".to_owned(),
                    IpAddr::V4(v4) => v4.to_string(),
                };
                url::Url::parse(&format!("http://{host}:{}", self.port))
                    .map_err(|e| SandboxError::Config(format!("base URL: {e}")))?
            }
        };
        if let Some(secret) = &self.webhook_secret
            && !secret.is_empty()
            && secret.chars().count() < 16
        {
            return Err(SandboxError::Config(
                "the webhook secret needs at least 16 characters".to_owned(),
            ));
        }
        Ok(SandboxConfig {
            base_url,
            database: (!self.ephemeral).then(|| self.database.clone()),
            access_token_lifetime: Duration::from_secs(self.token_lifetime),
            enforce_member_cap: self.member_cap,
            approved: self.approved,
            fault_error_rate: self.fault_error_rate,
            fault_latency: Duration::from_millis(self.fault_latency_ms),
            fault_drop_refresh_response: self.fault_drop_refresh_response,
            legacy_webhook_retry: !self.no_legacy_webhook_retry,
            project: ProjectSeed {
                name: self.project_name.clone(),
                redirect_url: self.redirect_url.clone(),
                deauth_webhook: self.webhook_url.clone(),
                webhook_secret: self.webhook_secret.clone(),
                enrollment_url: self.enrollment_url.clone(),
                client_id: self.client_id.clone(),
                client_secret: self.client_secret.clone(),
            },
        })
    }
}
