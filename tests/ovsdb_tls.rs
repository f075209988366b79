//! TLS (`ssl:` remotes) against a real ovsdb-server with certificates made by openssl:
//! good certificates work, a server from another CA and clients without a good certificate
//! are refused.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{Certs, NB, Server, config};
use ovnkube_route::ovsdb::{Client, Error};

#[tokio::test]
async fn tls_good_certificates_work_wrong_ca_and_missing_client_cert_refused() {
    common::tracing();
    let dir = tempfile::tempdir().unwrap();
    let certs = Certs::make(dir.path());
    let server = Server::standalone_tls(dir.path(), &certs);

    let mut good = config(vec![server.ssl()]);
    good.tls = Some(certs.client_files("client", "ca"));
    let client = Client::connect(good).await.unwrap();
    assert!(client.list_dbs().await.unwrap().contains(&NB.to_owned()));

    // We trust another CA: the server's certificate must be refused.
    let mut wrong_ca = config(vec![server.ssl()]);
    wrong_ca.tls = Some(certs.client_files("stranger", "otherca"));
    let c = Client::start(wrong_ca).unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!c.is_connected());
    assert!(matches!(c.list_dbs().await, Err(Error::NotConnected)));

    // A client certificate from another CA (while trusting the right one): refused by the
    // server (under TLS 1.3 this shows at the first read, so look at the connection).
    let mut stranger = config(vec![server.ssl()]);
    stranger.tls = Some(ovnkube_route::ovsdb::TlsFiles {
        ca_cert: certs.path("ca.pem"),
        ..certs.client_files("stranger", "otherca")
    });
    let c = Client::start(stranger).unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!c.is_connected());

    // No client certificate at all: a raw rustls client that sends none.
    let mut roots = rustls::RootCertStore::empty();
    use rustls::pki_types::pem::PemObject;
    for c in rustls::pki_types::CertificateDer::pem_file_iter(certs.path("ca.pem")).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let cfg = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", server.port))
        .await
        .unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let refused = match tokio_rustls::TlsConnector::from(std::sync::Arc::new(cfg))
        .connect(name, tcp)
        .await
    {
        Err(_) => true,
        Ok(mut s) => {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let _ = s
                .write_all(br#"{"id":1,"method":"list_dbs","params":[]}"#)
                .await;
            let mut buf = [0u8; 256];
            !matches!(
                tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await,
                Ok(Ok(n)) if n > 0
            )
        }
    };
    assert!(refused, "a client without certificate got an answer");
    // The good client is still fine.
    assert!(client.list_dbs().await.is_ok());
}
