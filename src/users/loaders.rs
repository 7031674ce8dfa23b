//! Users by id, loaded in batches for a request (see [`crate::graphql::loaders`]).

use std::collections::HashMap;

use async_graphql::dataloader::Loader;
use uuid::Uuid;

use super::model::User;
use super::service;
use crate::error::AppError;
use crate::graphql::loaders::RequestScoped;
use crate::state::AppState;

pub struct UserLoader(AppState);

impl RequestScoped for UserLoader {
    fn new(state: AppState) -> Self {
        Self(state)
    }
}

impl Loader<Uuid> for UserLoader {
    type Value = User;
    type Error = AppError;

    async fn load(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, User>, AppError> {
        service::find_many(&self.0, ids).await
    }
}
