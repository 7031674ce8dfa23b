//! Certificates made with the `openssl` command (there whenever PostgreSQL is, through Debian's
//! ssl-cert), and a `redis-server` that speaks TLS only.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

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

/// A `redis-server` listening on a TLS port only, with a certificate from its own CA; stopped
/// when dropped.
pub struct TlsRedis {
    pub ca: TestCa,
    pub addr: SocketAddr,
    server: Child,
}

impl TlsRedis {
    pub fn start() -> Self {
        let ca = TestCa::new("MediLink test Redis CA");
        let (cert, key) = ca.server_certificate();
        // A free port for redis-server, which cannot be given port 0.
        let addr = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port");
        let server = Command::new("redis-server")
            .args([
                "--port",
                "0",
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .args(["--tls-port", &addr.port().to_string()])
            .arg("--tls-cert-file")
            .arg(&cert)
            .arg("--tls-key-file")
            .arg(&key)
            .arg("--tls-ca-cert-file")
            .arg(&ca.cert)
            .args(["--tls-auth-clients", "no"])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server starts (Debian's is built with TLS)");
        let redis = Self { ca, addr, server };
        for _ in 0..200 {
            if std::net::TcpStream::connect(redis.addr).is_ok() {
                return redis;
            }
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
        panic!("redis-server did not listen on {}", redis.addr);
    }

    pub fn url(&self) -> String {
        format!("rediss://{}", self.addr)
    }
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}
