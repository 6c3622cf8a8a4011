//! One module per page.

mod callback;
mod dashboard;
mod not_found;
mod signup;
mod upload;

pub use callback::CallbackPage;
pub use dashboard::DashboardPage;
pub use not_found::NotFound;
pub use signup::{ErrorCard, SignupPage};
