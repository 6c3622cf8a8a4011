//! Where Open Humans is, and the credentials and URLs ohkit uses with it.

use url::Url;

use crate::config::{Config, ConfigError, Mode, Secret};

/// The production Open Humans.
pub const OPEN_HUMANS_URL: &str = "https://www.openhumans.org/";

/// The path Open Humans redirects members to after they authorize: register
/// `<OHKIT_PUBLIC_URL>/oauth/callback` as the project's redirect URL.
pub const CALLBACK_PATH: &str = "oauth/callback";

/// The path of the deauthorization webhook.
pub const WEBHOOK_PATH: &str = "openhumans/webhook/";

/// Open Humans as this instance talks to it.
#[derive(Debug, Clone)]
pub struct OhSettings {
    /// The platform's base URL (ends with `/`).
    pub base_url: Url,
    /// The project's OAuth2 client ID.
    pub client_id: String,
    /// The project's OAuth2 client secret.
    pub client_secret: Secret,
    /// The exact redirect URL sent with every authorization and code exchange.
    pub redirect_url: Url,
}

impl OhSettings {
    /// Settles the Open Humans settings: the in-process sandbox's when there is one, otherwise
    /// the configured ones.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Missing`] when ohkit talks to a real Open Humans without credentials.
    pub fn resolve(
        config: &Config,
        sandbox: Option<&sandbox::Sandbox>,
    ) -> Result<Self, ConfigError> {
        let redirect_url = Self::redirect_url_for(&config.public_url());
        if let Some(sandbox) = sandbox {
            let credentials = sandbox.project_credentials();
            let mut base_url = credentials.base_url;
            if !base_url.path().ends_with('/') {
                base_url.set_path(&format!("{}/", base_url.path()));
            }
            return Ok(Self {
                base_url,
                client_id: credentials.client_id,
                client_secret: credentials
                    .client_secret
                    .parse()
                    .unwrap_or_else(|never| match never {}),
                redirect_url,
            });
        }
        let base_url = match (&config.oh_base_url, config.mode) {
            (Some(url), _) => url.clone(),
            (None, Mode::Production) => Url::parse(OPEN_HUMANS_URL).expect("a valid constant URL"),
            (None, Mode::Embedded) => return Err(ConfigError::Missing("OHKIT_OH_BASE_URL")),
        };
        let mut base_url = base_url;
        if !base_url.path().ends_with('/') {
            base_url.set_path(&format!("{}/", base_url.path()));
        }
        Ok(Self {
            base_url,
            client_id: config
                .oh_client_id
                .clone()
                .ok_or(ConfigError::Missing("OHKIT_OH_CLIENT_ID"))?,
            client_secret: config
                .oh_client_secret
                .clone()
                .ok_or(ConfigError::Missing("OHKIT_OH_CLIENT_SECRET"))?,
            redirect_url,
        })
    }

    /// The redirect URL of an instance reached at `public_url`.
    pub fn redirect_url_for(public_url: &Url) -> Url {
        public_url.join(CALLBACK_PATH).expect("a relative path joins any http URL")
    }

    /// The webhook URL of an instance reached at `public_url`.
    pub fn webhook_url_for(public_url: &Url) -> Url {
        public_url.join(WEBHOOK_PATH).expect("a relative path joins any http URL")
    }
}
