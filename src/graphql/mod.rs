//! Schema assembly: each domain contributes its query and mutation roots.

pub mod connection;
pub mod context;
pub mod loaders;
pub mod scalars;

use std::sync::Arc;

use async_graphql::{EmptySubscription, ID, MergedObject, Request, Schema};
use uuid::Uuid;

use crate::appointments::graphql::{AppointmentsMutation, AppointmentsQuery};
use crate::config::Config;
use crate::doctors::graphql::{DoctorsMutation, DoctorsQuery};
use crate::error::{AppError, AppResult};
use crate::reviews::graphql::ReviewsMutation;
use crate::scheduling::graphql::SchedulingMutation;
use crate::state::AppState;
use crate::users::graphql::{UsersMutation, UsersQuery};
use context::Session;
use loaders::{DoctorLoader, LicenceLoader, ReviewLoader, UserLoader, request_loader};

#[derive(MergedObject, Default)]
pub struct Query(UsersQuery, DoctorsQuery, AppointmentsQuery);

#[derive(MergedObject, Default)]
pub struct Mutation(
    UsersMutation,
    DoctorsMutation,
    SchedulingMutation,
    AppointmentsMutation,
    ReviewsMutation,
);

pub type AppSchema = Schema<Query, Mutation, EmptySubscription>;

pub fn build(state: AppState) -> AppSchema {
    let config = state.config.clone();
    builder(&config).data(state).finish()
}

/// What one operation carries besides the schema's data: who asks, and its own loaders.
pub fn with_request_data(request: Request, state: &AppState, session: Arc<Session>) -> Request {
    request
        .data(session)
        .data(request_loader(UserLoader(state.clone())))
        .data(request_loader(LicenceLoader(state.clone())))
        .data(request_loader(DoctorLoader(state.clone())))
        .data(request_loader(ReviewLoader(state.clone())))
}

/// The UUID inside a GraphQL `ID` argument.
pub fn parse_id(id: &ID, field: &'static str) -> AppResult<Uuid> {
    Uuid::parse_str(id).map_err(|_| AppError::bad_input(field, "not a valid id"))
}

/// The schema in SDL, as `medilink print-schema` prints it and `schema.graphql` holds it.
pub fn sdl() -> String {
    builder(&Config::default()).finish().sdl()
}

fn builder(config: &Config) -> async_graphql::SchemaBuilder<Query, Mutation, EmptySubscription> {
    Schema::build(Query::default(), Mutation::default(), EmptySubscription)
        .limit_depth(config.query_depth_limit)
        .limit_complexity(config.query_complexity_limit)
}
