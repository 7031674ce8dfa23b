//! Parsed documents by query text, shared by every socket: clients send the same few operations
//! (a signal per ICE candidate) over and over, and parsing one costs more than copying it. A
//! document the socket can serve itself is recognised once, here, and never copied.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_graphql::Request;
use async_graphql::parser::types::ExecutableDocument;

use super::direct::Direct;

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

impl Documents {
    /// The direct form of the request's operation if it has one; otherwise gives `request` its
    /// parsed document, from the cache or parsed now and kept. A query that does not parse is
    /// left for execution to report.
    pub fn prepare(&self, request: &mut Request) -> Option<Arc<Direct>> {
        let name = request.operation_name.clone();
        let selected = |direct: &&Arc<Direct>| direct.is_selected_by(name.as_deref());
        if let Some(entry) = self.lock().get(&request.query) {
            if let Some(direct) = entry.direct.as_ref().filter(selected) {
                return Some(direct.clone());
            }
            let document = entry.document.clone();
            request.set_parsed_query(document);
            return None;
        }
        let document = request.parsed_query().ok()?.clone();
        let direct = Direct::recognise(&document).map(Arc::new);
        let chosen = direct.as_ref().filter(selected).cloned();
        let mut parsed = self.lock();
        if parsed.len() >= CAPACITY {
            parsed.clear();
        }
        parsed.insert(request.query.clone(), Entry { document, direct });
        chosen
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.parsed.lock().unwrap_or_else(|p| p.into_inner())
    }
}
