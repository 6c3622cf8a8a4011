//! Helpers shared by the sandbox's integration tests: an in-memory sandbox, requests through
//! the router, a logged-in browser session and the authorization-code dance.

#![allow(dead_code)]

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use sandbox::{Sandbox, SandboxConfig};
use tower::ServiceExt;

pub const BASE: &str = "http://sandbox.test/oh";
pub const REDIRECT: &str = "http://127.0.0.1:3000/openhumans/complete/";

/// A finished response with its body.
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    pub fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .map(|v| v.to_str().expect("ASCII header").to_owned())
            .unwrap_or_default()
    }

    pub fn location(&self) -> String {
        self.header("location")
    }
}

pub struct Env {
    pub sandbox: Sandbox,
    pub router: Router,
}

pub async fn env() -> Env {
    env_with(|_| {}).await
}

pub async fn env_with(change: impl FnOnce(&mut SandboxConfig)) -> Env {
    let mut config = SandboxConfig {
        base_url: url::Url::parse(BASE).expect("test base URL"),
        ..SandboxConfig::default()
    };
    change(&mut config);
    let sandbox = Sandbox::open(config).await.expect("sandbox opens");
    let router = sandbox.router();
    Env { sandbox, router }
}

impl Env {
    pub async fn send(&self, request: Request<Body>) -> Reply {
        let response = self.router.clone().oneshot(request).await.expect("router answers");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes =
            axum::body::to_bytes(response.into_body(), usize::MAX).await.expect("body reads");
        Reply { status, headers, body: String::from_utf8_lossy(&bytes).into_owned() }
    }

    pub async fn get(&self, path: &str, cookie: Option<&str>) -> Reply {
        let mut builder = Request::get(path);
        if let Some(cookie) = cookie {
            builder = builder.header(header::COOKIE, cookie);
        }
        self.send(builder.body(Body::empty()).expect("request")).await
    }

    pub async fn post_form(
        &self,
        path: &str,
        cookie: Option<&str>,
        pairs: &[(&str, &str)],
    ) -> Reply {
        let body =
            url::form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish();
        let mut builder =
            Request::post(path).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        if let Some(cookie) = cookie {
            builder = builder.header(header::COOKIE, cookie);
        }
        self.send(builder.body(Body::from(body)).expect("request")).await
    }

    /// Logs a test user in and returns the cookie pair.
    pub async fn login(&self, username: &str) -> String {
        let reply = self.post_form("/account/login/", None, &[("username", username)]).await;
        assert_eq!(reply.status, StatusCode::FOUND, "login redirects");
        let set_cookie = reply.header("set-cookie");
        set_cookie.split(';').next().expect("cookie pair").to_owned()
    }

    pub fn client_id(&self) -> String {
        self.sandbox.project_credentials().client_id
    }

    pub fn client_secret(&self) -> String {
        self.sandbox.project_credentials().client_secret
    }

    pub fn master(&self) -> String {
        self.sandbox.project_credentials().master_access_token
    }

    pub fn authorize_path(&self, extra: &str) -> String {
        format!(
            "/direct-sharing/projects/oauth2/authorize/?client_id={}&response_type=code{extra}",
            self.client_id()
        )
    }

    /// Views the consent page and clicks "Authorize project"; returns the redirect URL.
    pub async fn authorize(&self, cookie: &str, extra: &str) -> String {
        let path = self.authorize_path(extra);
        let page = self.get(&path, Some(cookie)).await;
        assert_eq!(page.status, StatusCode::OK, "consent page: {}", page.body);
        let mut pairs: Vec<(String, String)> = hidden_fields(&page.body);
        pairs.push(("allow".into(), "Authorize project".into()));
        let refs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let reply = self.post_form(&path, Some(cookie), &refs).await;
        assert_eq!(reply.status, StatusCode::FOUND, "authorize: {}", reply.body);
        reply.location()
    }

    pub async fn token(&self, pairs: &[(&str, &str)]) -> Reply {
        let id = self.client_id();
        let secret = self.client_secret();
        let mut all: Vec<(&str, &str)> = vec![("client_id", &id), ("client_secret", &secret)];
        all.extend_from_slice(pairs);
        self.post_form("/oauth2/token/", None, &all).await
    }

    /// Logs in, authorizes and exchanges the code; returns (access, refresh).
    pub async fn enroll(&self, username: &str) -> (String, String) {
        let cookie = self.login(username).await;
        let location = self.authorize(&cookie, "").await;
        let code = query_param(&location, "code").expect("code in redirect");
        let reply = self
            .token(&[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT),
            ])
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        let json = reply.json();
        (
            json["access_token"].as_str().expect("access").to_owned(),
            json["refresh_token"].as_str().expect("refresh").to_owned(),
        )
    }

    pub async fn api_get(&self, path: &str, token: &str) -> Reply {
        let sep = if path.contains('?') { '&' } else { '?' };
        self.get(&format!("{path}{sep}access_token={token}"), None).await
    }

    pub async fn api_post(&self, path: &str, token: &str, pairs: &[(&str, &str)]) -> Reply {
        self.post_form(&format!("{path}?access_token={token}"), None, pairs).await
    }

    /// POSTs a JSON body to an API path, with the token in the query string.
    pub async fn api_post_json(&self, path: &str, token: &str, body: &serde_json::Value) -> Reply {
        self.send(
            Request::post(format!("{path}?access_token={token}"))
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body.to_string()))
                .expect("request"),
        )
        .await
    }
}

/// The hidden inputs of the consent form.
pub fn hidden_fields(html: &str) -> Vec<(String, String)> {
    html.split("<input type=\"hidden\"")
        .skip(1)
        .filter_map(|chunk| {
            let name = chunk.split("name=\"").nth(1)?.split('"').next()?;
            let value = chunk.split("value=\"").nth(1)?.split('"').next()?;
            Some((name.to_owned(), value.replace("&amp;", "&").replace("&quot;", "\"")))
        })
        .collect()
}

pub fn query_param(url: &str, name: &str) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    parsed.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}
