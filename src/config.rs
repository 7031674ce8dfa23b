//! Settings: built-in defaults < `medilink.toml` < `MEDILINK_*` environment variables.

use std::borrow::Cow;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

use crate::limits::{Rate, TrustedProxies};

/// Variables with the `MEDILINK_` prefix that are read elsewhere, not settings of the server.
const NOT_SETTINGS: &[&str] = &["TEST_DATABASE_URL", "TEST_REDIS_URL", "ADMIN_PASSWORD"];

const MIN_SECRET_BYTES: usize = 32;

/// Debug output hides every secret and the passwords in connection URLs (see below).
#[derive(Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `sqlite://path` (created on first run) or `postgres://...`.
    pub database_url: String,
    pub database_max_connections: u32,
    pub bind: SocketAddr,
    /// Where `/metrics` is served instead of on `bind`, to keep it off the public port.
    pub metrics_bind: Option<SocketAddr>,
    pub jwt_secret: Option<Secret>,
    pub access_token_ttl_secs: u64,
    pub refresh_token_ttl_days: u64,
    /// Largest JSON request body.
    pub max_body_bytes: usize,
    /// Largest multipart request body (file uploads).
    pub max_upload_bytes: usize,
    /// Most operations in one HTTP batch (a JSON array of requests).
    pub max_batch: usize,
    pub query_depth_limit: usize,
    pub query_complexity_limit: usize,
    /// A `tracing` filter such as `info` or `medilink=debug,info`.
    pub log: String,
    /// One line of text per event, or one JSON object per line for log collectors.
    pub log_format: LogFormat,
    /// How long a WebSocket may take to send `connection_init`.
    pub ws_init_timeout_secs: u64,
    /// How often the server pings each WebSocket; a peer silent for three intervals is dropped.
    pub ws_ping_interval_secs: u64,
    /// How long a call rings before it counts as missed.
    pub ring_timeout_secs: u64,
    /// How long a call waits for a participant whose last connection dropped.
    pub call_grace_secs: u64,
    /// How many lobby messages are kept (the oldest go first).
    pub lobby_retained_messages: u32,
    /// The origins (`https://app.example.com`, comma-separated) that browser clients come from
    /// and that payment redirect URLs may point at.
    pub public_origins: String,
    /// Turns payments on: bookings then wait for a Stripe Checkout payment.
    pub stripe_secret_key: Option<Secret>,
    /// The signing secret of the Stripe webhook endpoint (`whsec_...`).
    pub stripe_webhook_secret: Option<Secret>,
    /// Where the Stripe API is (tests point it at a fake server).
    pub stripe_api_base: Option<String>,
    /// The platform's share of each payment, in basis points (1000 = 10 %).
    pub platform_fee_bps: u32,
    /// How long an unpaid booking holds its slot (Stripe's Checkout minimum is 30 minutes).
    pub payment_hold_minutes: u64,
    /// How often expired payment holds are released and unfinished refunds retried.
    pub payment_sweep_secs: u64,
    /// STUN and TURN URLs for WebRTC, separated by commas (`stun:host:3478,turn:host:3478`).
    pub ice_servers: String,
    /// coturn's `static-auth-secret`: TURN credentials are minted per user and expire.
    pub turn_secret: Option<Secret>,
    /// How long minted TURN credentials stay valid.
    pub turn_credential_ttl_secs: u64,
    /// Fixed TURN credentials, for a TURN server without a shared secret.
    pub turn_username: Option<String>,
    pub turn_password: Option<Secret>,
    /// A folder holding GraphiQL's assets (laid out as on the CDN), for closed networks.
    pub graphiql_assets: Option<PathBuf>,
    /// `redis://host:port` (or `rediss://` for TLS): share the event bus and presence with other
    /// instances.
    pub redis_url: Option<String>,
    /// The CA certificates (PEM) that a `rediss://` server's certificate must chain to, instead
    /// of the system's roots: for a Redis with a CA of its own.
    pub redis_ca_file: Option<PathBuf>,
    /// Prefix of this deployment's Redis keys and channels.
    pub redis_prefix: String,
    /// An instance whose heartbeat is older than this counts as gone (with Redis).
    pub instance_expiry_ms: u64,
    /// Proxies (addresses or CIDR blocks) whose `X-Forwarded-For` names the client.
    pub trusted_proxies: TrustedProxies,
    pub limit_login_per_ip: Rate,
    pub limit_login_per_account: Rate,
    /// Failed sign-ins to one account before each further one locks it.
    pub login_free_failures: u32,
    /// The longest such lock; the locks double up to it.
    pub login_backoff_max_secs: u64,
    pub limit_register_per_ip: Rate,
    pub limit_refresh_per_ip: Rate,
    pub limit_refresh_per_account: Rate,
    /// New WebSocket connections per client address.
    pub limit_ws_connects_per_ip: Rate,
    /// WebSocket connections open at once per client address.
    pub ws_max_connections_per_ip: u32,
    pub limit_signals_per_user: Rate,
    pub limit_chat_per_user: Rate,
    /// How long a stopping instance waits for in-flight requests and WebSocket operations.
    pub shutdown_grace_secs: u64,
    /// Longest GraphQL document (query text) taken, on every transport.
    pub max_document_bytes: usize,
    /// Operations (subscriptions, queries, mutations) one WebSocket may run at once.
    pub ws_max_subscriptions: usize,
    /// Whether the schema answers introspection queries (GraphiQL and code generators use it).
    pub introspection: bool,
    /// Whether `GET /graphql` serves GraphiQL to browsers.
    pub graphiql: bool,
    /// Future bookings a patient may hold with one doctor at once.
    pub max_open_bookings_per_doctor: u32,
    // Accounts and mail.
    /// `smtp://host:port` (`?tls=required` for STARTTLS) or `smtps://host:port`, optionally with
    /// `user:password@`. Without it mail is off, or written to `mail_dir`.
    pub smtp_url: Option<String>,
    /// SMTP credentials, instead of those in the URL.
    pub smtp_user: Option<String>,
    pub smtp_password: Option<Secret>,
    /// The sender of every mail: `MediLink <no-reply@example.com>`.
    pub mail_from: String,
    /// Without SMTP, each mail is written to this folder as an `.eml` file (`serve --dev`).
    pub mail_dir: Option<PathBuf>,
    /// The app's page that resets a password, with `{token}` where the token goes; on one of
    /// the public origins. Without it the mail gives the token to type in.
    pub password_reset_url: Option<String>,
    /// How long a password-reset token works.
    pub password_reset_ttl: Period,
    /// The app's page that verifies an email address, with `{token}`, like the reset URL.
    pub email_verification_url: Option<String>,
    /// Whether patients must verify their email before booking and calling.
    pub require_verified_email: bool,
    pub limit_password_reset_per_ip: Rate,
    /// By normalised email, whether or not an account has it.
    pub limit_password_reset_per_email: Rate,
    pub limit_verification_mail_per_user: Rate,
    /// How long notifications stay in their user's inbox.
    pub notification_retention_days: u32,
    /// How often notifications past their retention are deleted.
    pub notification_sweep_secs: u64,
    /// How long before a confirmed appointment its reminders go out, separated by commas
    /// (`24h,15m`; units `d`, `h`, `m`, `s`); empty for no reminders.
    pub reminder_offsets: String,
    /// How often due reminders are looked for.
    pub reminder_sweep_secs: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            database_url: "sqlite://medilink.db".into(),
            database_max_connections: 16,
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            metrics_bind: None,
            jwt_secret: None,
            access_token_ttl_secs: 15 * 60,
            refresh_token_ttl_days: 30,
            max_body_bytes: 1024 * 1024,
            max_upload_bytes: 6 * 1024 * 1024,
            max_batch: 10,
            query_depth_limit: 16,
            // A full page (100) of doctors with every field and its user is about 2,700.
            query_complexity_limit: 5_000,
            log: "info".into(),
            log_format: LogFormat::Text,
            ws_init_timeout_secs: 3,
            ws_ping_interval_secs: 15,
            ring_timeout_secs: 30,
            call_grace_secs: 15,
            lobby_retained_messages: 1000,
            public_origins: String::new(),
            stripe_secret_key: None,
            stripe_webhook_secret: None,
            stripe_api_base: None,
            platform_fee_bps: 1000,
            payment_hold_minutes: 30,
            payment_sweep_secs: 60,
            ice_servers: String::new(),
            turn_secret: None,
            turn_credential_ttl_secs: 60 * 60,
            turn_username: None,
            turn_password: None,
            graphiql_assets: None,
            redis_url: None,
            redis_ca_file: None,
            redis_prefix: "medilink".into(),
            instance_expiry_ms: 10_000,
            trusted_proxies: TrustedProxies::default(),
            limit_login_per_ip: Rate::new(30, 60),
            limit_login_per_account: Rate::new(10, 60),
            login_free_failures: 5,
            login_backoff_max_secs: 15 * 60,
            limit_register_per_ip: Rate::new(20, 3600),
            limit_refresh_per_ip: Rate::new(120, 60),
            limit_refresh_per_account: Rate::new(10, 60),
            limit_ws_connects_per_ip: Rate::new(60, 60),
            ws_max_connections_per_ip: 100,
            // Enough for a burst of ICE candidates and renegotiations; far below a flood.
            limit_signals_per_user: Rate::new(200, 4),
            limit_chat_per_user: Rate::new(10, 5),
            shutdown_grace_secs: 10,
            max_document_bytes: 64 * 1024,
            ws_max_subscriptions: 100,
            introspection: true,
            graphiql: true,
            max_open_bookings_per_doctor: 3,
            smtp_url: None,
            smtp_user: None,
            smtp_password: None,
            mail_from: "MediLink <medilink@localhost>".into(),
            mail_dir: None,
            password_reset_url: None,
            password_reset_ttl: Period::from_secs(30 * 60),
            email_verification_url: None,
            require_verified_email: false,
            limit_password_reset_per_ip: Rate::new(20, 3600),
            limit_password_reset_per_email: Rate::new(5, 3600),
            limit_verification_mail_per_user: Rate::new(5, 3600),
            notification_retention_days: 90,
            notification_sweep_secs: 60 * 60,
            reminder_offsets: "24h,15m".into(),
            reminder_sweep_secs: 60,
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// A start-up failure worth exactly one line to the operator.
#[derive(Debug)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Reads `medilink.toml` from the working directory (if present) and the environment.
    pub fn load() -> Result<Self, ConfigError> {
        Self::load_from(Path::new("medilink.toml"))
    }

    pub fn load_from(file: &Path) -> Result<Self, ConfigError> {
        let config: Config = Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::file(file))
            .merge(Env::prefixed("MEDILINK_").ignore(NOT_SETTINGS))
            .extract()
            .map_err(describe_figment_error)?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let bad = |setting: &str, why: &str| Err(ConfigError(format!("invalid {setting}: {why}")));
        if !(self.database_url.starts_with("sqlite:")
            || self.database_url.starts_with("postgres://")
            || self.database_url.starts_with("postgresql://"))
        {
            return bad(
                "MEDILINK_DATABASE_URL",
                "expected sqlite://<file> or postgres://<host>/<database>",
            );
        }
        if self.database_max_connections == 0 {
            return bad("MEDILINK_DATABASE_MAX_CONNECTIONS", "must be at least 1");
        }
        if let Some(secret) = &self.jwt_secret
            && secret.0.len() < MIN_SECRET_BYTES
        {
            return bad(
                "MEDILINK_JWT_SECRET",
                &format!("must be at least {MIN_SECRET_BYTES} bytes long"),
            );
        }
        if self.access_token_ttl_secs == 0 {
            return bad("MEDILINK_ACCESS_TOKEN_TTL_SECS", "must be at least 1");
        }
        if self.refresh_token_ttl_days == 0 {
            return bad("MEDILINK_REFRESH_TOKEN_TTL_DAYS", "must be at least 1");
        }
        if self.max_body_bytes < 1024 || self.max_upload_bytes < 1024 {
            return bad(
                "MEDILINK_MAX_BODY_BYTES / MEDILINK_MAX_UPLOAD_BYTES",
                "must be at least 1024",
            );
        }
        if self.max_batch == 0 {
            return bad("MEDILINK_MAX_BATCH", "must be at least 1");
        }
        for (setting, value) in [
            ("MEDILINK_WS_INIT_TIMEOUT_SECS", self.ws_init_timeout_secs),
            ("MEDILINK_WS_PING_INTERVAL_SECS", self.ws_ping_interval_secs),
            ("MEDILINK_RING_TIMEOUT_SECS", self.ring_timeout_secs),
            ("MEDILINK_CALL_GRACE_SECS", self.call_grace_secs),
            ("MEDILINK_SHUTDOWN_GRACE_SECS", self.shutdown_grace_secs),
            (
                "MEDILINK_LOBBY_RETAINED_MESSAGES",
                u64::from(self.lobby_retained_messages),
            ),
            (
                "MEDILINK_TURN_CREDENTIAL_TTL_SECS",
                self.turn_credential_ttl_secs,
            ),
        ] {
            if value == 0 {
                return bad(setting, "must be at least 1");
            }
        }
        if let Some(url) = &self.redis_url
            && redis::Client::open(url.as_str()).is_err()
        {
            return bad(
                "MEDILINK_REDIS_URL",
                "expected redis://<host>:<port> or rediss://<host>:<port>",
            );
        }
        self.redis_ca()?;
        if self.redis_prefix.is_empty() {
            return bad("MEDILINK_REDIS_PREFIX", "must not be empty");
        }
        if self.login_backoff_max_secs == 0 {
            return bad("MEDILINK_LOGIN_BACKOFF_MAX_SECS", "must be at least 1");
        }
        if self.ws_max_connections_per_ip == 0 {
            return bad("MEDILINK_WS_MAX_CONNECTIONS_PER_IP", "must be at least 1");
        }
        if self.instance_expiry_ms < 300 {
            return bad("MEDILINK_INSTANCE_EXPIRY_MS", "must be at least 300");
        }
        if tracing_subscriber::EnvFilter::try_new(&self.log).is_err() {
            return bad(
                "MEDILINK_LOG",
                "expected a log filter such as `info` or `medilink=debug`",
            );
        }
        self.validate_ice_servers()?;
        if let Some(folder) = &self.graphiql_assets
            && !folder.is_dir()
        {
            return bad("MEDILINK_GRAPHIQL_ASSETS", "not a folder");
        }
        if self.query_depth_limit < 4 {
            return bad("MEDILINK_QUERY_DEPTH_LIMIT", "must be at least 4");
        }
        if self.query_complexity_limit < 10 {
            return bad("MEDILINK_QUERY_COMPLEXITY_LIMIT", "must be at least 10");
        }
        if self.max_document_bytes < 1024 {
            return bad("MEDILINK_MAX_DOCUMENT_BYTES", "must be at least 1024");
        }
        if self.ws_max_subscriptions == 0 {
            return bad("MEDILINK_WS_MAX_SUBSCRIPTIONS", "must be at least 1");
        }
        if self.max_open_bookings_per_doctor == 0 {
            return bad(
                "MEDILINK_MAX_OPEN_BOOKINGS_PER_DOCTOR",
                "must be at least 1",
            );
        }
        for origin in self.public_origins() {
            if !is_origin(origin) {
                return bad(
                    "MEDILINK_PUBLIC_ORIGINS",
                    &format!("{origin:?} is not an origin such as https://app.example.com"),
                );
            }
        }
        self.validate_notifications()?;
        self.validate_payments()?;
        self.validate_mail()
    }

    fn validate_mail(&self) -> Result<(), ConfigError> {
        let bad = |setting: &str, why: &str| Err(ConfigError(format!("invalid {setting}: {why}")));
        if let Some(url) = &self.smtp_url
            && lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::from_url(url).is_err()
        {
            return bad(
                "MEDILINK_SMTP_URL",
                "expected smtp://<host>:<port> (?tls=required for STARTTLS) or smtps://<host>:<port>",
            );
        }
        if self.smtp_user.is_some() != self.smtp_password.is_some() {
            return bad(
                "MEDILINK_SMTP_USER / MEDILINK_SMTP_PASSWORD",
                "set both or neither",
            );
        }
        if self.mail_from.parse::<lettre::message::Mailbox>().is_err() {
            return bad(
                "MEDILINK_MAIL_FROM",
                "expected an address such as `MediLink <no-reply@example.com>`",
            );
        }
        for (setting, url) in [
            ("MEDILINK_PASSWORD_RESET_URL", &self.password_reset_url),
            (
                "MEDILINK_EMAIL_VERIFICATION_URL",
                &self.email_verification_url,
            ),
        ] {
            let Some(url) = url else { continue };
            if !url.contains("{token}") {
                return bad(setting, "must contain {token}, where the token goes");
            }
            if !self.public_origins().any(|origin| {
                url.strip_prefix(origin)
                    .is_some_and(|rest| rest.starts_with('/'))
            }) {
                return bad(
                    setting,
                    "must be a page on one of MEDILINK_PUBLIC_ORIGINS, such as \
                     https://app.example.com/reset?token={token}",
                );
            }
        }
        if self.password_reset_ttl.0 == 0 {
            return bad("MEDILINK_PASSWORD_RESET_TTL", "must be at least 1s");
        }
        Ok(())
    }

    fn validate_notifications(&self) -> Result<(), ConfigError> {
        let bad = |setting: &str, why: &str| Err(ConfigError(format!("invalid {setting}: {why}")));
        if self.notification_retention_days == 0 {
            return bad("MEDILINK_NOTIFICATION_RETENTION_DAYS", "must be at least 1");
        }
        if self.notification_sweep_secs == 0 {
            return bad("MEDILINK_NOTIFICATION_SWEEP_SECS", "must be at least 1");
        }
        if self.reminder_sweep_secs == 0 {
            return bad("MEDILINK_REMINDER_SWEEP_SECS", "must be at least 1");
        }
        parse_offsets(&self.reminder_offsets)
            .map(drop)
            .map_err(|why| ConfigError(format!("invalid MEDILINK_REMINDER_OFFSETS: {why}")))
    }

    /// The reminder offsets, longest first, without repeats.
    pub fn reminder_offsets(&self) -> Vec<Duration> {
        parse_offsets(&self.reminder_offsets).unwrap_or_default()
    }

    fn validate_payments(&self) -> Result<(), ConfigError> {
        let bad = |setting: &str, why: &str| Err(ConfigError(format!("invalid {setting}: {why}")));
        if self.platform_fee_bps > 10_000 {
            return bad("MEDILINK_PLATFORM_FEE_BPS", "must be at most 10000 (100 %)");
        }
        if !(30..=24 * 60).contains(&self.payment_hold_minutes) {
            return bad(
                "MEDILINK_PAYMENT_HOLD_MINUTES",
                "must be between 30 and 1440 (Stripe's Checkout limits)",
            );
        }
        if self.payment_sweep_secs == 0 {
            return bad("MEDILINK_PAYMENT_SWEEP_SECS", "must be at least 1");
        }
        if self.stripe_secret_key.is_some() {
            if self.stripe_webhook_secret.is_none() {
                return bad(
                    "MEDILINK_STRIPE_WEBHOOK_SECRET",
                    "is required when MEDILINK_STRIPE_SECRET_KEY is set",
                );
            }
            if self.public_origins().next().is_none() {
                return bad(
                    "MEDILINK_PUBLIC_ORIGINS",
                    "is required when MEDILINK_STRIPE_SECRET_KEY is set (payment redirects go there)",
                );
            }
        }
        Ok(())
    }

    /// The configured public origins, without surrounding spaces or a trailing slash.
    pub fn public_origins(&self) -> impl Iterator<Item = &str> {
        self.public_origins
            .split(',')
            .map(|o| o.trim().trim_end_matches('/'))
            .filter(|o| !o.is_empty())
    }

    /// The configured ICE server URLs.
    pub fn ice_server_urls(&self) -> impl Iterator<Item = &str> {
        self.ice_servers
            .split(',')
            .map(str::trim)
            .filter(|url| !url.is_empty())
    }

    fn validate_ice_servers(&self) -> Result<(), ConfigError> {
        let bad = |setting: &str, why: &str| Err(ConfigError(format!("invalid {setting}: {why}")));
        let mut turn = false;
        for url in self.ice_server_urls() {
            match url.split_once(':') {
                Some(("stun" | "stuns", rest)) if !rest.is_empty() => {}
                Some(("turn" | "turns", rest)) if !rest.is_empty() => turn = true,
                _ => {
                    return bad(
                        "MEDILINK_ICE_SERVERS",
                        &format!("`{url}` is not a stun:, stuns:, turn: or turns: URL"),
                    );
                }
            }
        }
        if self.turn_username.is_some() != self.turn_password.is_some() {
            return bad(
                "MEDILINK_TURN_USERNAME / MEDILINK_TURN_PASSWORD",
                "set both or neither",
            );
        }
        if turn && self.turn_secret.is_none() && self.turn_username.is_none() {
            return bad(
                "MEDILINK_ICE_SERVERS",
                "TURN servers need MEDILINK_TURN_SECRET or MEDILINK_TURN_USERNAME and \
                 MEDILINK_TURN_PASSWORD",
            );
        }
        Ok(())
    }

    /// The certificates of `MEDILINK_REDIS_CA_FILE`, when it is set.
    pub fn redis_ca(&self) -> Result<Option<Vec<u8>>, ConfigError> {
        let Some(file) = &self.redis_ca_file else {
            return Ok(None);
        };
        let bad = |why: &str| ConfigError(format!("invalid MEDILINK_REDIS_CA_FILE: {why}"));
        if !self
            .redis_url
            .as_deref()
            .is_some_and(|url| url.starts_with("rediss://"))
        {
            return Err(bad("needs a rediss:// MEDILINK_REDIS_URL"));
        }
        crate::tls::read_certificates(file)
            .map(Some)
            .map_err(|why| bad(&why))
    }

    /// The JWT secret, or a clear error naming the setting when it is missing.
    pub fn require_jwt_secret(&self) -> Result<&Secret, ConfigError> {
        self.jwt_secret.as_ref().ok_or_else(|| {
            ConfigError(
                "MEDILINK_JWT_SECRET is required (at least 32 bytes); for local development run \
                 `medilink serve --dev` instead"
                    .into(),
            )
        })
    }
}

/// Most reminders before one appointment, and how far ahead the earliest may go.
const MAX_REMINDER_OFFSETS: usize = 5;
const MAX_REMINDER_OFFSET: Duration = Duration::from_secs(30 * 24 * 60 * 60);

/// `24h,15m` as durations, longest first, without repeats.
fn parse_offsets(value: &str) -> Result<Vec<Duration>, String> {
    let mut offsets = Vec::new();
    for item in value.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let split = item.len() - item.chars().last().map_or(0, char::len_utf8);
        let (number, unit) = item.split_at(split);
        let seconds = match unit {
            "s" => 1,
            "m" => 60,
            "h" => 60 * 60,
            "d" => 24 * 60 * 60,
            _ => {
                return Err(format!(
                    "`{item}` needs a unit: d, h, m or s (e.g. 24h,15m)"
                ));
            }
        };
        let offset = number
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(seconds))
            .map(Duration::from_secs)
            .filter(|d| !d.is_zero() && *d <= MAX_REMINDER_OFFSET)
            .ok_or_else(|| {
                format!("`{item}` is not a whole number of {unit} from 1 up to 30 days")
            })?;
        offsets.push(offset);
    }
    offsets.sort_unstable_by(|a, b| b.cmp(a));
    offsets.dedup();
    if offsets.len() > MAX_REMINDER_OFFSETS {
        return Err(format!("at most {MAX_REMINDER_OFFSETS} offsets"));
    }
    Ok(offsets)
}

/// `scheme://host[:port]` with nothing after it.
fn is_origin(value: &str) -> bool {
    let Some((scheme, rest)) = value.split_once("://") else {
        return false;
    };
    matches!(scheme, "http" | "https")
        && !rest.is_empty()
        && !rest.contains(['/', '?', '#', '@', ' '])
}

fn describe_figment_error(error: figment::Error) -> ConfigError {
    let error = error.into_iter().next().map_or_else(
        || "invalid configuration".to_string(),
        |e| {
            let setting = if e.path.is_empty() {
                "configuration".to_string()
            } else {
                format!("MEDILINK_{}", e.path.join("_").to_uppercase())
            };
            let origin = e
                .metadata
                .as_ref()
                .map(|m| format!(" (from {})", m.name))
                .unwrap_or_default();
            format!("invalid {setting}{origin}: {}", e.kind)
        },
    );
    ConfigError(error)
}

/// A secret string that never shows in logs or debug output.
#[derive(Clone, Deserialize, Serialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Every field is named here (no `..`): a new setting does not build until someone has
        // decided whether it may be shown.
        let Config {
            database_url,
            database_max_connections,
            bind,
            metrics_bind,
            jwt_secret,
            access_token_ttl_secs,
            refresh_token_ttl_days,
            max_body_bytes,
            max_upload_bytes,
            max_batch,
            query_depth_limit,
            query_complexity_limit,
            log,
            log_format,
            ws_init_timeout_secs,
            ws_ping_interval_secs,
            ring_timeout_secs,
            call_grace_secs,
            shutdown_grace_secs,
            lobby_retained_messages,
            public_origins,
            stripe_secret_key,
            stripe_webhook_secret,
            stripe_api_base,
            platform_fee_bps,
            payment_hold_minutes,
            payment_sweep_secs,
            ice_servers,
            turn_secret,
            turn_credential_ttl_secs,
            turn_username,
            turn_password,
            graphiql_assets,
            redis_url,
            redis_ca_file,
            redis_prefix,
            instance_expiry_ms,
            trusted_proxies,
            limit_login_per_ip,
            limit_login_per_account,
            login_free_failures,
            login_backoff_max_secs,
            limit_register_per_ip,
            limit_refresh_per_ip,
            limit_refresh_per_account,
            limit_ws_connects_per_ip,
            ws_max_connections_per_ip,
            limit_signals_per_user,
            limit_chat_per_user,
            max_document_bytes,
            ws_max_subscriptions,
            introspection,
            graphiql,
            max_open_bookings_per_doctor,
            smtp_url,
            smtp_user,
            smtp_password,
            mail_from,
            mail_dir,
            password_reset_url,
            password_reset_ttl,
            email_verification_url,
            require_verified_email,
            limit_password_reset_per_ip,
            limit_password_reset_per_email,
            limit_verification_mail_per_user,
            notification_retention_days,
            notification_sweep_secs,
            reminder_offsets,
            reminder_sweep_secs,
        } = self;
        f.debug_struct("Config")
            .field("database_url", &without_password(database_url))
            .field("database_max_connections", database_max_connections)
            .field("bind", bind)
            .field("metrics_bind", metrics_bind)
            .field("jwt_secret", jwt_secret)
            .field("access_token_ttl_secs", access_token_ttl_secs)
            .field("refresh_token_ttl_days", refresh_token_ttl_days)
            .field("max_body_bytes", max_body_bytes)
            .field("max_upload_bytes", max_upload_bytes)
            .field("max_batch", max_batch)
            .field("query_depth_limit", query_depth_limit)
            .field("query_complexity_limit", query_complexity_limit)
            .field("log", log)
            .field("log_format", log_format)
            .field("ws_init_timeout_secs", ws_init_timeout_secs)
            .field("ws_ping_interval_secs", ws_ping_interval_secs)
            .field("ring_timeout_secs", ring_timeout_secs)
            .field("call_grace_secs", call_grace_secs)
            .field("shutdown_grace_secs", shutdown_grace_secs)
            .field("max_document_bytes", max_document_bytes)
            .field("ws_max_subscriptions", ws_max_subscriptions)
            .field("introspection", introspection)
            .field("graphiql", graphiql)
            .field("max_open_bookings_per_doctor", max_open_bookings_per_doctor)
            .field("lobby_retained_messages", lobby_retained_messages)
            .field("public_origins", public_origins)
            .field("stripe_secret_key", stripe_secret_key)
            .field("stripe_webhook_secret", stripe_webhook_secret)
            .field("stripe_api_base", stripe_api_base)
            .field("platform_fee_bps", platform_fee_bps)
            .field("payment_hold_minutes", payment_hold_minutes)
            .field("payment_sweep_secs", payment_sweep_secs)
            .field("ice_servers", ice_servers)
            .field("turn_secret", turn_secret)
            .field("turn_credential_ttl_secs", turn_credential_ttl_secs)
            .field("turn_username", turn_username)
            .field("turn_password", turn_password)
            .field("graphiql_assets", graphiql_assets)
            .field("redis_url", &redis_url.as_deref().map(without_password))
            .field("redis_ca_file", redis_ca_file)
            .field("redis_prefix", redis_prefix)
            .field("instance_expiry_ms", instance_expiry_ms)
            .field("trusted_proxies", trusted_proxies)
            .field("limit_login_per_ip", limit_login_per_ip)
            .field("limit_login_per_account", limit_login_per_account)
            .field("login_free_failures", login_free_failures)
            .field("login_backoff_max_secs", login_backoff_max_secs)
            .field("limit_register_per_ip", limit_register_per_ip)
            .field("limit_refresh_per_ip", limit_refresh_per_ip)
            .field("limit_refresh_per_account", limit_refresh_per_account)
            .field("limit_ws_connects_per_ip", limit_ws_connects_per_ip)
            .field("ws_max_connections_per_ip", ws_max_connections_per_ip)
            .field("limit_signals_per_user", limit_signals_per_user)
            .field("limit_chat_per_user", limit_chat_per_user)
            .field("smtp_url", &smtp_url.as_deref().map(without_password))
            .field("smtp_user", smtp_user)
            .field("smtp_password", smtp_password)
            .field("mail_from", mail_from)
            .field("mail_dir", mail_dir)
            .field("password_reset_url", password_reset_url)
            .field("password_reset_ttl", password_reset_ttl)
            .field("email_verification_url", email_verification_url)
            .field("require_verified_email", require_verified_email)
            .field("limit_password_reset_per_ip", limit_password_reset_per_ip)
            .field(
                "limit_password_reset_per_email",
                limit_password_reset_per_email,
            )
            .field(
                "limit_verification_mail_per_user",
                limit_verification_mail_per_user,
            )
            .field("notification_retention_days", notification_retention_days)
            .field("notification_sweep_secs", notification_sweep_secs)
            .field("reminder_offsets", reminder_offsets)
            .field("reminder_sweep_secs", reminder_sweep_secs)
            .finish()
    }
}

/// A length of time, written `30min`, `2h` or `900s` in the settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub struct Period(u64);

impl Period {
    pub const fn from_secs(secs: u64) -> Self {
        Self(secs)
    }

    pub fn as_duration(self) -> std::time::Duration {
        std::time::Duration::from_secs(self.0)
    }
}

impl TryFrom<String> for Period {
    type Error = String;

    fn try_from(value: String) -> Result<Self, String> {
        let invalid = || format!("{value:?} is not a length of time such as 30min, 2h or 900s");
        let text = value.trim();
        let digits = text.len() - text.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        let (count, unit) = text.split_at(digits);
        let count: u64 = count.parse().map_err(|_| invalid())?;
        let unit_secs = match unit.trim() {
            "s" => 1,
            "min" | "m" => 60,
            "h" => 3600,
            _ => return Err(invalid()),
        };
        count.checked_mul(unit_secs).map(Self).ok_or_else(invalid)
    }
}

impl From<Period> for String {
    fn from(period: Period) -> Self {
        format!("{}s", period.0)
    }
}

/// A connection URL fit for a log: the user's password and a query carrying one are replaced
/// by `..` (`postgres://app:..@db/medilink`).
fn without_password(url: &str) -> Cow<'_, str> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Cow::Borrowed(url);
    };
    let (before_query, query) = match rest.split_once('?') {
        Some((before, query)) => (before, Some(query)),
        None => (rest, None),
    };
    let authority_end = before_query.find('/').unwrap_or(before_query.len());
    let (authority, path) = before_query.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((user_info, host)) => match user_info.split_once(':') {
            Some((user, _)) => Cow::Owned(format!("{user}:..@{host}")),
            None => Cow::Borrowed(authority),
        },
        None => Cow::Borrowed(authority),
    };
    let query = match query {
        Some(q) if q.to_ascii_lowercase().contains("password") => "?..".to_owned(),
        Some(q) => format!("?{q}"),
        None => String::new(),
    };
    let redacted = format!("{scheme}://{authority}{path}{query}");
    if redacted == url {
        Cow::Borrowed(url)
    } else {
        Cow::Owned(redacted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_shows_no_secret() {
        let config = Config {
            database_url: "postgres://app:db-pass-1@db.internal:5432/medilink?sslmode=require"
                .into(),
            redis_url: Some("redis://:redis-pass-2@cache:6379/0".into()),
            jwt_secret: Some(Secret::new("jwt-secret-3")),
            stripe_secret_key: Some(Secret::new("sk_live_4")),
            stripe_webhook_secret: Some(Secret::new("whsec_5")),
            turn_secret: Some(Secret::new("turn-secret-6")),
            turn_password: Some(Secret::new("turn-pass-7")),
            smtp_url: Some("smtps://mailer:smtp-pass-8@smtp.example.com:465".into()),
            smtp_password: Some(Secret::new("smtp-pass-9")),
            ..Config::default()
        };
        let shown = format!("{config:?}");
        for secret in [
            "db-pass-1",
            "redis-pass-2",
            "jwt-secret-3",
            "sk_live_4",
            "whsec_5",
            "turn-secret-6",
            "turn-pass-7",
            "smtp-pass-8",
            "smtp-pass-9",
        ] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert!(
            shown.contains("postgres://app:..@db.internal:5432/medilink?sslmode=require"),
            "{shown}"
        );
        assert!(shown.contains("redis://:..@cache:6379/0"), "{shown}");
    }

    #[test]
    fn reminder_offsets_read_longest_first() {
        let minutes = |m: u64| Duration::from_secs(m * 60);
        assert_eq!(
            parse_offsets(" 15m, 24h,1d ,90s"),
            Ok(vec![minutes(24 * 60), minutes(15), Duration::from_secs(90)])
        );
        assert_eq!(parse_offsets(""), Ok(vec![]));
        for bad in ["15", "0m", "31d", "1w", "h", "-5m", "1h,2h,3h,4h,5h,6h"] {
            assert!(parse_offsets(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn urls_without_a_password_are_shown_as_they_are() {
        for url in [
            "sqlite://medilink.db",
            "postgres://postgres@127.0.0.1:5432/medilink",
            "redis://127.0.0.1:6379",
        ] {
            assert_eq!(without_password(url), url);
        }
        assert_eq!(
            without_password("postgres://db/medilink?user=app&password=x"),
            "postgres://db/medilink?.."
        );
    }
}
