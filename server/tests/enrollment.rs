//! Enrollment end to end over HTTP: a whole ohkit on the embedded default (the sandbox mounted
//! in-process), driven by a cookie-keeping client the way a browser drives it.

mod common;

use std::sync::Arc;

use common::LiveOhkit;
use reqwest::cookie::{CookieStore, Jar};
use reqwest::redirect::Policy;
use url::Url;

/// A browser: keeps cookies, follows no redirect by itself.
struct Browser {
    client: reqwest::Client,
    jar: Arc<Jar>,
}

/// One answer, read whole.
struct Page {
    status: u16,
    url: Url,
    location: Option<String>,
    body: String,
}

impl Browser {
    fn new() -> Self {
        let jar = Arc::new(Jar::default());
        let client = reqwest::Client::builder()
            .redirect(Policy::none())
            .cookie_provider(jar.clone())
            .build()
            .expect("client");
        Self { client, jar }
    }

    async fn read(response: reqwest::Response) -> Page {
        let status = response.status().as_u16();
        let url = response.url().clone();
        let location = response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        Page { status, url, location, body: response.text().await.expect("body") }
    }

    async fn get(&self, url: &str) -> Page {
        Self::read(self.client.get(url).send().await.expect("GET answers")).await
    }

    async fn post(&self, url: &str, form: &[(String, String)]) -> Page {
        Self::read(self.client.post(url).form(form).send().await.expect("POST answers")).await
    }

    /// Follows redirects from `page` until a page that is not a redirect.
    async fn follow(&self, mut page: Page) -> Page {
        for _ in 0..10 {
            let Some(location) = page.location.clone() else { return page };
            let next = page.url.join(&location).expect("redirect target");
            page = self.get(next.as_str()).await;
        }
        panic!("too many redirects");
    }

    fn session_cookie(&self, base: &str) -> Option<String> {
        let url = Url::parse(base).expect("base URL");
        let header = self.jar.cookies(&url)?;
        header
            .to_str()
            .ok()?
            .split("; ")
            .find_map(|pair| pair.strip_prefix("ohkit_session=").map(str::to_owned))
    }
}

/// The hidden inputs of a form.
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

/// Joins from `/join` as `user`: logs in at the sandbox and authorizes; returns the dashboard.
async fn enroll(ohkit: &LiveOhkit, browser: &Browser, user: &str) -> Page {
    let join = browser.get(&format!("{}/join", ohkit.base)).await;
    assert_eq!(join.status, 303, "/join redirects to Open Humans");
    let authorize = join.url.join(join.location.as_deref().expect("location")).expect("URL");
    assert!(authorize.as_str().contains("code_challenge_method=S256"), "{authorize}");
    assert!(authorize.query_pairs().any(|(k, _)| k == "state"), "{authorize}");

    let mut page = browser.follow(join).await;
    if page.body.contains("name=\"username\"") {
        let login = page.url.join("/oh-sandbox/account/login/").expect("URL");
        let mut form = hidden_fields(&page.body);
        form.push(("username".into(), user.into()));
        page = browser.follow(browser.post(login.as_str(), &form).await).await;
    }
    assert!(page.body.contains("Authorize project"), "consent page: {}", page.body);
    let mut form = hidden_fields(&page.body);
    form.push(("allow".into(), "Authorize project".into()));
    let consent = browser.post(authorize.as_str(), &form).await;
    assert_eq!(consent.status, 302, "consent redirects to the callback");
    let callback_url = consent.location.clone().expect("callback location");
    assert!(callback_url.contains("/oauth/callback?code="), "{callback_url}");

    let before = browser.session_cookie(&ohkit.base);
    let callback = browser.get(&callback_url).await;
    assert_eq!(callback.location.as_deref(), Some("/dashboard"), "{}", callback.body);
    let after = browser.session_cookie(&ohkit.base);
    assert!(after.is_some() && after != before, "the session ID is renewed at sign-in");
    browser.follow(callback).await
}

fn member_id(html: &str) -> String {
    let start = html.find("data-testid=\"project-member-id\">").expect("member ID shown")
        + "data-testid=\"project-member-id\">".len();
    html[start..start + 8].to_owned()
}

#[tokio::test]
async fn a_member_enrolls_and_sees_their_dashboard() {
    let ohkit = LiveOhkit::start().await;
    let browser = Browser::new();
    let dashboard = enroll(&ohkit, &browser, "alice").await;
    assert_eq!(dashboard.status, 200);
    assert_eq!(dashboard.url.path(), "/dashboard");
    let id = member_id(&dashboard.body);
    assert!(id.chars().all(|c| c.is_ascii_digit()), "{id}");
    assert!(dashboard.body.contains(">alice<"), "the shared username is shown");
    assert!(dashboard.body.contains("direct-sharing-102"), "files grouped by source");

    let member = server::members::find(&ohkit.state.db, &id).await.expect("query").expect("row");
    assert!(!member.needs_reauth);
    let token = ohkit.state.tokens.access_token(&id).await.expect("a stored, working token");
    assert!(!dashboard.body.contains(&token), "the token never reaches the page");
    let (raw,): (Option<Vec<u8>>,) =
        sqlx::query_as("SELECT access_token FROM members WHERE project_member_id = $1")
            .bind(&id)
            .fetch_one(ohkit.state.db.pool())
            .await
            .expect("query");
    let raw = raw.expect("an encrypted token is stored");
    assert!(!String::from_utf8_lossy(&raw).contains(&token), "tokens are encrypted at rest");
}

#[tokio::test]
async fn a_member_reaches_only_their_own_files() {
    let ohkit = LiveOhkit::start().await;
    let alice = Browser::new();
    let bob = Browser::new();
    let alice_page = enroll(&ohkit, &alice, "alice").await;
    let bob_page = enroll(&ohkit, &bob, "bob").await;
    let file_ids = |html: &str| -> Vec<String> {
        html.split("href=\"/files/")
            .skip(1)
            .filter_map(|chunk| chunk.split('/').next().map(str::to_owned))
            .collect()
    };
    let bob_files = file_ids(&bob_page.body);
    let alice_files = file_ids(&alice_page.body);
    assert!(!bob_files.is_empty() && !alice_files.is_empty());
    assert!(bob_files.iter().all(|id| !alice_files.contains(id)));

    let own = alice.get(&format!("{}/files/{}/download", ohkit.base, alice_files[0])).await;
    assert_eq!(own.status, 303, "a member's own file redirects to a fresh download URL");
    assert!(own.location.as_deref().unwrap_or_default().contains("key="));
    let other = alice.get(&format!("{}/files/{}/download", ohkit.base, bob_files[0])).await;
    assert_eq!(other.status, 404, "someone else's file is not found");
    assert!(other.body.contains("There is no such file among yours."), "{}", other.body);
    assert!(other.body.contains("href=\"/dashboard\""), "the error page leads back");
    assert!(!alice_page.body.contains(&member_id(&bob_page.body)));

    let anonymous =
        Browser::new().get(&format!("{}/files/{}/download", ohkit.base, alice_files[0])).await;
    assert_eq!(anonymous.status, 303);
    assert_eq!(anonymous.location.as_deref(), Some("/dashboard"));
}

#[tokio::test]
async fn a_plain_form_upload_returns_to_the_dashboard_or_says_what_to_change() {
    let ohkit = LiveOhkit::start().await;
    let browser = Browser::new();
    enroll(&ohkit, &browser, "carmen").await;
    // What a browser without the WASM client posts: the form's fields, in the form's order.
    let upload = |description: &str| {
        let form = reqwest::multipart::Form::new()
            .part(
                "file",
                reqwest::multipart::Part::bytes(b"42 steps".to_vec()).file_name("steps.txt"),
            )
            .text("description", description.to_owned())
            .text("tags", "steps".to_owned());
        browser.client.post(format!("{}/files/upload", ohkit.base)).multipart(form).send()
    };

    let refused = Browser::read(upload("   ").await.expect("POST answers")).await;
    assert_eq!(refused.status, 400);
    assert!(refused.body.contains("Please describe the file."), "{}", refused.body);
    assert!(refused.body.contains("href=\"/dashboard\""), "the error page leads back");
    let dashboard = browser.get(&format!("{}/dashboard", ohkit.base)).await;
    assert!(!dashboard.body.contains("steps.txt"), "nothing was uploaded");

    let accepted = Browser::read(upload("Step count").await.expect("POST answers")).await;
    assert_eq!(accepted.status, 303);
    assert_eq!(accepted.location.as_deref(), Some("/dashboard"));
    let dashboard = browser.get(&format!("{}/dashboard", ohkit.base)).await;
    assert!(dashboard.body.contains("steps.txt"), "the returned file is listed");
}

#[tokio::test]
async fn a_forged_or_replayed_callback_is_refused() {
    let ohkit = LiveOhkit::start().await;
    let browser = Browser::new();
    // No authorization in progress at all.
    let forged = browser.get(&format!("{}/oauth/callback?code=abc&state=xyz", ohkit.base)).await;
    assert_eq!(forged.status, 200);
    assert!(forged.body.contains("does not match your browser session"), "{}", forged.body);

    // An authorization in progress, but the wrong state.
    let join = browser.get(&format!("{}/join", ohkit.base)).await;
    assert_eq!(join.status, 303);
    let wrong = browser.get(&format!("{}/oauth/callback?code=abc&state=wrong", ohkit.base)).await;
    assert!(wrong.body.contains("does not match your browser session"));
    let count: (i64,) = sqlx::query_as("SELECT COUNT(*) FROM members")
        .fetch_one(ohkit.state.db.pool())
        .await
        .expect("query");
    assert_eq!(count.0, 0, "nothing is written");
}

#[tokio::test]
async fn cancelling_on_the_consent_page_is_explained() {
    let ohkit = LiveOhkit::start().await;
    let browser = Browser::new();
    let join = browser.get(&format!("{}/join", ohkit.base)).await;
    let authorize = join.url.join(join.location.as_deref().expect("location")).expect("URL");
    let state = authorize.query_pairs().find(|(k, _)| k == "state").expect("state").1.into_owned();
    let page = browser
        .get(&format!("{}/oauth/callback?error=access_denied&state={state}", ohkit.base))
        .await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("You did not join"), "{}", page.body);
    assert!(page.body.contains("href=\"/join\""));
}

#[tokio::test]
async fn open_humans_unreachable_is_a_clear_page() {
    let ohkit = LiveOhkit::start().await;
    let browser = Browser::new();
    let join = browser.get(&format!("{}/join", ohkit.base)).await;
    let authorize = join.url.join(join.location.as_deref().expect("location")).expect("URL");
    let state = authorize.query_pairs().find(|(k, _)| k == "state").expect("state").1.into_owned();
    // Every token request fails with a 503 from now on.
    ohkit
        .state
        .sandbox
        .as_ref()
        .expect("embedded sandbox")
        .set_faults(sandbox::Faults { error_rate: 1.0, ..sandbox::Faults::default() });
    let page = browser.get(&format!("{}/oauth/callback?code=abc&state={state}", ohkit.base)).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Open Humans is unavailable"), "{}", page.body);
}

#[tokio::test]
async fn a_replayed_code_does_not_sign_anyone_in() {
    let ohkit = LiveOhkit::start().await;
    let browser = Browser::new();
    enroll(&ohkit, &browser, "carmen").await;
    // A second, fresh authorization whose code is then spent twice.
    let other = Browser::new();
    let join = other.get(&format!("{}/join", ohkit.base)).await;
    let page = other.follow(join).await;
    let login = page.url.join("/oh-sandbox/account/login/").expect("URL");
    let page = other
        .follow(other.post(login.as_str(), &[("username".into(), "dmitri".into())]).await)
        .await;
    let mut form = hidden_fields(&page.body);
    form.push(("allow".into(), "Authorize project".into()));
    let consent = other.post(page.url.as_str(), &form).await;
    let callback = consent.location.expect("callback");
    let first = other.get(&callback).await;
    assert_eq!(first.location.as_deref(), Some("/dashboard"));
    let sandbox = ohkit.state.sandbox.as_ref().expect("embedded sandbox");
    let exchanged = sandbox.token_stats().codes_exchanged;
    // The member reloads the callback: back to their dashboard, the spent code is not sent again.
    let reload = other.get(&callback).await;
    assert_eq!(reload.location.as_deref(), Some("/dashboard"));
    assert_eq!(sandbox.token_stats().codes_exchanged, exchanged);
    // Anyone else replaying it is refused with a page, and nothing is exchanged either.
    let stranger = Browser::new();
    let again = stranger.get(&callback).await;
    assert_eq!(again.status, 200, "a replay is refused with a page, not a redirect");
    assert!(again.body.contains("does not match your browser session"));
    assert_eq!(sandbox.token_stats().codes_exchanged, exchanged);
    let dashboard = stranger.get(&format!("{}/dashboard", ohkit.base)).await;
    assert!(dashboard.body.contains("You are not signed in"), "{}", dashboard.body);
}

#[tokio::test]
async fn deleting_my_data_removes_me_even_when_my_token_is_refused() {
    let ohkit = LiveOhkit::start().await;
    let browser = Browser::new();
    let id = member_id(&enroll(&ohkit, &browser, "alice").await.body);
    let token = ohkit.state.tokens.access_token(&id).await.expect("token");
    // As after a refresh whose answer was lost: ohkit can no longer use the member's tokens.
    sqlx::query("UPDATE members SET needs_reauth = 1 WHERE project_member_id = $1")
        .bind(&id)
        .execute(ohkit.state.db.pool())
        .await
        .expect("mark");

    let reply = browser.post(&format!("{}/api/delete-my-data", ohkit.base), &[]).await;
    assert_eq!(reply.location.as_deref(), Some("/?left=1"), "{}", reply.body);
    assert!(server::members::find(&ohkit.state.db, &id).await.expect("query").is_none());
    // The master token removed the member on Open Humans too, which revoked their tokens.
    let after = ohkit.state.oh_client.exchange_member(&token).await;
    assert!(matches!(after, Err(server::openhumans::OhError::InvalidToken)), "{after:?}");
}

#[tokio::test]
async fn a_post_from_another_site_is_refused() {
    let ohkit = LiveOhkit::start().await;
    let browser = Browser::new();
    enroll(&ohkit, &browser, "bob").await;
    let logout = format!("{}/api/logout", ohkit.base);
    let post_logout = |headers: &[(&str, &str)]| {
        let mut request = browser.client.post(&logout).form(&Vec::<(String, String)>::new());
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send()
    };
    let forged =
        post_logout(&[("origin", "https://elsewhere.example")]).await.expect("POST answers");
    assert_eq!(forged.status(), 403);
    let sibling = post_logout(&[("sec-fetch-site", "same-site")]).await.expect("POST answers");
    assert_eq!(sibling.status(), 403);
    let still = browser.get(&format!("{}/dashboard", ohkit.base)).await;
    assert!(still.body.contains("Your membership"), "the member is still signed in");

    let own = post_logout(&[
        ("origin", ohkit.base.trim_end_matches('/')),
        ("sec-fetch-site", "same-origin"),
        ("accept", "text/html"),
    ])
    .await
    .expect("POST answers");
    assert!(own.status().is_redirection(), "{}", own.status());
    let after = browser.get(&format!("{}/dashboard", ohkit.base)).await;
    assert!(after.body.contains("You are not signed in"), "{}", after.body);
}

#[tokio::test]
async fn a_closed_project_is_explained_before_open_humans() {
    let ohkit = LiveOhkit::start().await;
    ohkit.state.sandbox.as_ref().expect("embedded sandbox").set_active(false);
    let browser = Browser::new();
    let join = browser.get(&format!("{}/join", ohkit.base)).await;
    assert_eq!(join.location.as_deref(), Some("/"), "back to the signup page, not to Open Humans");
    let signup = browser.get(&format!("{}/", ohkit.base)).await;
    assert!(
        signup.body.contains("This project is not accepting new members at the moment."),
        "{}",
        signup.body
    );
    assert!(!signup.body.contains("Join with Open Humans"));
}
