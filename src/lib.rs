//! MediLink: a telemedicine backend with one GraphQL API for patients, doctors and admins.

mod app;
pub mod appointments;
pub mod auth;
pub mod calls;
pub mod chat;
pub mod clock;
pub mod config;
pub mod db;
pub mod doctors;
pub mod enum_name;
pub mod error;
pub mod events;
pub mod graphql;
pub mod http;
pub mod ice;
pub mod limits;
pub mod mail;
pub mod metrics;
pub mod notifications;
pub mod pagination;
pub mod payments;
pub mod realtime;
pub mod reviews;
pub mod scheduling;
pub mod schema;
pub mod shutdown;
pub mod state;
mod tls;
pub mod users;

/// Every binary built on the crate (the server, its tests and benchmarks) allocates the same way.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub use app::{Application, StartupError, open_database, shutdown_signals};
