//! Building and running the server.

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::serve::ListenerExt;
use futures_util::future::BoxFuture;
use tokio::net::TcpListener;

use crate::auth::password::Passwords;
use crate::auth::tokens::TokenKeys;
use crate::clock::Clock;
use crate::config::{Config, ConfigError};
use crate::db::Db;
use crate::limits::Limits;
use crate::payments::gateway::Gateway;
use crate::realtime::Realtime;
use crate::state::AppState;
use crate::{calls, graphql, http, payments};

/// Why the server could not start; one line for the operator.
#[derive(Debug)]
pub enum StartupError {
    Config(ConfigError),
    Database(sqlx::Error),
    Migrate(sqlx::migrate::MigrateError),
    Bind(SocketAddr, std::io::Error),
    Redis(redis::RedisError),
    Internal(String),
}

impl fmt::Display for StartupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Config(e) => write!(f, "{e}"),
            Self::Database(e) => write!(f, "cannot open the database (MEDILINK_DATABASE_URL): {e}"),
            Self::Migrate(e) => write!(f, "cannot migrate the database: {e}"),
            Self::Bind(addr, e) => write!(f, "cannot listen on {addr} (MEDILINK_BIND): {e}"),
            Self::Redis(e) => write!(f, "cannot reach Redis (MEDILINK_REDIS_URL): {e}"),
            Self::Internal(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for StartupError {}

impl From<ConfigError> for StartupError {
    fn from(error: ConfigError) -> Self {
        Self::Config(error)
    }
}

/// Opens the database named in `config` and brings its schema up to date.
pub async fn open_database(config: &Config) -> Result<Db, StartupError> {
    let db = Db::connect(&config.database_url, config.database_max_connections)
        .await
        .map_err(StartupError::Database)?;
    db.migrate().await.map_err(StartupError::Migrate)?;
    Ok(db)
}

pub struct Application {
    listener: TcpListener,
    state: AppState,
}

impl Application {
    /// Opens and migrates the database and binds the listener (port 0 picks a free port).
    pub async fn build(config: Config) -> Result<Self, StartupError> {
        let secret = config.require_jwt_secret()?.expose().as_bytes().to_vec();
        let db = open_database(&config).await?;
        let passwords = Passwords::new()
            .await
            .map_err(|e| StartupError::Internal(e.message().to_owned()))?;
        let tokens = TokenKeys::new(&secret, Duration::from_secs(config.access_token_ttl_secs));
        let payments = Gateway::from_config(&config)
            .map_err(|e| StartupError::Internal(format!("cannot set up the Stripe client: {e}")))?
            .map(Arc::new);
        let listener = TcpListener::bind(config.bind)
            .await
            .map_err(|e| StartupError::Bind(config.bind, e))?;
        let realtime = match &config.redis_url {
            Some(url) => Realtime::redis(
                url,
                &config.redis_prefix,
                Duration::from_millis(config.instance_expiry_ms),
            )
            .await
            .map_err(StartupError::Redis)?,
            None => Realtime::in_process(),
        };
        let clock = Clock::default();
        let state = AppState {
            db,
            passwords,
            tokens,
            limits: Arc::new(Limits::new(&config, &clock)),
            config: Arc::new(config),
            clock,
            realtime,
            payments,
        };
        Ok(Self { listener, state })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| self.state.config.bind)
    }

    pub fn port(&self) -> u16 {
        self.local_addr().port()
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` resolves (see [`shutdown_signals`]), then finishes in-flight
    /// requests and closes the pool.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let schema = graphql::build(self.state.clone());
        let router = http::router(self.state.clone(), schema);
        calls::service::watch_instances(&self.state);
        tracing::info!(address = %self.local_addr(), database = self.state.db.backend(), "listening");
        // Without TCP_NODELAY, a second small frame (a `complete` after a `next`) waits for
        // the peer's delayed ACK: 40 ms added to each operation on a socket.
        let listener = self.listener.tap_io(|tcp| {
            if let Err(error) = tcp.set_nodelay(true) {
                tracing::warn!(%error, "cannot set TCP_NODELAY");
            }
        });
        let sweep = self
            .state
            .payments
            .is_some()
            .then(|| tokio::spawn(payments::service::sweep_forever(self.state.clone())));
        let served = axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await;
        if let Some(sweep) = sweep {
            sweep.abort();
        }
        served?;
        self.state.db.close().await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// Registers SIGINT and SIGTERM at once and resolves on the first of them. Call it before
/// binding: until a handler is registered, the default action kills the process outright, so a
/// signal sent right after the port opens would skip the graceful shutdown.
pub fn shutdown_signals() -> std::io::Result<BoxFuture<'static, ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut terminate = signal(SignalKind::terminate())?;
        Ok(Box::pin(async move {
            tokio::select! {
                _ = interrupt.recv() => {},
                _ = terminate.recv() => {},
            }
            tracing::info!("shutting down: finishing in-flight requests");
        }))
    }
    #[cfg(not(unix))]
    {
        Ok(Box::pin(async {
            let _ = tokio::signal::ctrl_c().await;
            tracing::info!("shutting down: finishing in-flight requests");
        }))
    }
}
