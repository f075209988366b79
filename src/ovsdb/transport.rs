//! Endpoints and byte streams: `unix:PATH`, `tcp:HOST:PORT`, `ssl:HOST:PORT` (the remote
//! syntax of ovsdb-server(1) and ovn-nbctl), TCP socket options, and TLS with rustls.
//!
//! Owns opening a connection; knows nothing of JSON-RPC. TLS follows OVS's stream-ssl: the
//! server's certificate must chain to the configured CA (no host-name check, as OVS
//! certificates are issued per node, not per name) and the client always presents its own.
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpStream, UnixStream};

use super::error::{Error, TlsFailure};

/// Where an OVSDB server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Unix(PathBuf),
    Tcp { host: String, port: u16 },
    Ssl { host: String, port: u16 },
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Unix(p) => write!(f, "unix:{}", p.display()),
            Endpoint::Tcp { host, port } => write!(f, "tcp:{}:{port}", bracket(host)),
            Endpoint::Ssl { host, port } => write!(f, "ssl:{}:{port}", bracket(host)),
        }
    }
}

fn bracket(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    }
}

impl std::str::FromStr for Endpoint {
    type Err = Error;
    fn from_str(s: &str) -> Result<Endpoint, Error> {
        let s = s.trim();
        let bad = |reason: &str| Error::BadRemote {
            remote: s.to_owned(),
            reason: reason.to_owned(),
        };
        let (kind, rest) = s
            .split_once(':')
            .ok_or_else(|| bad("expected unix:PATH, tcp:HOST:PORT or ssl:HOST:PORT"))?;
        if kind == "unix" {
            if rest.is_empty() {
                return Err(bad("empty socket path"));
            }
            return Ok(Endpoint::Unix(PathBuf::from(rest)));
        }
        // HOST:PORT, HOST may be an [IPv6] literal.
        let (host, port) = if let Some(r) = rest.strip_prefix('[') {
            let (h, p) = r.split_once(']').ok_or_else(|| bad("unclosed '['"))?;
            (h, p.strip_prefix(':').ok_or_else(|| bad("missing :PORT"))?)
        } else {
            rest.rsplit_once(':').ok_or_else(|| bad("missing :PORT"))?
        };
        if host.is_empty() {
            return Err(bad("empty host"));
        }
        let port: u16 = port
            .parse()
            .map_err(|_| bad("port is not a number 0-65535"))?;
        let host = host.to_owned();
        match kind {
            "tcp" => Ok(Endpoint::Tcp { host, port }),
            "ssl" => Ok(Endpoint::Ssl { host, port }),
            _ => Err(bad("unknown scheme (unix, tcp or ssl)")),
        }
    }
}

/// Parse a comma-separated remote list (`ssl:10.0.0.1:6641,ssl:10.0.0.2:6641`).
pub fn parse_remotes(list: &str) -> Result<Vec<Endpoint>, Error> {
    let v: Vec<Endpoint> = list
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    if v.is_empty() {
        return Err(Error::BadRemote {
            remote: list.to_owned(),
            reason: "no remote given".into(),
        });
    }
    Ok(v)
}

/// Files for `ssl:` remotes (ovn-nbctl's `-p`, `-c`, `-C`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub private_key: PathBuf,
    pub certificate: PathBuf,
    pub ca_cert: PathBuf,
}

/// Checks the server's chain against the CA and ignores the name, like OVS stream-ssl.
#[derive(Debug)]
struct ChainOnlyVerifier(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnlyVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // webpki checks the chain before the name, so a name error means the chain is good.
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

impl TlsFiles {
    /// Load the files into a rustls client configuration (ring provider).
    pub fn load(&self) -> Result<Arc<rustls::ClientConfig>, Error> {
        let tls = |what: &str, e: &dyn fmt::Display| Error::Tls(format!("{what}: {e}"));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = RootCertStore::empty();
        let cas = CertificateDer::pem_file_iter(&self.ca_cert)
            .map_err(|e| tls(&format!("CA certificate {}", self.ca_cert.display()), &e))?;
        for ca in cas {
            let ca =
                ca.map_err(|e| tls(&format!("CA certificate {}", self.ca_cert.display()), &e))?;
            roots
                .add(ca)
                .map_err(|e| tls(&format!("CA certificate {}", self.ca_cert.display()), &e))?;
        }
        if roots.is_empty() {
            return Err(Error::Tls(format!(
                "no certificate in CA file {}",
                self.ca_cert.display()
            )));
        }
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&self.certificate)
            .and_then(|it| it.collect())
            .map_err(|e| tls(&format!("certificate {}", self.certificate.display()), &e))?;
        if chain.is_empty() {
            return Err(Error::Tls(format!(
                "no certificate in {}",
                self.certificate.display()
            )));
        }
        let key = PrivateKeyDer::from_pem_file(&self.private_key)
            .map_err(|e| tls(&format!("private key {}", self.private_key.display()), &e))?;
        let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .map_err(|e| tls("CA certificate", &e))?;
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| tls("protocol versions", &e))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(ChainOnlyVerifier(webpki)))
            .with_client_auth_cert(chain, key)
            .map_err(|e| tls("client certificate/key", &e))?;
        Ok(Arc::new(config))
    }
}

/// A connected byte stream, whatever the endpoint.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Stream for T {}

/// TCP settings so that a hung or vanished peer is noticed in seconds, not the kernel's
/// default of minutes (FACTS.md: a SIGSTOPped leader otherwise stalls clients).
#[derive(Debug, Clone, Copy)]
pub struct TcpOptions {
    pub keepalive_idle: Duration,
    pub keepalive_interval: Duration,
    pub keepalive_retries: u32,
    /// TCP_USER_TIMEOUT: unacknowledged data older than this kills the connection.
    pub user_timeout: Duration,
    pub connect_timeout: Duration,
}

impl Default for TcpOptions {
    fn default() -> Self {
        TcpOptions {
            keepalive_idle: Duration::from_secs(5),
            keepalive_interval: Duration::from_secs(2),
            keepalive_retries: 3,
            user_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
        }
    }
}

fn io(endpoint: &Endpoint, source: std::io::Error) -> Error {
    Error::Io {
        remote: endpoint.to_string(),
        source,
    }
}

async fn tcp(
    endpoint: &Endpoint,
    host: &str,
    port: u16,
    o: &TcpOptions,
) -> Result<TcpStream, Error> {
    let s = tokio::time::timeout(o.connect_timeout, TcpStream::connect((host, port)))
        .await
        .map_err(|_| io(endpoint, std::io::ErrorKind::TimedOut.into()))?
        .map_err(|e| io(endpoint, e))?;
    let sock = socket2::SockRef::from(&s);
    let ka = socket2::TcpKeepalive::new()
        .with_time(o.keepalive_idle)
        .with_interval(o.keepalive_interval)
        .with_retries(o.keepalive_retries);
    sock.set_tcp_nodelay(true).map_err(|e| io(endpoint, e))?;
    sock.set_tcp_keepalive(&ka).map_err(|e| io(endpoint, e))?;
    sock.set_tcp_user_timeout(Some(o.user_timeout))
        .map_err(|e| io(endpoint, e))?;
    Ok(s)
}

/// A failed handshake: a certificate or protocol problem when rustls says so. A peer that
/// closes the connection in the middle of our ClientHello is not a TLS server either (a
/// plain `ptcp:` ovsdb-server drops a client whose first bytes are not JSON).
fn handshake(endpoint: &Endpoint, e: std::io::Error) -> Error {
    let failure = TlsFailure::of_io(&e).or_else(|| {
        (e.kind() == std::io::ErrorKind::UnexpectedEof)
            .then(|| TlsFailure::NotTls(format!("connection closed during the handshake: {e}")))
    });
    match failure {
        Some(failure) => Error::TlsHandshake {
            remote: endpoint.to_string(),
            failure,
        },
        None => io(endpoint, e),
    }
}

/// Open a stream to `endpoint`. `tls` is required for `ssl:` endpoints.
pub async fn connect(
    endpoint: &Endpoint,
    tls: Option<&Arc<rustls::ClientConfig>>,
    options: &TcpOptions,
) -> Result<Box<dyn Stream>, Error> {
    match endpoint {
        Endpoint::Unix(path) => Ok(Box::new(
            UnixStream::connect(path)
                .await
                .map_err(|e| io(endpoint, e))?,
        )),
        Endpoint::Tcp { host, port } => Ok(Box::new(tcp(endpoint, host, *port, options).await?)),
        Endpoint::Ssl { host, port } => {
            let config = tls.ok_or_else(|| {
                Error::Tls(format!(
                    "{endpoint} needs a private key, certificate and CA"
                ))
            })?;
            let s = tcp(endpoint, host, *port, options).await?;
            let name = ServerName::try_from(host.clone())
                .map_err(|e| Error::Tls(format!("server name {host}: {e}")))?;
            let connector = tokio_rustls::TlsConnector::from(config.clone());
            let tls = tokio::time::timeout(options.connect_timeout, connector.connect(name, s))
                .await
                .map_err(|_| io(endpoint, std::io::ErrorKind::TimedOut.into()))?
                .map_err(|e| handshake(endpoint, e))?;
            Ok(Box::new(tls))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_remotes() {
        let v = parse_remotes("unix:/run/ovn/ovnnb_db.sock, tcp:127.0.0.1:6641,ssl:[::1]:6641")
            .unwrap();
        assert_eq!(v[0], Endpoint::Unix("/run/ovn/ovnnb_db.sock".into()));
        assert_eq!(
            v[1],
            Endpoint::Tcp {
                host: "127.0.0.1".into(),
                port: 6641
            }
        );
        assert_eq!(
            v[2],
            Endpoint::Ssl {
                host: "::1".into(),
                port: 6641
            }
        );
        assert_eq!(v[2].to_string(), "ssl:[::1]:6641");
        for bad in [
            "",
            "tcp:1.2.3.4",
            "tcp:1.2.3.4:99999",
            "ptcp:6641",
            "unix:",
            "tcp::5",
            "x",
        ] {
            assert!(parse_remotes(bad).is_err(), "{bad:?} should fail");
        }
    }

    #[test]
    fn missing_tls_files_are_clear_errors() {
        let f = TlsFiles {
            private_key: "/nonexistent/key.pem".into(),
            certificate: "/nonexistent/cert.pem".into(),
            ca_cert: "/nonexistent/ca.pem".into(),
        };
        let e = f.load().unwrap_err();
        assert!(e.to_string().contains("/nonexistent/ca.pem"), "{e}");
    }
}
