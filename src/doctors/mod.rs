//! Doctors: onboarding with a licence PDF, admin verification, and search.

pub mod currency;
pub mod graphql;
pub mod loaders;
pub mod model;
mod repo;
pub mod service;
mod validate;
