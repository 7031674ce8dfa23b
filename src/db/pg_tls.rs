//! What a PostgreSQL URL asks of TLS, under the names libpq gives it (sqlx reads the same ones),
//! so that a failed start names the setting at fault: sqlx reports a missing file without its
//! name, and a certificate that does not verify without saying against what.

use std::path::Path;

use sqlx::postgres::PgSslMode;

pub(super) struct TlsSettings {
    /// `sslrootcert` (or sqlx's other name for it), as written in the URL.
    root_cert: Option<(String, String)>,
}

impl TlsSettings {
    /// Reads the URL's TLS settings and the files they name before sqlx does, or tells which of
    /// them is wrong.
    pub(super) fn check(url: &str) -> Result<Self, String> {
        let mut root_cert = None;
        let query = url.split_once('?').map_or("", |(_, query)| query);
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            match &*key {
                "sslmode" | "ssl-mode" if value.parse::<PgSslMode>().is_err() => {
                    return Err(format!(
                        "{key}={value}: expected disable, prefer, require, verify-ca or verify-full"
                    ));
                }
                "sslrootcert" | "ssl-root-cert" | "ssl-ca" => {
                    if !is_inline(&value) {
                        crate::tls::read_certificates(Path::new(&*value))
                            .map_err(|why| format!("{key}: {why}"))?;
                    }
                    root_cert = Some((key.into_owned(), value.into_owned()));
                }
                "sslcert" | "ssl-cert" | "sslkey" | "ssl-key" if !is_inline(&value) => {
                    std::fs::read(&*value)
                        .map_err(|e| format!("{key}: cannot read {value}: {e}"))?;
                }
                _ => {}
            }
        }
        Ok(Self { root_cert })
    }

    pub(super) fn has_root_cert(&self) -> bool {
        self.root_cert.is_some()
    }

    /// `error`, from connecting with these settings, in one line.
    pub(super) fn describe(&self, mode: PgSslMode, error: &sqlx::Error) -> String {
        let mode = match mode {
            PgSslMode::Disable => "disable",
            PgSslMode::Allow => "allow",
            PgSslMode::Prefer => "prefer",
            PgSslMode::Require => "require",
            PgSslMode::VerifyCa => "verify-ca",
            PgSslMode::VerifyFull => "verify-full",
        };
        match crate::tls::rustls_error(error) {
            Some(cert @ rustls::Error::InvalidCertificate(_)) => {
                let roots = match &self.root_cert {
                    Some((key, value)) => format!("{key}={}", shown(value)),
                    None => "the built-in public root CAs (no sslrootcert given)".into(),
                };
                format!(
                    "sslmode={mode}: the server's certificate does not verify against {roots}: {cert}"
                )
            }
            Some(tls) => format!("sslmode={mode}: TLS failed: {tls}"),
            None => match error {
                sqlx::Error::Tls(why) => format!("sslmode={mode}: {why}"),
                other => other.to_string(),
            },
        }
    }
}

/// sqlx takes a value that is a PEM block itself instead of a file name.
fn is_inline(value: &str) -> bool {
    value.trim_start().starts_with("-----BEGIN")
}

fn shown(value: &str) -> &str {
    if is_inline(value) {
        "(PEM in the URL)"
    } else {
        value
    }
}
