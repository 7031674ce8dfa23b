//! Chat: an appointment's doctor and patient, direct messages between people who share an
//! appointment (admins to anyone), and a lobby for everyone signed in.

pub mod graphql;
pub mod model;
mod repo;
pub mod service;
