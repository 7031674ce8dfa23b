//! Notifications: short messages to one user about what happened to their appointments,
//! profile or account, kept in their inbox and delivered live over the event bus.

pub mod graphql;
pub mod model;
pub mod repo;
pub mod service;

pub use model::{Notification, NotificationKind};
pub use service::notify;
