//! The OAuth2 provider: the consent page at `/direct-sharing/projects/oauth2/authorize/`
//! (§2.2, §7.1, §7.3) and the token endpoint `/oauth2/token/` (§2.3–§2.5).

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::header::{AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, PRAGMA, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use maud::html;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::Sandbox;
use crate::html::{
    error_page, layout, login_required, redirect, respond, visit, with_cookie, with_session,
};
use crate::model::{AccessToken, Grant, Member, Project, RefreshToken, State as Db, User};
use crate::util::{
    digest, py_json_object, py_json_str, query_escape, random_digits, random_token, secret_eq,
};

/// The platform's scopes, in its dictionary order (also the default scope).
pub(crate) const SCOPES: [&str; 7] =
    ["read", "write", "american-gut", "go-viral", "pgp", "wildlife", "open-humans"];

const CODE_LIFETIME: time::Duration = time::Duration::seconds(1800);
const ALLOWED_SCHEMES: [&str; 4] = ["http", "https", "openhumanshk", "resilienceproject"];

fn params(query: Option<&str>) -> HashMap<String, String> {
    url::form_urlencoded::parse(query.unwrap_or("").as_bytes()).into_owned().collect()
}

/// Splits a URI into (scheme, netloc, path, query) the way Python's `urlparse` does.
fn split_uri(uri: &str) -> Option<(&str, &str, &str, &str)> {
    let (scheme, rest) = uri.split_once("://")?;
    let rest = rest.split('#').next().unwrap_or("");
    let netloc_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (netloc, after) = rest.split_at(netloc_end);
    let (path, query) = after.split_once('?').unwrap_or((after, ""));
    Some((scheme, netloc, path, query))
}

fn hostname(netloc: &str) -> String {
    let host = netloc.rsplit('@').next().unwrap_or(netloc);
    let host = if let Some(v6) = host.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        host.split(':').next().unwrap_or("")
    };
    host.to_ascii_lowercase()
}

fn has_port(netloc: &str) -> bool {
    let host = netloc.rsplit('@').next().unwrap_or(netloc);
    match host.rsplit_once(']') {
        Some((_, tail)) => tail.starts_with(':'),
        None => host.contains(':'),
    }
}

/// DOT's `redirect_to_uri_allowed` (§2.2 step 3).
pub(crate) fn redirect_allowed(uri: &str, registered: &str) -> bool {
    let Some((scheme, netloc, path, query)) = split_uri(uri) else {
        return false;
    };
    registered.split_whitespace().any(|allowed| {
        let Some((a_scheme, a_netloc, a_path, a_query)) = split_uri(allowed) else {
            return false;
        };
        let a_host = hostname(a_netloc);
        let loopback =
            a_scheme == "http" && (a_host == "127.0.0.1" || a_host == "::1") && !has_port(a_netloc);
        let same_place =
            (loopback && a_scheme == scheme && a_host == hostname(netloc) && a_path == path)
                || (a_scheme == scheme && a_netloc == netloc && a_path == path);
        if !same_place {
            return false;
        }
        let request_query: Vec<(String, String)> =
            url::form_urlencoded::parse(query.as_bytes()).into_owned().collect();
        url::form_urlencoded::parse(a_query.as_bytes())
            .into_owned()
            .all(|pair| request_query.contains(&pair))
    })
}

/// Appends query parameters to a redirect URI.
fn add_params(uri: &str, pairs: &[(&str, &str)]) -> String {
    let (base, fragment) = match uri.split_once('#') {
        Some((b, f)) => (b, Some(f)),
        None => (uri, None),
    };
    let mut out = base.to_owned();
    let encoded: Vec<String> =
        pairs.iter().map(|(k, v)| format!("{k}={}", query_escape(v))).collect();
    if !encoded.is_empty() {
        out.push(if base.contains('?') { '&' } else { '?' });
        out.push_str(&encoded.join("&"));
    }
    if let Some(fragment) = fragment {
        out.push('#');
        out.push_str(fragment);
    }
    out
}

/// A validated authorization request.
#[derive(Debug, Clone)]
struct AuthzRequest {
    client_id: String,
    redirect_uri: String,
    state: Option<String>,
    scope: String,
    response_type: String,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
}

enum AuthzError {
    /// Shown on an error page, never redirected.
    Fatal(&'static str),
    /// Redirected to the client with `error=…`.
    Redirect(String),
}

fn error_redirect(
    redirect_uri: &str,
    error: &str,
    description: Option<&str>,
    state: Option<&str>,
) -> String {
    let mut pairs = vec![("error", error)];
    if let Some(d) = description {
        pairs.push(("error_description", d));
    }
    if let Some(s) = state {
        pairs.push(("state", s));
    }
    add_params(redirect_uri, &pairs)
}

fn validate(project: &Project, p: &HashMap<String, String>) -> Result<AuthzRequest, AuthzError> {
    let registered = project.redirect_url.trim();
    let redirect_uri = match p.get("redirect_uri").filter(|v| !v.is_empty()) {
        Some(uri) => {
            let scheme_ok = split_uri(uri).is_some_and(|(scheme, netloc, ..)| {
                ALLOWED_SCHEMES.contains(&scheme) && !netloc.is_empty()
            });
            if !scheme_ok {
                return Err(AuthzError::Fatal("Invalid redirect URI."));
            }
            if !redirect_allowed(uri, registered) {
                return Err(AuthzError::Fatal("Mismatching redirect URI."));
            }
            uri.clone()
        }
        None => match registered.split_whitespace().next() {
            Some(default) => default.to_owned(),
            None => return Err(AuthzError::Fatal("Missing redirect URI.")),
        },
    };
    let state = p.get("state").cloned();
    let fail = |error: &str, description: Option<&str>| {
        AuthzError::Redirect(error_redirect(&redirect_uri, error, description, state.as_deref()))
    };
    let response_type = match p.get("response_type").map(String::as_str) {
        None | Some("") => {
            return Err(fail("invalid_request", Some("Missing response_type parameter.")));
        }
        Some("code") => "code".to_owned(),
        Some(_) => return Err(fail("unsupported_response_type", None)),
    };
    let scope = match p.get("scope").map(|s| s.split_whitespace().collect::<Vec<_>>()) {
        None => SCOPES.join(" "),
        Some(words) if words.is_empty() => SCOPES.join(" "),
        Some(words) => {
            if words.iter().any(|w| !SCOPES.contains(w)) {
                return Err(fail("invalid_scope", None));
            }
            words.join(" ")
        }
    };
    let code_challenge = p.get("code_challenge").filter(|c| !c.is_empty()).cloned();
    let code_challenge_method = match (&code_challenge, p.get("code_challenge_method")) {
        (None, _) => None,
        (Some(_), None) => Some("plain".to_owned()),
        (Some(_), Some(m)) if m == "plain" || m == "S256" => Some(m.clone()),
        (Some(_), Some(_)) => {
            return Err(fail("invalid_request", Some("Transform algorithm not supported.")));
        }
    };
    Ok(AuthzRequest {
        client_id: p.get("client_id").cloned().unwrap_or_default(),
        redirect_uri,
        state,
        scope,
        response_type,
        code_challenge,
        code_challenge_method,
    })
}

fn scope_covers(held: &str, wanted: &str) -> bool {
    let held: Vec<&str> = held.split_whitespace().collect();
    wanted.split_whitespace().all(|w| held.contains(&w))
}

/// Issues a code and returns the client redirect (`code`, `state`, `origin=external`).
fn issue_code(
    sb: &Sandbox,
    db: &mut Db,
    user_id: i64,
    project_id: i64,
    req: &AuthzRequest,
    origin: &str,
) -> String {
    let code = random_token(30);
    let grant = Grant {
        digest: digest(&code),
        user_id,
        project_id,
        redirect_uri: req.redirect_uri.clone(),
        scope: req.scope.clone(),
        expires: sb.now() + CODE_LIFETIME,
        code_challenge: req.code_challenge.clone(),
        code_challenge_method: req.code_challenge_method.clone(),
    };
    sb.inner.store.put(&grant);
    db.grants.insert(grant.digest.clone(), grant);
    let mut pairs = vec![("code", code.as_str())];
    if let Some(state) = &req.state {
        pairs.push(("state", state.as_str()));
    }
    pairs.push(("origin", origin));
    add_params(&req.redirect_uri, &pairs)
}

/// Gets (or creates, with a fresh unique 8-digit id) the member row of (user, project).
fn ensure_member(sb: &Sandbox, db: &mut Db, user_id: i64, project_id: i64) -> Member {
    if let Some(member) = db.member_of(user_id, project_id) {
        return member.clone();
    }
    let mut pmid = random_digits(8);
    while db.members.values().any(|m| m.project_member_id == pmid) {
        pmid = random_digits(8);
    }
    let member = Member {
        pk: Db::next_id(&db.members, 1),
        user_id,
        project_id,
        project_member_id: pmid,
        created: sb.now(),
        joined: false,
        authorized: false,
        revoked: false,
        username_shared: false,
        all_sources_shared: false,
        visible: true,
        erasure_requested: None,
        granted_sources: Vec::new(),
        authorizations: Vec::new(),
    };
    sb.inner.store.put(&member);
    db.members.insert(member.pk, member.clone());
    member
}

fn origin_of(p: &HashMap<String, String>) -> &'static str {
    if p.get("origin").is_some_and(|o| o == "open-humans") { "open-humans" } else { "external" }
}

/// `GET /direct-sharing/projects/oauth2/authorize/`.
pub(crate) async fn authorize_get(
    State(sb): State<Sandbox>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let p = params(query.as_deref());
    let client_id = p.get("client_id").cloned().unwrap_or_default();
    let project = sb.inner.state.lock().project_by_client(&client_id).cloned();
    let Some(project) = project else {
        return error_page(
            &sb,
            StatusCode::NOT_FOUND,
            "Not found",
            "The requested page was not found.",
            None,
        );
    };
    if !project.active {
        return redirect(&sb.link("/direct-sharing/authorize-inactive/"));
    }
    let here = match &query {
        Some(q) => format!("{}?{q}", sb.link("/direct-sharing/projects/oauth2/authorize/")),
        None => sb.link("/direct-sharing/projects/oauth2/authorize/"),
    };
    let visit = visit(&sb, &headers);
    let Some(user) = visit.user else {
        let note =
            format!("Please log in or sign up to Open Humans to authorize \"{}\"", project.name);
        let cookie = with_session(&sb, &headers, |s| {
            s.flash.push(note);
            s.next_url = Some(here.clone());
        });
        return with_cookie(redirect(&sb.link("/account/login/")), cookie);
    };
    let req = match validate(&project, &p) {
        Ok(req) => req,
        Err(AuthzError::Fatal(description)) => {
            return error_page(
                &sb,
                StatusCode::BAD_REQUEST,
                "Authorization error",
                &format!("invalid_request: {description}"),
                Some(&user),
            );
        }
        Err(AuthzError::Redirect(to)) => return redirect(&to),
    };
    if let Some(response) = member_cap_redirect(&sb, &headers, &project) {
        return response;
    }
    let mut db = sb.inner.state.lock();
    let prompt = p.get("approval_prompt").map(String::as_str).unwrap_or("auto");
    if prompt == "auto" {
        let now = sb.now();
        let holds_token = db.access.values().any(|t| {
            t.user_id == user.id
                && t.project_id == project.id
                && t.expires > now
                && scope_covers(&t.scope, &req.scope)
        });
        if holds_token {
            // The platform skips the page here without refreshing the permission snapshot.
            let to = issue_code(&sb, &mut db, user.id, project.id, &req, origin_of(&p));
            return redirect(&to);
        }
    }
    let member = ensure_member(&sb, &mut db, user.id, project.id);
    let sources: Vec<(Project, bool)> = project
        .requested_sources
        .iter()
        .filter_map(|id| db.projects.get(id))
        .map(|source| {
            let connected =
                db.files.values().any(|f| f.user_id == user.id && f.source_project_id == source.id);
            (source.clone(), connected)
        })
        .collect();
    drop(db);
    let page = consent_page(&sb, &project, &user, &member, &sources, &req, &here, &visit.flash);
    respond(StatusCode::OK, page)
}

/// The 20-member cap of unapproved projects, when the switch is on: the platform checks it in
/// the consent view's `dispatch`, so for GET and POST alike, and sends the member to their data
/// page with a message. `None` when the consent request may go on.
fn member_cap_redirect(sb: &Sandbox, headers: &HeaderMap, project: &Project) -> Option<Response> {
    if !sb.inner.switches.read().enforce_member_cap || project.approved {
        return None;
    }
    if sb.inner.state.lock().authorized_members(project.id) <= 20 {
        return None;
    }
    let note = format!(
        "Sorry, \"{}\" has not been approved and has exceeded the 20 member limit for unapproved projects.",
        project.name
    );
    let cookie = with_session(sb, headers, |s| s.flash.push(note));
    Some(with_cookie(redirect(&sb.link("/member/me/data/")), cookie))
}

#[allow(clippy::too_many_arguments)]
fn consent_page(
    sb: &Sandbox,
    project: &Project,
    user: &User,
    member: &Member,
    sources: &[(Project, bool)],
    req: &AuthzRequest,
    action: &str,
    flash: &[String],
) -> maud::Markup {
    let title = format!("Authorize '{}'", project.name);
    let content = html! {
        h1 { (title) }
        @if !project.approved {
            div.dev role="note" {
                strong { "This project is in development." }
                " It has not been reviewed and approved by the Open Humans community. "
                "Unapproved projects are limited to a small number of test members."
            }
        }
        @if member.authorized {
            div.well {
                strong { "Project previously authorized." }
                " You have previously authorized this project. The permissions requested by this \
                  project may have changed since you authorized. If you authorize again your \
                  permissions will be updated."
            }
        }
        section aria-label="About the project" {
            @if let Some(badge) = &project.badge_image {
                img src=(badge) alt=(format!("{} badge", project.name)) width="96" height="96";
            }
            dl.facts {
                dt { "Leader" } dd { (project.leader) }
                dt { "Organization" } dd { (project.organization) }
                dt { "Contact address" } dd { a href=(format!("mailto:{}", project.contact_email)) { (project.contact_email) } }
            }
            p { (project.short_description) }
        }
        h2 { "\"" (project.name) "\" is requesting these permissions:" }
        ul.permissions {
            @if project.request_username_access {
                li {
                    strong { "Access to your Open Humans username, \"" (user.username) "\"." }
                    " The project can see any data you have made public on Open Humans."
                }
            }
            li {
                strong { "Permission to send you messages." }
                " The project can send you emails through Open Humans; your email address will not be shared."
            }
            @if project.all_sources_access {
                li { strong { "Access to all data sources." } }
            } @else if !sources.is_empty() {
                li {
                    strong { "Access to data from these sources:" }
                    table {
                        thead { tr { th scope="col" { "Source" } th scope="col" { "Status" } } }
                        tbody {
                            @for (source, connected) in sources {
                                tr {
                                    td { (source.name) }
                                    td {
                                        @if *connected { "Connected" }
                                        @else { a href=(sb.link(&format!("/activity/{}/", source.slug))) { "Connect " (source.name) } }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            li {
                strong { "Authorization for adding data." }
                @if project.returned_data_description.is_empty() {
                    " Permission to return data via Open Humans. This project does not currently plan to add data."
                } @else {
                    " " (project.returned_data_description)
                }
            }
        }
        form method="post" action=(action) {
            input type="hidden" name="client_id" value=(req.client_id);
            input type="hidden" name="redirect_uri" value=(req.redirect_uri);
            input type="hidden" name="response_type" value=(req.response_type);
            input type="hidden" name="scope" value=(req.scope);
            @if let Some(state) = &req.state { input type="hidden" name="state" value=(state); }
            @if let Some(c) = &req.code_challenge { input type="hidden" name="code_challenge" value=(c); }
            @if let Some(m) = &req.code_challenge_method { input type="hidden" name="code_challenge_method" value=(m); }
            div.field.check {
                input type="checkbox" id="hide-membership" name="hide-membership";
                " "
                label for="hide-membership" { "Hide membership" }
                div.hint { "The project's badge will not appear on your public profile." }
            }
            div.actions {
                button type="submit" name="allow" value="Authorize project" { "Authorize project" }
                button.secondary type="submit" name="cancel" value="Cancel" { "Cancel" }
            }
        }
    };
    layout(sb, &title, Some(user), flash, content)
}

/// `POST /direct-sharing/projects/oauth2/authorize/`: Authorize or Cancel.
pub(crate) async fn authorize_post(
    State(sb): State<Sandbox>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let mut p = params(query.as_deref());
    p.extend(url::form_urlencoded::parse(&body).into_owned());
    let client_id = p.get("client_id").cloned().unwrap_or_default();
    let project = sb.inner.state.lock().project_by_client(&client_id).cloned();
    let Some(project) = project else {
        return error_page(
            &sb,
            StatusCode::NOT_FOUND,
            "Not found",
            "The requested page was not found.",
            None,
        );
    };
    if !project.active {
        return redirect(&sb.link("/direct-sharing/authorize-inactive/"));
    }
    let visit = visit(&sb, &headers);
    let Some(user) = visit.user else {
        let here = format!(
            "{}?{}",
            sb.link("/direct-sharing/projects/oauth2/authorize/"),
            query.unwrap_or_default()
        );
        return login_required(&sb, &headers, &here);
    };
    let req = match validate(&project, &p) {
        Ok(req) => req,
        Err(AuthzError::Fatal(description)) => {
            return error_page(
                &sb,
                StatusCode::BAD_REQUEST,
                "Authorization error",
                &format!("invalid_request: {description}"),
                Some(&user),
            );
        }
        Err(AuthzError::Redirect(to)) => return redirect(&to),
    };
    if let Some(response) = member_cap_redirect(&sb, &headers, &project) {
        return response;
    }
    if !p.contains_key("allow") {
        return redirect(&error_redirect(
            &req.redirect_uri,
            "access_denied",
            None,
            req.state.as_deref(),
        ));
    }
    let hidden = p.contains_key("hide-membership");
    let mut db = sb.inner.state.lock();
    let member = ensure_member(&sb, &mut db, user.id, project.id);
    if let Some(row) = db.members.get_mut(&member.pk) {
        row.joined = true;
        row.authorized = true;
        row.revoked = false;
        row.username_shared = project.request_username_access;
        row.all_sources_shared = project.all_sources_access;
        row.visible = !hidden;
        row.erasure_requested = None;
        row.granted_sources = project.requested_sources.clone();
        row.authorizations.push(crate::util::drf_datetime(sb.now()));
        sb.inner.store.put(&*row);
    }
    let to = issue_code(&sb, &mut db, user.id, project.id, &req, origin_of(&p));
    drop(db);
    redirect(&to)
}

/// A token-endpoint response: Python-style JSON with the no-store headers.
fn token_response(
    status: StatusCode,
    body: String,
    extra: Option<(&'static str, &'static str)>,
) -> Response {
    let mut response = (status, body).into_response();
    let h = response.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(PRAGMA, HeaderValue::from_static("no-cache"));
    if let Some((_, value)) = extra {
        h.insert(WWW_AUTHENTICATE, HeaderValue::from_static(value));
    }
    response
}

fn oauth_error(error: &str, description: Option<&str>) -> Response {
    let mut pairs = vec![("error", error)];
    if let Some(d) = description {
        pairs.push(("error_description", d));
    }
    if error == "invalid_client" {
        return token_response(
            StatusCode::UNAUTHORIZED,
            py_json_object(&pairs),
            Some(("www-authenticate", "Bearer error=\"invalid_client\"")),
        );
    }
    token_response(StatusCode::BAD_REQUEST, py_json_object(&pairs), None)
}

fn unquote_plus(s: &str) -> String {
    let spaced = s.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced).decode_utf8_lossy().into_owned()
}

/// DOT's `authenticate_client`: HTTP Basic first, then the body fields.
fn authenticate_client(
    db: &Db,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Option<i64> {
    let check = |id: &str, secret: &str| {
        db.project_by_client(id).and_then(|p| {
            let oauth = p.oauth.as_ref()?;
            secret_eq(&oauth.client_secret, secret).then_some(p.id)
        })
    };
    let basic = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, value) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("basic").then_some(value.trim())
        })
        .and_then(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok())
        .and_then(|raw| String::from_utf8(raw).ok())
        .and_then(|text| {
            let (id, secret) = text.split_once(':')?;
            check(&unquote_plus(id), &unquote_plus(secret))
        });
    basic.or_else(|| {
        let id = form.get("client_id")?;
        let secret = form.get("client_secret")?;
        check(id, secret)
    })
}

fn pkce_ok(grant: &Grant, verifier: &str) -> bool {
    let Some(challenge) = &grant.code_challenge else {
        return true;
    };
    match grant.code_challenge_method.as_deref() {
        Some("S256") => {
            let hashed = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(Sha256::digest(verifier.as_bytes()));
            secret_eq(&hashed, challenge)
        }
        _ => secret_eq(verifier, challenge),
    }
}

/// Creates an access/refresh token pair and returns the response body.
fn issue_tokens(
    sb: &Sandbox,
    db: &mut Db,
    user_id: i64,
    project_id: i64,
    scope: &str,
    now: OffsetDateTime,
) -> String {
    let lifetime = sb.inner.switches.read().access_token_lifetime;
    let access = random_token(30);
    let refresh = random_token(30);
    let access_row = AccessToken {
        digest: digest(&access),
        user_id,
        project_id,
        expires: now + lifetime,
        scope: scope.to_owned(),
        refresh_digest: digest(&refresh),
    };
    let refresh_row = RefreshToken {
        digest: access_row.refresh_digest.clone(),
        user_id,
        project_id,
        access_digest: access_row.digest.clone(),
        scope: scope.to_owned(),
    };
    sb.inner.store.put(&access_row);
    sb.inner.store.put(&refresh_row);
    db.access.insert(access_row.digest.clone(), access_row);
    db.refresh.insert(refresh_row.digest.clone(), refresh_row);
    format!(
        "{{\"access_token\": {}, \"expires_in\": {}, \"token_type\": \"Bearer\", \"scope\": {}, \"refresh_token\": {}}}",
        py_json_str(&access),
        lifetime.as_secs(),
        py_json_str(scope),
        py_json_str(&refresh)
    )
}

/// `POST /oauth2/token/`.
pub(crate) async fn token(State(sb): State<Sandbox>, headers: HeaderMap, body: Bytes) -> Response {
    let is_form = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("application/x-www-form-urlencoded"));
    let form: HashMap<String, String> = if is_form {
        url::form_urlencoded::parse(&body).into_owned().collect()
    } else {
        HashMap::new()
    };
    let now = sb.now();
    match form.get("grant_type").map(String::as_str) {
        Some("authorization_code") => {
            let Some(code) = form.get("code") else {
                return oauth_error("invalid_request", Some("Missing code parameter."));
            };
            let mut db = sb.inner.state.lock();
            let Some(project_id) = authenticate_client(&db, &headers, &form) else {
                return oauth_error("invalid_client", None);
            };
            let key = digest(code);
            let grant = match db.grants.get(&key) {
                Some(g) if g.project_id == project_id && g.expires > now => g.clone(),
                _ => return oauth_error("invalid_grant", None),
            };
            if grant.code_challenge.is_some() {
                match form.get("code_verifier") {
                    None => {
                        return oauth_error("invalid_request", Some("Code verifier required."));
                    }
                    Some(v) if !pkce_ok(&grant, v) => return oauth_error("invalid_grant", None),
                    Some(_) => {}
                }
            }
            let redirect_uri = match form.get("redirect_uri") {
                Some(uri) => uri.clone(),
                None => db
                    .projects
                    .get(&project_id)
                    .and_then(|p| p.redirect_url.split_whitespace().next().map(str::to_owned))
                    .unwrap_or_default(),
            };
            if redirect_uri != grant.redirect_uri {
                return oauth_error("invalid_request", Some("Mismatching redirect URI."));
            }
            db.grants.remove(&key);
            sb.inner.store.delete::<Grant>(key);
            let body = issue_tokens(&sb, &mut db, grant.user_id, project_id, &grant.scope, now);
            drop(db);
            sb.inner.grants.codes_exchanged.fetch_add(1, Ordering::Relaxed);
            token_response(StatusCode::OK, body, None)
        }
        Some("refresh_token") => {
            let Some(refresh) = form.get("refresh_token") else {
                return oauth_error("invalid_request", Some("Missing refresh token parameter."));
            };
            let drop_response = sb.inner.switches.read().faults.drop_refresh_response;
            let mut db = sb.inner.state.lock();
            let Some(project_id) = authenticate_client(&db, &headers, &form) else {
                return oauth_error("invalid_client", None);
            };
            let key = digest(refresh);
            let old = match db.refresh.get(&key) {
                Some(r) if r.project_id == project_id => r.clone(),
                _ => return oauth_error("invalid_grant", None),
            };
            let scope = match form.get("scope") {
                Some(requested) if !requested.trim().is_empty() => {
                    if !scope_covers(&old.scope, requested) {
                        return oauth_error("invalid_scope", None);
                    }
                    requested.split_whitespace().collect::<Vec<_>>().join(" ")
                }
                _ => old.scope.clone(),
            };
            db.refresh.remove(&key);
            sb.inner.store.delete::<RefreshToken>(key);
            if db.access.remove(&old.access_digest).is_some() {
                sb.inner.store.delete::<AccessToken>(old.access_digest.clone());
            }
            let body = issue_tokens(&sb, &mut db, old.user_id, project_id, &scope, now);
            drop(db);
            sb.inner.grants.refreshes.fetch_add(1, Ordering::Relaxed);
            if drop_response {
                return (StatusCode::BAD_GATEWAY, "Bad Gateway").into_response();
            }
            token_response(StatusCode::OK, body, None)
        }
        _ => oauth_error("unsupported_grant_type", None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_rules() {
        let reg = "https://app.example.org/oh/complete/?x=1";
        assert!(redirect_allowed("https://app.example.org/oh/complete/?x=1&y=2", reg));
        assert!(!redirect_allowed("https://app.example.org/oh/complete/", reg));
        assert!(!redirect_allowed("https://app.example.org/oh/other/?x=1", reg));
        assert!(!redirect_allowed("https://app.example.org:8443/oh/complete/?x=1", reg));
        let loopback = "http://127.0.0.1/cb";
        assert!(redirect_allowed("http://127.0.0.1:53111/cb", loopback));
        assert!(!redirect_allowed("http://127.0.0.1:53111/other", loopback));
        assert!(!redirect_allowed("http://127.0.0.1:9/cb", "http://127.0.0.1:8000/cb"));
        assert!(redirect_allowed("http://127.0.0.1:8000/cb", "http://127.0.0.1:8000/cb"));
    }

    #[test]
    fn params_are_appended() {
        assert_eq!(add_params("https://a/b?c=d", &[("code", "x y")]), "https://a/b?c=d&code=x+y");
        assert_eq!(
            add_params("https://a/b", &[("error", "access_denied")]),
            "https://a/b?error=access_denied"
        );
    }
}
