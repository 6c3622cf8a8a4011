//! A live Open Humans sandbox on a loopback port, and a scripted browser that logs a test user
//! in and authorizes the project, so tests get real authorization codes.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::extract::Request;
use axum::middleware::Next;
use sandbox::{ProjectSeed, Sandbox, SandboxConfig};
use server::openhumans::{OhClient, TokenSet};
use server::openhumans_settings::OhSettings;
use url::Url;

/// A sandbox served over HTTP on 127.0.0.1, counting the requests to its token endpoint.
pub struct LiveSandbox {
    pub sandbox: Sandbox,
    pub base_url: Url,
    pub redirect_url: Url,
    token_posts: Arc<AtomicUsize>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for LiveSandbox {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Starts a sandbox with the default configuration.
pub async fn start() -> LiveSandbox {
    start_with(|_| {}).await
}

/// Starts a sandbox after `change` has adjusted its configuration.
pub async fn start_with(change: impl FnOnce(&mut SandboxConfig)) -> LiveSandbox {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
    let port = listener.local_addr().expect("local address").port();
    let base_url = Url::parse(&format!("http://127.0.0.1:{port}/")).expect("base URL");
    let redirect_url =
        Url::parse(&format!("http://127.0.0.1:{port}/app/oauth/callback")).expect("redirect");
    let mut config = SandboxConfig {
        base_url: base_url.clone(),
        database: None,
        project: ProjectSeed {
            redirect_url: Some(redirect_url.to_string()),
            ..ProjectSeed::default()
        },
        ..SandboxConfig::default()
    };
    change(&mut config);
    let sandbox = Sandbox::open(config).await.expect("sandbox opens");
    let token_posts = Arc::new(AtomicUsize::new(0));
    let counter = token_posts.clone();
    let router =
        sandbox.router().layer(axum::middleware::from_fn(move |request: Request, next: Next| {
            let counter = counter.clone();
            async move {
                if request.method() == axum::http::Method::POST
                    && request.uri().path() == "/oauth2/token/"
                {
                    counter.fetch_add(1, Ordering::SeqCst);
                }
                next.run(request).await
            }
        }));
    let server = tokio::spawn(async move {
        axum::serve(listener, router).await.expect("sandbox serves");
    });
    LiveSandbox { sandbox, base_url, redirect_url, token_posts, server }
}

impl LiveSandbox {
    /// ohkit's settings for this sandbox's project.
    pub fn settings(&self) -> OhSettings {
        let credentials = self.sandbox.project_credentials();
        OhSettings {
            base_url: self.base_url.clone(),
            client_id: credentials.client_id,
            client_secret: credentials.client_secret.parse().expect("secret"),
            redirect_url: self.redirect_url.clone(),
        }
    }

    /// A client for this sandbox.
    pub fn client(&self) -> OhClient {
        OhClient::new(&self.settings()).expect("client builds")
    }

    /// How many POSTs reached `/oauth2/token/` so far.
    pub fn token_requests(&self) -> usize {
        self.token_posts.load(Ordering::SeqCst)
    }

    /// Logs `username` in through the sandbox's login form; returns the session cookie.
    pub async fn login(&self, username: &str) -> String {
        let response = browser()
            .post(self.base_url.join("account/login/").expect("URL"))
            .form(&[("username", username)])
            .send()
            .await
            .expect("login answers");
        assert_eq!(response.status(), reqwest::StatusCode::FOUND, "login redirects");
        let cookie = response
            .headers()
            .get(reqwest::header::SET_COOKIE)
            .and_then(|v| v.to_str().ok())
            .expect("login sets a cookie");
        cookie.split(';').next().expect("cookie pair").to_owned()
    }

    /// Authorizes the project as `username` through the consent page, as a browser would;
    /// returns the code and the PKCE verifier that go with it.
    pub async fn authorize(&self, client: &OhClient, username: &str) -> (String, String) {
        let cookie = self.login(username).await;
        let request = client.authorize_url(true);
        let browser = browser();
        let page = browser
            .get(request.url.clone())
            .header(reqwest::header::COOKIE, &cookie)
            .send()
            .await
            .expect("consent page answers");
        assert_eq!(page.status(), reqwest::StatusCode::OK, "consent page is shown");
        let html = page.text().await.expect("consent page body");
        let mut fields = hidden_fields(&html);
        fields.push(("allow".to_owned(), "Authorize project".to_owned()));
        let reply = browser
            .post(request.url.clone())
            .header(reqwest::header::COOKIE, &cookie)
            .form(&fields)
            .send()
            .await
            .expect("consent form answers");
        assert_eq!(reply.status(), reqwest::StatusCode::FOUND, "consent redirects");
        let location = reply
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .expect("redirect location")
            .to_owned();
        let location = Url::parse(&location).expect("absolute redirect");
        assert!(location.as_str().starts_with(self.redirect_url.as_str()));
        let param = |name: &str| {
            location.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
        };
        let state = param("state").expect("state comes back");
        assert!(server::openhumans::state_matches(&request.state, &state));
        (param("code").expect("a code"), request.pkce_verifier)
    }

    /// Authorizes as `username` and exchanges the code.
    pub async fn enroll(&self, client: &OhClient, username: &str) -> TokenSet {
        let (code, verifier) = self.authorize(client, username).await;
        client.exchange_code(&code, &verifier).await.expect("code exchange")
    }
}

/// A client that behaves like a browser without cookies: it never follows redirects.
fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("browser client")
}

/// The hidden inputs of the consent form.
fn hidden_fields(html: &str) -> Vec<(String, String)> {
    html.split("<input type=\"hidden\"")
        .skip(1)
        .filter_map(|chunk| {
            let name = chunk.split("name=\"").nth(1)?.split('"').next()?;
            let value = chunk.split("value=\"").nth(1)?.split('"').next()?;
            Some((name.to_owned(), value.replace("&amp;", "&").replace("&quot;", "\"")))
        })
        .collect()
}
