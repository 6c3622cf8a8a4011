//! An emulator of the Open Humans platform side of the OAuth2 "direct-sharing" project API:
//! the OAuth2 provider, the project API, file storage with expiring download links, the
//! deauthorization webhook, and the member and coordinator pages that drive them. It knows
//! nothing of any particular project app; it is an axum [`Router`] plus its own state.

mod api;
mod config;
mod files;
mod html;
mod middleware;
mod model;
mod oauth;
mod pages;
mod seed;
mod store;
mod util;
mod webhook;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{Method, Uri};
use axum::routing::{MethodRouter, get, post, put};
use parking_lot::{Mutex, RwLock};
use time::OffsetDateTime;

pub use config::{ProjectSeed, SandboxArgs, SandboxConfig};
pub use webhook::{payload as webhook_payload, signature as webhook_signature};

use model::State;
use store::Store;

/// Everything that can go wrong while opening or serving the sandbox.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The SQLite database could not be opened, migrated or read.
    #[error("sandbox database error: {0}")]
    Database(#[from] sqlx::Error),
    /// A stored record could not be decoded.
    #[error("sandbox database holds a record that cannot be decoded: {0}")]
    Corrupt(#[source] serde_json::Error),
    /// A file or socket operation failed.
    #[error("sandbox I/O error: {0}")]
    Io(#[source] std::io::Error),
    /// The configuration is not usable.
    #[error("invalid sandbox configuration: {0}")]
    Config(String),
    /// The HTTP client used for webhooks could not be built.
    #[error("cannot build the webhook HTTP client: {0}")]
    Http(#[from] reqwest::Error),
}

/// What a project app needs to talk to the seeded project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectCredentials {
    /// The OAuth2 client id (40 characters).
    pub client_id: String,
    /// The OAuth2 client secret (128 characters).
    pub client_secret: String,
    /// `<base>/direct-sharing/projects/oauth2/authorize/`.
    pub authorize_url: url::Url,
    /// `<base>/oauth2/token/`.
    pub token_url: url::Url,
    /// The sandbox's public base URL.
    pub base_url: url::Url,
    /// The project's current master access token.
    pub master_access_token: String,
}

/// Fault injection on the API and token endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Faults {
    /// Probability in `[0, 1]` of answering 500 or 503 instead of handling the call.
    pub error_rate: f64,
    /// Delay added to every API and token response.
    pub latency: Duration,
    /// Commit a refresh-token rotation, then answer 502 instead of the new tokens.
    pub drop_refresh_response: bool,
}

/// Behaviour switches that can change while the sandbox runs.
#[derive(Debug, Clone)]
pub(crate) struct Switches {
    pub(crate) access_token_lifetime: Duration,
    pub(crate) enforce_member_cap: bool,
    pub(crate) legacy_webhook_retry: bool,
    pub(crate) faults: Faults,
}

/// Shared state behind every handler.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) state: Mutex<State>,
    pub(crate) store: Store,
    /// The base URL as a string without a trailing slash.
    pub(crate) base: String,
    pub(crate) base_url: url::Url,
    /// The cookie path (the base URL's path, `/` at least).
    pub(crate) cookie_path: String,
    pub(crate) switches: RwLock<Switches>,
    /// Test clock offset in microseconds.
    pub(crate) clock_offset_us: AtomicI64,
    pub(crate) signing_key: [u8; 32],
    pub(crate) http: reqwest::Client,
    pub(crate) project_id: i64,
    /// What the token endpoint has granted since the sandbox opened.
    pub(crate) grants: GrantCounters,
}

/// Counters of the token endpoint's successful grants, so that a client's behaviour (one refresh
/// or many) can be observed from the platform's side.
#[derive(Debug, Default)]
pub(crate) struct GrantCounters {
    pub(crate) codes_exchanged: AtomicU64,
    pub(crate) refreshes: AtomicU64,
}

/// What the token endpoint has granted since the sandbox opened (`GET /sandbox/stats/`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct TokenStats {
    /// Authorization codes exchanged for tokens.
    pub codes_exchanged: u64,
    /// Refresh tokens exchanged (rotated) for new tokens, including those whose answer a fault
    /// dropped.
    pub refreshes: u64,
}

/// A router under construction that remembers its route patterns, so that the fallback can
/// tell which paths would match with a trailing slash appended.
#[derive(Default)]
struct Routes {
    router: Router<Sandbox>,
    paths: Vec<&'static str>,
}

impl Routes {
    /// Adds a route and records its pattern.
    fn route(mut self, path: &'static str, method_router: MethodRouter<Sandbox>) -> Self {
        self.router = self.router.route(path, method_router);
        self.paths.push(path);
        self
    }
}

/// The running emulator: cheap to clone, all clones share one state.
#[derive(Debug, Clone)]
pub struct Sandbox {
    pub(crate) inner: Arc<Shared>,
}

impl Sandbox {
    /// Opens the database (creating and migrating it), seeds it when empty (deterministically),
    /// applies the configured project overrides and loads everything into memory.
    pub async fn open(config: SandboxConfig) -> Result<Sandbox, SandboxError> {
        if !(0.0..=1.0).contains(&config.fault_error_rate) {
            return Err(SandboxError::Config(
                "fault_error_rate must be between 0 and 1".to_owned(),
            ));
        }
        let store = Store::open(config.database.as_deref()).await?;
        let opened = seed::load_or_seed(&store, &config).await?;
        let base = config.base_url.as_str().trim_end_matches('/').to_owned();
        let cookie_path = match config.base_url.path().trim_end_matches('/') {
            "" => "/".to_owned(),
            path => path.to_owned(),
        };
        let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build()?;
        let shared = Shared {
            state: Mutex::new(opened.state),
            store,
            base,
            base_url: config.base_url.clone(),
            cookie_path,
            switches: RwLock::new(Switches {
                access_token_lifetime: config.access_token_lifetime,
                enforce_member_cap: config.enforce_member_cap,
                legacy_webhook_retry: config.legacy_webhook_retry,
                faults: Faults {
                    error_rate: config.fault_error_rate,
                    latency: config.fault_latency,
                    drop_refresh_response: config.fault_drop_refresh_response,
                },
            }),
            clock_offset_us: AtomicI64::new(0),
            signing_key: opened.signing_key,
            http,
            project_id: seed::PROJECT_ID,
            grants: GrantCounters::default(),
        };
        Ok(Sandbox { inner: Arc::new(shared) })
    }

    /// Every route at the platform's own paths, relative to the base URL's path, with the
    /// platform's CORS headers on `/api/` and its `APPEND_SLASH` redirect as the fallback.
    pub fn router(&self) -> Router {
        let faulty = Routes::default()
            .route("/oauth2/token/", post(oauth::token))
            .route("/api/direct-sharing/project/", get(api::project_info))
            .route("/api/direct-sharing/project/exchange-member/", get(api::exchange_member))
            .route("/api/direct-sharing/project/members/", get(api::members))
            .route("/api/direct-sharing/project/message/", post(api::message))
            .route("/api/direct-sharing/project/remove-members/", post(api::remove_members))
            .route("/api/direct-sharing/project/files/upload/", post(files::upload))
            .route("/api/direct-sharing/project/files/upload/direct/", post(files::upload_direct))
            .route(
                "/api/direct-sharing/project/files/upload/complete/",
                post(files::upload_complete),
            )
            .route("/api/direct-sharing/project/files/delete/", post(files::delete));
        let Routes { router: faulty_router, mut paths } = faulty;
        let faulty_router = faulty_router
            .layer(axum::middleware::from_fn_with_state(self.clone(), api::fault_layer));
        let Routes { router, paths: plain_paths } = Routes::default()
            .route("/", get(pages::index))
            .route(
                "/direct-sharing/projects/oauth2/authorize/",
                get(oauth::authorize_get).post(oauth::authorize_post),
            )
            .route("/direct-sharing/authorize-inactive/", get(pages::authorize_inactive))
            .route("/data-management/datafile-download/{id}/", get(files::download))
            .route("/sandbox-storage/put/{id}/", put(files::storage_put))
            .route("/sandbox-storage/get/{id}/{name}", get(files::storage_get))
            .route("/account/login/", get(pages::login_page).post(pages::login_submit))
            .route("/account/signup/", post(pages::signup_submit))
            .route("/account/logout/", post(pages::logout))
            .route("/member/me/data/", get(pages::member_data))
            .route("/member/me/messages/", get(pages::member_messages))
            .route("/member/me/connections/", get(pages::connections))
            .route(
                "/direct-sharing/projects/leave/{pk}/",
                get(pages::leave_page).post(pages::leave_submit),
            )
            .route("/activity/{slug}/", get(pages::activity))
            .route("/direct-sharing/projects/oauth2/{id}/", get(pages::project_detail))
            .route(
                "/direct-sharing/projects/oauth2/{id}/edit/",
                get(pages::project_edit_page).post(pages::project_edit_submit),
            )
            .route(
                "/direct-sharing/projects/oauth2/{id}/refresh-token/",
                post(pages::refresh_master_token),
            )
            .route(
                "/direct-sharing/projects/withdrawn-members/{id}/",
                get(pages::withdrawn_members),
            )
            .route("/sandbox/webhooks/", get(pages::webhook_log))
            .route("/sandbox/switches/", get(pages::switches_page).post(pages::switches_submit))
            .route("/sandbox/stats/", get(pages::stats));
        paths.extend(plain_paths);
        let routes: Arc<[&'static str]> = paths.into();
        let sandbox = self.clone();
        let fallback = move |method: Method, uri: Uri| {
            let (sandbox, routes) = (sandbox.clone(), routes.clone());
            async move { middleware::append_slash(&sandbox, &routes, &method, &uri) }
        };
        Router::new()
            .merge(faulty_router)
            .merge(router)
            .fallback(fallback)
            .layer(axum::middleware::from_fn(middleware::cors))
            .layer(DefaultBodyLimit::max(1 << 30))
            .with_state(self.clone())
    }

    /// The seeded project's credentials and endpoints.
    pub fn project_credentials(&self) -> ProjectCredentials {
        let state = self.inner.state.lock();
        let project = state.projects.get(&self.inner.project_id);
        let (client_id, client_secret) = project
            .and_then(|p| p.oauth.as_ref())
            .map(|o| (o.client_id.clone(), o.client_secret.clone()))
            .unwrap_or_default();
        let master_access_token =
            project.map(|p| p.master_access_token.clone()).unwrap_or_default();
        drop(state);
        ProjectCredentials {
            client_id,
            client_secret,
            authorize_url: self.url("/direct-sharing/projects/oauth2/authorize/"),
            token_url: self.url("/oauth2/token/"),
            base_url: self.inner.base_url.clone(),
            master_access_token,
        }
    }

    /// How many codes and refresh tokens the token endpoint has exchanged since the sandbox
    /// opened.
    pub fn token_stats(&self) -> TokenStats {
        TokenStats {
            codes_exchanged: self.inner.grants.codes_exchanged.load(Ordering::Relaxed),
            refreshes: self.inner.grants.refreshes.load(Ordering::Relaxed),
        }
    }

    /// Changes the lifetime of access tokens issued from now on.
    pub fn set_access_token_lifetime(&self, lifetime: Duration) {
        self.inner.switches.write().access_token_lifetime = lifetime;
    }

    /// Replaces the fault-injection settings.
    pub fn set_faults(&self, faults: Faults) {
        self.inner.switches.write().faults = faults;
    }

    /// Turns the 20-member cap for unapproved projects on or off.
    pub fn set_enforce_member_cap(&self, on: bool) {
        self.inner.switches.write().enforce_member_cap = on;
    }

    /// Turns the legacy double-encoded webhook retry on or off.
    pub fn set_legacy_webhook_retry(&self, on: bool) {
        self.inner.switches.write().legacy_webhook_retry = on;
    }

    /// Marks the seeded project approved or not.
    pub fn set_approved(&self, approved: bool) {
        let mut state = self.inner.state.lock();
        if let Some(project) = state.projects.get_mut(&self.inner.project_id) {
            project.approved = approved;
            self.inner.store.put(project);
        }
    }

    /// Opens or closes the seeded project to members (the project settings' "active" box).
    pub fn set_active(&self, active: bool) {
        let mut state = self.inner.state.lock();
        if let Some(project) = state.projects.get_mut(&self.inner.project_id) {
            project.active = active;
            self.inner.store.put(project);
        }
    }

    /// Moves the sandbox's clock forward (for expiry tests); it never moves back.
    pub fn advance_clock(&self, by: Duration) {
        let micros = i64::try_from(by.as_micros()).unwrap_or(i64::MAX);
        self.inner.clock_offset_us.fetch_add(micros, Ordering::Relaxed);
    }

    /// Waits until every change made so far is written to the database.
    pub async fn flush(&self) {
        self.inner.store.flush().await;
    }

    pub(crate) fn now(&self) -> OffsetDateTime {
        let offset = self.inner.clock_offset_us.load(Ordering::Relaxed);
        util::truncate_micros(OffsetDateTime::now_utc() + time::Duration::microseconds(offset))
    }

    /// An absolute URL on the sandbox for a path starting with `/`.
    pub(crate) fn url(&self, path: &str) -> url::Url {
        url::Url::parse(&self.abs(path)).unwrap_or_else(|_| self.inner.base_url.clone())
    }

    /// An absolute URL string on the sandbox for a path starting with `/`.
    pub(crate) fn abs(&self, path: &str) -> String {
        format!("{}{path}", self.inner.base)
    }

    /// A path for links inside the sandbox's own pages (base path prefix included).
    pub(crate) fn link(&self, path: &str) -> String {
        let prefix = self.inner.base_url.path().trim_end_matches('/');
        format!("{prefix}{path}")
    }
}

/// Runs the sandbox as its own HTTP server until ctrl-c or SIGTERM.
pub async fn serve_standalone(args: SandboxArgs) -> Result<(), SandboxError> {
    let addr = SocketAddr::new(args.bind, args.port);
    let config = args.to_config()?;
    let sandbox = Sandbox::open(config).await?;
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(SandboxError::Io)?;
    let credentials = sandbox.project_credentials();
    tracing::info!(
        listen = %listener.local_addr().map_err(SandboxError::Io)?,
        base_url = %credentials.base_url,
        client_id = %credentials.client_id,
        "Open Humans sandbox is serving"
    );
    let app = sandbox.router();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(SandboxError::Io)?;
    sandbox.flush().await;
    tracing::info!("Open Humans sandbox stopped");
    Ok(())
}

/// Resolves on the first ctrl-c (SIGINT) or SIGTERM; the standalone sandbox and the ohkit server
/// both stop on it.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::warn!(%error, "cannot listen for ctrl-c");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM");
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
}
