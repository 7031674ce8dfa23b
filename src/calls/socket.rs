//! The socket's fast path: the operations a call repeats many times a second, `sendSignal` and
//! the events of the `signals` subscription, served without async-graphql's executor.
//!
//! Validating and executing a whole document per ICE candidate cost several times what relaying
//! the candidate does. A document qualifies only in its plainest form (one operation, one field,
//! variables of exactly the argument's type, no fragments or directives), which passes
//! validation by construction; its input is read by serde into the executor's own
//! [`SendSignalInput`], and an input that does not read goes to the executor for its usual
//! error. Results are rendered with the executor's serializers for scalars and enums, and a
//! generated test compares both paths byte for byte (tests/api/signal_paths.rs).

use std::sync::Arc;

use async_graphql::indexmap::IndexMap;
use async_graphql::parser::types::{
    BaseType, DocumentOperations, ExecutableDocument, Field, OperationDefinition, OperationType,
    Selection, SelectionSet, Type,
};
use async_graphql::resolver_utils::enum_value;
use async_graphql::{
    Error, ID, Name, PathSegment, Pos, Positioned, Response, ScalarType, Value, Variables,
};
use async_graphql_value::Value as AstValue;
use futures_util::StreamExt;
use futures_util::stream::{self, BoxStream};
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

use super::graphql::SendSignalInput;
use super::model::{IceCandidate, Signal};
use super::service;
use crate::auth::AuthUser;
use crate::error::AppError;
use crate::graphql::ids::parse_id;
use crate::state::AppState;

/// A document the WebSocket can serve itself.
pub struct Direct {
    /// The operation's name, for metrics and operation selection.
    pub operation: Option<Name>,
    pub kind: OperationType,
    /// The field's response key (its alias or name) and position.
    key: Name,
    pos: Pos,
    field: DirectField,
}

enum DirectField {
    /// `sendSignal(input: $variable)`.
    SendSignal { input: Name },
    /// `signals(callId: ...) { selection }`.
    Signals {
        call_id: Argument,
        selection: Arc<[(Name, SignalField)]>,
    },
}

enum Argument {
    Variable(Name),
    Literal(String),
}

enum SignalField {
    Typename,
    CallId,
    From,
    Kind,
    Sdp,
    Candidate(Vec<(Name, CandidateField)>),
    AudioEnabled,
    VideoEnabled,
    At,
}

enum CandidateField {
    Typename,
    Candidate,
    SdpMid,
    SdpMLineIndex,
    UsernameFragment,
}

impl Direct {
    /// The direct form of `document`, if it has one.
    pub fn recognise(document: &ExecutableDocument) -> Option<Self> {
        if !document.fragments.is_empty() {
            return None;
        }
        let (operation, definition) = match &document.operations {
            DocumentOperations::Single(definition) => (None, &definition.node),
            DocumentOperations::Multiple(operations) if operations.len() == 1 => {
                let (name, definition) = operations.iter().next()?;
                (Some(name.clone()), &definition.node)
            }
            DocumentOperations::Multiple(_) => return None,
        };
        if !definition.directives.is_empty() {
            return None;
        }
        let (field, pos) = only_field(&definition.selection_set.node)?;
        let direct = match (definition.ty, field.name.node.as_str()) {
            (OperationType::Mutation, "sendSignal") => {
                if !field.selection_set.node.items.is_empty() {
                    return None;
                }
                let [(name, value)] = field.arguments.as_slice() else {
                    return None;
                };
                let AstValue::Variable(input) = &value.node else {
                    return None;
                };
                (name.node == "input" && only_variable(definition, input, "SendSignalInput")).then(
                    || DirectField::SendSignal {
                        input: input.clone(),
                    },
                )?
            }
            (OperationType::Subscription, "signals") => {
                let [(name, value)] = field.arguments.as_slice() else {
                    return None;
                };
                if name.node != "callId" {
                    return None;
                }
                let call_id = match &value.node {
                    AstValue::Variable(variable) if only_variable(definition, variable, "ID") => {
                        Argument::Variable(variable.clone())
                    }
                    AstValue::String(id)
                        if definition.variable_definitions.is_empty() && !id.contains('\0') =>
                    {
                        Argument::Literal(id.clone())
                    }
                    _ => return None,
                };
                DirectField::Signals {
                    call_id,
                    selection: signal_selection(&field.selection_set.node)?.into(),
                }
            }
            _ => return None,
        };
        Some(Self {
            operation,
            kind: definition.ty,
            key: field.response_key().node.clone(),
            pos,
            field: direct,
        })
    }

    /// Whether a request naming `operation_name` runs this operation (the executor reports a
    /// name that is not the document's).
    pub fn is_selected_by(&self, operation_name: Option<&str>) -> bool {
        operation_name.is_none_or(|name| self.operation.as_deref() == Some(name))
    }

    /// Starts the operation for `viewer`: one response for `sendSignal`, one per signal for
    /// `signals`; `None` when `variables` do not coerce (the executor then reports why).
    pub fn start(
        self: Arc<Self>,
        state: AppState,
        viewer: AuthUser,
        variables: &Variables,
    ) -> Option<BoxStream<'static, Response>> {
        match &self.field {
            DirectField::SendSignal { input } => {
                let value = variables.get(input)?.clone();
                let input = async_graphql_value::from_value::<SendSignalInput>(value).ok()?;
                Some(self.send_signal(state, viewer, input))
            }
            DirectField::Signals { call_id, selection } => {
                let id = match call_id {
                    Argument::Literal(id) => id.clone(),
                    Argument::Variable(name) => match variables.get(name)? {
                        Value::String(id) => id.clone(),
                        _ => return None,
                    },
                };
                let selection = selection.clone();
                let signals = async move {
                    let started = match parse_id(&ID(id), "callId") {
                        Ok(call_id) => service::signals(&state, viewer, call_id).await,
                        Err(error) => Err(error),
                    };
                    match started {
                        Ok(signals) => signals
                            .map(move |signal| self.data(render_signal(&selection, &signal)))
                            .boxed(),
                        Err(error) => stream::once(async move { self.error(error) }).boxed(),
                    }
                };
                Some(stream::once(signals).flatten().boxed())
            }
        }
    }

    /// Starts a `sendSignal` from its variables as JSON, read straight into its input without
    /// async-graphql's tree of values. `None` for the other operation, and for any input serde
    /// does not take as it is (unknown or repeated fields, another type, NUL): the caller
    /// coerces those as usual, so that refusals stay the executor's.
    pub fn start_from_json(
        self: Arc<Self>,
        state: AppState,
        viewer: AuthUser,
        variables: &RawValue,
    ) -> Option<BoxStream<'static, Response>> {
        let DirectField::SendSignal { input } = &self.field else {
            return None;
        };
        // JSON can only write NUL escaped; `nul` refuses it on the usual path.
        if variables.get().contains("\\u0000") {
            return None;
        }
        let mut reader = serde_json::Deserializer::from_str(variables.get());
        let input = VariableSeed(input.as_str())
            .deserialize(&mut reader)
            .ok()??;
        Some(self.send_signal(state, viewer, input))
    }

    fn send_signal(
        self: Arc<Self>,
        state: AppState,
        viewer: AuthUser,
        input: SendSignalInput,
    ) -> BoxStream<'static, Response> {
        stream::once(async move {
            let sent = match input.into_parts() {
                Ok((call_id, signal)) => {
                    service::send_signal(&state, viewer, call_id, signal).await
                }
                Err(error) => Err(error),
            };
            match sent {
                Ok(sent) => self.data(Value::Boolean(sent)),
                Err(error) => self.error(error),
            }
        })
        .boxed()
    }

    fn data(&self, value: Value) -> Response {
        Response::new(Value::Object(IndexMap::from([(self.key.clone(), value)])))
    }

    fn error(&self, error: AppError) -> Response {
        let error = Error::from(error)
            .into_server_error(self.pos)
            .with_path(vec![PathSegment::Field(self.key.to_string())]);
        Response::from_errors(vec![error])
    }
}

fn render_signal(selection: &[(Name, SignalField)], signal: &Signal) -> Value {
    let fields = selection.iter().map(|(key, field)| {
        let value = match field {
            SignalField::Typename => Value::String("Signal".into()),
            SignalField::CallId => Value::String(signal.call_id.to_string()),
            SignalField::From => Value::String(signal.from.to_string()),
            SignalField::Kind => enum_value(signal.kind),
            SignalField::Sdp => signal.sdp.clone().map_or(Value::Null, Value::String),
            SignalField::Candidate(fields) => signal
                .candidate
                .as_ref()
                .map_or(Value::Null, |c| render_candidate(c, fields)),
            SignalField::AudioEnabled => signal.audio_enabled.map_or(Value::Null, Value::Boolean),
            SignalField::VideoEnabled => signal.video_enabled.map_or(Value::Null, Value::Boolean),
            SignalField::At => ScalarType::to_value(&signal.at),
        };
        (key.clone(), value)
    });
    Value::Object(fields.collect())
}

fn render_candidate(candidate: &IceCandidate, fields: &[(Name, CandidateField)]) -> Value {
    let fields = fields.iter().map(|(key, field)| {
        let value = match field {
            CandidateField::Typename => Value::String("IceCandidate".into()),
            CandidateField::Candidate => Value::String(candidate.candidate.clone()),
            CandidateField::SdpMid => candidate.sdp_mid.clone().map_or(Value::Null, Value::String),
            CandidateField::SdpMLineIndex => {
                candidate.sdp_m_line_index.map_or(Value::Null, Value::from)
            }
            CandidateField::UsernameFragment => candidate
                .username_fragment
                .clone()
                .map_or(Value::Null, Value::String),
        };
        (key.clone(), value)
    });
    Value::Object(fields.collect())
}

/// Reads the variable named `.0` out of a variables object: `None` when it is missing; an
/// error when it is repeated (the executor takes the last) or does not read.
struct VariableSeed<'n>(&'n str);

impl<'de> DeserializeSeed<'de> for VariableSeed<'_> {
    type Value = Option<SendSignalInput>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for VariableSeed<'_> {
    type Value = Option<SendSignalInput>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a variables object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        while let Some(name) = map.next_key::<&str>()? {
            if name != self.0 {
                map.next_value::<IgnoredAny>()?;
            } else if found.is_some() {
                return Err(serde::de::Error::custom(format_args!(
                    "variable `{}` given twice",
                    self.0
                )));
            } else {
                found = Some(map.next_value()?);
            }
        }
        Ok(found)
    }
}

/// The one field of a selection set, with its position (its alias's, if it has one).
fn only_field(set: &SelectionSet) -> Option<(&Field, Pos)> {
    let [item] = set.items.as_slice() else {
        return None;
    };
    Some((plain_field(item)?, item.pos))
}

/// A field without directives, or `None` for anything else (fragments included).
fn plain_field(item: &Positioned<Selection>) -> Option<&Field> {
    match &item.node {
        Selection::Field(field) if field.node.directives.is_empty() => Some(&field.node),
        _ => None,
    }
}

/// Whether the operation declares exactly one variable, `variable`, of type `type_name!`, with
/// no default and no directives.
fn only_variable(definition: &OperationDefinition, variable: &Name, type_name: &str) -> bool {
    let [declared] = definition.variable_definitions.as_slice() else {
        return false;
    };
    let declared = &declared.node;
    declared.name.node == *variable
        && declared.default_value.is_none()
        && declared.directives.is_empty()
        && matches!(
            &declared.var_type.node,
            Type { base: BaseType::Named(name), nullable: false } if name == type_name
        )
}

/// Response keys must be distinct: merging repeated ones is the executor's business.
fn distinct_keys<T>(fields: &[(Name, T)]) -> bool {
    fields
        .iter()
        .enumerate()
        .all(|(i, (key, _))| fields[..i].iter().all(|(other, _)| other != key))
}

fn signal_selection(set: &SelectionSet) -> Option<Vec<(Name, SignalField)>> {
    let mut selection = Vec::with_capacity(set.items.len());
    for item in &set.items {
        let field = plain_field(item)?;
        if !field.arguments.is_empty() {
            return None;
        }
        let leaf = field.selection_set.node.items.is_empty();
        let signal_field = match (field.name.node.as_str(), leaf) {
            ("__typename", true) => SignalField::Typename,
            ("callId", true) => SignalField::CallId,
            ("from", true) => SignalField::From,
            ("kind", true) => SignalField::Kind,
            ("sdp", true) => SignalField::Sdp,
            ("candidate", false) => {
                SignalField::Candidate(candidate_selection(&field.selection_set.node)?)
            }
            ("audioEnabled", true) => SignalField::AudioEnabled,
            ("videoEnabled", true) => SignalField::VideoEnabled,
            ("at", true) => SignalField::At,
            _ => return None,
        };
        selection.push((field.response_key().node.clone(), signal_field));
    }
    (!selection.is_empty() && distinct_keys(&selection)).then_some(selection)
}

fn candidate_selection(set: &SelectionSet) -> Option<Vec<(Name, CandidateField)>> {
    let mut selection = Vec::with_capacity(set.items.len());
    for item in &set.items {
        let field = plain_field(item)?;
        if !field.arguments.is_empty() || !field.selection_set.node.items.is_empty() {
            return None;
        }
        let candidate_field = match field.name.node.as_str() {
            "__typename" => CandidateField::Typename,
            "candidate" => CandidateField::Candidate,
            "sdpMid" => CandidateField::SdpMid,
            "sdpMLineIndex" => CandidateField::SdpMLineIndex,
            "usernameFragment" => CandidateField::UsernameFragment,
            _ => return None,
        };
        selection.push((field.response_key().node.clone(), candidate_field));
    }
    (!selection.is_empty() && distinct_keys(&selection)).then_some(selection)
}
