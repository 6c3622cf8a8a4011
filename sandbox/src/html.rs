//! The page layout, the one stylesheet, and the browser session (cookie `ohsandbox_session`).

use axum::http::header::{COOKIE, LOCATION, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, PreEscaped, html};

use crate::Sandbox;
use crate::model::{Session, User};

/// Name of the sandbox's session cookie (distinct from any app's cookie).
pub(crate) const SESSION_COOKIE: &str = "ohsandbox_session";

const CSS: &str = r#"
:root { color-scheme: light; --ink: #1d2a33; --muted: #5b6b76; --line: #d5dde2; --accent: #1f6f8b; --warn: #fff4d6; --bad: #a4262c; }
* { box-sizing: border-box; }
body { margin: 0; font: 16px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--ink); background: #f5f7f8; }
header { background: #16313f; color: #fff; padding: .6rem 1.2rem; display: flex; flex-wrap: wrap; gap: 1rem; align-items: center; }
header a { color: #fff; text-decoration: none; }
header .brand { font-weight: 700; margin-right: 1rem; }
header nav { display: flex; flex-wrap: wrap; gap: .9rem; font-size: .95rem; }
header form { margin: 0 0 0 auto; }
main { max-width: 56rem; margin: 1.5rem auto; background: #fff; padding: 1.5rem 2rem; border: 1px solid var(--line); border-radius: 6px; }
h1 { font-size: 1.6rem; margin-top: 0; }
h2 { font-size: 1.2rem; margin-top: 1.6rem; }
a { color: var(--accent); }
.flash { background: #e5f3f8; border: 1px solid #b6dbe8; padding: .6rem .9rem; border-radius: 4px; margin-bottom: 1rem; }
.well { background: #f0f3f5; border: 1px solid var(--line); padding: .8rem 1rem; border-radius: 4px; }
.dev { background: var(--warn); border: 1px solid #e6cf8a; padding: .8rem 1rem; border-radius: 4px; }
.errors, .error { color: var(--bad); }
ul.errors { margin: .2rem 0; padding-left: 1.2rem; }
table { border-collapse: collapse; width: 100%; margin: .5rem 0; }
th, td { text-align: left; border-bottom: 1px solid var(--line); padding: .35rem .5rem; vertical-align: top; }
code, .mono { font-family: ui-monospace, "SFMono-Regular", Menlo, monospace; font-size: .9rem; word-break: break-all; }
.field { margin: .9rem 0; }
.field label { display: block; font-weight: 600; }
.field.check label { display: inline; font-weight: normal; }
.hint { color: var(--muted); font-size: .9rem; }
input[type=text], input[type=email], input[type=url], input[type=password], input[type=number], select, textarea { width: 100%; padding: .4rem .5rem; border: 1px solid #aab8c1; border-radius: 4px; font: inherit; }
textarea { min-height: 6rem; }
button, input[type=submit] { font: inherit; padding: .45rem 1rem; border-radius: 4px; border: 1px solid var(--accent); background: var(--accent); color: #fff; cursor: pointer; }
button.secondary, input[type=submit].secondary { background: #fff; color: var(--accent); }
button.danger { background: var(--bad); border-color: var(--bad); }
.actions { display: flex; gap: .8rem; margin-top: 1.2rem; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: .3rem 1rem; }
dl.facts dt { font-weight: 600; }
dl.facts dd { margin: 0; }
"#;

/// Wraps page content in the common layout.
pub(crate) fn layout(
    sb: &Sandbox,
    title: &str,
    user: Option<&User>,
    flash: &[String],
    content: Markup,
) -> Markup {
    let project = sb.inner.project_id;
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " – Open Humans sandbox" }
                style { (PreEscaped(CSS)) }
            }
            body {
                header {
                    a.brand href=(sb.link("/")) { "Open Humans sandbox" }
                    nav aria-label="Sandbox" {
                        a href=(sb.link("/member/me/data/")) { "My data" }
                        a href=(sb.link("/member/me/messages/")) { "Messages" }
                        a href=(sb.link("/member/me/connections/")) { "Connections" }
                        a href=(sb.link(&format!("/direct-sharing/projects/oauth2/{project}/"))) { "Project" }
                        a href=(sb.link("/sandbox/webhooks/")) { "Webhook log" }
                        a href=(sb.link("/sandbox/switches/")) { "Switches" }
                    }
                    @if let Some(user) = user {
                        form method="post" action=(sb.link("/account/logout/")) {
                            span { "Signed in as " strong { (user.username) } " " }
                            button.secondary type="submit" { "Log out" }
                        }
                    } @else {
                        a href=(sb.link("/account/login/")) { "Log in" }
                    }
                }
                main {
                    @for message in flash {
                        div.flash role="status" { (message) }
                    }
                    (content)
                }
            }
        }
    }
}

/// An HTML response with a status.
pub(crate) fn respond(status: StatusCode, markup: Markup) -> Response {
    (
        status,
        [(axum::http::header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"))],
        markup.into_string(),
    )
        .into_response()
}

/// A 302 redirect.
pub(crate) fn redirect(location: &str) -> Response {
    let mut response = StatusCode::FOUND.into_response();
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(LOCATION, value);
    }
    response
}

/// The session id carried by the request's cookie, if any.
pub(crate) fn session_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.trim().to_owned())
}

/// The visitor's session as the request sees it.
pub(crate) struct Visit {
    pub(crate) user: Option<User>,
    pub(crate) flash: Vec<String>,
}

/// Reads the visitor (and consumes the flash messages).
pub(crate) fn visit(sb: &Sandbox, headers: &HeaderMap) -> Visit {
    let Some(id) = session_id(headers) else {
        return Visit { user: None, flash: Vec::new() };
    };
    let mut state = sb.inner.state.lock();
    let Some(session) = state.sessions.get_mut(&id) else {
        return Visit { user: None, flash: Vec::new() };
    };
    let flash = std::mem::take(&mut session.flash);
    if !flash.is_empty() {
        sb.inner.store.put(&*session);
    }
    let user_id = session.user_id;
    Visit { user: user_id.and_then(|id| state.users.get(&id).cloned()), flash }
}

/// Changes the session (creating one when needed); returns the cookie to set, if new.
pub(crate) fn with_session(
    sb: &Sandbox,
    headers: &HeaderMap,
    change: impl FnOnce(&mut Session),
) -> Option<HeaderValue> {
    let existing = session_id(headers);
    let mut state = sb.inner.state.lock();
    let (id, fresh) = match existing {
        Some(id) if state.sessions.contains_key(&id) => (id, false),
        _ => (crate::util::random_token(40), true),
    };
    let session = state
        .sessions
        .entry(id.clone())
        .or_insert_with(|| Session { id: id.clone(), ..Session::default() });
    change(session);
    sb.inner.store.put(&*session);
    drop(state);
    fresh.then(|| session_cookie(sb, &id)).flatten()
}

fn session_cookie(sb: &Sandbox, id: &str) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={id}; Path={}; HttpOnly; SameSite=Lax",
        sb.inner.cookie_path
    ))
    .ok()
}

/// Adds a `Set-Cookie` header when a session was created.
pub(crate) fn with_cookie(mut response: Response, cookie: Option<HeaderValue>) -> Response {
    if let Some(cookie) = cookie {
        response.headers_mut().append(SET_COOKIE, cookie);
    }
    response
}

/// Redirects to the login page, remembering where to come back to.
pub(crate) fn login_required(sb: &Sandbox, headers: &HeaderMap, next: &str) -> Response {
    let cookie = with_session(sb, headers, |s| s.next_url = Some(next.to_owned()));
    with_cookie(redirect(&sb.link("/account/login/")), cookie)
}

/// A simple error page.
pub(crate) fn error_page(
    sb: &Sandbox,
    status: StatusCode,
    title: &str,
    detail: &str,
    user: Option<&User>,
) -> Response {
    respond(
        status,
        layout(
            sb,
            title,
            user,
            &[],
            html! {
                h1 { (title) }
                p.error { (detail) }
            },
        ),
    )
}
