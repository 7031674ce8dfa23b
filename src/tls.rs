//! What the TLS connections to PostgreSQL and Redis share: reading a CA file, and telling a
//! certificate that does not verify apart from other failures, so that start-up can say which
//! setting to fix.

use std::error::Error;
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// The PEM certificates in the file at `path`, or why there are none (one line, without the
/// setting's name).
pub fn read_certificates(path: &Path) -> Result<Vec<u8>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if !CertificateDer::pem_slice_iter(&pem).any(|cert| cert.is_ok()) {
        return Err(format!("{} holds no PEM certificate", path.display()));
    }
    Ok(pem)
}

/// The rustls error behind `error`, when TLS is what failed. rustls reports through `std::io`,
/// and redis keeps that in an `Arc`: the `source()` of both skips the error they wrap, so each
/// is opened here.
pub fn rustls_error<'a>(error: &'a (dyn Error + 'static)) -> Option<&'a rustls::Error> {
    let mut next = Some(error);
    while let Some(mut error) = next {
        if let Some(shared) = error.downcast_ref::<Arc<dyn Error + Send + Sync>>() {
            error = &**shared;
        }
        if let Some(io) = error.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
        {
            error = inner;
        }
        if let Some(tls) = error.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        next = error.source();
    }
    None
}

/// Makes ring the process's rustls provider. The redis crate builds its TLS settings from the
/// process default, which rustls can only pick by itself while the dependency tree enables a
/// single provider; naming it keeps a second one (aws-lc-rs) turning up from being a panic.
pub fn use_ring() {
    // An error means a provider is already installed (by an earlier call): nothing to do.
    let _ = rustls::crypto::ring::default_provider().install_default();
}
