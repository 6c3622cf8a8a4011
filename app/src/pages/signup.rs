//! The signup page: the project's "signup URL", where a member learns about the project and joins.

use leptos::prelude::*;

use crate::error::AppError;
use crate::project::{ProjectSummary, get_project, get_project_requests};

/// The project's public face.
#[component]
pub fn SignupPage() -> impl IntoView {
    let project = Resource::new_blocking(|| (), |()| get_project());

    view! {
        <Suspense fallback=|| view! { <p class="muted">"Loading the project…"</p> }>
            {move || Suspend::new(async move {
                match project.await {
                    Ok(summary) => view! { <ProjectIntro summary /> }.into_any(),
                    Err(error) => view! { <ErrorCard error /> }.into_any(),
                }
            })}
        </Suspense>
    }
}

#[component]
fn ProjectIntro(summary: ProjectSummary) -> impl IntoView {
    let ProjectSummary {
        name,
        leader,
        organization,
        short_description,
        long_description,
        active,
        ..
    } = summary;
    view! {
        <section class="card">
            <h1>{name}</h1>
            <p class="lead">{short_description}</p>
            <p class="byline">
                "Led by "{leader}
                {organization.map(|org| view! { ", "{org} })}
            </p>
            <p>{long_description}</p>
            <RequestsToggle />
            <JoinButton active />
        </section>
    }
}

/// The way in: a plain link to `/join`, which sends the member on to Open Humans.
#[component]
fn JoinButton(active: bool) -> impl IntoView {
    let query = leptos_router::hooks::use_query_map();
    let left = move || query.with(|q| q.get("left").is_some());
    view! {
        {move || left().then(|| view! {
            <p class="notice" role="status">
                "You have left the project and your data here was deleted. Thank you for taking part."
            </p>
        })}
        <div class="join">
            {if active {
                view! { <a class="button" href="/join" rel="external">"Join with Open Humans"</a> }.into_any()
            } else {
                view! { <p class="notice">"This project is not accepting new members at the moment."</p> }
                    .into_any()
            }}
            <p class="muted">"Already a member? "<a href="/dashboard">"Go to your dashboard"</a></p>
        </div>
    }
}

/// A button that reveals what the project will ask for, fetched from the server on demand. The
/// only part of the signup page that is hydrated.
#[island]
fn RequestsToggle() -> impl IntoView {
    let (open, set_open) = signal(false);
    let load = Action::new(|(): &()| get_project_requests());
    let toggle = move |_| {
        let now_open = !open.get_untracked();
        set_open.set(now_open);
        if now_open && load.value().get_untracked().is_none() {
            load.dispatch(());
        }
    };

    view! {
        <button
            type="button"
            class="secondary"
            aria-expanded=move || open.get().to_string()
            aria-controls="project-requests"
            on:click=toggle
        >
            {move || {
                if open.get() { "Hide what this project asks for" } else { "What will this project ask for?" }
            }}
        </button>
        <div id="project-requests" hidden=move || !open.get()>
            {move || match load.value().get() {
                None => view! { <p class="muted">"Loading…"</p> }.into_any(),
                Some(Ok(requests)) if requests.is_empty() => {
                    view! { <p>"This project asks for nothing beyond your membership."</p> }
                        .into_any()
                }
                Some(Ok(requests)) => {
                    view! {
                        <ul class="requests">
                            {requests.into_iter().map(|item| view! { <li>{item}</li> }).collect_view()}
                        </ul>
                    }
                        .into_any()
                }
                Some(Err(error)) => view! { <ErrorCard error /> }.into_any(),
            }}
        </div>
    }
}

/// A failure, said plainly, with a way to try again.
#[component]
pub fn ErrorCard(error: AppError) -> impl IntoView {
    view! {
        <div class="error" role="alert">
            <p>{error.to_string()}</p>
            <p>
                <a href="">"Try again"</a>
            </p>
        </div>
    }
}
