//! HTTP API: the admin endpoints (plugins, call records, reports, metrics,
//! SIP registrations), the CTI API for desktops with its WebSocket event
//! stream, and the embedded agent desktop and wallboard pages.

pub mod admin;
pub mod audit_budget;
pub mod auth;
pub mod cti;
pub mod events;
pub mod login_pool;
pub mod pages;
pub mod password;
pub mod session;
pub mod wallboard;

pub use admin::router as admin_router;
