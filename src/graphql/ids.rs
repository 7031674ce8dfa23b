//! GraphQL `ID`s: the API's ids are UUIDs, parsed at the edge so that services take `Uuid`.

use async_graphql::ID;
use uuid::Uuid;

use crate::error::{AppError, AppResult};

/// The UUID inside a GraphQL `ID` argument; BAD_USER_INPUT on `field` otherwise.
pub fn parse_id(id: &ID, field: &'static str) -> AppResult<Uuid> {
    Uuid::parse_str(id).map_err(|_| AppError::bad_input(field, "not a valid id"))
}
