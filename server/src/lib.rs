//! The ohkit server: configuration, storage, the HTTP routes and the process around them.
//!
//! [`serve`] does the input and output (reading settings, opening the database, binding the
//! port); [`routes::app`] builds the router from an [`AppState`] without touching the network, so
//! tests drive it in-process.

pub mod backend;
pub mod config;
pub mod members;
pub mod routes;
pub mod storage;
pub mod telemetry;

use std::sync::Arc;

use leptos::config::LeptosOptions;
use tokio::net::TcpListener;

use crate::config::{Config, ConfigError};
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
    let state = AppState { leptos_options, db, config: Arc::new(config) };
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
