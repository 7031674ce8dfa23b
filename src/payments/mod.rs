//! Payments through Stripe: Checkout for appointments (destination charges with a platform fee),
//! Connect onboarding for doctors, the signed webhook, refunds, and the admin's view.

pub mod events;
pub mod gateway;
pub mod graphql;
pub mod loaders;
pub mod model;
mod repo;
pub mod service;
