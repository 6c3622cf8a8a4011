//! The ohkit server: configuration, storage, the HTTP routes and the process around them.
//!
//! [`serve`] does the input and output (reading settings, opening the database, binding the
//! port); [`routes::app`] builds the router from an [`AppState`] without touching the network, so
//! tests drive it in-process.

pub mod backend;
pub mod config;
pub mod crypto;
pub mod enrollment;
pub mod files;
pub mod members;
pub mod openhumans;
pub mod openhumans_settings;
pub mod page_cache;
pub mod routes;
pub mod sessions;
pub mod storage;
pub mod telemetry;
pub mod tokens;

use std::sync::Arc;

use axum::serve::ListenerExt;
use leptos::config::LeptosOptions;
use tokio::net::TcpListener;

use crate::config::{Config, ConfigError, Mode};
use crate::crypto::{CryptoError, TokenCipher};
use crate::openhumans::{OhClient, OhError};
use crate::openhumans_settings::OhSettings;
use crate::storage::{Db, StorageError};
use crate::tokens::TokenManager;

/// Everything a request handler may need.
#[derive(Clone, axum::extract::FromRef)]
pub struct AppState {
    /// Leptos' own settings (output name, site root).
    pub leptos_options: LeptosOptions,
    /// The database.
    pub db: Db,
    /// The settings ohkit started with.
    pub config: Arc<Config>,
    /// Where Open Humans is and how ohkit identifies itself to it.
    pub oh: Arc<OhSettings>,
    /// The in-process Open Humans sandbox, on the embedded default.
    pub sandbox: Option<sandbox::Sandbox>,
    /// The Open Humans client.
    pub oh_client: OhClient,
    /// Members' tokens: storage, refresh, reauthorization.
    pub tokens: TokenManager,
    /// The project's description from Open Humans, kept briefly.
    pub project_cache: Arc<backend::ProjectCache>,
}

impl AppState {
    /// The master access token to read project-level data with, if ohkit has one.
    pub fn master_token(&self) -> Option<String> {
        match &self.sandbox {
            Some(sandbox) => Some(sandbox.project_credentials().master_access_token),
            None => self.config.oh_master_token.as_ref().map(|t| t.expose().to_owned()),
        }
    }
}

/// Why `ohkit serve` could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A setting is missing or wrong.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The database could not be opened or migrated.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The in-process sandbox could not start.
    #[error("the Open Humans sandbox could not start: {0}")]
    Sandbox(#[from] sandbox::SandboxError),
    /// The token encryption key could not be read or created.
    #[error("the token encryption key is unusable: {0}")]
    Crypto(#[from] CryptoError),
    /// The Open Humans client could not be built.
    #[error("the Open Humans client could not be built: {0}")]
    Client(#[from] OhError),
    /// Leptos' own configuration could not be read.
    #[error("could not read the Leptos configuration: {0}")]
    Leptos(String),
    /// The address could not be bound, or serving failed.
    #[error("could not serve on {addr}: {source}")]
    Io {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// Opens the database, builds the router and serves until SIGINT or SIGTERM.
///
/// # Errors
///
/// When the configuration is invalid, the database cannot be opened or the port cannot be bound.
pub async fn serve(config: Config) -> Result<(), ServeError> {
    config.validate()?;
    let leptos_options = leptos::config::get_configuration(None)
        .map_err(|err| ServeError::Leptos(err.to_string()))?
        .leptos_options;
    let addr = config.addr;
    let public_url = config.public_url();
    let sweep_every = std::time::Duration::from_secs(config.refresh_sweep_secs.max(1));
    let state = build_state(config, leptos_options).await?;
    // Refresh whatever would expire before the next sweep, with a margin.
    let _sweeper = state.tokens.spawn_sweeper(sweep_every, sweep_every * 2);
    // Every visit to /join leaves a session behind; expired ones are removed hourly.
    let _session_pruner = spawn_session_pruner(state.db.clone());
    let router = routes::app(state);

    // Streamed pages go out in several small writes; with Nagle's algorithm on, each write after
    // the first waits for the client's delayed ACK (40 ms on Linux).
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Io { addr, source })?
        .tap_io(|stream| {
            if let Err(err) = stream.set_nodelay(true) {
                tracing::debug!(%err, "could not set TCP_NODELAY on a connection");
            }
        });
    tracing::info!(%addr, url = %public_url, "ohkit is serving");
    eprintln!("ohkit is serving at {public_url}");
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(|source| ServeError::Io { addr, source })?;
    tracing::info!("ohkit stopped cleanly");
    Ok(())
}

/// Builds everything a request needs from the settings: the database (migrated), the
/// in-process sandbox on the embedded default, the token cipher, the Open Humans client and the
/// token manager. It binds no port, so tests use it to run ohkit on a port of their choosing.
///
/// # Errors
///
/// When the database, the sandbox, the key or the client cannot be set up.
pub async fn build_state(
    config: Config,
    mut leptos_options: LeptosOptions,
) -> Result<AppState, ServeError> {
    leptos_options.site_addr = config.addr;
    let db = Db::connect(&config.database_url(), config.db_max_connections).await?;
    tracing::info!(database = ?db.backend(), mode = ?config.mode, "database ready");

    let sandbox = if config.mode == Mode::Embedded && config.oh_base_url.is_none() {
        Some(open_sandbox(&config).await?)
    } else {
        None
    };
    let oh = OhSettings::resolve(&config, sandbox.as_ref())?;
    tracing::info!(base_url = %oh.base_url, in_process_sandbox = sandbox.is_some(), "Open Humans");
    let cipher = match &config.token_key {
        Some(key) => TokenCipher::from_base64_key(key.expose())?,
        None => TokenCipher::load_or_create(&config.data_dir.join("token.key"))?,
    };
    let oh_client = OhClient::new(&oh)?;
    let tokens = TokenManager::new(db.clone(), cipher, oh_client.clone());
    Ok(AppState {
        leptos_options,
        db,
        config: Arc::new(config),
        oh: Arc::new(oh),
        sandbox,
        oh_client,
        tokens,
        project_cache: Arc::default(),
    })
}

/// Opens the in-process sandbox with a project whose redirect and webhook URLs point back at
/// this ohkit instance.
async fn open_sandbox(config: &Config) -> Result<sandbox::Sandbox, ServeError> {
    let public_url = config.public_url();
    let sandbox_config = sandbox::SandboxConfig {
        base_url: public_url.join(routes::SANDBOX_PREFIX.trim_start_matches('/')).map_err(
            |err| ConfigError::Invalid { name: "OHKIT_PUBLIC_URL", reason: err.to_string() },
        )?,
        database: Some(config.data_dir.join("sandbox.sqlite3")),
        project: sandbox::ProjectSeed {
            redirect_url: Some(OhSettings::redirect_url_for(&public_url).to_string()),
            deauth_webhook: Some(OhSettings::webhook_url_for(&public_url).to_string()),
            ..sandbox::ProjectSeed::default()
        },
        ..sandbox::SandboxConfig::default()
    };
    Ok(sandbox::Sandbox::open(sandbox_config).await?)
}

/// Deletes expired sessions once an hour, logging failures and carrying on.
fn spawn_session_pruner(db: Db) -> tokio::task::JoinHandle<()> {
    use tower_sessions::ExpiredDeletion;

    let store = sessions::DbSessionStore::new(db);
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(std::time::Duration::from_secs(3600));
        loop {
            ticks.tick().await;
            if let Err(err) = store.delete_expired().await {
                tracing::warn!(error = %err, "could not delete expired sessions");
            }
        }
    })
}

/// Resolves on the first SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    sandbox::shutdown_signal().await;
    tracing::info!("shutting down: finishing requests in flight");
}
