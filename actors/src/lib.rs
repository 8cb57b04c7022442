//! reauth-actors: the domain — projects, end users, sessions — as supervised actors, and the
//! integrations each project owns (Resend, Google). Knows nothing about HTTP.

pub mod admin;
pub mod billing;
pub mod bus;
pub mod core;
pub mod directory;
pub mod domains;
pub mod janitor;
pub mod login;
pub mod model;
pub mod ratelimit;
pub mod reconcile;
pub mod revocation;
pub mod services;
pub mod session;
pub mod stats;
pub mod store;
pub mod tenants;

pub use crate::core::Core;
