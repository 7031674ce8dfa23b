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

use std::marker::PhantomData;
use std::sync::Arc;

use async_graphql::indexmap::IndexMap;
use async_graphql::parser::types::{
    BaseType, DocumentOperations, ExecutableDocument, Field, OperationDefinition, OperationType,
    Selection, SelectionSet, Type,
};
use async_graphql::{
    Error, ID, Name, PathSegment, Pos, Positioned, Response, ScalarType, Value, Variables,
};
use async_graphql_value::Value as AstValue;
use futures_util::StreamExt;
use futures_util::stream::{self, BoxStream};
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use uuid::Uuid;

use super::graphql::SendSignalInput;
use super::model::{IceCandidate, Signal};
use super::service;
use crate::auth::AuthUser;
use crate::enum_name::EnumName;
use crate::error::AppError;
use crate::events::Event;
use crate::graphql::ids::parse_id;
use crate::realtime::bus::Topic;
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
                            .map(move |signal| self.data(signal_value(&selection, &signal)))
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
        let input = variable(variables, input)?;
        Some(self.send_signal(state, viewer, input))
    }

    /// Serves the operation within the socket's own wake-up, without a stream, when it can: a
    /// `sendSignal` or a `signals` of a call live on this instance, which is every signal of
    /// a call this instance serves. `None`: run it as a stream ([`Self::start`] and
    /// [`Self::start_from_json`]), which the variables or the call need.
    pub fn serve_now(
        self: &Arc<Self>,
        state: &AppState,
        viewer: AuthUser,
        variables: Option<&RawValue>,
    ) -> Option<Served> {
        // JSON can only write NUL escaped; `nul` refuses it on the usual path.
        if variables.is_some_and(|v| v.get().contains("\\u0000")) {
            return None;
        }
        match &self.field {
            DirectField::SendSignal { input } => {
                let input: SendSignalInput = variable(variables?, input)?;
                let (call_id, signal) = match input.into_parts() {
                    Ok(parts) => parts,
                    Err(error) => return Some(Served::Failed(self.error(error))),
                };
                Some(
                    match service::send_signal_now(state, viewer, call_id, signal) {
                        Ok(Ok(_)) => Served::Sent(self.sent_payload()),
                        Ok(Err(error)) => Served::Failed(self.error(error)),
                        Err(admitted) => Served::Pending(self.clone().send_later(
                            state.clone(),
                            viewer,
                            call_id,
                            admitted,
                        )),
                    },
                )
            }
            DirectField::Signals { call_id, .. } => {
                let id = match call_id {
                    Argument::Literal(id) => id.clone(),
                    Argument::Variable(name) => variable::<String>(variables?, name)?,
                };
                let call_id = match parse_id(&ID(id), "callId") {
                    Ok(call_id) => call_id,
                    Err(error) => return Some(Served::Failed(self.error(error))),
                };
                Some(
                    match service::may_watch_signals_now(state, viewer, call_id)? {
                        Ok(()) => Served::Watching(Watch {
                            call_id,
                            direct: self.clone(),
                        }),
                        Err(error) => Served::Failed(self.error(error)),
                    },
                )
            }
        }
    }

    fn send_later(
        self: Arc<Self>,
        state: AppState,
        viewer: AuthUser,
        call_id: Uuid,
        admitted: service::Admitted,
    ) -> BoxStream<'static, Response> {
        stream::once(async move {
            match service::send_signal_later(&state, viewer, call_id, admitted).await {
                Ok(sent) => self.data(Value::Boolean(sent)),
                Err(error) => self.error(error),
            }
        })
        .boxed()
    }

    /// The payload of `sendSignal`'s answer, as the executor writes it.
    fn sent_payload(&self) -> String {
        let data = Data {
            key: &self.key,
            value: true,
        };
        serde_json::to_string(&data).expect("a key and a boolean always serialize")
    }

    /// The payload of a `next` for `signal` of this `signals` operation, as the executor
    /// writes it.
    fn signal_payload(&self, signal: &Signal) -> Option<String> {
        let DirectField::Signals { selection, .. } = &self.field else {
            return None;
        };
        let view = Data {
            key: &self.key,
            value: SignalView { selection, signal },
        };
        serde_json::to_string(&view).ok()
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

/// What a direct operation served in the socket's wake-up came to.
pub enum Served {
    /// `sendSignal` relayed: the payload of its one `next`.
    Sent(String),
    /// Refused or failed: the executor's response for it.
    Failed(Response),
    /// `sendSignal` admitted, waiting for the database to find its call: its one response.
    Pending(BoxStream<'static, Response>),
    /// `signals` listening, through the socket's [`SignalWatches`].
    Watching(Watch),
}

/// A `signals` operation served from its socket's queue of the user's events.
pub struct Watch {
    call_id: Uuid,
    direct: Arc<Direct>,
}

/// The `signals` operations of one socket, fed from one queue of its user's events for them
/// all, each signal written straight into its frame's payload. Each keeps a `G` while it
/// watches (the socket's record of it).
pub struct SignalWatches<G> {
    watches: Vec<(String, Watch, G)>,
    events: Option<BoxStream<'static, Event>>,
}

impl<G> Default for SignalWatches<G> {
    fn default() -> Self {
        Self {
            watches: Vec::new(),
            events: None,
        }
    }
}

/// What an event means for one watching operation.
pub enum Delivery {
    /// The payload of a `next`.
    Next(String),
    /// The call ended: `complete`.
    Ended,
}

impl<G> SignalWatches<G> {
    pub fn contains(&self, id: &str) -> bool {
        self.watches.iter().any(|(watching, ..)| watching == id)
    }

    pub fn len(&self) -> usize {
        self.watches.len()
    }

    pub fn is_empty(&self) -> bool {
        self.watches.is_empty()
    }

    /// Starts delivering to operation `id`; the user's events are listened to from now on.
    pub fn insert(
        &mut self,
        state: &AppState,
        viewer: AuthUser,
        id: String,
        watch: Watch,
        guard: G,
    ) {
        if self.events.is_none() {
            self.events = Some(state.realtime.bus.subscribe(Topic::User(viewer.id)));
        }
        self.watches.push((id, watch, guard));
    }

    /// Whether `id` was watching.
    pub fn remove(&mut self, id: &str) -> bool {
        let before = self.watches.len();
        self.watches.retain(|(watching, ..)| watching != id);
        self.stop_listening_if_idle();
        before != self.watches.len()
    }

    pub fn clear(&mut self) {
        self.watches.clear();
        self.events = None;
    }

    fn stop_listening_if_idle(&mut self) {
        if self.is_empty() {
            self.events = None;
        }
    }

    /// The next of the user's events, once any operation watches.
    pub async fn next_event(&mut self) -> Option<Event> {
        match &mut self.events {
            Some(events) => events.next().await,
            None => std::future::pending().await,
        }
    }

    /// Hands `deliver` what `event` means for each operation; operations whose call ended
    /// stop watching.
    pub fn deliver(&mut self, event: &Event, mut deliver: impl FnMut(&str, Delivery)) {
        match event {
            Event::Signal(signal) => {
                for (id, watch, _) in &self.watches {
                    if watch.call_id == signal.call_id
                        && let Some(payload) = watch.direct.signal_payload(signal)
                    {
                        deliver(id, Delivery::Next(payload));
                    }
                }
            }
            Event::Call(_) => {
                self.watches.retain(|(id, watch, _)| {
                    let ended = service::ends_signals(event, watch.call_id);
                    if ended {
                        deliver(id, Delivery::Ended);
                    }
                    !ended
                });
                self.stop_listening_if_idle();
            }
            _ => {}
        }
    }
}

/// `{"data":{key: value}}`.
struct Data<'a, T> {
    key: &'a str,
    value: T,
}

impl<T: Serialize> Serialize for Data<'_, T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        struct Field<'a, T>(&'a str, &'a T);
        impl<T: Serialize> Serialize for Field<'_, T> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut map = serializer.serialize_map(Some(1))?;
                map.serialize_entry(self.0, self.1)?;
                map.end()
            }
        }
        let mut map = serializer.serialize_map(Some(1))?;
        map.serialize_entry("data", &Field(self.key, &self.value))?;
        map.end()
    }
}

/// A signal as its selection shows it, written as the executor's `Value` of it would be.
struct SignalView<'a> {
    selection: &'a [(Name, SignalField)],
    signal: &'a Signal,
}

impl Serialize for SignalView<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let signal = self.signal;
        let mut map = serializer.serialize_map(Some(self.selection.len()))?;
        for (key, field) in self.selection {
            let key = key.as_str();
            match field {
                SignalField::Typename => map.serialize_entry(key, "Signal")?,
                SignalField::CallId => map.serialize_entry(key, &signal.call_id)?,
                SignalField::From => map.serialize_entry(key, &signal.from)?,
                SignalField::Kind => map.serialize_entry(key, signal.kind.as_str())?,
                SignalField::Sdp => map.serialize_entry(key, &signal.sdp)?,
                SignalField::Candidate(fields) => match &signal.candidate {
                    Some(candidate) => {
                        map.serialize_entry(key, &CandidateView { fields, candidate })?;
                    }
                    None => map.serialize_entry(key, &())?,
                },
                SignalField::AudioEnabled => map.serialize_entry(key, &signal.audio_enabled)?,
                SignalField::VideoEnabled => map.serialize_entry(key, &signal.video_enabled)?,
                SignalField::At => map.serialize_entry(key, &ScalarType::to_value(&signal.at))?,
            }
        }
        map.end()
    }
}

struct CandidateView<'a> {
    fields: &'a [(Name, CandidateField)],
    candidate: &'a IceCandidate,
}

impl Serialize for CandidateView<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let candidate = self.candidate;
        let mut map = serializer.serialize_map(Some(self.fields.len()))?;
        for (key, field) in self.fields {
            let key = key.as_str();
            match field {
                CandidateField::Typename => map.serialize_entry(key, "IceCandidate")?,
                CandidateField::Candidate => map.serialize_entry(key, &candidate.candidate)?,
                CandidateField::SdpMid => map.serialize_entry(key, &candidate.sdp_mid)?,
                CandidateField::SdpMLineIndex => {
                    map.serialize_entry(key, &candidate.sdp_m_line_index)?;
                }
                CandidateField::UsernameFragment => {
                    map.serialize_entry(key, &candidate.username_fragment)?;
                }
            }
        }
        map.end()
    }
}

/// The variable named `name` of a variables object, read by serde as `T`; `None` when it is
/// missing, repeated, or does not read.
fn variable<T: for<'de> Deserialize<'de>>(variables: &RawValue, name: &str) -> Option<T> {
    let mut reader = serde_json::Deserializer::from_str(variables.get());
    VariableSeed(name, PhantomData)
        .deserialize(&mut reader)
        .ok()?
}

/// A signal as the executor's `Value` of it, for the operations that run as a stream: written
/// by the same [`SignalView`] as the frames of watching operations.
fn signal_value(selection: &[(Name, SignalField)], signal: &Signal) -> Value {
    async_graphql::to_value(SignalView { selection, signal }).unwrap_or(Value::Null)
}

/// Reads the variable named `.0` out of a variables object: `None` when it is missing; an
/// error when it is repeated (the executor takes the last) or does not read.
struct VariableSeed<'n, T>(&'n str, PhantomData<T>);

impl<'de, T: Deserialize<'de>> DeserializeSeed<'de> for VariableSeed<'_, T> {
    type Value = Option<T>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de, T: Deserialize<'de>> Visitor<'de> for VariableSeed<'_, T> {
    type Value = Option<T>;

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
