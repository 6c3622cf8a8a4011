//! Member file routes: downloading a shared file and returning a file to the member's account.
//!
//! Downloads ask Open Humans for a fresh `download_url` at the moment of the click (its key lives
//! one hour, so ohkit never keeps one) and redirect the browser to it. Uploads arrive as a
//! multipart form, are checked by the same rules the browser applies, spooled to a temporary
//! file, and sent on: small files through the simple upload, large ones through the direct
//! upload (a presigned PUT, then "complete").

use axum::Json;
use axum::extract::{Multipart, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tower_sessions::Session;

use app::error::AppError;
use app::member::{parse_tags, validate_file_metadata, validate_file_name, validate_file_size};

use crate::AppState;
use crate::backend::{api_error, with_member_token};
use crate::enrollment::MEMBER_KEY;
use crate::openhumans::FileMetadata;

/// Files above this size go through the direct (presigned) upload.
pub const DIRECT_UPLOAD_THRESHOLD: u64 = 8 * 1024 * 1024;

/// Largest file ohkit accepts from a browser (the same limit the browser checks first).
pub use app::member::MAX_UPLOAD_BYTES;

/// The signed-in member's project member ID, if the session has one.
async fn member_id(session: &Session) -> Option<String> {
    session.get::<String>(MEMBER_KEY).await.ok().flatten()
}

/// What a browser without the WASM client gets when a file route fails: a page in ohkit's style
/// that says what went wrong and leads back to the dashboard (the scripted client shows the
/// message in place instead).
fn error_page(status: StatusCode, error: &AppError) -> Response {
    let page = maud::html! {
        (maud::DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "ohkit" }
                link rel="stylesheet" href="/pkg/ohkit.css";
                link rel="icon" href="/favicon.svg" type="image/svg+xml";
            }
            body {
                main {
                    section class="card" {
                        h1 { "That did not work" }
                        div class="error" role="alert" { p { (error.to_string()) } }
                        p { a class="button" href="/dashboard" { "Back to your dashboard" } }
                    }
                }
            }
        }
    };
    (status, page).into_response()
}

/// The HTTP status a failed file request answers with.
fn error_status(error: &AppError) -> StatusCode {
    match error {
        AppError::NotSignedIn => StatusCode::UNAUTHORIZED,
        AppError::NeedsReauthorization => StatusCode::FORBIDDEN,
        AppError::Invalid(_) => StatusCode::BAD_REQUEST,
        AppError::Upstream => StatusCode::BAD_GATEWAY,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// `GET /files/{id}/download`: redirects to a fresh download URL of one of the member's files.
pub async fn download(
    State(state): State<AppState>,
    session: Session,
    Path(file_id): Path<i64>,
) -> Response {
    let Some(member_id) = member_id(&session).await else {
        return Redirect::to("/dashboard").into_response();
    };
    let result = async {
        // exchange-member lists only this member's files, so an ID that is not theirs is
        // simply not found.
        let client = &state.oh_client;
        let data = with_member_token(&state, &member_id, |token| async move {
            client.exchange_member(&token).await
        })
        .await?;
        data.files
            .into_iter()
            .find(|file| file.id == file_id)
            .map(|file| file.download_url)
            .ok_or_else(|| AppError::Invalid("There is no such file among yours.".into()))
    }
    .await;
    match result {
        Ok(url) => Redirect::to(&url).into_response(),
        Err(error @ AppError::Invalid(_)) => error_page(StatusCode::NOT_FOUND, &error),
        Err(error) => error_page(error_status(&error), &error),
    }
}

/// `POST /files/upload`: returns a file to the member's Open Humans account.
///
/// Browsers with the WASM client send `X-Requested-With: ohkit` and get JSON or a plain error
/// text; a plain form post gets a redirect back to the dashboard.
pub async fn upload(
    State(state): State<AppState>,
    session: Session,
    headers: HeaderMap,
    multipart: Multipart,
) -> Response {
    let scripted = headers.get("x-requested-with").is_some_and(|v| v == "ohkit");
    let result = async {
        let member_id = member_id(&session).await.ok_or(AppError::NotSignedIn)?;
        let form = read_form(multipart).await?;
        let metadata = FileMetadata { description: form.description.clone(), tags: form.tags };
        let client = &state.oh_client;
        let id = if form.size > DIRECT_UPLOAD_THRESHOLD {
            let started = with_member_token(&state, &member_id, |token| {
                let (name, metadata) = (&form.name, &metadata);
                async move { client.start_direct_upload(&token, name, metadata).await }
            })
            .await?;
            let file = tokio::fs::File::open(form.spool.path()).await.map_err(|err| {
                tracing::error!(%err, "could not reopen a spooled upload");
                AppError::Internal
            })?;
            let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::new(file));
            client.put_presigned(&started.url, body, form.size).await.map_err(api_error)?;
            // A token of its own: the one the upload started with may have expired meanwhile.
            with_member_token(&state, &member_id, |token| async move {
                client.complete_direct_upload(&token, started.id).await
            })
            .await?;
            started.id
        } else {
            let bytes = tokio::fs::read(form.spool.path()).await.map_err(|err| {
                tracing::error!(%err, "could not read a spooled upload");
                AppError::Internal
            })?;
            with_member_token(&state, &member_id, |token| {
                let (name, metadata, bytes) = (&form.name, &metadata, bytes.clone());
                async move { client.upload_file(&token, name, bytes, metadata).await }
            })
            .await?
        };
        tracing::info!(
            project_member_id = %member_id,
            file_id = id,
            size = form.size,
            "file returned to a member"
        );
        Ok::<i64, AppError>(id)
    }
    .await;
    match (result, scripted) {
        (Ok(id), true) => (StatusCode::CREATED, Json(json!({ "id": id }))).into_response(),
        (Ok(_), false) => Redirect::to("/dashboard").into_response(),
        (Err(error), true) => (error_status(&error), error.to_string()).into_response(),
        (Err(error), false) => error_page(error_status(&error), &error),
    }
}

/// The upload form, with the file spooled to disk.
struct UploadForm {
    name: String,
    description: String,
    tags: Vec<String>,
    size: u64,
    spool: tempfile::NamedTempFile,
}

async fn read_form(mut multipart: Multipart) -> Result<UploadForm, AppError> {
    let invalid = |text: &str| AppError::Invalid(text.to_owned());
    let mut name = None;
    let mut description = String::new();
    let mut tags = String::new();
    let mut size = 0_u64;
    let spool = tempfile::NamedTempFile::new().map_err(|err| {
        tracing::error!(%err, "could not create a temporary file for an upload");
        AppError::Internal
    })?;
    while let Some(mut field) =
        multipart.next_field().await.map_err(|_| invalid("The upload was interrupted."))?
    {
        match field.name() {
            Some("file") => {
                name = field.file_name().map(str::to_owned);
                let mut out = tokio::fs::File::create(spool.path()).await.map_err(|err| {
                    tracing::error!(%err, "could not write an upload to disk");
                    AppError::Internal
                })?;
                while let Some(chunk) =
                    field.chunk().await.map_err(|_| invalid("The upload was interrupted."))?
                {
                    size += chunk.len() as u64;
                    if size > MAX_UPLOAD_BYTES {
                        return Err(invalid("The file is larger than 512 MiB."));
                    }
                    out.write_all(&chunk).await.map_err(|err| {
                        tracing::error!(%err, "could not write an upload to disk");
                        AppError::Internal
                    })?;
                }
                out.flush().await.map_err(|_| AppError::Internal)?;
            }
            Some("description") => description = small_text(field).await?,
            Some("tags") => tags = small_text(field).await?,
            _ => {}
        }
    }
    let name = name.unwrap_or_default();
    let tags = parse_tags(&tags);
    validate_file_name(&name).map_err(AppError::Invalid)?;
    validate_file_size(size).map_err(AppError::Invalid)?;
    validate_file_metadata(&description, &tags).map_err(AppError::Invalid)?;
    Ok(UploadForm { name, description: description.trim().to_owned(), tags, size, spool })
}

/// The longest text field ohkit reads from the upload form (the rules allow far less; the cap
/// only keeps an oversized field from being buffered whole).
const MAX_TEXT_FIELD_BYTES: usize = 16 * 1024;

/// Reads a text field of the upload form, refusing one longer than [`MAX_TEXT_FIELD_BYTES`].
async fn small_text(mut field: axum::extract::multipart::Field<'_>) -> Result<String, AppError> {
    let unreadable = || AppError::Invalid("Unreadable form.".to_owned());
    let mut bytes = Vec::new();
    while let Some(chunk) = field.chunk().await.map_err(|_| unreadable())? {
        if bytes.len() + chunk.len() > MAX_TEXT_FIELD_BYTES {
            return Err(AppError::Invalid("A form field is too long.".to_owned()));
        }
        bytes.extend_from_slice(&chunk);
    }
    String::from_utf8(bytes).map_err(|_| unreadable())
}
