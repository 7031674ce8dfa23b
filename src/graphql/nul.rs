//! No text in a request may hold the NUL character. PostgreSQL refuses it in every text value,
//! so it would surface as INTERNAL from whichever query first binds it (a search filter, a
//! login email, a chat body), and no field of this API has a use for it. One check per
//! request, over its variables and the literals of its document, before anything runs.

use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use async_graphql::{ErrorExtensionValues, Request, Response, ServerError, Variables};
use async_graphql_value::{ConstValue, Value};

use crate::error::ErrorCode;

/// The BAD_USER_INPUT response for a request with NUL in its variables or in the literals of
/// its document; `None` for any other request, a document that does not parse included (its
/// execution reports that).
pub fn refusal(request: &mut Request) -> Option<Response> {
    if variables_have_nul(&request.variables) {
        return Some(refused());
    }
    document_has_nul(request.parsed_query().ok()?).then(refused)
}

pub fn variables_have_nul(variables: &Variables) -> bool {
    variables.values().any(const_has_nul)
}

pub fn refused() -> Response {
    let mut extensions = ErrorExtensionValues::default();
    extensions.set("code", ErrorCode::BadUserInput.as_str());
    let mut error = ServerError::new("text may not contain the NUL character (U+0000)", None);
    error.extensions = Some(extensions);
    Response::from_errors(vec![error])
}

fn document_has_nul(document: &ExecutableDocument) -> bool {
    document.operations.iter().any(|(_, operation)| {
        let operation = &operation.node;
        operation
            .variable_definitions
            .iter()
            .any(|v| v.node.default_value().is_some_and(const_has_nul))
            || selections_have_nul(&operation.selection_set.node)
    }) || document
        .fragments
        .values()
        .any(|fragment| selections_have_nul(&fragment.node.selection_set.node))
}

fn selections_have_nul(set: &SelectionSet) -> bool {
    set.items.iter().any(|item| match &item.node {
        Selection::Field(field) => {
            field.node.arguments.iter().any(|(_, v)| has_nul(&v.node))
                || selections_have_nul(&field.node.selection_set.node)
        }
        Selection::InlineFragment(fragment) => {
            selections_have_nul(&fragment.node.selection_set.node)
        }
        Selection::FragmentSpread(_) => false,
    })
}

fn has_nul(value: &Value) -> bool {
    match value {
        Value::String(text) => text.contains('\0'),
        Value::List(items) => items.iter().any(has_nul),
        Value::Object(fields) => fields.values().any(has_nul),
        _ => false,
    }
}

fn const_has_nul(value: &ConstValue) -> bool {
    match value {
        ConstValue::String(text) => text.contains('\0'),
        ConstValue::List(items) => items.iter().any(const_has_nul),
        ConstValue::Object(fields) => fields.values().any(const_has_nul),
        _ => false,
    }
}
