//! SQLite's process-wide memory setting: no global allocation statistics.
//!
//! By default SQLite counts every allocation and free under one global mutex. sqlx copies every
//! column of every row on its SQLite worker threads and the rows are freed on tokio's, so the
//! threads queued on that mutex and woke each other through futexes; without the statistics a
//! page of doctors is faster. Handing SQLite mimalloc as well was faster still for that page but
//! not for the filtered search, and it kept more resident per idle WebSocket (each one's sign-in
//! reads its user). The figures are in docs/performance.md.

use std::ffi::c_int;
use std::sync::OnceLock;

use libsqlite3_sys::{SQLITE_CONFIG_MEMSTATUS, SQLITE_OK, sqlite3_config};

/// Configures SQLite once per process, before its first connection initialises it. Returns
/// SQLite's code when it refused (it has been initialised already); SQLite then keeps its
/// defaults, which work, only slower.
pub fn configure() -> Result<(), c_int> {
    static RESULT: OnceLock<Result<(), c_int>> = OnceLock::new();
    *RESULT.get_or_init(|| {
        // SAFETY: set before sqlite3_initialize (SQLite refuses it with SQLITE_MISUSE
        // otherwise); the option takes one int.
        let code = unsafe { sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0 as c_int) };
        if code == SQLITE_OK { Ok(()) } else { Err(code) }
    })
}
