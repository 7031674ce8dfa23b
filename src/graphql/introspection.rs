//! With introspection turned off (`MEDILINK_INTROSPECTION=false`), async-graphql answers
//! `__schema` and `__type` with null and no error; clients and GraphiQL are better served by an
//! error that says why.

use std::collections::HashSet;

use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use async_graphql::{ErrorExtensionValues, Response, ServerError};

use crate::error::ErrorCode;

/// Whether some operation of `document` selects `__schema` or `__type` at its root, directly
/// or through fragments.
pub fn asks_for_schema(document: &ExecutableDocument) -> bool {
    let mut visited = HashSet::new();
    document.operations.iter().any(|(_, operation)| {
        selects_schema(document, &operation.node.selection_set.node, &mut visited)
    })
}

fn selects_schema<'a>(
    document: &'a ExecutableDocument,
    set: &'a SelectionSet,
    visited: &mut HashSet<&'a str>,
) -> bool {
    set.items.iter().any(|item| match &item.node {
        Selection::Field(field) => matches!(field.node.name.node.as_str(), "__schema" | "__type"),
        Selection::InlineFragment(fragment) => {
            selects_schema(document, &fragment.node.selection_set.node, visited)
        }
        Selection::FragmentSpread(spread) => {
            let name = spread.node.fragment_name.node.as_str();
            visited.insert(name)
                && document.fragments.get(name).is_some_and(|fragment| {
                    selects_schema(document, &fragment.node.selection_set.node, visited)
                })
        }
    })
}

pub fn refused() -> Response {
    let mut extensions = ErrorExtensionValues::default();
    extensions.set("code", ErrorCode::Forbidden.as_str());
    let mut error = ServerError::new("introspection is turned off on this server", None);
    error.extensions = Some(extensions);
    Response::from_errors(vec![error])
}
