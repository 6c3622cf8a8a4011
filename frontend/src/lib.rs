//! The browser entry point. ohkit renders its pages on the server in islands mode: only the
//! interactive parts of a page (the `#[island]` components in the `app` crate) are hydrated,
//! which is why this module is small and the WASM carries neither the router nor the pages.

// Links the `app` crate, whose islands are exported to the islands script by name.
use app as _;

/// Called by the islands script once the WASM module has loaded, before it hydrates the islands.
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_islands();
    // Marks the document as interactive: styles can tell a hydrated page apart, and browser
    // tests wait for it instead of guessing. The script hydrates the islands right after this
    // call returns, before the browser handles any other event.
    if let Some(root) = leptos::prelude::document().document_element() {
        let _ = root.set_attribute("data-hydrated", "");
    }
}
