//! The project API under `/api/direct-sharing/project/` (§3, §4.1–§4.5): authentication,
//! exchange-member, members, project info, message and remove-members, plus the
//! fault-injection layer of the API and token routes.

use std::collections::{BTreeMap, HashMap};

use axum::extract::{RawQuery, Request, State};
use axum::http::header::{AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rand::Rng;

use crate::Sandbox;
use crate::model::{DataFile, Member, Message, State as Db};
use crate::util::{Fields, Ordered, digest, drf_datetime, secret_eq};

const NEVER_CACHE: &str = "max-age=0, no-cache, no-store, must-revalidate, private";
const REALM: &str = "Bearer realm=\"api\"";

/// Who is calling the API.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Caller {
    /// An OAuth2 access token of a member.
    User { user_id: i64, project_id: i64 },
    /// The project's master access token.
    Master { project_id: i64 },
}

impl Caller {
    pub(crate) fn project_id(self) -> i64 {
        match self {
            Self::User { project_id, .. } | Self::Master { project_id } => project_id,
        }
    }
}

/// A JSON API response with the platform's never-cache header.
pub(crate) fn json(status: StatusCode, body: String) -> Response {
    let mut response = (status, body).into_response();
    let h = response.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static(NEVER_CACHE));
    response
}

/// A JSON value response.
pub(crate) fn json_value(status: StatusCode, value: &impl serde::Serialize) -> Response {
    json(status, serde_json::to_string(value).unwrap_or_else(|_| "null".to_owned()))
}

/// `{"detail": …}` with the given status.
pub(crate) fn detail(status: StatusCode, text: &str) -> Response {
    json(status, Ordered::default().with("detail", text).to_json())
}

/// The platform's HTML 500 page (for the spots where it crashes).
pub(crate) fn server_error() -> Response {
    let mut response =
        (StatusCode::INTERNAL_SERVER_ERROR, "<h1>Server Error (500)</h1>").into_response();
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    response
}

fn unauthorized(text: &str, header: &str) -> Box<Response> {
    let mut response = detail(StatusCode::UNAUTHORIZED, text);
    if let Ok(value) = HeaderValue::from_str(header) {
        response.headers_mut().insert(WWW_AUTHENTICATE, value);
    }
    Box::new(response)
}

/// Query parameters (last value wins).
pub(crate) fn query_map(query: Option<&str>) -> HashMap<String, String> {
    url::form_urlencoded::parse(query.unwrap_or("").as_bytes()).into_owned().collect()
}

/// Authenticates an API call (§3). `oauth2` is false for master-token-only views.
pub(crate) fn authenticate(
    sb: &Sandbox,
    headers: &HeaderMap,
    query: &HashMap<String, String>,
    oauth2: bool,
) -> Result<Caller, Box<Response>> {
    let header = match query.get("access_token") {
        Some(token) => Some(format!("Bearer {token}")),
        None => headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()).map(str::to_owned),
    };
    let words: Vec<&str> =
        header.as_deref().map(|h| h.split_whitespace().collect()).unwrap_or_default();
    let bearer = words.first().is_some_and(|w| w.eq_ignore_ascii_case("bearer"));
    let now = sb.now();
    let db = sb.inner.state.lock();
    let mut oauth_error: Option<&str> = None;
    if oauth2 && bearer && words.len() == 2 {
        match db.access.get(&digest(words[1])) {
            Some(token) if token.expires > now => {
                return Ok(Caller::User { user_id: token.user_id, project_id: token.project_id });
            }
            Some(_) => {
                return Err(unauthorized(
                    "Expired token.",
                    &format!(
                        "{REALM},error=\"invalid_token\",error_description=\"The access token has expired.\""
                    ),
                ));
            }
            None => oauth_error = Some("The access token is invalid."),
        }
    }
    let header_value = match oauth_error {
        Some(description) => {
            format!("{REALM},error=\"invalid_token\",error_description=\"{description}\"")
        }
        None => REALM.to_owned(),
    };
    if !bearer {
        return Err(unauthorized("Authentication credentials were not provided.", &header_value));
    }
    match words.len() {
        1 => {
            return Err(unauthorized(
                "Invalid token header. No credentials provided.",
                &header_value,
            ));
        }
        2 => {}
        _ => {
            return Err(unauthorized(
                "Invalid token header. Token string should not contain spaces.",
                &header_value,
            ));
        }
    }
    let found = db.projects.values().find(|p| secret_eq(&p.master_access_token, words[1]));
    match found {
        None => Err(unauthorized("Invalid token.", &header_value)),
        Some(p) if p.master_token_expires <= now => {
            Err(unauthorized("Expired token.", &header_value))
        }
        Some(p) => Ok(Caller::Master { project_id: p.id }),
    }
}

/// Adds latency and random 500/503 answers to the API and token routes.
pub(crate) async fn fault_layer(State(sb): State<Sandbox>, req: Request, next: Next) -> Response {
    let faults = sb.inner.switches.read().faults;
    if !faults.latency.is_zero() {
        tokio::time::sleep(faults.latency).await;
    }
    if faults.error_rate > 0.0 {
        let (fail, unavailable) = {
            let mut rng = rand::thread_rng();
            (rng.gen_bool(faults.error_rate), rng.gen_bool(0.5))
        };
        if fail {
            return if unavailable {
                (StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable").into_response()
            } else {
                server_error()
            };
        }
    }
    next.run(req).await
}

/// A DRF `LimitOffsetPagination` page.
pub(crate) struct Page {
    pub(crate) offset: usize,
    pub(crate) limit: usize,
    pub(crate) next: Option<String>,
    pub(crate) previous: Option<String>,
}

fn encode_sorted(params: &BTreeMap<String, Vec<String>>) -> String {
    let mut out = url::form_urlencoded::Serializer::new(String::new());
    for (k, values) in params {
        for v in values {
            out.append_pair(k, v);
        }
    }
    out.finish()
}

/// Computes limit/offset and the `next`/`previous` links (absolute, query kept and sorted).
pub(crate) fn paginate(sb: &Sandbox, path: &str, query: Option<&str>, count: usize) -> Page {
    let mut params: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (k, v) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()).into_owned() {
        params.entry(k).or_default().push(v);
    }
    let first = |k: &str| params.get(k).and_then(|v| v.last()).map(|s| s.trim().to_owned());
    let limit =
        first("limit").and_then(|s| s.parse::<usize>().ok()).filter(|l| *l > 0).unwrap_or(100);
    let offset = first("offset").and_then(|s| s.parse::<usize>().ok()).unwrap_or(0);
    let base = sb.abs(path);
    let link = |offset: Option<usize>| {
        let mut p = params.clone();
        p.insert("limit".to_owned(), vec![limit.to_string()]);
        match offset {
            Some(o) => {
                p.insert("offset".to_owned(), vec![o.to_string()]);
            }
            None => {
                p.remove("offset");
            }
        }
        format!("{base}?{}", encode_sorted(&p))
    };
    let next = (offset + limit < count).then(|| link(Some(offset + limit)));
    let previous = if offset == 0 {
        None
    } else if offset <= limit {
        Some(link(None))
    } else {
        Some(link(Some(offset - limit)))
    };
    Page { offset, limit, next, previous }
}

/// The `DataFileSerializer` shape of one file; mints a fresh download key.
pub(crate) fn file_json(sb: &Sandbox, file: &DataFile, now: time::OffsetDateTime) -> Ordered {
    let datatypes: Vec<serde_json::Value> = file
        .datatypes
        .iter()
        .map(|id| serde_json::Value::String(sb.abs(&format!("/api/public/datatype/{id}/"))))
        .collect();
    let key = crate::files::mint_key(sb, file.id, now);
    Ordered::default()
        .with("id", file.id)
        .with("basename", file.basename())
        .with("created", drf_datetime(file.created))
        .with("datatypes", datatypes)
        .with(
            "download_url",
            sb.abs(&format!("/data-management/datafile-download/{}/?key={key}", file.id)),
        )
        .with("metadata", file.metadata.clone())
        .with("source", format!("direct-sharing-{}", file.source_project_id))
        .with("source_project", sb.abs(&format!("/api/public/project/{}/", file.source_project_id)))
}

fn sources_shared(member: &Member) -> Vec<String> {
    member.granted_sources.iter().map(|id| format!("direct-sharing-{id}")).collect()
}

/// `GET /api/direct-sharing/project/exchange-member/`.
pub(crate) async fn exchange_member(
    State(sb): State<Sandbox>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let q = query_map(query.as_deref());
    let caller = match authenticate(&sb, &headers, &q, true) {
        Ok(c) => c,
        Err(response) => return *response,
    };
    let now = sb.now();
    let db = sb.inner.state.lock();
    let member = match caller {
        Caller::User { user_id, project_id } => match db.member_of(user_id, project_id) {
            Some(m) => m,
            None => return server_error(),
        },
        Caller::Master { project_id } => match q.get("project_member_id") {
            None => return server_error(),
            Some(pmid) => match db.member_by_pmid(project_id, pmid) {
                Some(m) => m,
                None => {
                    return json(
                        StatusCode::BAD_REQUEST,
                        Ordered::default()
                            .with("project_member_id", "project_member_id is invalid")
                            .to_json(),
                    );
                }
            },
        },
    };
    let files = db.visible_files(member);
    let page = paginate(
        &sb,
        "/api/direct-sharing/project/exchange-member/",
        query.as_deref(),
        files.len(),
    );
    let data: Vec<Ordered> =
        files.iter().skip(page.offset).take(page.limit).map(|f| file_json(&sb, f, now)).collect();
    let mut body = Ordered::default()
        .with("count", files.len())
        .with("next", page.next)
        .with("previous", page.previous)
        .with("created", drf_datetime(member.created))
        .with("project_member_id", member.project_member_id.clone())
        .with("sources_shared", sources_shared(member));
    if member.username_shared
        && let Some(user) = db.users.get(&member.user_id)
    {
        body = body.with("username", user.username.clone());
    }
    let body = body.list("data", data);
    drop(db);
    json(StatusCode::OK, body.to_json())
}

/// `GET /api/direct-sharing/project/members/` (master token only).
pub(crate) async fn members(
    State(sb): State<Sandbox>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let q = query_map(query.as_deref());
    let caller = match authenticate(&sb, &headers, &q, false) {
        Ok(c) => c,
        Err(response) => return *response,
    };
    let Some(master) = q.get("access_token") else {
        // The platform builds `exchange_member` from the query parameter and crashes without it.
        return server_error();
    };
    let now = sb.now();
    let db = sb.inner.state.lock();
    let active: Vec<&Member> = db
        .members
        .values()
        .filter(|m| m.project_id == caller.project_id() && m.is_active())
        .collect();
    let page =
        paginate(&sb, "/api/direct-sharing/project/members/", query.as_deref(), active.len());
    let results: Vec<Ordered> = active
        .iter()
        .skip(page.offset)
        .take(page.limit)
        .map(|m| {
            let files = db.visible_files(m);
            let mut item = Ordered::default()
                .with("created", drf_datetime(m.created))
                .with("project_member_id", m.project_member_id.clone())
                .with("file_count", files.len())
                .with(
                    "exchange_member",
                    sb.abs(&format!(
                        "/api/direct-sharing/project/exchange-member/?project_member_id={}&access_token={}",
                        m.project_member_id,
                        crate::util::query_escape(master)
                    )),
                )
                .with("sources_shared", sources_shared(m));
            if m.username_shared
                && let Some(user) = db.users.get(&m.user_id)
            {
                item = item.with("username", user.username.clone());
            }
            item.list(
                "data",
                files.iter().take(10).map(|f| file_json(&sb, f, now)).collect(),
            )
        })
        .collect();
    let body = Ordered::default()
        .with("count", active.len())
        .with("next", page.next)
        .with("previous", page.previous)
        .list("results", results);
    drop(db);
    json(StatusCode::OK, body.to_json())
}

/// `GET /api/direct-sharing/project/`.
pub(crate) async fn project_info(
    State(sb): State<Sandbox>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let q = query_map(query.as_deref());
    let caller = match authenticate(&sb, &headers, &q, true) {
        Ok(c) => c,
        Err(response) => return *response,
    };
    let db = sb.inner.state.lock();
    let Some(p) = db.projects.get(&caller.project_id()) else {
        return server_error();
    };
    let body = Ordered::default()
        .with("active", p.active)
        .with("approved", p.approved)
        .with("authorized_members", db.authorized_members(p.id))
        .with("badge_image", p.badge_image.clone())
        .with("contact_email", p.contact_email.clone())
        .with("id", p.id)
        .with("id_label", p.id_label())
        .with("info_url", p.info_url.clone())
        .with("is_academic_or_nonprofit", p.is_academic_or_nonprofit)
        .with("is_study", p.is_study)
        .with("leader", p.leader.clone())
        .with("long_description", p.long_description.clone())
        .with("name", p.name.clone())
        .with("organization", p.organization.clone())
        .with(
            "registered_datatypes",
            p.registered_datatypes
                .iter()
                .map(|id| format!("/api/public/datatype/{id}/"))
                .collect::<Vec<_>>(),
        )
        .with(
            "requested_sources",
            p.requested_sources
                .iter()
                .map(|id| format!("/api/public/project/{id}/"))
                .collect::<Vec<_>>(),
        )
        .with(
            "request_sources_access",
            p.requested_sources.iter().map(|id| format!("direct-sharing-{id}")).collect::<Vec<_>>(),
        )
        .with("request_username_access", p.request_username_access)
        .with("returned_data_description", p.returned_data_description.clone())
        .with("short_description", p.short_description.clone())
        .with("slug", p.slug.clone())
        .with("type", if p.oauth.is_some() { "oauth2" } else { "on-site" });
    drop(db);
    json(StatusCode::OK, body.to_json())
}

/// Form errors in field order, then `__all__`.
#[derive(Default)]
struct FormErrors(Vec<(String, Vec<String>)>);

impl FormErrors {
    fn add(&mut self, field: &str, message: impl Into<String>) {
        match self.0.iter_mut().find(|(f, _)| f == field) {
            Some((_, list)) => list.push(message.into()),
            None => self.0.push((field.to_owned(), vec![message.into()])),
        }
    }

    fn response(self) -> Response {
        let mut inner = Ordered::default();
        for (field, messages) in self.0 {
            inner = inner.with(&field, messages);
        }
        json(StatusCode::BAD_REQUEST, Ordered::default().nested("errors", inner).to_json())
    }
}

/// Splits `project_member_ids` like the platform's form field.
fn member_ids(fields: &Fields) -> Vec<String> {
    let values = fields.list("project_member_ids");
    let values = if values.len() == 1 {
        values[0].split([' ', ',', '\r', '\n']).map(str::to_owned).collect()
    } else {
        values
    };
    values.into_iter().filter(|v| !v.is_empty()).collect()
}

/// Validates member ids against active members; returns them or records an error.
fn clean_member_ids(db: &Db, project_id: i64, ids: &[String], errors: &mut FormErrors) -> Vec<i64> {
    if ids
        .iter()
        .any(|id| !(id.len() == 8 || id.len() == 16) || !id.bytes().all(|b| b.is_ascii_digit()))
    {
        errors.add("project_member_ids", "Project member IDs are always 8 digits long.");
        return Vec::new();
    }
    let mut pks = Vec::new();
    let mut bad = Vec::new();
    for id in ids {
        match db.member_by_pmid(project_id, id).filter(|m| m.is_active()) {
            Some(m) => pks.push(m.pk),
            None => bad.push(id.clone()),
        }
    }
    if !bad.is_empty() {
        errors
            .add("project_member_ids", format!("Invalid project member ID(s): {}", bad.join(", ")));
    }
    pks
}

/// Renders a message body as the platform's template engine would for the simple cases:
/// `{{ PROJECT_MEMBER_ID }}` is substituted, other variables render empty.
pub(crate) fn render_message(template: &str, project_member_id: &str) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find("}}") {
            Some(end) => {
                if after[..end].trim() == "PROJECT_MEMBER_ID" {
                    out.push_str(project_member_id);
                }
                rest = &after[end + 2..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// `POST /api/direct-sharing/project/message/`.
pub(crate) async fn message(
    State(sb): State<Sandbox>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    mut fields: Fields,
) -> Response {
    let q = query_map(query.as_deref());
    let caller = match authenticate(&sb, &headers, &q, true) {
        Ok(c) => c,
        Err(response) => return *response,
    };
    let now = sb.now();
    let mut db = sb.inner.state.lock();
    if let Caller::User { user_id, project_id } = caller {
        let own = db
            .member_of(user_id, project_id)
            .map(|m| m.project_member_id.clone())
            .unwrap_or_default();
        fields.set("all_members", &["False".to_owned()]);
        fields.set("project_member_ids", &[own]);
    }
    let project_id = caller.project_id();
    let mut errors = FormErrors::default();
    let all_members = fields.boolean("all_members");
    let ids = member_ids(&fields);
    let pks = clean_member_ids(&db, project_id, &ids, &mut errors);
    let body = fields.text("message");
    if body.is_none() {
        errors.add("message", "This field is required.");
    }
    if !all_members && ids.is_empty() {
        errors.add("__all__", "You must specify either all members or provide a list of IDs.");
    }
    if all_members && !ids.is_empty() {
        errors.add(
            "__all__",
            "You must specify either all members or provide a list of IDs but not both.",
        );
    }
    let (Some(body), true) = (body, errors.0.is_empty()) else {
        return errors.response();
    };
    let Some(project) = db.projects.get(&project_id).cloned() else {
        return server_error();
    };
    let subject = match fields.text("subject") {
        Some(s) => format!("[Open Humans Project Message] {s}"),
        None => format!("[Open Humans Project Message] From \"{}\"", project.name),
    };
    let targets: Vec<Member> = if all_members {
        db.members
            .values()
            .filter(|m| m.project_id == project_id && m.is_active())
            .cloned()
            .collect()
    } else {
        pks.iter().filter_map(|pk| db.members.get(pk).cloned()).collect()
    };
    for member in targets {
        let message = Message {
            id: Db::next_id(&db.messages, 1),
            user_id: member.user_id,
            project_id,
            from: format!("{} <support@openhumans.org>", project.name),
            reply_to: project.contact_email.clone(),
            subject: subject.clone(),
            body: render_message(&body, &member.project_member_id),
            sent: now,
        };
        sb.inner.store.put(&message);
        db.messages.insert(message.id, message);
    }
    drop(db);
    json_value(StatusCode::OK, &"success")
}

/// `POST /api/direct-sharing/project/remove-members/`.
pub(crate) async fn remove_members(
    State(sb): State<Sandbox>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    mut fields: Fields,
) -> Response {
    let q = query_map(query.as_deref());
    let caller = match authenticate(&sb, &headers, &q, true) {
        Ok(c) => c,
        Err(response) => return *response,
    };
    let pks = {
        let db = sb.inner.state.lock();
        if let Caller::User { user_id, project_id } = caller {
            let own = db
                .member_of(user_id, project_id)
                .map(|m| m.project_member_id.clone())
                .unwrap_or_default();
            fields.set("project_member_ids", &[own]);
        }
        let mut errors = FormErrors::default();
        let ids = member_ids(&fields);
        let pks = clean_member_ids(&db, caller.project_id(), &ids, &mut errors);
        if ids.is_empty() {
            errors.add("__all__", "You must provide a list of project member IDs.");
        }
        if !errors.0.is_empty() {
            return errors.response();
        }
        pks
    };
    for pk in pks {
        crate::webhook::leave_project(&sb, pk, false, false).await;
    }
    json_value(StatusCode::OK, &"success")
}

#[cfg(test)]
mod tests {
    use super::render_message;

    #[test]
    fn template_substitution() {
        assert_eq!(
            render_message("Hi {{ PROJECT_MEMBER_ID }}, {{other}}!", "01234567"),
            "Hi 01234567, !"
        );
        assert_eq!(render_message("{{PROJECT_MEMBER_ID}}", "1"), "1");
        assert_eq!(render_message("open {{ end", "1"), "open {{ end");
    }
}
