//! Appointments: free slots, race-proof booking, and the lifecycle after it.

pub mod graphql;
pub mod loaders;
pub mod model;
pub mod payment;
mod repo;
pub mod service;
