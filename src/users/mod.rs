//! Accounts: registration, sign-in, token refresh and revocation, and the admin's user list.

pub mod cache;
pub mod graphql;
pub mod loaders;
pub mod model;
mod repo;
pub mod service;
mod validate;
