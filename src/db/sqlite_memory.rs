//! SQLite's allocator: mimalloc, without SQLite's global memory statistics.
//!
//! sqlx copies every column of every row on its SQLite worker thread and the rows are freed on
//! tokio's threads. With the C library's malloc those frees contended for the worker's arena
//! lock, and SQLite's statistics took one global mutex around every allocation, so threads kept
//! waking each other up: a page of 20 doctors took 1.0 ms instead of 0.8, and 16 clients got
//! 1,200 pages a second instead of 2,800.

use std::ffi::{c_int, c_void};
use std::sync::OnceLock;

use libmimalloc_sys::{mi_free, mi_good_size, mi_malloc, mi_realloc, mi_usable_size};
use libsqlite3_sys::{
    SQLITE_CONFIG_MALLOC, SQLITE_CONFIG_MEMSTATUS, SQLITE_OK, sqlite3_config, sqlite3_mem_methods,
};

/// Configures SQLite once per process, before its first connection initialises it. Returns
/// SQLite's code when it refused (it has been initialised already); SQLite then keeps its
/// defaults, which work, only slower.
pub fn configure() -> Result<(), c_int> {
    static RESULT: OnceLock<Result<(), c_int>> = OnceLock::new();
    *RESULT.get_or_init(|| {
        let methods = sqlite3_mem_methods {
            xMalloc: Some(malloc),
            xFree: Some(free),
            xRealloc: Some(realloc),
            xSize: Some(size),
            xRoundup: Some(roundup),
            xInit: Some(init),
            xShutdown: Some(shutdown),
            pAppData: std::ptr::null_mut(),
        };
        // SAFETY: both options are set before sqlite3_initialize (SQLite refuses them with
        // SQLITE_MISUSE otherwise) and take the argument types passed; SQLite copies the methods.
        let codes = unsafe {
            [
                sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0 as c_int),
                sqlite3_config(SQLITE_CONFIG_MALLOC, &raw const methods),
            ]
        };
        codes
            .into_iter()
            .find(|&code| code != SQLITE_OK)
            .map_or(Ok(()), Err)
    })
}

// SQLite asks for positive sizes only and frees only what these returned.
unsafe extern "C" fn malloc(bytes: c_int) -> *mut c_void {
    unsafe { mi_malloc(bytes as usize) }
}

unsafe extern "C" fn free(pointer: *mut c_void) {
    unsafe { mi_free(pointer) }
}

unsafe extern "C" fn realloc(pointer: *mut c_void, bytes: c_int) -> *mut c_void {
    unsafe { mi_realloc(pointer, bytes as usize) }
}

unsafe extern "C" fn size(pointer: *mut c_void) -> c_int {
    let bytes = unsafe { mi_usable_size(pointer) };
    c_int::try_from(bytes).unwrap_or(c_int::MAX)
}

unsafe extern "C" fn roundup(bytes: c_int) -> c_int {
    let bytes = unsafe { mi_good_size(bytes as usize) };
    c_int::try_from(bytes).unwrap_or(c_int::MAX)
}

unsafe extern "C" fn init(_: *mut c_void) -> c_int {
    SQLITE_OK
}

unsafe extern "C" fn shutdown(_: *mut c_void) {}
