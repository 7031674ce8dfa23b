//! Doctors and their licences by doctor id, loaded in batches for a request (see
//! [`crate::graphql::loaders`]).

use std::collections::HashMap;

use async_graphql::dataloader::Loader;
use uuid::Uuid;

use super::model::{Doctor, LicenceInfo};
use super::service;
use crate::error::AppError;
use crate::graphql::loaders::RequestScoped;
use crate::state::AppState;

/// Doctors by id, in any verification state (an appointment keeps showing its doctor).
pub struct DoctorLoader(AppState);

impl RequestScoped for DoctorLoader {
    fn new(state: AppState) -> Self {
        Self(state)
    }
}

impl Loader<Uuid> for DoctorLoader {
    type Value = Doctor;
    type Error = AppError;

    async fn load(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, Doctor>, AppError> {
        service::find_many(&self.0, ids).await
    }
}

/// Licence details by doctor id.
pub struct LicenceLoader(AppState);

impl RequestScoped for LicenceLoader {
    fn new(state: AppState) -> Self {
        Self(state)
    }
}

impl Loader<Uuid> for LicenceLoader {
    type Value = LicenceInfo;
    type Error = AppError;

    async fn load(&self, doctor_ids: &[Uuid]) -> Result<HashMap<Uuid, LicenceInfo>, AppError> {
        service::licence_infos(&self.0, doctor_ids).await
    }
}
