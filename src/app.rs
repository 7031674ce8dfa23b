//! Building and running the server.

use std::fmt;
use std::future::{Future, IntoFuture};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::serve::ListenerExt;
use futures_util::future::BoxFuture;
use tokio::net::TcpListener;
use tokio::time::Instant;

use crate::auth::password::Passwords;
use crate::auth::tokens::TokenKeys;
use crate::calls::live::LiveCallCache;
use crate::clock::Clock;
use crate::config::{Config, ConfigError};
use crate::db::{ConnectError, Db};
use crate::limits::{Backoff, ConnectionCap, Limiter, Limits};
use crate::mail::Outbox;
use crate::mail::worker::Transport;
use crate::metrics::Metrics;
use crate::payments::gateway::Gateway;
use crate::realtime::Realtime;
use crate::shutdown::Shutdown;
use crate::state::AppState;
use crate::users::cache::AccountCache;
use crate::{calls, http, mail, notifications, payments, reminders, schema};

/// Why the server could not start; one line for the operator.
#[derive(Debug)]
pub enum StartupError {
    Config(ConfigError),
    Database(ConnectError),
    Migrate(sqlx::migrate::MigrateError),
    Bind(SocketAddr, std::io::Error),
    MetricsBind(SocketAddr, std::io::Error),
    /// With the CA file the server's certificate was checked against, if any.
    Redis(redis::RedisError, Option<PathBuf>),
    Internal(String),
}

impl fmt::Display for StartupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Config(e) => write!(f, "{e}"),
            Self::Database(e) => write!(f, "cannot open the database (MEDILINK_DATABASE_URL): {e}"),
            Self::Migrate(e) => write!(f, "cannot migrate the database: {e}"),
            Self::Bind(addr, e) => write!(f, "cannot listen on {addr} (MEDILINK_BIND): {e}"),
            Self::MetricsBind(addr, e) => {
                write!(f, "cannot listen on {addr} (MEDILINK_METRICS_BIND): {e}")
            }
            Self::Redis(e, ca_file) => {
                write!(f, "cannot reach Redis (MEDILINK_REDIS_URL): ")?;
                match crate::tls::rustls_error(e) {
                    Some(cert @ rustls::Error::InvalidCertificate(_)) => {
                        let roots = match ca_file {
                            Some(file) => format!("MEDILINK_REDIS_CA_FILE={}", file.display()),
                            None => "the system's root CAs (no MEDILINK_REDIS_CA_FILE)".into(),
                        };
                        write!(
                            f,
                            "the server's certificate does not verify against {roots}: {cert}"
                        )
                    }
                    _ => write!(f, "{e}"),
                }
            }
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
    /// `/metrics` on an address of its own (`MEDILINK_METRICS_BIND`).
    metrics_listener: Option<TcpListener>,
    /// Where the mail worker sends; `None` when mail is off.
    mail: Option<Transport>,
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
        let mail = Transport::from_config(&config).map_err(StartupError::Internal)?;
        let listener = TcpListener::bind(config.bind)
            .await
            .map_err(|e| StartupError::Bind(config.bind, e))?;
        let metrics_listener = match config.metrics_bind {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|e| StartupError::MetricsBind(addr, e))?,
            ),
            None => None,
        };
        let grace = Duration::from_secs(config.call_grace_secs);
        let live_calls = LiveCallCache::default();
        let accounts = AccountCache::default();
        let realtime = match &config.redis_url {
            Some(url) => {
                let redis_error = |e| StartupError::Redis(e, config.redis_ca_file.clone());
                let client = crate::realtime::redis_bus::client(url, config.redis_ca()?)
                    .map_err(redis_error)?;
                Realtime::redis(
                    client,
                    &config.redis_prefix,
                    Duration::from_millis(config.instance_expiry_ms),
                    grace,
                    {
                        let (live_calls, accounts) = (live_calls.clone(), accounts.clone());
                        Box::new(move |event| {
                            live_calls.observe(event);
                            accounts.observe(event);
                        })
                    },
                )
                .await
                .map_err(redis_error)?
            }
            None => Realtime::in_process(grace),
        };
        let clock = Clock::default();
        let metrics = Arc::new(Metrics::new(&db));
        let outbox = Outbox::new(mail.is_some(), clock.clone());
        let state = AppState {
            db,
            passwords,
            tokens,
            accounts,
            limits: Arc::new(limits(&config, &clock)),
            config: Arc::new(config),
            clock,
            realtime,
            live_calls,
            payments,
            shutdown: Shutdown::default(),
            metrics,
            mail: outbox,
        };
        Ok(Self {
            listener,
            metrics_listener,
            mail,
            state,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| self.state.config.bind)
    }

    /// Where `/metrics` is served when it has an address of its own.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
    }

    pub fn port(&self) -> u16 {
        self.local_addr().port()
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` resolves (see [`shutdown_signals`]). Then it stops accepting at
    /// once, sends every WebSocket away (close 1001) once its running operations have answered,
    /// and lets in-flight requests finish, for at most `shutdown_grace_secs`; then it ends its
    /// timers, leaves its users' calls to the other instances or ends them when it is alone
    /// (see `calls::service::instance_stopped`), and closes the pool.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let state = self.state.clone();
        let schema = schema::build(state.clone());
        let router = http::router(state.clone(), schema);
        calls::service::instance_started(&state).await;
        notifications::service::start_retention_sweep(&state);
        reminders::service::start_sweep(&state);
        tracing::info!(address = %self.local_addr(), database = state.db.backend(), "listening");
        mail::worker::start(&state, self.mail);
        // Without TCP_NODELAY, a second small frame (a `complete` after a `next`) waits for
        // the peer's delayed ACK: 40 ms added to each operation on a socket.
        let listener = self.listener.tap_io(|tcp| {
            if let Err(error) = tcp.set_nodelay(true) {
                tracing::warn!(%error, "cannot set TCP_NODELAY");
            }
        });
        // Metrics stay up while the public server drains, and stop with it.
        let metrics = self.metrics_listener.map(|listener| {
            if let Ok(address) = listener.local_addr() {
                tracing::info!(%address, "serving /metrics");
            }
            let router = http::metrics_router(state.clone());
            tokio::spawn(async move { axum::serve(listener, router).await })
        });
        let sweep = state
            .payments
            .is_some()
            .then(|| tokio::spawn(payments::service::sweep_forever(state.clone())));
        let stopping = state.shutdown.clone();
        let served = axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            shutdown.await;
            stopping.begin();
        })
        .into_future();
        tokio::pin!(served);
        // axum returns only once told to stop (it drops the listener at that moment).
        let early = tokio::select! {
            served = &mut served => Some(served),
            () = state.shutdown.going_away() => None,
        };
        let deadline = Instant::now() + Duration::from_secs(state.config.shutdown_grace_secs);
        let served = match early {
            Some(served) => served,
            None => {
                let drained = tokio::time::timeout_at(deadline, async {
                    let served = served.await;
                    state.shutdown.sockets_closed().await;
                    served
                })
                .await;
                drained.unwrap_or_else(|_| {
                    tracing::warn!(
                        open_sockets = state.shutdown.open_sockets(),
                        "shutdown deadline (MEDILINK_SHUTDOWN_GRACE_SECS) passed; stopping \
                         with requests or sockets unfinished"
                    );
                    Ok(())
                })
            }
        };
        if let Some(sweep) = sweep {
            sweep.abort();
        }
        if let Some(metrics) = metrics {
            metrics.abort();
        }
        // Quick unless the database or Redis hangs: this gets what is left of the deadline,
        // and at least a second.
        let last = deadline.max(Instant::now() + Duration::from_secs(1));
        let closed = tokio::time::timeout_at(last, async {
            state.shutdown.stop_tasks().await;
            calls::service::instance_stopped(&state).await;
            state.db.close().await;
        })
        .await;
        if closed.is_err() {
            tracing::warn!("cannot hand over calls or close the pool in time; stopping anyway");
        }
        served?;
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

/// The abuse limits the settings ask for (the settings name the limits' types, so the limits
/// do not read the settings).
fn limits(config: &Config, clock: &Clock) -> Limits {
    Limits {
        login_per_ip: Limiter::new(config.limit_login_per_ip, clock.clone()),
        login_per_account: Limiter::new(config.limit_login_per_account, clock.clone()),
        login_failures: Backoff::new(
            config.login_free_failures,
            Duration::from_secs(config.login_backoff_max_secs),
            clock.clone(),
        ),
        register_per_ip: Limiter::new(config.limit_register_per_ip, clock.clone()),
        refresh_per_ip: Limiter::new(config.limit_refresh_per_ip, clock.clone()),
        refresh_per_account: Limiter::new(config.limit_refresh_per_account, clock.clone()),
        ws_connects_per_ip: Limiter::new(config.limit_ws_connects_per_ip, clock.clone()),
        ws_connections_per_ip: ConnectionCap::new(config.ws_max_connections_per_ip),
        signals_per_user: Limiter::new(config.limit_signals_per_user, clock.clone()),
        chat_per_user: Limiter::new(config.limit_chat_per_user, clock.clone()),
        password_reset_per_ip: Limiter::new(config.limit_password_reset_per_ip, clock.clone()),
        password_reset_per_email: Limiter::new(
            config.limit_password_reset_per_email,
            clock.clone(),
        ),
        verification_mail_per_user: Limiter::new(
            config.limit_verification_mail_per_user,
            clock.clone(),
        ),
    }
}
