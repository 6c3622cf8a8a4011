//! The form that returns a file to the member's Open Humans account.
//!
//! Without JavaScript it is a plain multipart form posted to `/files/upload`. Once hydrated, the
//! form is checked in the browser and sent with `XMLHttpRequest`, whose upload events drive a
//! progress bar; the server checks everything again either way.

use leptos::prelude::*;

/// What the form is doing. Only the browser moves past `Idle`: the server renders the form at rest.
/// The page owns it, so that the outcome stays on screen when the page reloads its data after an
/// upload and renders the form anew.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
pub enum UploadStatus {
    Idle,
    /// The share of the file sent so far, in whole percent.
    Sending(u8),
    Done(String),
    Failed(String),
}

/// The upload form; `on_uploaded` runs after a successful upload so the page can reload its data.
#[component]
pub fn UploadForm(
    status: RwSignal<UploadStatus>,
    on_uploaded: impl Fn() + Clone + Send + Sync + 'static,
) -> impl IntoView {
    let on_submit = move |event: leptos::ev::SubmitEvent| {
        event.prevent_default();
        submit(&event, status, on_uploaded.clone());
    };

    view! {
        <form
            class="upload"
            method="post"
            action="/files/upload"
            enctype="multipart/form-data"
            on:submit=on_submit
        >
            <label for="upload-file">"File"</label>
            <input id="upload-file" type="file" name="file" required />
            <label for="upload-description">"Description"</label>
            <input id="upload-description" type="text" name="description" maxlength="100" required />
            <label for="upload-tags">"Tags, separated by commas"</label>
            <input id="upload-tags" type="text" name="tags" required />
            <button type="submit" disabled=move || matches!(status.get(), UploadStatus::Sending(_))>
                "Upload"
            </button>
            {move || match status.get() {
                UploadStatus::Idle => ().into_any(),
                UploadStatus::Sending(percent) => view! {
                    <progress aria-label="Upload progress" max="100" value=percent.to_string() />
                    <p role="status">{format!("Uploading… {percent}%")}</p>
                }.into_any(),
                UploadStatus::Done(text) => view! { <p role="status" class="ok">{text}</p> }.into_any(),
                UploadStatus::Failed(text) => view! { <p role="alert" class="error">{text}</p> }.into_any(),
            }}
        </form>
    }
}

#[cfg(not(feature = "hydrate"))]
fn submit(
    _event: &leptos::ev::SubmitEvent,
    _status: RwSignal<UploadStatus>,
    _on_uploaded: impl Fn() + Clone + Send + Sync + 'static,
) {
}

#[cfg(feature = "hydrate")]
fn submit(
    event: &leptos::ev::SubmitEvent,
    status: RwSignal<UploadStatus>,
    on_uploaded: impl Fn() + Clone + Send + Sync + 'static,
) {
    use wasm_bindgen::JsCast;
    use wasm_bindgen::closure::Closure;

    use crate::member::{
        parse_tags, validate_file_metadata, validate_file_name, validate_file_size,
    };

    let Some(form) = event.target().and_then(|t| t.dyn_into::<web_sys::HtmlFormElement>().ok())
    else {
        return;
    };
    let Ok(data) = web_sys::FormData::new_with_form(&form) else {
        status.set(UploadStatus::Failed("The form could not be read.".into()));
        return;
    };
    let file = data.get("file").dyn_into::<web_sys::File>().ok();
    let description = data.get("description").as_string().unwrap_or_default();
    let tags = parse_tags(&data.get("tags").as_string().unwrap_or_default());
    let name = file.as_ref().map(web_sys::File::name).unwrap_or_default();
    // `File::size` is a double in JavaScript; file sizes are whole numbers well inside its range.
    let size = file.as_ref().map_or(0, |file| file.size() as u64);
    if let Err(message) = validate_file_name(&name)
        .and_then(|()| validate_file_size(size))
        .and_then(|()| validate_file_metadata(&description, &tags))
    {
        status.set(UploadStatus::Failed(message));
        return;
    }

    let Ok(request) = web_sys::XmlHttpRequest::new() else {
        status.set(UploadStatus::Failed("This browser cannot upload files here.".into()));
        return;
    };
    if request.open("POST", "/files/upload").is_err()
        || request.set_request_header("X-Requested-With", "ohkit").is_err()
    {
        status.set(UploadStatus::Failed("The upload could not start.".into()));
        return;
    }
    status.set(UploadStatus::Sending(0));

    let on_progress =
        Closure::<dyn FnMut(web_sys::ProgressEvent)>::new(move |p: web_sys::ProgressEvent| {
            if p.length_computable() && p.total() > 0.0 {
                // Whole percent, so that no float formatting is compiled into the client.
                let percent = (p.loaded() * 100.0 / p.total()).clamp(0.0, 100.0) as u8;
                status.set(UploadStatus::Sending(percent));
            }
        });
    if let Ok(upload) = request.upload() {
        upload.set_onprogress(Some(on_progress.as_ref().unchecked_ref()));
    }
    // The callbacks live as long as the request; one small allocation per upload is kept.
    on_progress.forget();

    let done_request = request.clone();
    let on_done = Closure::<dyn FnMut()>::new(move || {
        let code = done_request.status().unwrap_or(0);
        let body = done_request.response_text().ok().flatten().unwrap_or_default();
        if (200..300).contains(&code) {
            status.set(UploadStatus::Done("Uploaded.".into()));
            form.reset();
            on_uploaded();
        } else if code == 0 {
            status
                .set(UploadStatus::Failed("The upload was interrupted. Please try again.".into()));
        } else {
            status.set(UploadStatus::Failed(if body.is_empty() {
                format!("The upload failed (HTTP {code}).")
            } else {
                body
            }));
        }
    });
    request.set_onloadend(Some(on_done.as_ref().unchecked_ref()));
    on_done.forget();

    if request.send_with_opt_form_data(Some(&data)).is_err() {
        status.set(UploadStatus::Failed("The upload could not start.".into()));
    }
}
