//! Parsed documents by query text, shared by every socket and HTTP request: clients send the
//! same few operations (a signal per ICE candidate, the same search) over and over, and parsing
//! one costs more than copying it. A document the socket can serve itself is recognised once,
//! here, and never copied; one the socket keeps dormant is recognised here too.
//!
//! Every document that reaches the parser comes through [`Documents::prepare`], which measures it
//! first ([`super::guard`]). The cache is bounded by entries and by the bytes of their text, and
//! keeps a document only once it validated (its first answer was not a request error), so
//! documents that fail cannot push out the ones clients use.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_graphql::parser::types::ExecutableDocument;
use async_graphql::{Request, Response};

use super::dormant::Wake;
use crate::calls::socket::Direct;
use crate::graphql::{guard, introspection};
use crate::metrics::Metrics;

/// Distinct query texts kept; past this, or past [`CAPACITY_BYTES`], the cache starts over.
const CAPACITY: usize = 256;
/// The text of the documents kept, in bytes; their parsed form is a few times larger.
const CAPACITY_BYTES: usize = 512 * 1024;

pub struct Documents {
    max_document_bytes: usize,
    introspection: bool,
    metrics: Arc<Metrics>,
    parsed: Mutex<Cache>,
}

#[derive(Default)]
struct Cache {
    entries: HashMap<String, Entry>,
    text_bytes: usize,
}

#[derive(Clone)]
struct Entry {
    document: ExecutableDocument,
    direct: Option<Arc<Direct>>,
}

/// A document parsed for a request, kept once it has shown it validates.
pub struct Candidate {
    documents: Arc<Documents>,
    query: String,
    entry: Entry,
}

impl Candidate {
    /// Keeps the document if `response`, its first answer, is not a request error.
    pub fn keep_if_valid(self, response: &Response) {
        if !is_request_error(response) {
            self.keep();
        }
    }

    /// Keeps the document, which validated.
    pub fn keep(self) {
        self.documents.keep(self.query, self.entry);
    }
}

/// A failure before execution (parse, validation, a refusal, or a subscription refused at its
/// start): an error without a path and no data.
pub fn is_request_error(response: &Response) -> bool {
    !response.errors.is_empty()
        && response.data == async_graphql::Value::Null
        && response.errors.iter().all(|e| e.path.is_empty())
}

/// How a request's operation runs.
pub enum Prepared {
    /// Served by the socket itself.
    Direct(Arc<Direct>),
    /// Executed, kept dormant between the events that wake it.
    Dormant(Wake, Option<Candidate>),
    /// Executed.
    Execute(Option<Candidate>),
    /// Refused before parsing: this is the answer.
    Refused(Response),
}

impl Documents {
    pub fn new(max_document_bytes: usize, introspection: bool, metrics: Arc<Metrics>) -> Self {
        Self {
            max_document_bytes,
            introspection,
            metrics,
            parsed: Mutex::default(),
        }
    }

    /// How the request's operation runs; unless it is direct or refused, gives `request` its
    /// parsed document, from the cache or parsed now (a candidate for the cache). A query that
    /// does not parse is left for execution to report.
    pub fn prepare(self: &Arc<Self>, request: &mut Request) -> Prepared {
        let name = request.operation_name.clone();
        let selected = |direct: &&Arc<Direct>| direct.is_selected_by(name.as_deref());
        // A direct operation never needs its document: copying it would cost every relayed
        // signal.
        let cached = self.lock().entries.get(&request.query).map(|entry| {
            match entry.direct.as_ref().filter(selected) {
                Some(direct) => Err(direct.clone()),
                None => Ok(entry.document.clone()),
            }
        });
        let (document, candidate) = match cached {
            Some(Err(direct)) => return Prepared::Direct(direct),
            Some(Ok(document)) => (document, None),
            None => {
                if let Err(refusal) = guard::check(&request.query, self.max_document_bytes) {
                    return Prepared::Refused(refusal.response());
                }
                let Ok(document) = request.parsed_query().cloned() else {
                    return Prepared::Execute(None);
                };
                if !self.introspection && introspection::asks_for_schema(&document) {
                    return Prepared::Refused(introspection::refused());
                }
                let direct = Direct::recognise(&document).map(Arc::new);
                let entry = Entry {
                    document: document.clone(),
                    direct: direct.clone(),
                };
                // A direct operation is recognised by its exact shape, which the schema has:
                // it is kept at once.
                if let Some(direct) = direct {
                    self.keep(request.query.clone(), entry);
                    if selected(&&direct) {
                        return Prepared::Direct(direct);
                    }
                    (document, None)
                } else {
                    let candidate = Candidate {
                        documents: self.clone(),
                        query: request.query.clone(),
                        entry,
                    };
                    (document, Some(candidate))
                }
            }
        };
        let wake = Wake::recognise(&document, name.as_deref());
        request.set_parsed_query(document);
        match wake {
            Some(wake) => Prepared::Dormant(wake, candidate),
            None => Prepared::Execute(candidate),
        }
    }

    /// The direct operation `query` runs when `operation_name` selects it, if the query was
    /// prepared before; nothing is parsed or copied.
    pub fn cached_direct(&self, query: &str, operation_name: Option<&str>) -> Option<Arc<Direct>> {
        let parsed = self.lock();
        let direct = parsed.entries.get(query)?.direct.as_ref()?;
        direct
            .is_selected_by(operation_name)
            .then(|| direct.clone())
    }

    fn keep(&self, query: String, entry: Entry) {
        if query.len() > CAPACITY_BYTES {
            return;
        }
        let mut parsed = self.lock();
        if parsed.entries.contains_key(&query) {
            return;
        }
        if parsed.entries.len() >= CAPACITY || parsed.text_bytes + query.len() > CAPACITY_BYTES {
            *parsed = Cache::default();
        }
        parsed.text_bytes += query.len();
        parsed.entries.insert(query, entry);
        self.metrics
            .document_cache(parsed.entries.len(), parsed.text_bytes);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.parsed.lock().unwrap_or_else(|p| p.into_inner())
    }
}
