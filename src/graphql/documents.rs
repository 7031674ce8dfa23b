//! Parsed documents by query text, shared by every socket and HTTP request: clients send the
//! same few operations (a signal per ICE candidate, the same search) over and over, and parsing
//! one costs more than copying it. A document the socket can serve itself is recognised once,
//! here, and never copied; one the socket keeps dormant is recognised here too.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_graphql::Request;
use async_graphql::parser::types::ExecutableDocument;

use super::direct::Direct;
use super::dormant::Wake;

/// Distinct query texts kept; past this the cache starts over.
const CAPACITY: usize = 256;

#[derive(Default)]
pub struct Documents {
    parsed: Mutex<HashMap<String, Entry>>,
}

struct Entry {
    document: ExecutableDocument,
    direct: Option<Arc<Direct>>,
}

/// How a request's operation runs.
pub enum Prepared {
    /// Served by the socket itself.
    Direct(Arc<Direct>),
    /// Executed, kept dormant between the events that wake it.
    Dormant(Wake),
    /// Executed.
    Execute,
}

impl Documents {
    /// How the request's operation runs; unless it is direct, gives `request` its parsed
    /// document, from the cache or parsed now and kept. A query that does not parse is left for
    /// execution to report.
    pub fn prepare(&self, request: &mut Request) -> Prepared {
        let name = request.operation_name.clone();
        let selected = |direct: &&Arc<Direct>| direct.is_selected_by(name.as_deref());
        // A direct operation never needs its document: copying it was 3 % of a relayed
        // signal's CPU.
        let cached = self.lock().get(&request.query).map(|entry| {
            match entry.direct.as_ref().filter(selected) {
                Some(direct) => Err(direct.clone()),
                None => Ok(entry.document.clone()),
            }
        });
        let document = match cached {
            Some(Err(direct)) => return Prepared::Direct(direct),
            Some(Ok(document)) => document,
            None => {
                let Ok(document) = request.parsed_query().cloned() else {
                    return Prepared::Execute;
                };
                let direct = Direct::recognise(&document).map(Arc::new);
                let chosen = direct.as_ref().filter(selected).cloned();
                let mut parsed = self.lock();
                if parsed.len() >= CAPACITY {
                    parsed.clear();
                }
                let entry = Entry {
                    document: document.clone(),
                    direct,
                };
                parsed.insert(request.query.clone(), entry);
                if let Some(direct) = chosen {
                    return Prepared::Direct(direct);
                }
                document
            }
        };
        let wake = Wake::recognise(&document, name.as_deref());
        request.set_parsed_query(document);
        wake.map_or(Prepared::Execute, Prepared::Dormant)
    }

    /// The direct operation `query` runs when `operation_name` selects it, if the query was
    /// prepared before; nothing is parsed or copied.
    pub fn cached_direct(&self, query: &str, operation_name: Option<&str>) -> Option<Arc<Direct>> {
        let parsed = self.lock();
        let direct = parsed.get(query)?.direct.as_ref()?;
        direct
            .is_selected_by(operation_name)
            .then(|| direct.clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.parsed.lock().unwrap_or_else(|p| p.into_inner())
    }
}
