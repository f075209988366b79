//! TLS failures with the NB database, as an operator meets them: which flag to check for
//! each cause, and `run`'s report of them (one ERROR line per cause per minute, and
//! `ovnkube_route_nb_tls_failures_total{cause}` for every failed handshake).
//!
//! Owns the wording and the rate of those reports. Must not: decide whether to retry (the
//! OVSDB client always does; one-shot commands give up at the first failed round).
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::ovsdb::{Endpoint, TlsFailure, TlsHook};

use super::metrics::{CauseLabel, Metrics};

/// At most one ERROR line per cause per this long.
pub const LOG_EVERY: Duration = Duration::from_secs(60);

/// What to check for each cause, in the flags' words.
pub fn check(f: &TlsFailure) -> &'static str {
    match f {
        TlsFailure::UnknownIssuer(_) => {
            "--nb-ca-cert: the NB server's certificate must chain to the CA in that file"
        }
        TlsFailure::BadCertificate(_) => {
            "the NB server's certificate (validity dates, key usage) and --nb-ca-cert"
        }
        TlsFailure::NotTls(_) => {
            "--nb: the server on that port speaks plain TCP; use tcp:HOST:PORT, or have \
             ovsdb-server listen with pssl:"
        }
        TlsFailure::CertificateRefused(_) => {
            "--nb-certificate / --nb-private-key: the NB server must trust the CA that signed \
             our certificate"
        }
    }
}

/// The hook `run` gives its OVSDB clients: counts every failure and logs one ERROR line per
/// cause per [`LOG_EVERY`] (the client itself then logs them at DEBUG only). One hook
/// serves every client `run` starts, so starting a new client does not reset the rate.
pub fn reporter(metrics: Arc<Metrics>) -> TlsHook {
    let logged: Mutex<BTreeMap<&'static str, Instant>> = Mutex::new(BTreeMap::new());
    TlsHook(Arc::new(move |endpoint: &Endpoint, f: &TlsFailure| {
        let cause = f.label();
        metrics
            .nb_tls_failures
            .get_or_create(&CauseLabel { cause })
            .inc();
        let due = logged.lock().is_ok_and(|mut l| {
            let now = Instant::now();
            let due = l
                .get(cause)
                .is_none_or(|t| now.duration_since(*t) >= LOG_EVERY);
            if due {
                l.insert(cause, now);
            }
            due
        });
        if due {
            tracing::error!(
                %endpoint,
                cause,
                check = check(f),
                "TLS with the NB database failed: {f}; retrying (this is logged once a minute; \
                 ovnkube_route_nb_tls_failures_total counts every attempt)"
            );
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_failure_is_counted_and_logged_once_per_minute() {
        let m = Arc::new(Metrics::new());
        let hook = reporter(m.clone());
        let ep: Endpoint = "ssl:127.0.0.1:1"
            .parse()
            .unwrap_or(Endpoint::Unix("/x".into()));
        let f = TlsFailure::UnknownIssuer("invalid peer certificate: UnknownIssuer".into());
        for _ in 0..3 {
            (hook.0)(&ep, &f);
        }
        let text = m.render();
        assert!(
            text.contains("ovnkube_route_nb_tls_failures_total{cause=\"unknown_issuer\"} 3"),
            "{text}"
        );
        assert!(text.contains("ovnkube_route_nb_tls_failures_total{cause=\"not_tls\"} 0"));
        for f in [
            TlsFailure::UnknownIssuer(String::new()),
            TlsFailure::BadCertificate(String::new()),
            TlsFailure::NotTls(String::new()),
            TlsFailure::CertificateRefused(String::new()),
        ] {
            assert!(TlsFailure::LABELS.contains(&f.label()));
            assert!(check(&f).contains("--nb"), "{}", check(&f));
        }
    }
}
