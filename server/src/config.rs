//! ohkit's settings: one typed struct, read from flags, environment variables and `.env`.
//!
//! Every setting has a flag and an environment variable (`ohkit serve --help` lists both); the
//! README documents each with its default. In `production` mode the settings a real deployment
//! cannot do without must be given, and ohkit refuses to start, naming the variable, when one
//! is missing.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;

use clap::{Parser, ValueEnum};
use url::Url;

/// Where ohkit runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// SQLite under the data directory and the in-process Open Humans sandbox: for trying ohkit
    /// and for tests, with no account and no network.
    Embedded,
    /// The real Open Humans and an explicit database: every setting marked "required in
    /// production" must be given.
    Production,
}

/// A secret value (client secret, webhook secret, key). Its `Debug` never shows it, and it is
/// deliberately not `Serialize`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The value itself, for the one place that sends or uses it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        Ok(Self(value.to_owned()))
    }
}

/// Settings of `ohkit serve`.
#[derive(Debug, Clone, Parser)]
#[command(name = "ohkit serve")]
pub struct Config {
    /// `embedded` (SQLite and the in-process Open Humans sandbox) or `production` (the real Open
    /// Humans; the settings marked "required in production" must then be given).
    #[arg(long, env = "OHKIT_MODE", value_enum, default_value_t = Mode::Embedded)]
    pub mode: Mode,

    /// Address and port to listen on.
    #[arg(long, env = "LEPTOS_SITE_ADDR", default_value = "127.0.0.1:3000")]
    pub addr: SocketAddr,

    /// The URL members reach ohkit at (required in production). The OAuth2 redirect URL to
    /// register with Open Humans is derived from it. Default: http://<addr>.
    #[arg(long, env = "OHKIT_PUBLIC_URL")]
    pub public_url: Option<Url>,

    /// Directory for the embedded database and generated key files.
    #[arg(long, env = "OHKIT_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,

    /// Database to use: `sqlite://PATH` or `postgres://…` (required in production). Default: a
    /// SQLite file, ohkit.sqlite3, in the data directory.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// Largest number of database connections per ohkit instance.
    #[arg(long, env = "OHKIT_DB_MAX_CONNECTIONS", default_value_t = 16)]
    pub db_max_connections: u32,

    /// Base URL of Open Humans. Default: the in-process sandbox in embedded mode,
    /// https://www.openhumans.org in production.
    #[arg(long, env = "OHKIT_OH_BASE_URL")]
    pub oh_base_url: Option<Url>,

    /// The project's OAuth2 client ID (required in production; the sandbox's in embedded mode).
    #[arg(long, env = "OHKIT_OH_CLIENT_ID")]
    pub oh_client_id: Option<String>,

    /// The project's OAuth2 client secret (required in production; the sandbox's in embedded
    /// mode).
    #[arg(long, env = "OHKIT_OH_CLIENT_SECRET", hide_env_values = true)]
    pub oh_client_secret: Option<Secret>,

    /// The project's master access token, used to read the project's description for the signup
    /// page before any member joins (it expires after 24 hours; without it the page shows the
    /// OHKIT_PROJECT_* texts until a member's token can be used). The sandbox's in embedded mode.
    #[arg(long, env = "OHKIT_OH_MASTER_TOKEN", hide_env_values = true)]
    pub oh_master_token: Option<Secret>,

    /// 32-byte key (standard base64) that encrypts members' tokens at rest (required in
    /// production). Default: a key file, token.key, generated in the data directory.
    #[arg(long, env = "OHKIT_TOKEN_KEY", hide_env_values = true)]
    pub token_key: Option<Secret>,

    /// How often the background sweep looks for tokens about to expire, in seconds.
    #[arg(long, env = "OHKIT_REFRESH_SWEEP_SECS", default_value_t = 300)]
    pub refresh_sweep_secs: u64,

    /// The project's name, shown on the signup page.
    #[arg(long, env = "OHKIT_PROJECT_NAME", default_value = "Sleep and Activity Study")]
    pub project_name: String,

    /// Who leads the project.
    #[arg(long, env = "OHKIT_PROJECT_LEADER", default_value = "Dr. Ada Example")]
    pub project_leader: String,

    /// The organisation behind the project, if any.
    #[arg(long, env = "OHKIT_PROJECT_ORGANIZATION", default_value = "ohkit Research Group")]
    pub project_organization: Option<String>,

    /// One or two sentences about the project.
    #[arg(
        long,
        env = "OHKIT_PROJECT_SHORT_DESCRIPTION",
        default_value = "How do sleep and daily activity relate? Share your wearable and survey data to help find out."
    )]
    pub project_short_description: String,

    /// Everything else a member should know before joining.
    #[arg(
        long,
        env = "OHKIT_PROJECT_DESCRIPTION",
        default_value = "We look at nightly sleep and daily step counts side by side, week by week. You keep control: you can see every file you share, and you can leave or ask us to delete your data at any time."
    )]
    pub project_description: String,

    /// What the project asks members to share, separated by `;`.
    #[arg(
        long,
        env = "OHKIT_PROJECT_REQUESTS",
        value_delimiter = ';',
        default_value = "Access to your Open Humans username;Permission to send you messages;Your wearable data (Fitbit Connection);Your survey answers (Diet Survey)"
    )]
    pub project_requests: Vec<String>,
}

/// A setting that is wrong or missing.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// ohkit cannot run without this variable in the mode it was started in.
    #[error("{0} must be set")]
    Missing(&'static str),
    /// The variable is set, but to something ohkit cannot use.
    #[error("{name} is invalid: {reason}")]
    Invalid {
        /// The environment variable.
        name: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

impl Config {
    /// Reads the settings from the environment alone, as `ohkit` without a subcommand does.
    pub fn from_env() -> Self {
        Self::parse_from(["ohkit serve"])
    }

    /// Checks that production mode has everything it needs.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Missing`] naming the first required variable that is not set.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.mode == Mode::Production {
            if self.database_url.is_none() {
                return Err(ConfigError::Missing("DATABASE_URL"));
            }
            if self.public_url.is_none() {
                return Err(ConfigError::Missing("OHKIT_PUBLIC_URL"));
            }
            if self.oh_client_id.is_none() {
                return Err(ConfigError::Missing("OHKIT_OH_CLIENT_ID"));
            }
            if self.oh_client_secret.is_none() {
                return Err(ConfigError::Missing("OHKIT_OH_CLIENT_SECRET"));
            }
            if self.token_key.is_none() {
                return Err(ConfigError::Missing("OHKIT_TOKEN_KEY"));
            }
        }
        if let Some(url) = &self.public_url
            && !matches!(url.scheme(), "http" | "https")
        {
            return Err(ConfigError::Invalid {
                name: "OHKIT_PUBLIC_URL",
                reason: "it must be an http or https URL".into(),
            });
        }
        // ohkit's routes (and so the redirect URL registered with Open Humans) sit at the root of
        // the host; a path here would name URLs that ohkit does not serve.
        if let Some(url) = &self.public_url
            && url.path() != "/"
        {
            return Err(ConfigError::Invalid {
                name: "OHKIT_PUBLIC_URL",
                reason: "ohkit is served at the root of its host: give the URL without a path, \
                         like https://study.example.org/"
                    .into(),
            });
        }
        Ok(())
    }

    /// The URL members reach ohkit at.
    pub fn public_url(&self) -> Url {
        self.public_url.clone().unwrap_or_else(|| {
            Url::parse(&format!("http://{}/", self.addr)).expect("a socket address forms a URL")
        })
    }

    /// The database URL in effect.
    pub fn database_url(&self) -> String {
        self.database_url.clone().unwrap_or_else(|| {
            format!("sqlite://{}?mode=rwc", self.data_dir.join("ohkit.sqlite3").display())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Config {
        let mut all = vec!["ohkit serve"];
        all.extend_from_slice(args);
        Config::try_parse_from(all).expect("arguments parse")
    }

    #[test]
    fn embedded_mode_needs_nothing() {
        let config = parse(&[]);
        assert_eq!(config.mode, Mode::Embedded);
        assert!(config.validate().is_ok());
        assert!(config.database_url().starts_with("sqlite://"));
        assert_eq!(config.public_url().as_str(), "http://127.0.0.1:3000/");
    }

    #[test]
    fn production_names_the_first_missing_variable() {
        let config = parse(&["--mode", "production"]);
        let err = config.validate().expect_err("production without settings must fail");
        assert_eq!(err.to_string(), "DATABASE_URL must be set");

        let config = parse(&[
            "--mode",
            "production",
            "--database-url",
            "postgres://localhost/ohkit",
            "--public-url",
            "https://study.example.org",
            "--oh-client-id",
            "abc",
        ]);
        let err = config.validate().expect_err("the secret is still missing");
        assert!(err.to_string().starts_with("OHKIT_OH_CLIENT_SECRET"), "{err}");
    }

    #[test]
    fn secrets_are_redacted_in_debug_output() {
        let config = parse(&["--oh-client-secret", "hunter2hunter2"]);
        let printed = format!("{config:?}");
        assert!(!printed.contains("hunter2"), "{printed}");
    }

    #[test]
    fn the_public_url_has_no_path() {
        assert!(parse(&["--public-url", "https://study.example.org/"]).validate().is_ok());
        let err = parse(&["--public-url", "https://example.org/study"])
            .validate()
            .expect_err("a path is refused");
        assert!(err.to_string().starts_with("OHKIT_PUBLIC_URL is invalid"), "{err}");
    }
}
