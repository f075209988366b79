//! TLS failures say why, at once (real ovsdb-server, certificates made by openssl):
//! - `plan` against an NB whose certificate chains to a foreign CA, or against a plain
//!   `ptcp:` server behind an `ssl:` endpoint, fails at the first failed round, naming the
//!   cause and the flag to check, instead of retrying until "cannot reach the NB database";
//! - `run` keeps retrying, logs the cause at ERROR once (per minute), counts every attempt in
//!   `ovnkube_route_nb_tls_failures_total{cause}`, and connects once the CA file is fixed;
//! - the client library reports each cause (foreign CA, plain TCP, our certificate refused).
#![allow(clippy::unwrap_used)]

mod common;
mod fixture;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Certs, Server, config};
use fixture::{BIN, Run, Spawned, free_port, poll};
use ovnkube_route::ovsdb::{Client, Error, TlsFailure};

const ROUTE: &str = r#"
apiVersion: k8s.ovn.org/v1
kind: Route
metadata: {name: web}
spec:
  route:
    - {dst: "172.16.10.0/24", dev: eth1}
"#;

fn tls_args(certs: &Certs, ca: &Path) -> Vec<String> {
    vec![
        "--nb-private-key".into(),
        certs.path("client-key.pem").display().to_string(),
        "--nb-certificate".into(),
        certs.path("client-cert.pem").display().to_string(),
        "--nb-ca-cert".into(),
        ca.display().to_string(),
    ]
}

fn plan(dir: &Path, remote: &str, tls: &[String]) -> (Run, Duration) {
    let routes = dir.join("routes.yaml");
    std::fs::write(&routes, ROUTE).unwrap();
    let start = Instant::now();
    let out = Command::new(BIN)
        .args(["plan", "-f", routes.to_str().unwrap(), "--nb", remote])
        .args(tls)
        .output()
        .unwrap();
    let took = start.elapsed();
    let run = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    (run, took)
}

#[test]
fn plan_fails_at_once_on_a_foreign_ca_and_on_plain_tcp() {
    let dir = tempfile::tempdir().unwrap();
    let certs = Certs::make(dir.path());
    let tls_dir = dir.path().join("tls");
    std::fs::create_dir(&tls_dir).unwrap();
    let server = Server::standalone_tls(&tls_dir, &certs);
    let ssl = format!("ssl:127.0.0.1:{}", server.port);

    // The right CA: plan works (every row shown against the real NB).
    let (ok, _) = plan(dir.path(), &ssl, &tls_args(&certs, &certs.path("ca.pem")));
    assert_eq!(ok.code, 0, "{ok}");

    // A CA that did not sign the server's certificate.
    let (r, took) = plan(
        dir.path(),
        &ssl,
        &tls_args(&certs, &certs.path("otherca.pem")),
    );
    println!("foreign CA: plan failed after {took:?}");
    assert_eq!(r.code, 2, "{r}");
    assert!(r.stderr.contains("UnknownIssuer"), "{r}");
    assert!(r.stderr.contains("not signed by the CA we trust"), "{r}");
    assert!(r.stderr.contains("check --nb-ca-cert"), "{r}");
    assert!(!r.stderr.contains("cannot reach"), "{r}");

    // A plain ptcp: ovsdb-server behind an ssl: endpoint.
    let tcp_dir = dir.path().join("tcp");
    std::fs::create_dir(&tcp_dir).unwrap();
    let plain = Server::standalone(&tcp_dir);
    let (r, took) = plan(
        dir.path(),
        &format!("ssl:127.0.0.1:{}", plain.port),
        &tls_args(&certs, &certs.path("ca.pem")),
    );
    println!("plain TCP behind ssl: plan failed after {took:?}");
    assert_eq!(r.code, 2, "{r}");
    assert!(r.stderr.contains("does not speak TLS"), "{r}");
    assert!(r.stderr.contains("check --nb: "), "{r}");
    assert!(!r.stderr.contains("cannot reach"), "{r}");
}

/// `ovnkube_route_nb_tls_failures_total{cause}` from the metrics endpoint.
fn tls_failures(port: u16, cause: &str) -> Option<f64> {
    let body = http_get(port, "/metrics")?.1;
    let key = format!("ovnkube_route_nb_tls_failures_total{{cause=\"{cause}\"}} ");
    body.lines()
        .find_map(|l| l.strip_prefix(&key))
        .and_then(|v| v.trim().parse().ok())
}

fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let code = out.split_whitespace().nth(1)?.parse().ok()?;
    Some((code, out))
}

#[test]
fn run_reports_a_foreign_ca_once_counts_every_attempt_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let certs = Certs::make(dir.path());
    let tls_dir = dir.path().join("tls");
    std::fs::create_dir(&tls_dir).unwrap();
    let server = Server::standalone_tls(&tls_dir, &certs);
    let ca = dir.path().join("trusted-ca.pem");
    std::fs::copy(certs.path("otherca.pem"), &ca).unwrap();
    std::fs::write(dir.path().join("routes.yaml"), ROUTE).unwrap();
    let metrics = free_port();
    let log = dir.path().join("run.log");
    let file = std::fs::File::create(&log).unwrap();
    let child = Command::new(BIN)
        .args(["--log", "info", "run"])
        .arg("--source")
        .arg(format!("file:{}", dir.path().join("routes.yaml").display()))
        .args(["--nb", &format!("ssl:127.0.0.1:{}", server.port)])
        .args(tls_args(&certs, &ca))
        .args([
            "--skip-pods",
            "--metrics-addr",
            &format!("127.0.0.1:{metrics}"),
        ])
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let mut run = Spawned { child, log };

    poll(20, "three failed TLS attempts counted", || {
        run.assert_alive();
        match tls_failures(metrics, "unknown_issuer") {
            Some(n) if n >= 3.0 => Ok(()),
            other => Err((other, run.log())),
        }
    });
    let text = run.log();
    let errors: Vec<&str> = text.lines().filter(|l| l.contains("ERROR")).collect();
    assert_eq!(errors.len(), 1, "one ERROR line per minute:\n{text}");
    assert!(errors[0].contains("UnknownIssuer"), "{}", errors[0]);
    assert!(errors[0].contains("--nb-ca-cert"), "{}", errors[0]);
    assert!(
        !text.contains("OVSDB connection attempt failed"),
        "TLS failures are not logged per attempt:\n{text}"
    );
    assert_eq!(tls_failures(metrics, "not_tls"), Some(0.0));
    assert_eq!(http_get(metrics, "/readyz").map(|r| r.0), Some(503));

    // The CA file fixed: the next attempt reads it again and connects.
    std::fs::copy(certs.path("ca.pem"), dir.path().join("ca.tmp")).unwrap();
    std::fs::rename(dir.path().join("ca.tmp"), &ca).unwrap();
    let took = poll(20, "ready once the CA is right", || {
        run.assert_alive();
        match http_get(metrics, "/readyz") {
            Some((200, _)) => Ok(()),
            other => Err((other, run.log())),
        }
    });
    println!("ready {took:?} after the CA file was fixed");
}

async fn usable(mut cfg: ovnkube_route::ovsdb::ClientConfig) -> Result<(), Error> {
    cfg.probe_interval = None;
    let client = Client::start(cfg).unwrap();
    tokio::time::timeout(Duration::from_secs(20), client.wait_usable())
        .await
        .expect("wait_usable did not return")
}

#[tokio::test]
async fn the_client_names_each_cause() {
    common::tracing();
    let dir = tempfile::tempdir().unwrap();
    let certs = Certs::make(dir.path());
    let tls_dir = dir.path().join("tls");
    std::fs::create_dir(&tls_dir).unwrap();
    let server = Server::standalone_tls(&tls_dir, &certs);
    let tcp_dir = dir.path().join("tcp");
    std::fs::create_dir(&tcp_dir).unwrap();
    let plain = Server::standalone(&tcp_dir);

    let mut good = config(vec![server.ssl()]);
    good.tls = Some(certs.client_files("client", "ca"));
    usable(good).await.unwrap();

    let failure = |r: Result<(), Error>| match r {
        Err(Error::TlsHandshake { failure, .. }) => failure,
        other => panic!("expected a TLS failure, got {other:?}"),
    };
    // Trusting another CA.
    let mut foreign = config(vec![server.ssl()]);
    foreign.tls = Some(certs.client_files("client", "otherca"));
    assert!(matches!(
        failure(usable(foreign).await),
        TlsFailure::UnknownIssuer(_)
    ));
    // Our certificate signed by a CA the server does not trust.
    let mut stranger = config(vec![server.ssl()]);
    stranger.tls = Some(ovnkube_route::ovsdb::TlsFiles {
        ca_cert: certs.path("ca.pem"),
        ..certs.client_files("stranger", "otherca")
    });
    let f = failure(usable(stranger).await);
    assert!(matches!(f, TlsFailure::CertificateRefused(_)), "{f:?}");
    // A plain TCP server behind ssl:.
    let mut plain_cfg = config(vec![ovnkube_route::ovsdb::Endpoint::Ssl {
        host: "127.0.0.1".into(),
        port: plain.port,
    }]);
    plain_cfg.tls = Some(certs.client_files("client", "ca"));
    let f = failure(usable(plain_cfg).await);
    assert!(matches!(f, TlsFailure::NotTls(_)), "{f:?}");
}
