//! The integration suite, one binary: each module drives a real server (started on port 0 with
//! a fresh database by `common`) through HTTP, GraphQL and WebSocket, as clients do. One binary
//! links the crate once; a file per area of the product keeps each story findable.

mod common;

mod accounts;
mod appointments;
mod chat;
mod cli;
mod doctors;
mod hardening;
mod http;
mod ice;
mod identity;
mod instances;
mod limits;
mod logs;
mod mail;
mod metrics;
mod password;
mod payments;
mod profile;
mod realtime;
mod redis_recovery;
mod restart;
mod search;
mod signal_paths;
mod storage;
mod tls;
