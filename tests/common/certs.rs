//! TLS material for the ovsdb-server TLS tests, made with the real `openssl` command.

use std::path::{Path, PathBuf};
use std::process::Command;

use ovnkube_route::ovsdb::TlsFiles;

use super::{require, run};

/// TLS material made with openssl: a CA, a server and a client certificate signed by it,
/// and a second, unrelated CA with its own client certificate.
pub struct Certs {
    pub dir: PathBuf,
}

impl Certs {
    pub fn make(dir: &Path) -> Certs {
        require("openssl");
        let dir = dir.join("pki");
        std::fs::create_dir_all(&dir).unwrap();
        let ext = dir.join("leaf.ext");
        std::fs::write(
            &ext,
            "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n\
             extendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=IP:127.0.0.1\n",
        )
        .unwrap();
        for ca in ["ca", "otherca"] {
            run(Command::new("openssl")
                .args([
                    "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                ])
                .args(["-subj", &format!("/CN={ca}")])
                .arg("-keyout")
                .arg(dir.join(format!("{ca}-key.pem")))
                .arg("-out")
                .arg(dir.join(format!("{ca}.pem"))));
        }
        for (leaf, ca) in [("server", "ca"), ("client", "ca"), ("stranger", "otherca")] {
            let key = dir.join(format!("{leaf}-key.pem"));
            let csr = dir.join(format!("{leaf}.csr"));
            run(Command::new("openssl")
                .args(["req", "-newkey", "rsa:2048", "-nodes"])
                .args(["-subj", &format!("/CN={leaf}")])
                .arg("-keyout")
                .arg(&key)
                .arg("-out")
                .arg(&csr));
            run(Command::new("openssl")
                .args(["x509", "-req", "-days", "2", "-set_serial", "1"])
                .arg("-in")
                .arg(&csr)
                .arg("-CA")
                .arg(dir.join(format!("{ca}.pem")))
                .arg("-CAkey")
                .arg(dir.join(format!("{ca}-key.pem")))
                .arg("-extfile")
                .arg(&ext)
                .arg("-out")
                .arg(dir.join(format!("{leaf}-cert.pem"))));
        }
        Certs { dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Client files: `leaf` certificate/key, trusting `ca`.
    pub fn client_files(&self, leaf: &str, ca: &str) -> TlsFiles {
        TlsFiles {
            private_key: self.path(&format!("{leaf}-key.pem")),
            certificate: self.path(&format!("{leaf}-cert.pem")),
            ca_cert: self.path(&format!("{ca}.pem")),
        }
    }
}
