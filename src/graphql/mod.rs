//! Schema assembly: each domain contributes its query and mutation roots.

pub mod connection;
pub mod context;

use async_graphql::{EmptySubscription, MergedObject, Schema};

use crate::config::Config;
use crate::state::AppState;
use crate::users::graphql::{UsersMutation, UsersQuery};

#[derive(MergedObject, Default)]
pub struct Query(UsersQuery);

#[derive(MergedObject, Default)]
pub struct Mutation(UsersMutation);

pub type AppSchema = Schema<Query, Mutation, EmptySubscription>;

pub fn build(state: AppState) -> AppSchema {
    let config = state.config.clone();
    builder(&config).data(state).finish()
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
