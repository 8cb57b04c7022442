//! reauth-http: the edge — routing by `Host` to a project, hosted pages, SDK endpoints,
//! operator endpoints, and the `reauth` CLI. Builds on `reauth-actors`; knows no SQL.

pub mod app;
pub mod cli;
pub mod dashboard;
pub mod edge;
pub mod error;
pub mod extract;
pub mod host;
pub mod listener;
pub mod pages;
pub mod routes;
pub mod telemetry;

pub use app::{AppHandle, AppState, Mode, start};
