//! sea-orm entities for doorman's tables, one module per table, in the style
//! `sea-orm-cli generate entity` writes. This crate knows nothing of the server.

pub mod prelude;

pub mod activity;
pub mod audit_event;
pub mod auth_challenge;
pub mod email_token;
pub mod passkey;
pub mod recovery_code;
pub mod refresh_token;
pub mod room;
pub mod room_history;
pub mod room_log;
pub mod room_member;
pub mod room_message;
pub mod session;
pub mod signing_key;
pub mod totp_factor;
pub mod user;
