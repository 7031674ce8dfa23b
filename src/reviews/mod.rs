//! Reviews of completed appointments, and the doctor ratings they make.

pub mod graphql;
pub mod loaders;
pub mod model;
mod repo;
pub mod service;
