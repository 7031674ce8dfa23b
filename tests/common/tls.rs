//! Certificates made with the `openssl` command (there whenever PostgreSQL is, through Debian's
//! ssl-cert).

use std::path::{Path, PathBuf};
use std::process::Command;

/// A certificate authority of the test's own, in a temporary folder.
pub struct TestCa {
    dir: tempfile::TempDir,
    /// The CA's certificate (PEM): what a client is told to trust.
    pub cert: PathBuf,
    key: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("the openssl command runs");
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A P-256 key, fast to make.
const NEW_KEY: [&str; 4] = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];

impl TestCa {
    pub fn new(name: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut args = vec!["req", "-x509", "-nodes", "-days", "2"];
        args.extend(NEW_KEY);
        let subject = format!("/CN={name}");
        args.extend(["-keyout", "ca.key", "-out", "ca.pem", "-subj", &subject]);
        openssl(dir.path(), &args);
        Self {
            cert: dir.path().join("ca.pem"),
            key: dir.path().join("ca.key"),
            dir,
        }
    }

    /// A server certificate for 127.0.0.1 and localhost signed by this CA: (certificate, key).
    pub fn server_certificate(&self) -> (PathBuf, PathBuf) {
        let dir = self.dir.path();
        std::fs::write(
            dir.join("server.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n",
        )
        .expect("write the extensions");
        let mut args = vec!["req", "-nodes"];
        args.extend(NEW_KEY);
        args.extend([
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ]);
        openssl(dir, &args);
        let (ca_cert, ca_key) = (self.cert.to_str().unwrap(), self.key.to_str().unwrap());
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                ca_cert,
                "-CAkey",
                ca_key,
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                "server.ext",
                "-out",
                "server.pem",
            ],
        );
        (dir.join("server.pem"), dir.join("server.key"))
    }
}
