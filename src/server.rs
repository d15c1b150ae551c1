//! The whole service: [`app`], the router the binary serves and the tests drive.
//!
//! It sits above the HTTP layers it mounts: [`crate::http`] (callbacks, health, metrics, and
//! the edge every route is served behind) and [`crate::dashboard`] (the read side, built on
//! http's state and answers). Neither of them knows the other is mounted beside it.

use axum::Router;

use crate::dashboard::{self, DashboardToken};
use crate::http::{self, AppState};

/// The whole router: callbacks, health and metrics, and the dashboard when `dashboard` holds
/// its token. The binary serves this router and the tests drive the very same one.
pub fn app(state: AppState, dashboard: Option<DashboardToken>) -> Router {
    let mut routes = http::routes();
    if let Some(token) = dashboard {
        // Off unless a token is configured: then its routes do not exist at all (404).
        routes = routes.merge(dashboard::routes(token));
    }
    http::edge(routes, state)
}
