//! The platform's HTML pages, as plain forms that work without JavaScript: test-user login,
//! a member's data, inbox and connections, the withdraw page, the coordinator's project
//! settings and credentials, the webhook delivery log and the sandbox switches.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};

use crate::Sandbox;
use crate::html::{
    error_page, layout, login_required, redirect, respond, visit, with_cookie, with_session,
};
use crate::model::{Project, State as Db, User};
use crate::util::{Fields, drf_datetime};

/// Django's `slugify`, close enough for project names.
pub(crate) fn slugify(name: &str) -> String {
    let mut out = String::new();
    for c in name.to_lowercase().chars() {
        if c.is_alphanumeric() {
            out.push(c);
        } else if (c.is_whitespace() || c == '-') && !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    out.trim_end_matches('-').to_owned()
}

/// A file row of the data page: name, link, size, created, description.
type FileRow = (String, String, u64, String, String);

fn form(body: &Bytes) -> Fields {
    Fields::from_urlencoded(body)
}

/// `GET /`: the sandbox's start page.
pub(crate) async fn index(State(sb): State<Sandbox>, headers: HeaderMap) -> Response {
    let v = visit(&sb, &headers);
    let creds = sb.project_credentials();
    let (users, project) = {
        let db = sb.inner.state.lock();
        (
            db.users.values().cloned().collect::<Vec<_>>(),
            db.projects.get(&sb.inner.project_id).cloned(),
        )
    };
    let content = html! {
        h1 { "Open Humans sandbox" }
        p { "A local stand-in for the Open Humans platform: OAuth2 consent, tokens, the project API, files and the deauthorization webhook." }
        @if let Some(p) = &project {
            h2 { "Seeded project" }
            dl.facts {
                dt { "Name" } dd { a href=(sb.link(&format!("/direct-sharing/projects/oauth2/{}/", p.id))) { (p.name) } }
                dt { "Client ID" } dd.mono { (creds.client_id) }
                dt { "Authorization URL" } dd.mono { (creds.authorize_url) }
                dt { "Token URL" } dd.mono { (creds.token_url) }
            }
        }
        h2 { "Test users" }
        ul { @for u in &users { li { (u.username) " (" (u.name) ")" } } }
        p { a href=(sb.link("/account/login/")) { "Log in as a test user" } }
    };
    respond(StatusCode::OK, layout(&sb, "Sandbox", v.user.as_ref(), &v.flash, content))
}

/// `GET /direct-sharing/authorize-inactive/`.
pub(crate) async fn authorize_inactive(State(sb): State<Sandbox>, headers: HeaderMap) -> Response {
    let v = visit(&sb, &headers);
    let content = html! {
        h1 { "Project not active" }
        p { "Unfortunately, this project is not currently active." }
    };
    respond(StatusCode::OK, layout(&sb, "Project not active", v.user.as_ref(), &v.flash, content))
}

/// `GET /account/login/`: choose or add a test user.
pub(crate) async fn login_page(State(sb): State<Sandbox>, headers: HeaderMap) -> Response {
    let v = visit(&sb, &headers);
    let users: Vec<User> = sb.inner.state.lock().users.values().cloned().collect();
    respond(StatusCode::OK, login_markup(&sb, v.user.as_ref(), &v.flash, &users, None))
}

fn login_markup(
    sb: &Sandbox,
    user: Option<&User>,
    flash: &[String],
    users: &[User],
    error: Option<&str>,
) -> Markup {
    let content = html! {
        h1 { "Log in" }
        p.hint { "The sandbox has no passwords: pick a test user." }
        form method="post" action=(sb.link("/account/login/")) {
            div.field {
                label for="username" { "Test user" }
                select id="username" name="username" {
                    @for u in users { option value=(u.username) { (u.username) " – " (u.name) } }
                }
            }
            button type="submit" { "Log in" }
        }
        h2 { "Add a test user" }
        @if let Some(error) = error { p.error role="alert" { (error) } }
        form method="post" action=(sb.link("/account/signup/")) {
            div.field {
                label for="new_username" { "New username" }
                input type="text" id="new_username" name="new_username" autocomplete="off";
                div.hint { "Letters, digits, '_', '.', '-'; at most 30 characters." }
            }
            div.field {
                label for="new_name" { "Full name" }
                input type="text" id="new_name" name="new_name";
            }
            button type="submit" { "Create test user and log in" }
        }
    };
    layout(sb, "Log in", user, flash, content)
}

fn after_login(sb: &Sandbox, headers: &HeaderMap, user_id: i64) -> Response {
    let mut next = None;
    let cookie = with_session(sb, headers, |s| {
        s.user_id = Some(user_id);
        next = s.next_url.take();
    });
    let target = next
        .filter(|n| n.starts_with('/') && !n.starts_with("//"))
        .unwrap_or_else(|| sb.link("/member/me/data/"));
    with_cookie(redirect(&target), cookie)
}

/// `POST /account/login/` (field `username`).
pub(crate) async fn login_submit(
    State(sb): State<Sandbox>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let fields = form(&body);
    let wanted = fields.text("username").unwrap_or_default();
    let (found, users) = {
        let db = sb.inner.state.lock();
        (
            db.users.values().find(|u| u.username == wanted).map(|u| u.id),
            db.users.values().cloned().collect::<Vec<_>>(),
        )
    };
    match found {
        Some(id) => after_login(&sb, &headers, id),
        None => respond(
            StatusCode::OK,
            login_markup(&sb, None, &[format!("No test user named \"{wanted}\".")], &users, None),
        ),
    }
}

/// `POST /account/signup/` (fields `new_username`, `new_name`).
pub(crate) async fn signup_submit(
    State(sb): State<Sandbox>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let fields = form(&body);
    let username = fields.text("new_username").unwrap_or_default().trim().to_owned();
    let name = fields.text("new_name").unwrap_or_else(|| username.clone());
    let valid = !username.is_empty()
        && username.len() <= 30
        && username.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    let now = sb.now();
    let outcome = {
        let mut db = sb.inner.state.lock();
        if !valid {
            Err("Enter a valid username.")
        } else if db.users.values().any(|u| u.username.eq_ignore_ascii_case(&username)) {
            Err("A user with that username already exists.")
        } else {
            let user = User {
                id: Db::next_id(&db.users, 1),
                username: username.clone(),
                name,
                email: format!("{username}@example.org"),
                created: now,
            };
            sb.inner.store.put(&user);
            let id = user.id;
            db.users.insert(id, user);
            Ok(id)
        }
    };
    match outcome {
        Ok(id) => after_login(&sb, &headers, id),
        Err(error) => {
            let users: Vec<User> = sb.inner.state.lock().users.values().cloned().collect();
            respond(StatusCode::OK, login_markup(&sb, None, &[], &users, Some(error)))
        }
    }
}

/// `POST /account/logout/`.
pub(crate) async fn logout(State(sb): State<Sandbox>, headers: HeaderMap) -> Response {
    let cookie = with_session(&sb, &headers, |s| {
        s.user_id = None;
        s.flash.push("You have signed out.".to_owned());
    });
    with_cookie(redirect(&sb.link("/account/login/")), cookie)
}

/// `GET /member/me/data/`: the member's files, grouped by source.
pub(crate) async fn member_data(State(sb): State<Sandbox>, headers: HeaderMap) -> Response {
    let v = visit(&sb, &headers);
    let Some(user) = v.user else {
        return login_required(&sb, &headers, &sb.link("/member/me/data/"));
    };
    let now = sb.now();
    let groups: BTreeMap<String, Vec<FileRow>> = {
        let db = sb.inner.state.lock();
        let mut groups: BTreeMap<String, Vec<_>> = BTreeMap::new();
        for f in db.files.values().filter(|f| f.user_id == user.id && f.completed) {
            let source = db.projects.get(&f.source_project_id).map_or_else(
                || format!("direct-sharing-{}", f.source_project_id),
                |p| p.name.clone(),
            );
            let description =
                f.metadata.get("description").and_then(|d| d.as_str()).unwrap_or("").to_owned();
            let link = sb.link(&format!(
                "/data-management/datafile-download/{}/?key={}",
                f.id,
                crate::files::mint_key(&sb, f.id, now)
            ));
            groups.entry(source).or_default().push((
                f.basename().to_owned(),
                link,
                f.size,
                drf_datetime(f.created),
                description,
            ));
        }
        groups
    };
    let content = html! {
        h1 { "My data" }
        @if groups.is_empty() { p { "You have no data files yet." } }
        @for (source, files) in &groups {
            section aria-label=(source) {
                h2 { (source) }
                table {
                    thead { tr { th scope="col" { "File" } th scope="col" { "Description" } th scope="col" { "Size" } th scope="col" { "Created" } } }
                    tbody {
                        @for (name, link, size, created, description) in files {
                            tr { td { a href=(link) { (name) } } td { (description) } td { (size) " bytes" } td { (created) } }
                        }
                    }
                }
            }
        }
    };
    respond(StatusCode::OK, layout(&sb, "My data", Some(&user), &v.flash, content))
}

/// `GET /member/me/messages/`: messages projects sent to the member.
pub(crate) async fn member_messages(State(sb): State<Sandbox>, headers: HeaderMap) -> Response {
    let v = visit(&sb, &headers);
    let Some(user) = v.user else {
        return login_required(&sb, &headers, &sb.link("/member/me/messages/"));
    };
    let messages: Vec<crate::model::Message> = sb
        .inner
        .state
        .lock()
        .messages
        .values()
        .rev()
        .filter(|m| m.user_id == user.id)
        .cloned()
        .collect();
    let content = html! {
        h1 { "Messages" }
        @if messages.is_empty() { p { "No messages." } }
        @for m in &messages {
            article.well aria-label=(m.subject) {
                h2 { (m.subject) }
                p.hint { "From: " (m.from) " · Reply-To: " (m.reply_to) " · " (drf_datetime(m.sent)) }
                pre { (m.body) }
            }
        }
    };
    respond(StatusCode::OK, layout(&sb, "Messages", Some(&user), &v.flash, content))
}

/// `GET /member/me/connections/`.
pub(crate) async fn connections(State(sb): State<Sandbox>, headers: HeaderMap) -> Response {
    let v = visit(&sb, &headers);
    let Some(user) = v.user else {
        return login_required(&sb, &headers, &sb.link("/member/me/connections/"));
    };
    let rows: Vec<(i64, String, String, bool)> = {
        let db = sb.inner.state.lock();
        db.members
            .values()
            .filter(|m| m.user_id == user.id && !m.revoked)
            .filter_map(|m| {
                db.projects
                    .get(&m.project_id)
                    .map(|p| (m.pk, p.name.clone(), m.project_member_id.clone(), m.authorized))
            })
            .collect()
    };
    let content = html! {
        h1 { "Connections" }
        @if rows.is_empty() { p { "You are not connected to any project." } }
        ul {
            @for (pk, name, pmid, authorized) in &rows {
                li {
                    strong { (name) }
                    " (project member ID " span.mono { (pmid) } ")"
                    @if !authorized { " – not yet authorized" }
                    " "
                    a href=(sb.link(&format!("/direct-sharing/projects/leave/{pk}/"))) aria-label=(format!("Withdraw from {name}")) { "Withdraw from project & revoke authorization" }
                }
            }
        }
    };
    respond(StatusCode::OK, layout(&sb, "Connections", Some(&user), &v.flash, content))
}

/// `GET /direct-sharing/projects/leave/<pk>/`.
pub(crate) async fn leave_page(
    State(sb): State<Sandbox>,
    headers: HeaderMap,
    Path(pk): Path<i64>,
    RawQuery(query): RawQuery,
) -> Response {
    let v = visit(&sb, &headers);
    let here = sb.link(&format!("/direct-sharing/projects/leave/{pk}/"));
    let Some(user) = v.user else {
        return login_required(&sb, &headers, &here);
    };
    let project = {
        let db = sb.inner.state.lock();
        db.members.get(&pk).and_then(|m| db.projects.get(&m.project_id).cloned())
    };
    let Some(project) = project else {
        return error_page(
            &sb,
            StatusCode::NOT_FOUND,
            "Not found",
            "No such project membership.",
            Some(&user),
        );
    };
    let action = match query {
        Some(q) => format!("{here}?{q}"),
        None => here,
    };
    let content = html! {
        h1 { "Leave project" }
        p { "Are you sure you want to leave the project '" (project.name) "'?" }
        form method="post" action=(action) {
            div.field.check {
                input type="checkbox" id="remove_datafiles" name="remove_datafiles";
                " "
                label for="remove_datafiles" { "Remove my data files for " (project.name) " from Open Humans" }
            }
            @if project.erasure_supported {
                div.field.check {
                    input type="checkbox" id="erasure_requested" name="erasure_requested";
                    " "
                    label for="erasure_requested" { "Request that " (project.name) " deletes my data" }
                }
            }
            div.actions { button.danger type="submit" { "Withdraw & revoke authorization" } }
        }
    };
    respond(StatusCode::OK, layout(&sb, "Leave project", Some(&user), &v.flash, content))
}

/// `POST /direct-sharing/projects/leave/<pk>/` (fields `remove_datafiles`, `erasure_requested`).
pub(crate) async fn leave_submit(
    State(sb): State<Sandbox>,
    headers: HeaderMap,
    Path(pk): Path<i64>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let v = visit(&sb, &headers);
    let Some(user) = v.user else {
        return login_required(
            &sb,
            &headers,
            &sb.link(&format!("/direct-sharing/projects/leave/{pk}/")),
        );
    };
    let fields = form(&body);
    let project = {
        let db = sb.inner.state.lock();
        db.members.get(&pk).and_then(|m| db.projects.get(&m.project_id).cloned())
    };
    let Some(project) = project else {
        return error_page(
            &sb,
            StatusCode::NOT_FOUND,
            "Not found",
            "No such project membership.",
            Some(&user),
        );
    };
    let erasure = project.erasure_supported && fields.boolean("erasure_requested");
    crate::webhook::leave_project(&sb, pk, erasure, fields.boolean("remove_datafiles")).await;
    let next = crate::api::query_map(query.as_deref())
        .get("next")
        .filter(|n| n.starts_with('/') && !n.starts_with("//"))
        .cloned()
        .unwrap_or_else(|| sb.link("/member/me/connections/"));
    let note = format!("You have withdrawn from \"{}\".", project.name);
    let cookie = with_session(&sb, &headers, |s| s.flash.push(note));
    with_cookie(redirect(&next), cookie)
}

/// `GET /activity/<slug>/`: a project's public page.
pub(crate) async fn activity(
    State(sb): State<Sandbox>,
    headers: HeaderMap,
    Path(slug): Path<String>,
) -> Response {
    let v = visit(&sb, &headers);
    let project = sb.inner.state.lock().projects.values().find(|p| p.slug == slug).cloned();
    let Some(p) = project else {
        return error_page(
            &sb,
            StatusCode::NOT_FOUND,
            "Not found",
            "No such project.",
            v.user.as_ref(),
        );
    };
    let content = html! {
        h1 { (p.name) }
        p { (p.short_description) }
        p { (p.long_description) }
        dl.facts {
            dt { "Leader" } dd { (p.leader) }
            dt { "Organization" } dd { (p.organization) }
        }
        @if !p.enrollment_url.is_empty() { p { a href=(p.enrollment_url) { "Connect " (p.name) } } }
        @else { p.hint { "In the sandbox, source projects are already connected for the seeded users." } }
    };
    respond(StatusCode::OK, layout(&sb, &p.name, v.user.as_ref(), &v.flash, content))
}

fn project_or_404(sb: &Sandbox, id: i64) -> Result<Project, Box<Response>> {
    let found = sb.inner.state.lock().projects.get(&id).filter(|p| p.oauth.is_some()).cloned();
    found.ok_or_else(|| {
        Box::new(error_page(
            sb,
            StatusCode::NOT_FOUND,
            "Not found",
            "No such OAuth2 project.",
            None,
        ))
    })
}

/// `GET /direct-sharing/projects/oauth2/<id>/`: credentials and overview for the coordinator.
pub(crate) async fn project_detail(
    State(sb): State<Sandbox>,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Response {
    let v = visit(&sb, &headers);
    let p = match project_or_404(&sb, id) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let members = sb.inner.state.lock().authorized_members(p.id);
    let oauth = p.oauth.clone().unwrap_or(crate::model::OAuthApp {
        client_id: String::new(),
        client_secret: String::new(),
    });
    let content = html! {
        h1 { (p.name) }
        p {
            a href=(sb.link(&format!("/direct-sharing/projects/oauth2/{id}/edit/"))) { "Edit project settings" }
            " · "
            a href=(sb.link(&format!("/direct-sharing/projects/withdrawn-members/{id}/"))) { "Withdrawn members" }
        }
        dl.facts {
            dt { "Status" } dd { (if p.active { "Active" } else { "Inactive" }) ", " (if p.approved { "approved" } else { "not approved (in development)" }) }
            dt { "Authorized members" } dd { (members) }
            dt { "ID label" } dd.mono { (p.id_label()) }
        }
        h2 { "OAuth2 credentials" }
        dl.facts {
            dt { "Client ID" } dd.mono data-testid="client-id" { (oauth.client_id) }
            dt { "Client secret" } dd.mono data-testid="client-secret" { (oauth.client_secret) }
            dt { "Authorization URL" } dd.mono { (sb.abs("/direct-sharing/projects/oauth2/authorize/")) }
            dt { "Access token URL" } dd.mono { (sb.abs("/oauth2/token/")) }
            dt { "Redirect URL" } dd.mono { (p.redirect_url) }
            dt { "Enrollment URL" } dd.mono { (p.enrollment_url) }
        }
        h2 { "Master access token" }
        dl.facts {
            dt { "Token" } dd.mono data-testid="master-access-token" { (p.master_access_token) }
            dt { "Expires" } dd { (drf_datetime(p.master_token_expires)) }
        }
        form method="post" action=(sb.link(&format!("/direct-sharing/projects/oauth2/{id}/refresh-token/"))) {
            button type="submit" { "Refresh token" }
            span.hint { " The current master token stops working at once; the new one is valid for 24 hours." }
        }
    };
    respond(StatusCode::OK, layout(&sb, &p.name, v.user.as_ref(), &v.flash, content))
}

/// `POST /direct-sharing/projects/oauth2/<id>/refresh-token/`.
pub(crate) async fn refresh_master_token(
    State(sb): State<Sandbox>,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Response {
    let now = sb.now();
    {
        let mut db = sb.inner.state.lock();
        let Some(p) = db.projects.get_mut(&id) else {
            return error_page(&sb, StatusCode::NOT_FOUND, "Not found", "No such project.", None);
        };
        p.master_access_token = crate::util::random_token(64);
        p.master_token_expires = now + time::Duration::hours(24);
        sb.inner.store.put(&*p);
    }
    let cookie = with_session(&sb, &headers, |s| {
        s.flash.push("The master access token was refreshed.".to_owned())
    });
    with_cookie(redirect(&sb.link(&format!("/direct-sharing/projects/oauth2/{id}/"))), cookie)
}

/// `GET /direct-sharing/projects/withdrawn-members/<id>/`.
pub(crate) async fn withdrawn_members(
    State(sb): State<Sandbox>,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Response {
    let v = visit(&sb, &headers);
    let p = match project_or_404(&sb, id) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let rows: Vec<(String, bool)> = sb
        .inner
        .state
        .lock()
        .members
        .values()
        .filter(|m| m.project_id == id && m.revoked)
        .map(|m| (m.project_member_id.clone(), m.erasure_requested.is_some()))
        .collect();
    let content = html! {
        h1 { "Withdrawn members of " (p.name) }
        @if rows.is_empty() { p { "No member has withdrawn." } }
        table {
            thead { tr { th scope="col" { "Project member ID" } th scope="col" { "Erasure requested" } } }
            tbody { @for (pmid, erasure) in &rows { tr { td.mono { (pmid) } td { (if *erasure { "yes" } else { "no" }) } } } }
        }
    };
    respond(StatusCode::OK, layout(&sb, "Withdrawn members", v.user.as_ref(), &v.flash, content))
}

const SPAM_WORDS: [&str; 47] = [
    "buy",
    "sell",
    "bet",
    "88",
    "66",
    "paypal",
    "casino",
    "escort",
    "kasino",
    "gambling",
    "renting",
    "seo",
    "hire",
    "win",
    "limousine",
    "leading",
    "poker",
    "provider",
    "brand",
    "product",
    "estate",
    "solutions",
    "business",
    "call",
    "whatsapp",
    "gmail",
    "shop",
    "store",
    "marketing",
    "adverti",
    "address",
    "vietnam",
    "india",
    "178",
    "timeless",
    "viet",
    "legal",
    "expert",
    "solution",
    "money",
    "dental",
    "earn",
    "tourister",
    "bandar",
    "indonesia",
    "credit",
    "hitam",
];

/// Whether a value trips the platform's anti-spam validators.
pub(crate) fn is_spam(value: &str, check_http: bool) -> bool {
    let lower = value.to_lowercase();
    (check_http && lower.contains("http"))
        || SPAM_WORDS.iter().any(|w| lower.contains(w))
        || lower.contains("game")
}

type Errors = BTreeMap<&'static str, Vec<String>>;

fn length_error(errors: &mut Errors, field: &'static str, value: &str, max: usize) {
    let n = value.chars().count();
    if n > max {
        errors
            .entry(field)
            .or_default()
            .push(format!("Ensure this value has at most {max} characters (it has {n})."));
    }
}

fn url_ok(value: &str) -> bool {
    url::Url::parse(value)
        .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
}

/// Validates the settings form and applies it to a copy of the project.
fn apply_settings(db: &Db, mut p: Project, f: &Fields) -> Result<Project, Errors> {
    let mut errors = Errors::new();
    let text = |name: &str| f.text(name).unwrap_or_default().trim().to_owned();
    let required = [
        "name",
        "leader",
        "contact_email",
        "info_url",
        "short_description",
        "long_description",
        "enrollment_url",
        "terms_url",
    ];
    for field in required {
        if text(field).is_empty() {
            errors.entry(field).or_default().push("This field is required.".to_owned());
        }
    }
    let name = text("name");
    let short = text("short_description");
    let long = text("long_description");
    let info = text("info_url");
    length_error(&mut errors, "name", &name, 100);
    length_error(&mut errors, "leader", &text("leader"), 100);
    length_error(&mut errors, "organization", &text("organization"), 100);
    length_error(&mut errors, "short_description", &short, 140);
    length_error(&mut errors, "returned_data_description", &text("returned_data_description"), 140);
    length_error(&mut errors, "redirect_url", &text("redirect_url"), 256);
    for (field, value, http) in [
        ("name", &name, true),
        ("short_description", &short, true),
        ("long_description", &long, true),
        ("info_url", &info, false),
    ] {
        if !value.is_empty() && is_spam(value, http) {
            errors.entry(field).or_default().push("Error validating form".to_owned());
        }
    }
    let email = text("contact_email");
    let email_ok = email.split_once('@').is_some_and(|(local, domain)| {
        !local.is_empty()
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
    });
    if !email.is_empty() && !email_ok {
        errors.entry("contact_email").or_default().push("Enter a valid email address.".to_owned());
    }
    for field in ["enrollment_url", "terms_url", "deauth_webhook", "badge_image"] {
        let value = text(field);
        if !value.is_empty() && !url_ok(&value) {
            errors.entry(field).or_default().push("Enter a valid URL.".to_owned());
        }
    }
    let secret = f.text("webhook_secret").unwrap_or_default();
    let n = secret.chars().count();
    if n > 0 && n < 16 {
        errors
            .entry("webhook_secret")
            .or_default()
            .push(format!("Ensure this value has at least 16 characters (it has {n})."));
    }
    length_error(&mut errors, "webhook_secret", &secret, 64);
    let add_data = f.boolean("add_data");
    let explore_share = f.boolean("explore_share");
    if !add_data && !explore_share {
        errors.entry("__all__").or_default().push(
            "Select at least one of \"adds data\" and \"explores & shares data\".".to_owned(),
        );
    }
    if add_data && text("returned_data_description").is_empty() {
        errors
            .entry("returned_data_description")
            .or_default()
            .push("Describe the data the project will add.".to_owned());
    }
    let mut sources = Vec::new();
    for value in f.list("requested_sources") {
        match value.parse::<i64>() {
            Ok(id) if id != p.id && db.projects.get(&id).is_some_and(|s| s.approved) => {
                sources.push(id)
            }
            _ => errors.entry("requested_sources").or_default().push(format!(
                "Select a valid choice. {value} is not one of the available choices."
            )),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    p.is_study = f.text("is_study").as_deref() != Some("activity");
    p.slug = slugify(&name);
    p.name = name;
    p.leader = text("leader");
    p.organization = text("organization");
    p.is_academic_or_nonprofit = f.boolean("is_academic_or_nonprofit");
    p.add_data = add_data;
    p.explore_share = explore_share;
    p.contact_email = email;
    p.info_url = info;
    p.short_description = short;
    p.long_description = long;
    p.returned_data_description = text("returned_data_description");
    p.active = f.boolean("active");
    p.badge_image = Some(text("badge_image")).filter(|b| !b.is_empty());
    p.requested_sources = sources;
    p.request_username_access = f.boolean("request_username_access");
    p.erasure_supported = f.boolean("erasure_supported");
    p.deauth_email_notification = f.boolean("deauth_email_notification");
    p.enrollment_url = text("enrollment_url");
    p.terms_url = text("terms_url");
    p.redirect_url = text("redirect_url");
    p.deauth_webhook = text("deauth_webhook");
    p.webhook_secret = secret;
    Ok(p)
}

fn field_errors(errors: &Errors, field: &str) -> Markup {
    html! {
        @if let Some(list) = errors.get(field) {
            ul.errors id=(format!("{field}-errors")) {
                @for e in list { li { (e) } }
            }
        }
    }
}

fn text_field(
    errors: &Errors,
    name: &str,
    label: &str,
    value: &str,
    kind: &str,
    hint: Option<&str>,
) -> Markup {
    html! {
        div.field {
            label for=(name) { (label) }
            input type=(kind) id=(name) name=(name) value=(value)
                aria-invalid=[errors.contains_key(name).then_some("true")];
            @if let Some(hint) = hint { div.hint { (hint) } }
            (field_errors(errors, name))
        }
    }
}

fn check_field(name: &str, label: &str, checked: bool) -> Markup {
    html! {
        div.field.check {
            input type="checkbox" id=(name) name=(name) value="on" checked[checked];
            " "
            label for=(name) { (label) }
        }
    }
}

fn settings_markup(sb: &Sandbox, p: &Project, sources: &[Project], errors: &Errors) -> Markup {
    html! {
        h1 { "Edit " (p.name) }
        @if !errors.is_empty() { p.error role="alert" { "Please correct the errors below." } }
        (field_errors(errors, "__all__"))
        form method="post" action=(sb.link(&format!("/direct-sharing/projects/oauth2/{}/edit/", p.id))) {
            fieldset {
                legend { "Type of project" }
                input type="radio" id="is_study_study" name="is_study" value="study" checked[p.is_study];
                " " label for="is_study_study" { "Study" } " "
                input type="radio" id="is_study_activity" name="is_study" value="activity" checked[!p.is_study];
                " " label for="is_study_activity" { "Activity" }
            }
            (text_field(errors, "name", "Project name", &p.name, "text", None))
            (text_field(errors, "leader", "Leader(s) or principal investigator(s)", &p.leader, "text", None))
            (text_field(errors, "organization", "Organization or institution", &p.organization, "text", None))
            (check_field("is_academic_or_nonprofit", "Academic or non-profit", p.is_academic_or_nonprofit))
            (check_field("add_data", "Adds data for members", p.add_data))
            (check_field("explore_share", "Explores & shares member data", p.explore_share))
            (text_field(errors, "contact_email", "Contact email", &p.contact_email, "email", None))
            (text_field(errors, "info_url", "Project website", &p.info_url, "text", None))
            (text_field(errors, "short_description", "Short description", &p.short_description, "text", Some("At most 140 characters.")))
            div.field {
                label for="long_description" { "Long description" }
                textarea id="long_description" name="long_description" { (p.long_description) }
                (field_errors(errors, "long_description"))
            }
            (text_field(errors, "returned_data_description", "Returned data description", &p.returned_data_description, "text", Some("At most 140 characters; shown on the consent page.")))
            (check_field("active", "Active", p.active))
            (text_field(errors, "badge_image", "Badge image URL", p.badge_image.as_deref().unwrap_or(""), "text", None))
            fieldset {
                legend { "Requested sources" }
                @for s in sources {
                    div.field.check {
                        input type="checkbox" id=(format!("source-{}", s.id)) name="requested_sources" value=(s.id) checked[p.requested_sources.contains(&s.id)];
                        " " label for=(format!("source-{}", s.id)) { (s.name) " (" (s.id_label()) ")" }
                    }
                }
                (field_errors(errors, "requested_sources"))
            }
            (check_field("request_username_access", "Request username access", p.request_username_access))
            (check_field("erasure_supported", "Erasure supported", p.erasure_supported))
            (check_field("deauth_email_notification", "Email me when a member withdraws", p.deauth_email_notification))
            (text_field(errors, "enrollment_url", "Enrollment URL", &p.enrollment_url, "text", None))
            (text_field(errors, "terms_url", "Terms of use URL", &p.terms_url, "text", None))
            (text_field(errors, "redirect_url", "Redirect URL", &p.redirect_url, "text", None))
            (text_field(errors, "deauth_webhook", "Deauthorization webhook URL", &p.deauth_webhook, "text", None))
            (text_field(errors, "webhook_secret", "Webhook secret", &p.webhook_secret, "text", Some("Empty, or at least 16 characters.")))
            div.actions { button type="submit" { "Save project" } }
        }
    }
}

fn source_choices(db: &Db, id: i64) -> Vec<Project> {
    db.projects.values().filter(|s| s.id != id && s.approved).cloned().collect()
}

/// `GET /direct-sharing/projects/oauth2/<id>/edit/`.
pub(crate) async fn project_edit_page(
    State(sb): State<Sandbox>,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Response {
    let v = visit(&sb, &headers);
    let p = match project_or_404(&sb, id) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let sources = source_choices(&sb.inner.state.lock(), id);
    let content = settings_markup(&sb, &p, &sources, &Errors::new());
    respond(StatusCode::OK, layout(&sb, "Edit project", v.user.as_ref(), &v.flash, content))
}

/// `POST /direct-sharing/projects/oauth2/<id>/edit/`.
pub(crate) async fn project_edit_submit(
    State(sb): State<Sandbox>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    body: Bytes,
) -> Response {
    let v = visit(&sb, &headers);
    let p = match project_or_404(&sb, id) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let fields = form(&body);
    let mut db = sb.inner.state.lock();
    match apply_settings(&db, p.clone(), &fields) {
        Ok(updated) => {
            sb.inner.store.put(&updated);
            db.projects.insert(updated.id, updated);
            drop(db);
            let cookie = with_session(&sb, &headers, |s| s.flash.push("Project saved.".to_owned()));
            with_cookie(
                redirect(&sb.link(&format!("/direct-sharing/projects/oauth2/{id}/"))),
                cookie,
            )
        }
        Err(errors) => {
            let sources = source_choices(&db, id);
            drop(db);
            let mut shown = p;
            shown.name = fields.text("name").unwrap_or_default();
            shown.short_description = fields.text("short_description").unwrap_or_default();
            shown.long_description = fields.text("long_description").unwrap_or_default();
            shown.webhook_secret = fields.text("webhook_secret").unwrap_or_default();
            shown.contact_email = fields.text("contact_email").unwrap_or_default();
            shown.info_url = fields.text("info_url").unwrap_or_default();
            let content = settings_markup(&sb, &shown, &sources, &errors);
            respond(StatusCode::OK, layout(&sb, "Edit project", v.user.as_ref(), &v.flash, content))
        }
    }
}

/// `GET /sandbox/webhooks/`: the delivery log.
pub(crate) async fn webhook_log(State(sb): State<Sandbox>, headers: HeaderMap) -> Response {
    let v = visit(&sb, &headers);
    let rows: Vec<crate::model::WebhookDelivery> =
        sb.inner.state.lock().webhooks.values().rev().cloned().collect();
    let content = html! {
        h1 { "Webhook deliveries" }
        @if rows.is_empty() { p { "No webhook has been sent yet." } }
        @else {
            table {
                thead { tr { th scope="col" { "Time" } th scope="col" { "URL" } th scope="col" { "Member" } th scope="col" { "Kind" } th scope="col" { "Outcome" } th scope="col" { "Body" } } }
                tbody {
                    @for r in &rows {
                        tr { td { (drf_datetime(r.time)) } td.mono { (r.url) } td.mono { (r.project_member_id) } td { (r.kind) } td { (r.outcome) } td.mono { (r.body) } }
                    }
                }
            }
        }
    };
    respond(StatusCode::OK, layout(&sb, "Webhook deliveries", v.user.as_ref(), &v.flash, content))
}

/// `GET /sandbox/switches/`.
pub(crate) async fn switches_page(State(sb): State<Sandbox>, headers: HeaderMap) -> Response {
    let v = visit(&sb, &headers);
    let s = sb.inner.switches.read().clone();
    let approved =
        sb.inner.state.lock().projects.get(&sb.inner.project_id).is_some_and(|p| p.approved);
    let errors = Errors::new();
    let content = html! {
        h1 { "Sandbox switches" }
        p.hint { "Changes apply at once and last until the sandbox restarts (approval is saved with the project)." }
        form method="post" action=(sb.link("/sandbox/switches/")) {
            (text_field(&errors, "token_lifetime", "Access token lifetime (seconds)", &s.access_token_lifetime.as_secs().to_string(), "number", None))
            (check_field("approved", "Project approved", approved))
            (check_field("member_cap", "Enforce the 20-member cap for unapproved projects", s.enforce_member_cap))
            (check_field("legacy_webhook_retry", "Legacy double-encoded webhook retry", s.legacy_webhook_retry))
            (text_field(&errors, "fault_error_rate", "Fault error rate (0 to 1)", &s.faults.error_rate.to_string(), "text", None))
            (text_field(&errors, "fault_latency_ms", "Fault latency (milliseconds)", &s.faults.latency.as_millis().to_string(), "number", None))
            (check_field("fault_drop_refresh_response", "Drop refresh responses after committing them", s.faults.drop_refresh_response))
            (text_field(&errors, "advance_clock", "Advance the clock by (seconds)", "0", "number", Some("Moves the sandbox's clock forward, e.g. to expire tokens and codes.")))
            div.actions { button type="submit" { "Save switches" } }
        }
    };
    respond(StatusCode::OK, layout(&sb, "Switches", v.user.as_ref(), &v.flash, content))
}

/// `GET /sandbox/stats/`: the token endpoint's grant counters, as JSON, for benchmarks and
/// tests that check how often a client refreshes.
pub(crate) async fn stats(State(sb): State<Sandbox>) -> Response {
    axum::Json(sb.token_stats()).into_response()
}

/// `POST /sandbox/switches/`.
pub(crate) async fn switches_submit(
    State(sb): State<Sandbox>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let f = form(&body);
    let number = |name: &str| f.text(name).and_then(|t| t.trim().parse::<f64>().ok());
    let mut faults = sb.inner.switches.read().faults;
    if let Some(secs) = number("token_lifetime").filter(|s| *s >= 1.0) {
        sb.set_access_token_lifetime(Duration::from_secs_f64(secs));
    }
    if let Some(rate) = number("fault_error_rate").filter(|r| (0.0..=1.0).contains(r)) {
        faults.error_rate = rate;
    }
    if let Some(ms) = number("fault_latency_ms").filter(|m| *m >= 0.0) {
        faults.latency = Duration::from_secs_f64(ms / 1000.0);
    }
    faults.drop_refresh_response = f.boolean("fault_drop_refresh_response");
    sb.set_faults(faults);
    sb.set_enforce_member_cap(f.boolean("member_cap"));
    sb.set_legacy_webhook_retry(f.boolean("legacy_webhook_retry"));
    sb.set_approved(f.boolean("approved"));
    if let Some(secs) = number("advance_clock").filter(|s| *s > 0.0) {
        sb.advance_clock(Duration::from_secs_f64(secs));
    }
    let cookie = with_session(&sb, &headers, |s| s.flash.push("Switches saved.".to_owned()));
    with_cookie(redirect(&sb.link("/sandbox/switches/")), cookie)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spam_rules() {
        assert!(is_spam("Window study", false));
        assert!(is_spam("see https://x", true));
        assert!(!is_spam("Daily Rhythms Study", true));
        assert!(!is_spam(
            "Combines your activity and diet records to chart weekly rhythms of sleep and mood.",
            true
        ));
    }

    #[test]
    fn slugs() {
        assert_eq!(slugify("Daily Rhythms Study"), "daily-rhythms-study");
        assert_eq!(slugify("23andMe Upload"), "23andme-upload");
    }
}
