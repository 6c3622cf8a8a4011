//! Small helpers shared by the handlers: random identifiers, hashing, timestamps in the
//! platform's two datetime styles, Python-style JSON, and a request-body reader that accepts
//! the three encodings the platform's API accepts (form, multipart, JSON).

use axum::body::Bytes;
use axum::extract::{FromRequest, Multipart, Request};
use axum::http::header::CONTENT_TYPE;
use rand::Rng;
use rand::distributions::Alphanumeric;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use time::OffsetDateTime;

/// A random string of `len` characters from `[A-Za-z0-9]` (the platform's token alphabet).
pub(crate) fn random_token(len: usize) -> String {
    rand::thread_rng().sample_iter(&Alphanumeric).take(len).map(char::from).collect()
}

/// A random string of `len` decimal digits (leading zeros allowed).
pub(crate) fn random_digits(len: usize) -> String {
    let mut rng = rand::thread_rng();
    (0..len).map(|_| char::from(b'0' + rng.gen_range(0..10u8))).collect()
}

/// The hex SHA-256 of a secret; tokens and codes are stored and looked up by this value.
pub(crate) fn digest(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Compares two secrets in constant time (for equal lengths).
pub(crate) fn secret_eq(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

/// Now, truncated to whole microseconds like the platform's database columns.
pub(crate) fn truncate_micros(t: OffsetDateTime) -> OffsetDateTime {
    let micros = t.microsecond();
    t.replace_nanosecond(micros * 1000).unwrap_or(t)
}

fn date_time_part(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    let mut out = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    let micros = t.microsecond();
    if micros != 0 {
        out.push_str(&format!(".{micros:06}"));
    }
    out
}

/// A datetime as Django REST framework renders it: ISO 8601 with `Z`, microseconds omitted
/// when they are zero.
pub(crate) fn drf_datetime(t: OffsetDateTime) -> String {
    format!("{}Z", date_time_part(t))
}

/// A datetime as Python's `isoformat()` renders an aware UTC value: `+00:00`, microseconds
/// omitted when they are zero.
pub(crate) fn python_isoformat(t: OffsetDateTime) -> String {
    format!("{}+00:00", date_time_part(t))
}

/// A JSON string literal as Python's `json.dumps` writes it (ASCII only, `\uXXXX` escapes).
pub(crate) fn py_json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (c as u32) > 0x7e => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A flat JSON object of string values, written with Python's default separators.
pub(crate) fn py_json_object(pairs: &[(&str, &str)]) -> String {
    let body: Vec<String> =
        pairs.iter().map(|(k, v)| format!("{}: {}", py_json_str(k), py_json_str(v))).collect();
    format!("{{{}}}", body.join(", "))
}

/// One uploaded file of a multipart body.
#[derive(Debug, Clone)]
pub(crate) struct UploadedFile {
    pub(crate) field: String,
    pub(crate) filename: String,
    pub(crate) bytes: Bytes,
}

/// A request body decoded from `application/x-www-form-urlencoded`, `multipart/form-data`
/// or JSON, with accessors that behave like Django form fields fed from DRF's `request.data`.
#[derive(Debug, Default, Clone)]
pub(crate) struct Fields {
    pairs: Vec<(String, String)>,
    json: Option<serde_json::Map<String, serde_json::Value>>,
    pub(crate) files: Vec<UploadedFile>,
}

/// A field's value as a Django `CharField` would see it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Scalar {
    Missing,
    Text(String),
    /// A JSON object or array sent where a string was expected: never parses as the caller hopes.
    NotText,
}

impl Fields {
    pub(crate) fn from_pairs(pairs: Vec<(String, String)>) -> Self {
        Self { pairs, ..Self::default() }
    }

    /// Parses a form-encoded body.
    pub(crate) fn from_urlencoded(body: &[u8]) -> Self {
        Self::from_pairs(url::form_urlencoded::parse(body).into_owned().collect())
    }

    /// The last value of a text field (Django's `QueryDict.get`), or the JSON member.
    pub(crate) fn scalar(&self, name: &str) -> Scalar {
        if let Some(map) = &self.json {
            return match map.get(name) {
                None | Some(serde_json::Value::Null) => Scalar::Missing,
                Some(serde_json::Value::String(s)) => Scalar::Text(s.clone()),
                Some(serde_json::Value::Bool(b)) => {
                    Scalar::Text(if *b { "True" } else { "False" }.to_owned())
                }
                Some(serde_json::Value::Number(n)) => Scalar::Text(n.to_string()),
                Some(_) => Scalar::NotText,
            };
        }
        match self.pairs.iter().rev().find(|(k, _)| k == name) {
            Some((_, v)) => Scalar::Text(v.clone()),
            None => Scalar::Missing,
        }
    }

    /// A text field, treating an empty value as missing (Django's `required` check).
    pub(crate) fn text(&self, name: &str) -> Option<String> {
        match self.scalar(name) {
            Scalar::Text(s) if !s.is_empty() => Some(s),
            _ => None,
        }
    }

    /// Every value of a list field: repeated keys, a JSON array, or one string.
    pub(crate) fn list(&self, name: &str) -> Vec<String> {
        if let Some(map) = &self.json {
            return match map.get(name) {
                Some(serde_json::Value::Array(items)) => items
                    .iter()
                    .map(|v| match v {
                        serde_json::Value::String(s) => s.clone(),
                        other => other.to_string(),
                    })
                    .collect(),
                Some(serde_json::Value::String(s)) => vec![s.clone()],
                Some(serde_json::Value::Number(n)) => vec![n.to_string()],
                _ => Vec::new(),
            };
        }
        self.pairs.iter().filter(|(k, _)| k == name).map(|(_, v)| v.clone()).collect()
    }

    /// A Django `BooleanField` (`"false"`, `"False"`, `"0"` and empty are false).
    pub(crate) fn boolean(&self, name: &str) -> bool {
        match self.scalar(name) {
            Scalar::Text(s) => !matches!(s.as_str(), "" | "false" | "False" | "0" | "off"),
            Scalar::NotText => true,
            Scalar::Missing => false,
        }
    }

    /// Replaces a field's values (the platform does this for user-token requests). Whatever
    /// the body kind, one value reads back as that text through [`Fields::scalar`],
    /// [`Fields::text`] and [`Fields::boolean`], and every value through [`Fields::list`]; no
    /// value removes the field.
    pub(crate) fn set(&mut self, name: &str, values: &[String]) {
        if let Some(map) = &mut self.json {
            match values {
                [] => {
                    map.remove(name);
                }
                [one] => {
                    map.insert(name.to_owned(), serde_json::Value::String(one.clone()));
                }
                many => {
                    map.insert(
                        name.to_owned(),
                        serde_json::Value::Array(
                            many.iter().map(|v| serde_json::Value::String(v.clone())).collect(),
                        ),
                    );
                }
            }
            return;
        }
        self.pairs.retain(|(k, _)| k != name);
        self.pairs.extend(values.iter().map(|v| (name.to_owned(), v.clone())));
    }

    /// The first uploaded file of a multipart field.
    pub(crate) fn file(&self, name: &str) -> Option<&UploadedFile> {
        self.files.iter().find(|f| f.field == name)
    }
}

/// Why a request body could not be decoded.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BodyError {
    #[error("malformed multipart body: {0}")]
    Multipart(String),
    #[error("malformed JSON body")]
    Json,
    #[error("unreadable body")]
    Read,
}

impl axum::response::IntoResponse for BodyError {
    fn into_response(self) -> axum::response::Response {
        let detail = match self {
            Self::Json => "JSON parse error".to_owned(),
            other => other.to_string(),
        };
        (axum::http::StatusCode::BAD_REQUEST, axum::Json(serde_json::json!({ "detail": detail })))
            .into_response()
    }
}

impl<S: Send + Sync> FromRequest<S> for Fields {
    type Rejection = BodyError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let content_type = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        if content_type.starts_with("multipart/form-data") {
            let mut multipart = Multipart::from_request(req, state)
                .await
                .map_err(|e| BodyError::Multipart(e.body_text()))?;
            let mut fields = Fields::default();
            while let Some(field) =
                multipart.next_field().await.map_err(|e| BodyError::Multipart(e.body_text()))?
            {
                let name = field.name().unwrap_or("").to_owned();
                let filename = field.file_name().map(str::to_owned);
                let bytes = field.bytes().await.map_err(|e| BodyError::Multipart(e.body_text()))?;
                match filename {
                    Some(filename) => {
                        fields.files.push(UploadedFile { field: name, filename, bytes })
                    }
                    None => fields.pairs.push((name, String::from_utf8_lossy(&bytes).into_owned())),
                }
            }
            return Ok(fields);
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|_| BodyError::Read)?;
        if content_type.starts_with("application/json") {
            if bytes.iter().all(u8::is_ascii_whitespace) {
                return Ok(Fields::default());
            }
            let value: serde_json::Value =
                serde_json::from_slice(&bytes).map_err(|_| BodyError::Json)?;
            return Ok(Fields {
                json: Some(match value {
                    serde_json::Value::Object(map) => map,
                    _ => serde_json::Map::new(),
                }),
                ..Fields::default()
            });
        }
        Ok(Fields::from_urlencoded(&bytes))
    }
}

/// Escapes a value for the query string of a URL (`application/x-www-form-urlencoded`).
pub(crate) fn query_escape(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Django's `get_valid_name`: spaces become `_`, anything but `[-\w.]` is dropped.
pub(crate) fn django_valid_name(name: &str) -> String {
    name.trim()
        .replace(' ', "_")
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .collect()
}

/// A JSON object that keeps its keys in insertion order when serialized.
#[derive(Debug, Clone, Default)]
pub(crate) struct Ordered(pub(crate) Vec<(String, OrderedValue)>);

/// A value inside an [`Ordered`] object.
#[derive(Debug, Clone)]
pub(crate) enum OrderedValue {
    Plain(serde_json::Value),
    Nested(Ordered),
    List(Vec<Ordered>),
}

impl Ordered {
    /// Appends a plain JSON value.
    pub(crate) fn with(mut self, key: &str, value: impl Into<serde_json::Value>) -> Self {
        self.0.push((key.to_owned(), OrderedValue::Plain(value.into())));
        self
    }

    /// Appends a nested ordered object.
    pub(crate) fn nested(mut self, key: &str, value: Ordered) -> Self {
        self.0.push((key.to_owned(), OrderedValue::Nested(value)));
        self
    }

    /// Appends a list of ordered objects.
    pub(crate) fn list(mut self, key: &str, value: Vec<Ordered>) -> Self {
        self.0.push((key.to_owned(), OrderedValue::List(value)));
        self
    }

    /// Compact JSON text (Django REST framework's renderer style).
    pub(crate) fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".to_owned())
    }
}

impl serde::Serialize for OrderedValue {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Plain(v) => v.serialize(serializer),
            Self::Nested(o) => o.serialize(serializer),
            Self::List(items) => items.serialize(serializer),
        }
    }
}

impl serde::Serialize for Ordered {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn datetimes_follow_python_rules() {
        assert_eq!(
            drf_datetime(datetime!(2016-05-19 18:33:10.513837 UTC)),
            "2016-05-19T18:33:10.513837Z"
        );
        assert_eq!(drf_datetime(datetime!(2016-05-19 18:33:10 UTC)), "2016-05-19T18:33:10Z");
        assert_eq!(
            python_isoformat(datetime!(2020-06-30 20:00:00.000001 UTC)),
            "2020-06-30T20:00:00.000001+00:00"
        );
        assert_eq!(
            python_isoformat(datetime!(2020-06-30 20:00:00 UTC)),
            "2020-06-30T20:00:00+00:00"
        );
    }

    #[test]
    fn python_json_uses_spaced_separators_and_ascii() {
        assert_eq!(py_json_object(&[("error", "invalid_grant")]), r#"{"error": "invalid_grant"}"#);
        assert_eq!(py_json_str("a\"é"), r#""a\"\u00e9""#);
    }

    #[test]
    fn set_reads_back_for_every_body_kind() {
        let json = Fields {
            json: Some(serde_json::Map::from_iter([(
                "all_members".to_owned(),
                serde_json::Value::Bool(true),
            )])),
            ..Fields::default()
        };
        for mut fields in [Fields::from_urlencoded(b"all_members=true"), json] {
            fields.set("all_members", &["False".to_owned()]);
            fields.set("project_member_id", &["01234567".to_owned()]);
            assert_eq!(fields.scalar("all_members"), Scalar::Text("False".to_owned()));
            assert!(!fields.boolean("all_members"));
            assert_eq!(fields.text("project_member_id").as_deref(), Some("01234567"));
            assert_eq!(fields.list("project_member_id"), ["01234567"]);
            fields.set("ids", &["1".to_owned(), "2".to_owned()]);
            assert_eq!(fields.list("ids"), ["1", "2"]);
            fields.set("ids", &[]);
            assert_eq!(fields.scalar("ids"), Scalar::Missing);
        }
    }

    #[test]
    fn valid_name_matches_django() {
        assert_eq!(django_valid_name("my file (1).csv"), "my_file_1.csv");
    }
}
