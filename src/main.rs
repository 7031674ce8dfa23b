use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use clap::{Parser, Subcommand};
use medilink::auth::password::Passwords;
use medilink::config::{Config, LogFormat, Secret};
use medilink::{Application, open_database, shutdown_signals};
use rand::RngCore;
use tracing_subscriber::EnvFilter;

/// MediLink: a telemedicine backend with one GraphQL API for patients, doctors and admins.
///
/// Settings come from built-in defaults, then `medilink.toml`, then `MEDILINK_*` environment
/// variables (for example MEDILINK_DATABASE_URL, MEDILINK_BIND, MEDILINK_JWT_SECRET).
#[derive(Parser)]
#[command(version, about, long_about)]
struct Cli {
    /// The settings file; a missing file is fine.
    #[arg(
        long,
        global = true,
        default_value = "medilink.toml",
        value_name = "FILE"
    )]
    config: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Migrate the database and serve the API (GraphQL on /graphql, GraphiQL in a browser).
    Serve {
        /// Development mode: without MEDILINK_JWT_SECRET, generate a secret for this run only
        /// (every token dies with the process).
        #[arg(long)]
        dev: bool,
    },
    /// Bring the database schema up to date, then exit.
    Migrate,
    /// Create an administrator account. The password is read from MEDILINK_ADMIN_PASSWORD or,
    /// when that is unset, from the first line of standard input (never from the command line).
    CreateAdmin {
        #[arg(long)]
        email: String,
        /// The name shown for this account.
        #[arg(long, default_value = "Administrator")]
        name: String,
    },
    /// Print the GraphQL schema (SDL) to standard output.
    PrintSchema,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::PrintSchema = cli.command {
        print!("{}", medilink::schema::sdl());
        return ExitCode::SUCCESS;
    }
    let result = Config::load_from(&cli.config)
        .map_err(|e| e.to_string())
        .and_then(|config| {
            init_logging(&config.log, config.log_format);
            tracing::debug!(settings = ?config, "configuration loaded");
            let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
            runtime.block_on(run(cli.command, config))
        });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, mut config: Config) -> Result<(), String> {
    match command {
        Command::Serve { dev } => {
            if dev && config.jwt_secret.is_none() {
                config.jwt_secret = Some(random_secret());
                tracing::warn!(
                    "development mode: generated a JWT secret for this run; tokens will not \
                     survive a restart"
                );
            }
            if dev {
                development_mail(&mut config);
            }
            let shutdown = shutdown_signals()
                .map_err(|e| format!("cannot listen for SIGINT and SIGTERM: {e}"))?;
            let app = Application::build(config)
                .await
                .map_err(|e| e.to_string())?;
            app.run_until(shutdown)
                .await
                .map_err(|e| format!("server failed: {e}"))
        }
        Command::Migrate => {
            let db = open_database(&config).await.map_err(|e| e.to_string())?;
            db.close().await;
            tracing::info!(database = db.backend(), "database is up to date");
            Ok(())
        }
        Command::CreateAdmin { email, name } => {
            let password = admin_password()?;
            let db = open_database(&config).await.map_err(|e| e.to_string())?;
            let passwords = Passwords::new().await.map_err(|e| e.message().to_owned())?;
            let created =
                medilink::users::service::create_admin(&db, &passwords, &email, &password, &name)
                    .await;
            db.close().await;
            let admin = created.map_err(|e| match e.field() {
                Some(field) => format!("{field}: {}", e.message()),
                None => e.message().to_owned(),
            })?;
            println!("created admin {} ({})", admin.email, admin.id);
            Ok(())
        }
        Command::PrintSchema => unreachable!("handled before configuration is loaded"),
    }
}

fn admin_password() -> Result<String, String> {
    if let Ok(password) = std::env::var("MEDILINK_ADMIN_PASSWORD") {
        return Ok(password);
    }
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprint!("Password for the new admin (shown as you type; pipe it in to hide it): ");
        std::io::stderr().flush().ok();
    }
    let mut line = String::new();
    stdin
        .lock()
        .read_line(&mut line)
        .map_err(|e| format!("cannot read the password from standard input: {e}"))?;
    let password = line.trim_end_matches(['\r', '\n']).to_owned();
    if password.is_empty() {
        return Err(
            "no password given: set MEDILINK_ADMIN_PASSWORD or pipe it on standard input".into(),
        );
    }
    Ok(password)
}

/// Without an SMTP server, mail goes to `./medilink-mail/` as `.eml` files, and its links to the
/// /demo page, so that the two-command set-up shows the whole flow.
fn development_mail(config: &mut Config) {
    if config.smtp_url.is_none() && config.mail_dir.is_none() {
        config.mail_dir = Some(PathBuf::from("medilink-mail"));
    }
    let mut host = config.bind;
    if host.ip().is_unspecified() {
        host.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    // In the fragment, the token never reaches a server log.
    let demo = format!("http://{host}/demo");
    config
        .password_reset_url
        .get_or_insert_with(|| format!("{demo}#reset-token={{token}}"));
    config
        .email_verification_url
        .get_or_insert_with(|| format!("{demo}#verify-token={{token}}"));
}

fn random_secret() -> Secret {
    let mut bytes = [0u8; 48];
    rand::rng().fill_bytes(&mut bytes);
    Secret::new(URL_SAFE_NO_PAD.encode(bytes))
}

fn init_logging(filter: &str, format: LogFormat) {
    // The filter was validated with the rest of the configuration.
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only for a person at a terminal: in a file or a log collector the escape codes
    // are noise, and each socket's span keeps its fields formatted with them for its life.
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stdout().is_terminal());
    match format {
        LogFormat::Text => logs.init(),
        // One object per line; its `spans` carry the request (or connection) id and the user.
        LogFormat::Json => logs.json().init(),
    }
}
