//! One storage handle over SQLite (embedded default) and PostgreSQL (production).
//!
//! Repositories write each statement once with `$n` placeholders, which both dialects accept, and
//! run it on whichever pool is live through [`with_db!`] and [`transaction!`].

mod migrations;
mod pg_tls;
mod sqlite_memory;

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use prometheus_client::metrics::counter::Counter;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgSslMode};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Connection, Database, Encode, PgPool, QueryBuilder, SqlitePool, Type};

/// A PostgreSQL connection idle this long is pinged before it is used again.
const PING_IF_IDLE_FOR: Duration = Duration::from_secs(5);

/// The storage handle: the live pool, and a count of the calls made through it (exported on
/// `/metrics`, where it also shows N+1 query patterns).
#[derive(Clone, Debug)]
pub struct Db {
    pool: Pool,
    calls: Counter,
}

/// How the connection pool is used right now.
#[derive(Clone, Copy, Debug)]
pub struct PoolStats {
    pub idle: u64,
    pub in_use: u64,
    pub max: u64,
}

#[derive(Clone, Debug)]
pub enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs `$body` with `$pool` bound to the live pool, whatever its backend.
#[macro_export]
macro_rules! with_db {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db.pool() {
            $crate::db::Pool::Sqlite($pool) => $body,
            $crate::db::Pool::Postgres($pool) => $body,
        }
    };
}

/// Runs `$body` inside one transaction, with `$tx` bound to it; commits when `$body` finishes,
/// rolls back when it returns early with `?`. SQLite transactions take the write lock up front
/// (`BEGIN IMMEDIATE`) so that two writers queue instead of failing with SQLITE_BUSY.
#[macro_export]
macro_rules! transaction {
    ($db:expr, $tx:ident => $body:expr) => {
        match $db.pool() {
            $crate::db::Pool::Sqlite(pool) => {
                let mut $tx = pool.begin_with("BEGIN IMMEDIATE").await?;
                let out = $body;
                $tx.commit().await?;
                out
            }
            $crate::db::Pool::Postgres(pool) => {
                let mut $tx = pool.begin().await?;
                let out = $body;
                $tx.commit().await?;
                out
            }
        }
    };
}

/// Why the database could not be opened, in one line.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConnectError(String);

impl From<sqlx::Error> for ConnectError {
    fn from(error: sqlx::Error) -> Self {
        Self(error.to_string())
    }
}

impl Db {
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, ConnectError> {
        if url.starts_with("sqlite:") {
            if let Err(code) = sqlite_memory::configure() {
                tracing::warn!(
                    code,
                    "SQLite was initialised before MediLink turned its memory statistics off"
                );
            }
            let options = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(10))
                // Keeps the query planner's statistics current, as SQLite recommends.
                .optimize_on_close(true, 400)
                // Reads through a memory map and a 32 MiB page cache per connection instead of
                // a read() call per page that is not in the default 2 MiB cache.
                .pragma("mmap_size", "268435456")
                .pragma("cache_size", "-32768");
            // A connection to a local file cannot go stale: no ping before each use (sqlx's
            // default), which cost every query an extra round trip to SQLite's worker thread.
            let pool = SqlitePoolOptions::new()
                .max_connections(max_connections)
                .test_before_acquire(false)
                .after_connect(|conn, _| Box::pin(stable_plans(conn)))
                .connect_with(options)
                .await?;
            Ok(Self::new(Pool::Sqlite(pool)))
        } else {
            let tls = pg_tls::TlsSettings::check(url).map_err(ConnectError)?;
            let mut options = PgConnectOptions::from_str(url)?;
            let ssl_mode = options.get_ssl_mode();
            // Given a root file, libpq checks the certificate under `require` too; sqlx would not.
            if matches!(ssl_mode, PgSslMode::Require) && tls.has_root_cert() {
                options = options.ssl_mode(PgSslMode::VerifyCa);
            }
            // sqlx pings a connection before every use by default: a network round trip per
            // query. Only a connection idle for a while (the server may have restarted or a
            // proxy dropped it meanwhile) is checked; a busy one fails fast anyway.
            let pool = PgPoolOptions::new()
                .max_connections(max_connections)
                .acquire_timeout(Duration::from_secs(10))
                .test_before_acquire(false)
                .before_acquire(|conn, meta| {
                    Box::pin(async move {
                        if meta.idle_for >= PING_IF_IDLE_FOR {
                            conn.ping().await?;
                        }
                        Ok(true)
                    })
                })
                .connect_with(options)
                .await
                .map_err(|e| ConnectError(tls.describe(ssl_mode, &e)))?;
            Ok(Self::new(Pool::Postgres(pool)))
        }
    }

    fn new(pool: Pool) -> Self {
        Self {
            pool,
            calls: Counter::default(),
        }
    }

    /// The live pool, counted as one database call (a statement or a transaction).
    pub fn pool(&self) -> &Pool {
        self.calls.inc();
        &self.pool
    }

    /// Database calls made through this handle since start.
    pub fn calls(&self) -> u64 {
        self.calls.get()
    }

    /// The counter behind [`Db::calls`], for the metrics registry.
    pub fn calls_counter(&self) -> Counter {
        self.calls.clone()
    }

    /// The same pool with a count of its own: `/metrics` reads through it, so that a scrape
    /// does not move the count of database calls it reports.
    pub fn uncounted(&self) -> Db {
        Self::new(self.pool.clone())
    }

    /// Open connections, idle and in use, and the most the pool opens.
    pub fn pool_stats(&self) -> PoolStats {
        let (size, idle, max) = match &self.pool {
            Pool::Sqlite(pool) => (
                pool.size(),
                pool.num_idle(),
                pool.options().get_max_connections(),
            ),
            Pool::Postgres(pool) => (
                pool.size(),
                pool.num_idle(),
                pool.options().get_max_connections(),
            ),
        };
        let idle = u64::try_from(idle).unwrap_or(u64::MAX);
        PoolStats {
            idle,
            in_use: u64::from(size).saturating_sub(idle),
            max: u64::from(max),
        }
    }

    pub fn backend(&self) -> &'static str {
        match self.pool {
            Pool::Sqlite(_) => "sqlite",
            Pool::Postgres(_) => "postgres",
        }
    }

    pub async fn migrate(&self) -> Result<(), sqlx::migrate::MigrateError> {
        match &self.pool {
            Pool::Sqlite(pool) => migrations::sqlite().run(pool).await,
            Pool::Postgres(pool) => migrations::postgres().run(pool).await,
        }
    }

    /// Whether the database answers a trivial query.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        with_db!(self, pool => sqlx::query("SELECT 1").execute(pool).await.map(drop))
    }

    pub async fn close(&self) {
        match &self.pool {
            Pool::Sqlite(pool) => pool.close().await,
            Pool::Postgres(pool) => pool.close().await,
        }
    }
}

/// Makes SQLite plan each statement once, whatever values are later bound to it. Built with
/// STAT4 (as the bundled SQLite is), it otherwise expires a cached statement whenever a parameter
/// it planned with gets a new value, and parses and plans it again at its next run: every doctor
/// search paid that. Queries that need a plan steered write it into their SQL instead.
async fn stable_plans(conn: &mut SqliteConnection) -> Result<(), sqlx::Error> {
    let mut handle = conn.lock_handle().await?;
    // SAFETY: the handle is locked for this call; this option takes an int and an out-pointer,
    // which may be null.
    let rc = unsafe {
        libsqlite3_sys::sqlite3_db_config(
            handle.as_raw_handle().as_ptr(),
            libsqlite3_sys::SQLITE_DBCONFIG_ENABLE_QPSG,
            1 as std::ffi::c_int,
            std::ptr::null_mut::<std::ffi::c_int>(),
        )
    };
    if rc == libsqlite3_sys::SQLITE_OK {
        Ok(())
    } else {
        Err(sqlx::Error::Configuration(
            format!("SQLite refused SQLITE_DBCONFIG_ENABLE_QPSG (code {rc})").into(),
        ))
    }
}

/// Pushes `(a, b, c)` with each item bound, for `IN` lists; callers make sure it is not empty.
pub fn push_list<DB: Database, T>(query: &mut QueryBuilder<DB>, items: impl IntoIterator<Item = T>)
where
    for<'t> T: Encode<'t, DB> + Type<DB>,
{
    query.push("(");
    let mut separated = query.separated(", ");
    for item in items {
        separated.push_bind(item);
    }
    query.push(")");
}

/// Pushes ` AND (time_column, id_column) <op> (time, id)` for keyset pagination after `after`:
/// `op` is `>` for ascending lists and `<` for descending ones.
pub fn push_keyset<DB: Database>(
    query: &mut QueryBuilder<DB>,
    columns: &str,
    op: &str,
    after: Option<&(DateTime<Utc>, uuid::Uuid)>,
) where
    for<'t> DateTime<Utc>: Encode<'t, DB> + Type<DB>,
    for<'t> uuid::Uuid: Encode<'t, DB> + Type<DB>,
{
    if let Some((at, id)) = after {
        query
            .push(format!(" AND ({columns}) {op} ("))
            .push_bind(*at)
            .push(", ")
            .push_bind(*id)
            .push(")");
    }
}

/// The current time at the precision both backends store (microseconds), so that a value read
/// back compares equal to the one written.
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// Whether `error` is a unique-constraint violation (a lost race or a duplicate).
pub fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(e) if e.is_unique_violation())
}

/// Whether `error` is a unique-constraint violation on `column`: PostgreSQL names the
/// constraint (`doctors_licence_number_key`), SQLite the column (`doctors.licence_number`).
pub fn is_unique_violation_on(error: &sqlx::Error, column: &str) -> bool {
    matches!(error, sqlx::Error::Database(e) if e.is_unique_violation()
        && (e.constraint().is_some_and(|c| c.contains(column)) || e.message().contains(column)))
}

/// The text of a `search` filter as a LIKE pattern, with LIKE's wildcards escaped.
pub fn like_pattern(search: &str) -> String {
    let mut pattern = String::with_capacity(search.len() + 2);
    pattern.push('%');
    for c in search.trim().to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

#[cfg(test)]
mod tests {
    #[test]
    fn like_escapes_wildcards() {
        assert_eq!(super::like_pattern(" 50%_A "), "%50\\%\\_a%");
    }
}
