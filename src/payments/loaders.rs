//! Payments by appointment id, loaded in batches for a request (see
//! [`crate::graphql::loaders`]).

use std::collections::HashMap;

use async_graphql::dataloader::Loader;
use uuid::Uuid;

use super::model::PaymentRow;
use super::service;
use crate::error::AppError;
use crate::graphql::loaders::RequestScoped;
use crate::state::AppState;

pub struct PaymentLoader(AppState);

impl RequestScoped for PaymentLoader {
    fn new(state: AppState) -> Self {
        Self(state)
    }
}

impl Loader<Uuid> for PaymentLoader {
    type Value = PaymentRow;
    type Error = AppError;

    async fn load(&self, appointment_ids: &[Uuid]) -> Result<HashMap<Uuid, PaymentRow>, AppError> {
        service::for_appointments(&self.0, appointment_ids).await
    }
}
