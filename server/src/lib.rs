//! The ohkit server: configuration, storage, the HTTP routes and the process around them.
//!
//! [`serve`] does the input and output (reading settings, opening the database, binding the
//! port); [`routes::app`] builds the router from an [`AppState`] without touching the network, so
//! tests drive it in-process.

pub mod backend;
pub mod config;
pub mod crypto;
pub mod members;
pub mod openhumans;
pub mod openhumans_settings;
pub mod routes;
pub mod storage;
pub mod telemetry;
pub mod tokens;

use std::sync::Arc;

use leptos::config::LeptosOptions;
use tokio::net::TcpListener;

use crate::config::{Config, ConfigError, Mode};
use crate::openhumans_settings::OhSettings;
use crate::storage::{Db, StorageError};

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
    let mut leptos_options = leptos::config::get_configuration(None)
        .map_err(|err| ServeError::Leptos(err.to_string()))?
        .leptos_options;
    leptos_options.site_addr = config.addr;

    let db = Db::connect(&config.database_url(), config.db_max_connections).await?;
    tracing::info!(database = ?db.backend(), mode = ?config.mode, "database ready");

    let addr = config.addr;
    let public_url = config.public_url();
    let sandbox = if config.mode == Mode::Embedded && config.oh_base_url.is_none() {
        Some(open_sandbox(&config).await?)
    } else {
        None
    };
    let oh = OhSettings::resolve(&config, sandbox.as_ref())?;
    tracing::info!(base_url = %oh.base_url, in_process_sandbox = sandbox.is_some(), "Open Humans");
    let state =
        AppState { leptos_options, db, config: Arc::new(config), oh: Arc::new(oh), sandbox };
    let router = routes::app(state);

    let listener =
        TcpListener::bind(addr).await.map_err(|source| ServeError::Io { addr, source })?;
    tracing::info!(%addr, url = %public_url, "ohkit is serving");
    eprintln!("ohkit is serving at {public_url}");
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(|source| ServeError::Io { addr, source })?;
    tracing::info!("ohkit stopped cleanly");
    Ok(())
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

/// Resolves on the first SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(%err, "could not listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::error!(%err, "could not listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}
