//! Project files (§4.6–§4.10): simple and direct uploads, deletion, expiring download keys,
//! and a small local stand-in for the object store with presigned PUT and GET URLs.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::header::{CONTENT_TYPE, ETAG};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use time::OffsetDateTime;

use crate::Sandbox;
use crate::api::{Caller, authenticate, detail, json, query_map, server_error};
use crate::model::{DataFile, Member, State as Db};
use crate::util::{Fields, Ordered, Scalar, django_valid_name};

/// How long a `download_url` key stays valid.
const KEY_LIFETIME: i64 = 3600;
/// How long the redirect target (a presigned GET) stays valid.
const GET_LIFETIME: i64 = 600;
/// How long a presigned PUT stays valid.
const PUT_LIFETIME: i64 = 6 * 3600;

/// The blob-table key of a file's bytes.
pub(crate) fn blob_key(file_id: i64) -> String {
    format!("file/{file_id}")
}

fn mac(sb: &Sandbox, message: &str) -> Vec<u8> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&sb.inner.signing_key)
        .expect("HMAC accepts keys of any length");
    mac.update(message.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

fn key_bytes(sb: &Sandbox, file_id: i64, secs: u32) -> [u8; 16] {
    let tag = mac(sb, &format!("download:{file_id}:{secs}"));
    let mut bytes = [0u8; 16];
    bytes[..4].copy_from_slice(&secs.to_be_bytes());
    bytes[4..].copy_from_slice(&tag[..12]);
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    bytes
}

/// A download key: a UUID (version 4 layout) that carries its creation time and a MAC, so
/// no key needs to be stored.
pub(crate) fn mint_key(sb: &Sandbox, file_id: i64, now: OffsetDateTime) -> String {
    let secs = u32::try_from(now.unix_timestamp()).unwrap_or(u32::MAX);
    uuid::Uuid::from_bytes(key_bytes(sb, file_id, secs)).hyphenated().to_string()
}

fn key_valid(sb: &Sandbox, file_id: i64, key: &str, now: OffsetDateTime) -> bool {
    let Ok(uuid) = uuid::Uuid::parse_str(key) else {
        return false;
    };
    let bytes = uuid.into_bytes();
    let secs = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    let expected = key_bytes(sb, file_id, secs);
    let age = now.unix_timestamp() - i64::from(secs);
    subtle::ConstantTimeEq::ct_eq(&bytes[..], &expected[..]).into()
        && (0..KEY_LIFETIME).contains(&age)
}

fn signature(sb: &Sandbox, method: &str, file_id: i64, expires: i64) -> String {
    hex::encode(mac(sb, &format!("{method}:{file_id}:{expires}")))
}

fn presigned(sb: &Sandbox, method: &str, path: &str, file_id: i64, expires: i64) -> String {
    format!(
        "{}?Expires={expires}&Signature={}",
        sb.abs(path),
        signature(sb, method, file_id, expires)
    )
}

fn signature_ok(
    sb: &Sandbox,
    method: &str,
    file_id: i64,
    q: &HashMap<String, String>,
) -> Result<(), Box<Response>> {
    let expires = q.get("Expires").and_then(|e| e.parse::<i64>().ok());
    let given = q.get("Signature");
    let (Some(expires), Some(given)) = (expires, given) else {
        return Err(Box::new(s3_error(
            "AccessDenied",
            "Query-string authentication requires the Signature and Expires parameters",
        )));
    };
    let expected = signature(sb, method, file_id, expires);
    if !crate::util::secret_eq(&expected, given) {
        return Err(Box::new(s3_error(
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided.",
        )));
    }
    if sb.now().unix_timestamp() > expires {
        return Err(Box::new(s3_error("AccessDenied", "Request has expired")));
    }
    Ok(())
}

fn s3_error(code: &str, message: &str) -> Response {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message></Error>"
    );
    let mut response = (StatusCode::FORBIDDEN, body).into_response();
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/xml"));
    response
}

fn forbidden_html(text: &str) -> Response {
    let mut response = (StatusCode::FORBIDDEN, format!("<h1>{text}</h1>")).into_response();
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    response
}

/// Field errors of an upload form, rendered as `{"field": ["message"]}`.
#[derive(Default)]
struct FieldErrors(Vec<(String, String)>);

impl FieldErrors {
    fn add(&mut self, field: &str, message: impl Into<String>) {
        self.0.push((field.to_owned(), message.into()));
    }

    fn response(self) -> Response {
        let mut body = Ordered::default();
        for (field, message) in self.0 {
            body = body.with(&field, vec![message]);
        }
        json(StatusCode::BAD_REQUEST, body.to_json())
    }
}

fn is_iso_date(value: &serde_json::Value) -> bool {
    use time::format_description::well_known::{Iso8601, Rfc3339};
    match value {
        serde_json::Value::Number(_) => true,
        serde_json::Value::String(s) => {
            OffsetDateTime::parse(s, &Rfc3339).is_ok()
                || time::PrimitiveDateTime::parse(s, &Iso8601::DEFAULT).is_ok()
                || OffsetDateTime::parse(s, &Iso8601::DEFAULT).is_ok()
                || time::Date::parse(s, &Iso8601::DEFAULT).is_ok()
                || time::Date::parse(s, time::macros::format_description!("[year]-[month]-[day]"))
                    .is_ok()
        }
        _ => false,
    }
}

/// `clean_metadata` (§4.9).
fn clean_metadata(fields: &Fields) -> Result<serde_json::Value, &'static str> {
    const PARSE: &str = "could not parse the uploaded metadata";
    let text = match fields.scalar("metadata") {
        Scalar::Missing => return Err("This field is required."),
        Scalar::Text(t) if t.is_empty() => return Err("This field is required."),
        Scalar::Text(t) => t,
        Scalar::NotText => return Err(PARSE),
    };
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|_| PARSE)?;
    let Some(map) = value.as_object() else {
        return Err("\"description\" is a required field of the metadata");
    };
    match map.get("description") {
        None => return Err("\"description\" is a required field of the metadata"),
        Some(serde_json::Value::String(_)) => {}
        Some(_) => return Err("\"description\" must be a string"),
    }
    match map.get("tags") {
        None => return Err("\"tags\" is a required field of the metadata"),
        Some(serde_json::Value::Array(_)) => {}
        Some(_) => return Err("\"tags\" must be an array of strings"),
    }
    for field in ["creation_date", "start_date", "end_date"] {
        if let Some(v) = map.get(field)
            && !is_iso_date(v)
        {
            return Err("Dates must be in ISO 8601 format");
        }
    }
    if let Some(md5) = map.get("md5") {
        let ok = md5.as_str().is_some_and(|s| {
            s.len() >= 32 && s.as_bytes()[..32].iter().all(u8::is_ascii_alphanumeric)
        });
        if !ok {
            return Err("Invalid MD5 specified");
        }
    }
    Ok(value)
}

fn py_repr(items: &[serde_json::Value]) -> String {
    let parts: Vec<String> = items
        .iter()
        .map(|v| match v {
            serde_json::Value::String(s) => format!("'{s}'"),
            other => other.to_string(),
        })
        .collect();
    format!("[{}]", parts.join(", "))
}

/// The optional `datatypes` field: a JSON list of ids or names.
fn clean_datatypes(db: &Db, project_id: i64, fields: &Fields) -> Result<Vec<i64>, String> {
    let raw = match fields.scalar("datatypes") {
        Scalar::Missing => return Ok(Vec::new()),
        Scalar::Text(t) if t.is_empty() => return Ok(Vec::new()),
        Scalar::Text(t) => t,
        Scalar::NotText => {
            return Err("Could not parse the uploaded datatypes from: '[...]'".to_owned());
        }
    };
    let parse_error = || format!("Could not parse the uploaded datatypes from: '{raw}'");
    let items: Vec<serde_json::Value> = serde_json::from_str(&raw).map_err(|_| parse_error())?;
    let mut ids = Vec::new();
    let mut unknown = Vec::new();
    for item in &items {
        let found = match item {
            serde_json::Value::Number(n) => n.as_i64().filter(|id| db.datatypes.contains_key(id)),
            serde_json::Value::String(name) => {
                db.datatypes.values().find(|d| &d.name == name).map(|d| d.id)
            }
            _ => return Err(parse_error()),
        };
        match found {
            Some(id) => ids.push((id, item.clone())),
            None => unknown.push(item.clone()),
        }
    }
    if !unknown.is_empty() {
        return Err(format!(
            "The following datatypes don't match items in our database: {}",
            py_repr(&unknown)
        ));
    }
    let registered =
        db.projects.get(&project_id).map(|p| p.registered_datatypes.clone()).unwrap_or_default();
    let unregistered: Vec<serde_json::Value> = ids
        .iter()
        .filter(|(id, _)| !registered.contains(id))
        .map(|(_, item)| item.clone())
        .collect();
    if !unregistered.is_empty() {
        return Err(format!(
            "The following datatypes aren't registered for this project: {}",
            py_repr(&unregistered)
        ));
    }
    Ok(ids.into_iter().map(|(id, _)| id).collect())
}

/// Forces the member id for user tokens, then finds the active member (§4.6).
fn resolve_member(
    db: &Db,
    caller: Caller,
    fields: &mut Fields,
    errors: &mut FieldErrors,
) -> Option<Member> {
    if let Caller::User { user_id, project_id } = caller
        && let Some(m) = db.member_of(user_id, project_id)
    {
        fields.set("project_member_id", std::slice::from_ref(&m.project_member_id));
    }
    match fields.text("project_member_id") {
        None => {
            errors.add("project_member_id", "This field is required.");
            None
        }
        Some(pmid) => db.member_by_pmid(caller.project_id(), &pmid).cloned(),
    }
}

fn member_invalid() -> Response {
    json(
        StatusCode::BAD_REQUEST,
        Ordered::default().with("project_member_id", "project_member_id is invalid").to_json(),
    )
}

fn new_key(project_id: i64, filename: &str) -> String {
    format!(
        "member-files/direct-sharing-{project_id}/{}/{filename}",
        uuid::Uuid::now_v1(&rand::random()).hyphenated()
    )
}

/// `POST /api/direct-sharing/project/files/upload/`.
pub(crate) async fn upload(
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
    let project_id = caller.project_id();
    let mut errors = FieldErrors::default();
    let (file, metadata, datatypes, member) = {
        let db = sb.inner.state.lock();
        let member = resolve_member(&db, caller, &mut fields, &mut errors);
        let file = fields.file("data_file").cloned();
        match &file {
            None => errors.add("data_file", "This field is required."),
            Some(f) if f.bytes.is_empty() => {
                errors.add("data_file", "The submitted file is empty.")
            }
            Some(_) => {}
        }
        let metadata = clean_metadata(&fields).map_err(|e| errors.add("metadata", e)).ok();
        let datatypes =
            clean_datatypes(&db, project_id, &fields).map_err(|e| errors.add("datatypes", e)).ok();
        (file, metadata, datatypes, member)
    };
    let (Some(file), Some(metadata), Some(datatypes), true) =
        (file, metadata, datatypes, errors.0.is_empty())
    else {
        return errors.response();
    };
    let Some(member) = member.filter(Member::is_active) else {
        return member_invalid();
    };
    let mut name = django_valid_name(&file.filename);
    if name.is_empty() {
        name = "file".to_owned();
    }
    let now = sb.now();
    let id = {
        let mut db = sb.inner.state.lock();
        let record = DataFile {
            id: Db::next_id(&db.files, 100_000),
            user_id: member.user_id,
            source_project_id: project_id,
            key: new_key(project_id, &name),
            metadata,
            datatypes,
            created: now,
            completed: true,
            present: true,
            size: file.bytes.len() as u64,
        };
        sb.inner.store.put_blob(blob_key(record.id), file.bytes.clone());
        sb.inner.store.put(&record);
        let id = record.id;
        db.files.insert(id, record);
        id
    };
    json(StatusCode::CREATED, Ordered::default().with("id", id).to_json())
}

/// `POST /api/direct-sharing/project/files/upload/direct/`.
pub(crate) async fn upload_direct(
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
    let project_id = caller.project_id();
    let now = sb.now();
    let mut db = sb.inner.state.lock();
    let mut errors = FieldErrors::default();
    let member = resolve_member(&db, caller, &mut fields, &mut errors);
    let filename = fields.text("filename");
    if filename.is_none() {
        errors.add("filename", "This field is required.");
    }
    let metadata = clean_metadata(&fields).map_err(|e| errors.add("metadata", e)).ok();
    let datatypes =
        clean_datatypes(&db, project_id, &fields).map_err(|e| errors.add("datatypes", e)).ok();
    let (Some(filename), Some(metadata), Some(datatypes), true) =
        (filename, metadata, datatypes, errors.0.is_empty())
    else {
        return errors.response();
    };
    let Some(member) = member.filter(Member::is_active) else {
        return member_invalid();
    };
    let record = DataFile {
        id: Db::next_id(&db.files, 100_000),
        user_id: member.user_id,
        source_project_id: project_id,
        key: new_key(project_id, &filename),
        metadata,
        datatypes,
        created: now,
        completed: false,
        present: false,
        size: 0,
    };
    sb.inner.store.put(&record);
    let id = record.id;
    db.files.insert(id, record);
    drop(db);
    let url = presigned(
        &sb,
        "put",
        &format!("/sandbox-storage/put/{id}/"),
        id,
        now.unix_timestamp() + PUT_LIFETIME,
    );
    json(StatusCode::CREATED, Ordered::default().with("id", id).with("url", url).to_json())
}

/// `POST /api/direct-sharing/project/files/upload/complete/`.
pub(crate) async fn upload_complete(
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
    let Some(file_id) = fields.text("file_id") else {
        return detail(StatusCode::BAD_REQUEST, "file does not exist");
    };
    let mut db = sb.inner.state.lock();
    let mut errors = FieldErrors::default();
    let member = resolve_member(&db, caller, &mut fields, &mut errors);
    if !errors.0.is_empty() {
        return errors.response();
    }
    let Some(member) = member.filter(Member::is_active) else {
        return member_invalid();
    };
    let Ok(file_id) = file_id.trim().parse::<i64>() else {
        return detail(StatusCode::BAD_REQUEST, "file does not exist");
    };
    let Some(file) = db.files.get_mut(&file_id) else {
        return server_error();
    };
    if file.source_project_id != caller.project_id() || file.user_id != member.user_id {
        return detail(StatusCode::BAD_REQUEST, "file does not exist");
    }
    if !file.present {
        file.completed = false;
        sb.inner.store.put(&*file);
        return detail(StatusCode::BAD_REQUEST, "file not present");
    }
    file.completed = true;
    sb.inner.store.put(&*file);
    let size = file.size;
    drop(db);
    json(StatusCode::OK, Ordered::default().with("status", "ok").with("size", size).to_json())
}

/// `POST /api/direct-sharing/project/files/delete/`.
pub(crate) async fn delete(
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
    let mut db = sb.inner.state.lock();
    let mut errors = FieldErrors::default();
    let member = resolve_member(&db, caller, &mut fields, &mut errors);
    let file_id = match fields.text("file_id") {
        None => None,
        Some(text) => match text.trim().parse::<i64>() {
            Ok(id) => Some(id),
            Err(_) => {
                errors.add("file_id", "Enter a whole number.");
                None
            }
        },
    };
    if !errors.0.is_empty() {
        return errors.response();
    }
    let Some(member) = member.filter(Member::is_active) else {
        return member_invalid();
    };
    let basename = fields.text("file_basename");
    let all_files = fields.boolean("all_files");
    let given = [file_id.is_some(), basename.is_some(), all_files].iter().filter(|g| **g).count();
    let message = "one of file_id, file_basename, or all_files is required";
    if given == 0 {
        return json(
            StatusCode::BAD_REQUEST,
            Ordered::default().with("missing_field", message).to_json(),
        );
    }
    if given > 1 {
        return json(
            StatusCode::BAD_REQUEST,
            Ordered::default().with("too_many", message).to_json(),
        );
    }
    let project_id = caller.project_id();
    let ids: Vec<i64> = db
        .files
        .values()
        .filter(|f| f.source_project_id == project_id && f.user_id == member.user_id && f.completed)
        .filter(|f| match (file_id, &basename) {
            (Some(id), _) => f.id == id,
            (None, Some(name)) => f.basename() == name,
            (None, None) => true,
        })
        .map(|f| f.id)
        .collect();
    for id in &ids {
        db.files.remove(id);
        sb.inner.store.delete::<DataFile>(id.to_string());
        sb.inner.store.delete_blob(blob_key(*id));
    }
    drop(db);
    json(StatusCode::OK, Ordered::default().with("ids", ids).to_json())
}

/// `GET /data-management/datafile-download/<id>/?key=…`.
pub(crate) async fn download(
    State(sb): State<Sandbox>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let q = query_map(query.as_deref());
    let now = sb.now();
    let Ok(id) = id.parse::<i64>() else {
        return forbidden_html("This file is unavailable.");
    };
    let key = q.get("key").cloned().unwrap_or_default();
    if !key_valid(&sb, id, &key, now) {
        return forbidden_html("You are not authorized to view this file.");
    }
    let file = sb.inner.state.lock().files.get(&id).cloned();
    let Some(file) = file.filter(|f| f.completed && f.present) else {
        return forbidden_html("This file is unavailable.");
    };
    let target = format!(
        "{}&x-oh-key={key}",
        presigned(
            &sb,
            "get",
            &format!(
                "/sandbox-storage/get/{id}/{}",
                crate::util::query_escape(file.basename()).replace('+', "%20")
            ),
            id,
            now.unix_timestamp() + GET_LIFETIME,
        )
    );
    crate::html::redirect(&target)
}

/// `PUT /sandbox-storage/put/<id>/?Expires=…&Signature=…`: the presigned upload target.
pub(crate) async fn storage_put(
    State(sb): State<Sandbox>,
    Path(id): Path<i64>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let q = query_map(query.as_deref());
    if let Err(response) = signature_ok(&sb, "put", id, &q) {
        return *response;
    }
    if headers.contains_key(CONTENT_TYPE) {
        return s3_error(
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided. \
             (The presigned URL was signed without a Content-Type header.)",
        );
    }
    let size = body.len() as u64;
    let etag = format!("\"{}\"", &hex::encode(<Sha256 as sha2::Digest>::digest(&body))[..32]);
    {
        let mut db = sb.inner.state.lock();
        let Some(file) = db.files.get_mut(&id) else {
            return s3_error("NoSuchKey", "The specified key does not exist.");
        };
        sb.inner.store.put_blob(blob_key(id), body);
        file.present = true;
        file.size = size;
        sb.inner.store.put(&*file);
    }
    sb.inner.store.flush().await;
    let mut response = StatusCode::OK.into_response();
    if let Ok(value) = HeaderValue::from_str(&etag) {
        response.headers_mut().insert(ETAG, value);
    }
    response
}

/// `GET /sandbox-storage/get/<id>/<name>?Expires=…&Signature=…`: the presigned download.
pub(crate) async fn storage_get(
    State(sb): State<Sandbox>,
    Path((id, _name)): Path<(i64, String)>,
    RawQuery(query): RawQuery,
) -> Response {
    let q = query_map(query.as_deref());
    if let Err(response) = signature_ok(&sb, "get", id, &q) {
        return *response;
    }
    let name = sb.inner.state.lock().files.get(&id).map(|f| f.basename().to_owned());
    sb.inner.store.flush().await;
    let bytes = match (name, sb.inner.store.blob(&blob_key(id)).await) {
        (Some(name), Ok(Some(bytes))) => (name, bytes),
        (_, Err(error)) => {
            tracing::error!(%error, "cannot read a blob");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
        _ => return s3_error("NoSuchKey", "The specified key does not exist."),
    };
    let content_type = match bytes.0.rsplit('.').next() {
        Some("json") => "application/json",
        Some("csv") => "text/csv",
        Some("txt") => "text/plain",
        _ => "application/octet-stream",
    };
    let mut response = bytes.1.into_response();
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}
