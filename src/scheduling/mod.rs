//! Doctors' weekly availability in their own time zone, and the free slots it yields.

pub mod date;
pub mod graphql;
pub mod model;
mod repo;
pub mod service;
pub mod slots;
mod validate;
