//! One module per page.

mod not_found;
mod signup;

pub use not_found::NotFound;
pub use signup::SignupPage;
