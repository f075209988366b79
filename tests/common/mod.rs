//! Test harness: real ovsdb-server processes with the pinned NB schema, each in its own temp
//! dir, on free ports / unix sockets, killed by pid on Drop. Missing binaries fail loudly.
#![allow(dead_code)]
// Test code: a panic is a test failure with a message, which is what we want.
#![allow(clippy::unwrap_used)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use std::collections::BTreeMap;

use ovnkube_route::ovsdb::{
    Client, ClientConfig, Endpoint, Monitor, MonitorEvent, Row, RowUpdate2, TlsFiles, Update, Uuid,
    Value,
};

pub const NB: &str = "OVN_Northbound";

pub fn schema() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/ovn-nb.ovsschema")
}

fn require(bin: &str) {
    let ok = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {bin}"))
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        ok,
        "{bin} is not installed: these tests need the real OVSDB tools \
         (apt-get install ovn-central ovn-common openvswitch-common openssl)"
    );
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A free TCP port on 127.0.0.1 (bound, read, released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}

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

/// One ovsdb-server process serving a database file.
pub struct Server {
    pub dir: PathBuf,
    pub db: PathBuf,
    pub name: String,
    pub sock: PathBuf,
    pub port: u16,
    extra: Vec<String>,
    child: Option<Child>,
}

impl Server {
    fn new(dir: &Path, name: &str, db: PathBuf, extra: Vec<String>) -> Server {
        Server {
            dir: dir.to_owned(),
            db,
            name: name.to_owned(),
            sock: dir.join(format!("{name}.sock")),
            port: free_port(),
            extra,
            child: None,
        }
    }

    /// A standalone NB database with a unix socket and a ptcp remote.
    pub fn standalone(dir: &Path) -> Server {
        require("ovsdb-server");
        require("ovsdb-tool");
        let db = dir.join("nb.db");
        run(Command::new("ovsdb-tool")
            .arg("create")
            .arg(&db)
            .arg(schema()));
        let mut s = Server::new(dir, "nb", db, vec![]);
        s.start();
        s
    }

    /// A standalone NB database served over pssl with `certs`' server certificate.
    pub fn standalone_tls(dir: &Path, certs: &Certs) -> Server {
        let db = dir.join("nb.db");
        require("ovsdb-tool");
        run(Command::new("ovsdb-tool")
            .arg("create")
            .arg(&db)
            .arg(schema()));
        let extra = vec![
            format!("--private-key={}", certs.path("server-key.pem").display()),
            format!("--certificate={}", certs.path("server-cert.pem").display()),
            format!("--ca-cert={}", certs.path("ca.pem").display()),
        ];
        let mut s = Server::new(dir, "nb", db, extra);
        s.start();
        s
    }

    fn remote_arg(&self) -> String {
        if self.extra.iter().any(|e| e.starts_with("--private-key")) {
            format!("--remote=pssl:{}:127.0.0.1", self.port)
        } else {
            format!("--remote=ptcp:{}:127.0.0.1", self.port)
        }
    }

    /// Start (or restart) the process on the same files, socket and port.
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "{} already running", self.name);
        let _ = std::fs::remove_file(&self.sock);
        let child = Command::new("ovsdb-server")
            .arg(&self.db)
            .arg(format!("--remote=punix:{}", self.sock.display()))
            .arg(self.remote_arg())
            .args(&self.extra)
            .arg(format!(
                "--pidfile={}",
                self.dir.join(format!("{}.pid", self.name)).display()
            ))
            .arg(format!(
                "--unixctl={}",
                self.dir.join(format!("{}.ctl", self.name)).display()
            ))
            .arg(format!(
                "--log-file={}",
                self.dir.join(format!("{}.log", self.name)).display()
            ))
            .arg("--no-chdir")
            .arg("-vconsole:off")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn ovsdb-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !(self.sock.exists()
            && std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok())
        {
            assert!(
                Instant::now() < deadline,
                "ovsdb-server {} did not come up; log: {}",
                self.name,
                std::fs::read_to_string(self.dir.join(format!("{}.log", self.name)))
                    .unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILL the process and reap it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn unix(&self) -> Endpoint {
        Endpoint::Unix(self.sock.clone())
    }

    pub fn tcp(&self) -> Endpoint {
        Endpoint::Tcp {
            host: "127.0.0.1".into(),
            port: self.port,
        }
    }

    pub fn ssl(&self) -> Endpoint {
        Endpoint::Ssl {
            host: "127.0.0.1".into(),
            port: self.port,
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A 3-member Raft cluster of the NB database on 127.0.0.1 (FACTS.md commands).
pub struct Cluster {
    pub members: Vec<Server>,
}

impl Cluster {
    pub fn start(dir: &Path) -> Cluster {
        require("ovsdb-server");
        require("ovsdb-tool");
        let raft: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let mut members = vec![];
        for i in 0..3 {
            let db = dir.join(format!("nb{i}.db"));
            let local = format!("tcp:127.0.0.1:{}", raft[i]);
            if i == 0 {
                run(Command::new("ovsdb-tool")
                    .arg("create-cluster")
                    .arg(&db)
                    .arg(schema())
                    .arg(&local));
            } else {
                run(Command::new("ovsdb-tool")
                    .arg("join-cluster")
                    .arg(&db)
                    .arg(NB)
                    .arg(&local)
                    .arg(format!("tcp:127.0.0.1:{}", raft[0])));
            }
            let mut s = Server::new(dir, &format!("nb{i}"), db, vec![]);
            s.start();
            members.push(s);
        }
        Cluster { members }
    }

    pub fn remotes(&self) -> Vec<Endpoint> {
        self.members.iter().map(Server::tcp).collect()
    }
}

pub fn config(remotes: Vec<Endpoint>) -> ClientConfig {
    let mut c = ClientConfig::new(remotes, NB);
    c.backoff_min = Duration::from_millis(50);
    c.backoff_max = Duration::from_millis(500);
    c
}

pub async fn connect(remotes: Vec<Endpoint>) -> Client {
    tokio::time::timeout(Duration::from_secs(20), Client::connect(config(remotes)))
        .await
        .expect("connect timed out")
        .expect("connect")
}

pub fn tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "ovnkube_route=info".into()),
        )
        .with_test_writer()
        .try_init();
}

pub fn row<const N: usize>(cols: [(&str, Value); N]) -> Row {
    cols.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

/// Collect a monitor's content (insert/delete only: the tests below never modify).
pub fn apply(content: &mut BTreeMap<Uuid, Row>, event: &MonitorEvent) {
    if let MonitorEvent::Reset(_) = event {
        content.clear();
    }
    let updates = match event.update() {
        Some(Update::V2(u) | Update::V3 { updates: u, .. }) => u,
        other => panic!("not used here: {other:?}"),
    };
    for (uuid, change) in updates.values().flatten() {
        match change {
            RowUpdate2::Initial(r) | RowUpdate2::Insert(r) => {
                content.insert(*uuid, r.clone());
            }
            RowUpdate2::Delete => {
                content.remove(uuid);
            }
            RowUpdate2::Modify(_) => panic!("no modify expected"),
        }
    }
}

pub fn names(content: &BTreeMap<Uuid, Row>) -> Vec<String> {
    let mut v: Vec<String> = content
        .values()
        .filter_map(|r| r.get("name")?.as_atom()?.as_str().map(str::to_owned))
        .collect();
    v.sort();
    v
}

pub async fn next_event(m: &mut Monitor) -> MonitorEvent {
    tokio::time::timeout(Duration::from_secs(10), m.next())
        .await
        .expect("no monitor event within 10 s")
        .expect("monitor ended")
}
