//! The OAuth2 callback: Open Humans sends the member here after the consent page. The page
//! finishes the enrollment while it renders on the server, so the member is signed in before any
//! WASM loads; on success the server answers with a redirect to the dashboard.

use leptos::prelude::*;
use leptos_router::hooks::use_query_map;

use crate::error::AppError;
use crate::project::complete_enrollment;

/// Shows the outcome of an enrollment that did not end on the dashboard.
#[component]
pub fn CallbackPage() -> impl IntoView {
    let query = use_query_map();
    let outcome = Resource::new_blocking(
        move || query.with(|q| (q.get("code"), q.get("state"), q.get("error"))),
        |(code, state, error)| complete_enrollment(code, state, error),
    );

    view! {
        <Suspense fallback=|| view! { <p class="muted">"Signing you in…"</p> }>
            {move || Suspend::new(async move {
                match outcome.await {
                    Ok(()) => view! {
                        <section class="card">
                            <h1>"You have joined"</h1>
                            <p><a href="/dashboard">"Go to your dashboard"</a></p>
                        </section>
                    }.into_any(),
                    Err(error) => view! { <EnrollmentFailed error /> }.into_any(),
                }
            })}
        </Suspense>
    }
}

#[component]
fn EnrollmentFailed(error: AppError) -> impl IntoView {
    let (title, next_step, retry) = match &error {
        AppError::AccessDenied => (
            "You did not join",
            "You can join at any time from the project page.",
            "Join after all",
        ),
        AppError::StateMismatch | AppError::CodeRejected => (
            "Joining did not complete",
            "Nothing was saved. Please start again from the project page.",
            "Start again",
        ),
        AppError::Upstream => (
            "Open Humans is unavailable",
            "Nothing was saved. Please wait a minute, then try again.",
            "Try again",
        ),
        AppError::ProjectInactive => (
            "The project is closed",
            "Please come back later, or write to the project's contact address.",
            "Try again",
        ),
        _ => ("Joining did not complete", "Nothing was saved. Please try again.", "Try again"),
    };
    view! {
        <section class="card">
            <h1>{title}</h1>
            <div class="error" role="alert">
                <p>{error.to_string()}</p>
            </div>
            <p>{next_step}</p>
            <p class="actions">
                <a class="button" href="/join" rel="external">{retry}</a>
                " "
                <a class="button secondary" href="/">"Back to the project page"</a>
            </p>
        </section>
    }
}
