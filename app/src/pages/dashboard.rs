//! The member dashboard: membership, shared files, returned files and the member's choices.

use leptos::prelude::*;

use super::ErrorCard;
use super::upload::{UploadForm, UploadStatus};
use crate::error::AppError;
use crate::member::{Dashboard, FileView, SourceFiles, load_dashboard};

/// The signed-in member's page. It is rendered on the server with the member's data; only the
/// [`MemberDashboard`] island inside it is hydrated.
#[component]
pub fn DashboardPage() -> impl IntoView {
    let dashboard = Resource::new_blocking(|| (), |()| load_dashboard());

    view! {
        <Suspense fallback=|| view! { <p class="muted">"Loading your data…"</p> }>
            {move || Suspend::new(async move {
                match dashboard.await {
                    Ok(data) => view! { <MemberDashboard data /> }.into_any(),
                    Err(AppError::NotSignedIn) => view! { <SignedOut /> }.into_any(),
                    Err(error) => view! { <ErrorCard error /> }.into_any(),
                }
            })}
        </Suspense>
    }
}

/// The interactive dashboard. It starts from the data the server rendered it with and loads it
/// again after each upload or deletion, keeping what is on screen until the new data arrives.
#[island]
fn MemberDashboard(data: Dashboard) -> impl IntoView {
    let delete_file = ServerAction::<crate::member::DeleteReturnedFile>::new();
    let upload_status = RwSignal::new(UploadStatus::Idle);
    let reload = Action::new(|(): &()| load_dashboard());
    let reloading = reload.pending();
    Effect::watch(
        move || delete_file.version().get(),
        move |_, _, _| _ = reload.dispatch(()),
        false,
    );
    let on_uploaded = move || _ = reload.dispatch(());

    let current = move || reload.value().get().unwrap_or_else(|| Ok(data.clone()));
    view! {
        <p class="muted updating" role="status" hidden=move || !reloading.get()>"Updating…"</p>
        {move || match current() {
            Ok(data) => view! { <DashboardView data delete_file upload_status on_uploaded /> }.into_any(),
            Err(AppError::NotSignedIn) => view! { <SignedOut /> }.into_any(),
            Err(error) => view! { <ErrorCard error /> }.into_any(),
        }}
    }
}

#[component]
fn SignedOut() -> impl IntoView {
    view! {
        <section class="card">
            <h1>"You are not signed in"</h1>
            <p>"Join the project, or sign in again through Open Humans, to see your data."</p>
            <p><a class="button" href="/join" rel="external">"Sign in with Open Humans"</a></p>
        </section>
    }
}

#[component]
fn DashboardView(
    data: Dashboard,
    delete_file: ServerAction<crate::member::DeleteReturnedFile>,
    upload_status: RwSignal<UploadStatus>,
    on_uploaded: impl Fn() + Clone + Send + Sync + 'static,
) -> impl IntoView {
    let Dashboard {
        project_member_id,
        username,
        sources_shared,
        shared,
        returned,
        needs_reauthorization,
        missing_sources,
        connections_url,
    } = data;
    view! {
        <section class="card">
            <h1>"Your membership"</h1>
            <dl class="facts">
                <dt>"Project member ID"</dt>
                <dd data-testid="project-member-id">{project_member_id}</dd>
                <dt>"Username"</dt>
                <dd>{username.unwrap_or_else(|| "not shared with the project".into())}</dd>
                <dt>"Sources shared"</dt>
                <dd>{if sources_shared.is_empty() { "none".to_owned() } else { sources_shared.join(", ") }}</dd>
            </dl>
            <LogoutForm />
        </section>
        {needs_reauthorization.then(|| view! { <ReauthorizePrompt reason=ReauthReason::Refused /> })}
        {(!needs_reauthorization && !missing_sources.is_empty())
            .then(|| view! { <ReauthorizePrompt reason=ReauthReason::NewSources(missing_sources) /> })}
        {(!needs_reauthorization).then(|| view! {
            <SharedFiles shared />
            <ReturnedFiles returned delete_file />
            <section class="card">
                <h2>"Return a file to your account"</h2>
                <UploadForm status=upload_status on_uploaded />
            </section>
        })}
        <LeaveSection connections_url />
    }
}

enum ReauthReason {
    Refused,
    NewSources(Vec<String>),
}

#[component]
fn ReauthorizePrompt(reason: ReauthReason) -> impl IntoView {
    let text = match reason {
        ReauthReason::Refused => "Open Humans no longer accepts this project's access to your \
            account. Your membership and your data here are kept; authorize the project again \
            to continue."
            .to_owned(),
        ReauthReason::NewSources(sources) => format!(
            "The project now also asks for: {}. Authorize it again to review and share them.",
            sources.join(", ")
        ),
    };
    view! {
        <section class="card notice" role="status">
            <h2>"Please authorize the project again"</h2>
            <p>{text}</p>
            <p><a class="button" href="/join?reauthorize=1" rel="external">"Authorize again on Open Humans"</a></p>
        </section>
    }
}

#[component]
fn SharedFiles(shared: Vec<SourceFiles>) -> impl IntoView {
    view! {
        <section class="card">
            <h2>"Files you share"</h2>
            {if shared.is_empty() {
                view! { <p class="muted">"You do not share any files with the project yet."</p> }.into_any()
            } else {
                shared
                    .into_iter()
                    .map(|group| view! {
                        <h3>{group.source}</h3>
                        <ul class="files">
                            {group.files.into_iter().map(|file| view! { <FileRow file /> }).collect_view()}
                        </ul>
                    })
                    .collect_view()
                    .into_any()
            }}
        </section>
    }
}

#[component]
fn FileRow(file: FileView) -> impl IntoView {
    view! {
        <li class="file">
            <FileDetails file />
        </li>
    }
}

/// A file's link, date, description and tags, to be placed inside a list item. (A list item
/// inside another would be re-parented by the browser and break hydration.)
#[component]
fn FileDetails(file: FileView) -> impl IntoView {
    let FileView { id, basename, created, description, tags } = file;
    view! {
        <a href=format!("/files/{id}/download") rel="external" download=basename.clone()>{basename.clone()}</a>
        <span class="muted">" · "{created}</span>
        <p>{description}</p>
        {(!tags.is_empty()).then(|| view! {
            <p class="tags">{tags.into_iter().map(|tag| view! { <span class="tag">{tag}</span> }).collect_view()}</p>
        })}
    }
}

#[component]
fn ReturnedFiles(
    returned: Vec<FileView>,
    delete_file: ServerAction<crate::member::DeleteReturnedFile>,
) -> impl IntoView {
    let pending = delete_file.pending();
    view! {
        <section class="card">
            <h2>"Files the project returned to you"</h2>
            {move || delete_file.value().get().and_then(Result::err).map(|error| view! { <ErrorCard error /> })}
            {if returned.is_empty() {
                view! { <p class="muted">"The project has not returned any files to you."</p> }.into_any()
            } else {
                view! {
                    <ul class="files">
                        {returned.into_iter().map(|file| {
                            let id = file.id;
                            let name = file.basename.clone();
                            view! {
                                <li class="file returned">
                                    <FileDetails file />
                                    <ActionForm action=delete_file>
                                        <input type="hidden" name="file_id" value=id.to_string() />
                                        <button type="submit" class="secondary danger" disabled=move || pending.get()
                                            aria-label=format!("Delete {name}")>
                                            "Delete"
                                        </button>
                                    </ActionForm>
                                </li>
                            }
                        }).collect_view()}
                    </ul>
                }.into_any()
            }}
        </section>
    }
}

#[component]
fn LeaveSection(connections_url: String) -> impl IntoView {
    let erase = ServerAction::<crate::member::DeleteMyData>::new();
    let pending = erase.pending();
    view! {
        <section class="card">
            <h2>"Leave the project"</h2>
            <p>
                "To leave, withdraw from the project on Open Humans. There you can also ask the \
                 project to delete your data."
            </p>
            <p><a class="button secondary" href=connections_url>"Manage your connections on Open Humans"</a></p>
            <h2>"Delete my data from this project"</h2>
            <p>
                "This removes you from the project on Open Humans and erases everything ohkit holds \
                 about you. Files you uploaded to Open Humans yourself are not touched."
            </p>
            {move || erase.value().get().and_then(Result::err).map(|error| view! { <ErrorCard error /> })}
            <ActionForm action=erase>
                <button type="submit" class="danger" disabled=move || pending.get()>
                    {move || if pending.get() { "Deleting…" } else { "Delete my data from this project" }}
                </button>
            </ActionForm>
        </section>
    }
}

#[component]
fn LogoutForm() -> impl IntoView {
    let action = ServerAction::<crate::member::Logout>::new();
    view! {
        <ActionForm action>
            <button type="submit" class="secondary">"Log out"</button>
        </ActionForm>
    }
}
