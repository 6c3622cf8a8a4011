//! The browser entry point: hydrates the page the server rendered, so that its controls come
//! alive. Everything else lives in the `app` crate.

/// Called by the generated JS glue once the WASM module has loaded.
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(app::App);
    // Marks the document as interactive: styles can tell a hydrated page apart, and browser
    // tests wait for it instead of guessing.
    if let Some(root) = leptos::prelude::document().document_element() {
        let _ = root.set_attribute("data-hydrated", "");
    }
}
