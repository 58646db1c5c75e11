//! HTTP API. For now: the admin endpoints for plugins; the CTI API and agent
//! desktop join here with the telephony issues.

pub mod admin;
pub mod auth;

pub use admin::router as admin_router;
