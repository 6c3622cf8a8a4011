//! ohkit's user interface: the pages members and project leads see, the components they are made
//! of, and the server functions behind them.
//!
//! The crate is compiled twice. With the `ssr` feature it renders pages on the server and runs the
//! bodies of the server functions, which reach the rest of ohkit through the [`backend::Backend`]
//! trait the server crate implements. With the `hydrate` feature it becomes the WASM client, which
//! hydrates only the page's islands (the `#[island]` components): the rest of every page stays
//! the server's HTML.

pub mod error;
pub mod member;
pub mod pages;
pub mod project;

#[cfg(feature = "ssr")]
pub mod backend;

use leptos::prelude::*;
use leptos_meta::{MetaTags, Stylesheet, Title, provide_meta_context};
use leptos_router::components::{Route, Router, Routes};
use leptos_router::{SsrMode, path};

/// The HTML document around every page, rendered on the server only.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8" />
                <meta name="viewport" content="width=device-width, initial-scale=1" />
                <AutoReload options=options.clone() />
                <HydrationScripts options islands=true />
                <MetaTags />
                <link rel="icon" href="/favicon.svg" type="image/svg+xml" />
            </head>
            <body>
                <App />
            </body>
        </html>
    }
}

/// The root component: the stylesheet, the title and the routes.
#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();

    view! {
        <Stylesheet id="leptos" href="/pkg/ohkit.css" />
        <Title text="ohkit" />
        <Router>
            <main>
                <Routes fallback=pages::NotFound>
                    <Route path=path!("/") view=pages::SignupPage />
                    <Route path=path!("/oauth/callback") view=pages::CallbackPage ssr=SsrMode::Async />
                    <Route path=path!("/dashboard") view=pages::DashboardPage />
                </Routes>
            </main>
        </Router>
    }
}
