//! HTTP API. For now the admin endpoints (plugins, call records, SIP
//! registrations); the CTI API, event stream and agent desktop join here.

pub mod admin;
pub mod auth;

pub use admin::router as admin_router;
