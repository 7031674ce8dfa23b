//! The schema root, above the domains: it merges each domain's roots, and runs operations
//! (documents.rs: parsed documents and which path; execution.rs; dormant.rs).

pub mod documents;
pub mod dormant;
pub mod execution;

use std::sync::Arc;

use async_graphql::{MergedObject, MergedSubscription, Request, Response, Schema, ServerError};

use crate::appointments::graphql::{AppointmentsMutation, AppointmentsQuery};
use crate::calls::graphql::{CallsMutation, CallsQuery, CallsSubscription};
use crate::chat::graphql::{ChatMutation, ChatQuery, ChatSubscription};
use crate::config::Config;
use crate::doctors::graphql::{DoctorsMutation, DoctorsQuery};
use crate::error::ErrorCode;
use crate::graphql::context::Session;
use crate::graphql::loaders::Loaders;
use crate::ice::graphql::IceQuery;
use crate::notifications::graphql::NotificationsSubscription;
use crate::payments::graphql::{PaymentsMutation, PaymentsQuery};
use crate::reviews::graphql::ReviewsMutation;
use crate::scheduling::graphql::SchedulingMutation;
use crate::state::AppState;
use crate::users::graphql::{UsersMutation, UsersQuery};

#[derive(MergedObject, Default)]
pub struct Query(
    UsersQuery,
    DoctorsQuery,
    AppointmentsQuery,
    CallsQuery,
    ChatQuery,
    PaymentsQuery,
    IceQuery,
);

#[derive(MergedObject, Default)]
pub struct Mutation(
    UsersMutation,
    DoctorsMutation,
    SchedulingMutation,
    AppointmentsMutation,
    ReviewsMutation,
    CallsMutation,
    ChatMutation,
    PaymentsMutation,
);

#[derive(MergedSubscription, Default)]
pub struct Subscription(
    CallsSubscription,
    ChatSubscription,
    NotificationsSubscription,
);

pub type AppSchema = Schema<Query, Mutation, Subscription>;

pub fn build(state: AppState) -> AppSchema {
    let config = state.config.clone();
    builder(&config).data(state).finish()
}

/// What one operation carries besides the schema's data: who asks, and its own loaders.
pub fn with_request_data(request: Request, state: &AppState, session: Arc<Session>) -> Request {
    request.data(session).data(Loaders::new(state.clone()))
}

/// The schema in SDL, as `medilink print-schema` prints it and `schema.graphql` holds it.
pub fn sdl() -> String {
    builder(&Config::default()).finish().sdl()
}

pub(crate) fn builder(
    config: &Config,
) -> async_graphql::SchemaBuilder<Query, Mutation, Subscription> {
    let builder = Schema::build(
        Query::default(),
        Mutation::default(),
        Subscription::default(),
    )
    .limit_depth(config.query_depth_limit)
    .limit_complexity(config.query_complexity_limit);
    if config.introspection {
        builder
    } else {
        builder.disable_introspection()
    }
}

/// Gives every error of `response` an `extensions.code` (and INTERNAL ones the request id).
pub fn complete_errors(response: &mut Response, request_id: &str) {
    for error in &mut response.errors {
        complete_extensions(error, request_id);
    }
}

/// Parse and validation errors (unknown fields, wrong types, depth and complexity limits) come
/// from async-graphql without a code; they are all the client's to fix. An INTERNAL error gets
/// the request id, which is also on the server's log line for it.
fn complete_extensions(error: &mut ServerError, request_id: &str) {
    let field = invalid_argument(&error.message).map(str::to_owned);
    let extensions = error.extensions.get_or_insert_with(Default::default);
    match extensions.get("code") {
        None => {
            extensions.set("code", ErrorCode::BadUserInput.as_str());
            if let Some(field) = field {
                extensions.set("field", field);
            }
        }
        Some(async_graphql::Value::String(code)) if code == ErrorCode::Internal.as_str() => {
            extensions.set("requestId", request_id);
        }
        Some(_) => {}
    }
}

/// The argument named by async-graphql's coercion errors
/// (`Invalid value for argument "input.fee", expected type ...`), as `extensions.field`.
fn invalid_argument(message: &str) -> Option<&str> {
    let rest = message.split_once("for argument \"")?.1;
    rest.split_once('"').map(|(argument, _)| argument)
}
