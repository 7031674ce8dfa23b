//! Appointment reminders: APPOINTMENT_REMINDER notifications before each confirmed
//! appointment, sent by a background sweep and claimed in the database so that each goes out
//! once across instances and restarts.

pub mod repo;
pub mod service;
