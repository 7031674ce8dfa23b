//! SQLite's process-wide memory setting: no global allocation statistics.
//!
//! By default SQLite counts every allocation and free under one global mutex. sqlx copies every
//! column of every row on its SQLite worker threads and the rows are freed on tokio's, so the
//! threads queued on that mutex and woke each other through futexes. Without the statistics a
//! page of 20 doctors took 0.86-0.91 ms instead of 1.0. Handing SQLite mimalloc as well was
//! faster still for that page (0.66-0.70 ms) but not for the filtered search, and it kept
//! 1.4 KiB more resident per idle WebSocket (each one's sign-in reads its user), past the
//! relay's 16 KiB target.

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
