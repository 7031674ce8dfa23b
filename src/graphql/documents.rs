//! Parsed documents by query text, shared by every socket: clients send the same few operations
//! (a signal per ICE candidate) over and over, and parsing one costs more than copying it.

use std::collections::HashMap;
use std::sync::Mutex;

use async_graphql::Request;
use async_graphql::parser::types::ExecutableDocument;

/// Distinct query texts kept; past this the cache starts over.
const CAPACITY: usize = 256;

#[derive(Default)]
pub struct Documents {
    parsed: Mutex<HashMap<String, ExecutableDocument>>,
}

impl Documents {
    /// Gives `request` its parsed document, from the cache or parsed now and kept. A query that
    /// does not parse is left for execution to report.
    pub fn prepare(&self, request: &mut Request) {
        let cached = self
            .parsed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&request.query)
            .cloned();
        if let Some(document) = cached {
            request.set_parsed_query(document);
            return;
        }
        let Ok(document) = request.parsed_query().cloned() else {
            return;
        };
        let mut parsed = self.parsed.lock().unwrap_or_else(|p| p.into_inner());
        if parsed.len() >= CAPACITY {
            parsed.clear();
        }
        parsed.insert(request.query.clone(), document);
    }
}
