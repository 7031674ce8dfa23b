//! Calls between a patient and a doctor: doctors' availability, ringing, answering, ending,
//! and the WebRTC signaling relay between the two participants.

pub mod graphql;
pub mod live;
pub mod model;
mod repo;
pub mod service;
pub mod socket;
