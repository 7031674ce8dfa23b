//! Appointments by id, loaded in batches for a request (see [`crate::graphql::loaders`]).

use std::collections::HashMap;

use async_graphql::dataloader::Loader;
use uuid::Uuid;

use super::model::Appointment;
use super::service;
use crate::error::AppError;
use crate::graphql::loaders::RequestScoped;
use crate::state::AppState;

pub struct AppointmentLoader(AppState);

impl RequestScoped for AppointmentLoader {
    fn new(state: AppState) -> Self {
        Self(state)
    }
}

impl Loader<Uuid> for AppointmentLoader {
    type Value = Appointment;
    type Error = AppError;

    async fn load(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, Appointment>, AppError> {
        service::find_many(&self.0, ids).await
    }
}
