//! Subscriptions a socket keeps dormant between events: `callEvents` and `notifications`.
//!
//! A socket mostly waits, and a running async-graphql subscription holds its query environment,
//! the request's data, the resolver's and the selection's streams all the while (see
//! docs/performance.md), for events that come a few times per call. So the socket
//! checks such an operation by executing it with no event, then listens to the bus itself and
//! executes the operation again for each event it wakes up to, with that event [`Given`] to the
//! resolver in place of the resolver's own bus subscription. Selections, results and errors are
//! the executor's; each event pays for a validation, which is cheap beside a call's work.

use async_graphql::parser::types::{
    DocumentOperations, ExecutableDocument, OperationType, Selection,
};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use uuid::Uuid;

use crate::events::Event;
use crate::realtime::bus::Topic;
use crate::state::AppState;

/// Which dormant subscription an operation is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wake {
    CallEvents,
    Notifications,
}

impl Wake {
    /// The dormant subscription the request's operation is, if it is one: a subscription whose
    /// only root field is `callEvents` or `notifications`, without directives (any selection
    /// below it).
    pub fn recognise(document: &ExecutableDocument, operation_name: Option<&str>) -> Option<Self> {
        let operation = match (&document.operations, operation_name) {
            (DocumentOperations::Single(operation), None) => operation,
            (DocumentOperations::Multiple(operations), Some(name)) => operations.get(name)?,
            (DocumentOperations::Multiple(operations), None) if operations.len() == 1 => {
                operations.values().next()?
            }
            _ => return None,
        };
        let operation = &operation.node;
        if operation.ty != OperationType::Subscription || !operation.directives.is_empty() {
            return None;
        }
        let [item] = operation.selection_set.node.items.as_slice() else {
            return None;
        };
        let Selection::Field(field) = &item.node else {
            return None;
        };
        let field = &field.node;
        if !field.directives.is_empty() || !field.arguments.is_empty() {
            return None;
        }
        match field.name.node.as_str() {
            "callEvents" => Some(Self::CallEvents),
            "notifications" => Some(Self::Notifications),
            _ => None,
        }
    }

    /// The events that wake the subscription of `user`, from now on.
    pub fn events(self, state: &AppState, user: Uuid) -> BoxStream<'static, Event> {
        state
            .realtime
            .bus
            .subscribe(Topic::User(user))
            .filter(move |event| {
                std::future::ready(matches!(
                    (self, event),
                    (Self::CallEvents, Event::Call(_))
                        | (Self::Notifications, Event::Notification(_))
                ))
            })
            .boxed()
    }
}
