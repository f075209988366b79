//! Owns the ovsdb-server processes of the integration tests: the database file created with
//! `ovsdb-tool` in a temp dir, a unix socket and (optionally) a ptcp/pssl remote on a free
//! port, a Raft cluster, and stopping every process by its pid on Drop. It also owns the
//! "tool X is missing" failure: a test needing a tool panics, it never skips.
//!
//! It must not know what the tests put in the databases (topologies, Routes): those belong
//! to `fixture` and to the tests.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value as Json;

use ovnkube_route::ovsdb::Endpoint;

pub const NB: &str = "OVN_Northbound";

/// The pinned NB schema.
pub fn schema() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/ovn-nb.ovsschema")
}

/// Panics (the test fails) when `tool` is not on PATH.
pub fn require(tool: &str) {
    let ok = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        ok,
        "{tool} is not installed: these tests need the real OVN/OVSDB tools \
         (./scripts/install-deps.sh: ovn-central ovn-common openvswitch-common openssl iproute2)"
    );
}

/// Runs `cmd`; panics with its stderr when it fails.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A free TCP port on 127.0.0.1 (bound, read, released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}

/// `ovsdb-tool create` of `dir/<name>.db` with `schema`.
pub fn create_db(dir: &Path, name: &str, schema: &Path) -> PathBuf {
    require("ovsdb-tool");
    let db = dir.join(format!("{name}.db"));
    run(Command::new("ovsdb-tool")
        .arg("create")
        .arg(&db)
        .arg(schema));
    db
}

/// What an ovsdb-server listens on besides its unix socket.
#[derive(Clone, Debug)]
pub enum Listen {
    /// The unix socket only.
    Unix,
    /// Also `ptcp:port:127.0.0.1`.
    Tcp,
    /// Also `pssl:port:127.0.0.1` with these `--private-key/--certificate/--ca-cert` args.
    Ssl(Vec<String>),
}

/// One ovsdb-server process serving a database file, killed by its pid on Drop.
pub struct Server {
    pub dir: PathBuf,
    pub db: PathBuf,
    pub name: String,
    pub sock: PathBuf,
    /// The TCP/SSL port (picked even for `Listen::Unix`, then unused).
    pub port: u16,
    listen: Listen,
    child: Option<Child>,
    /// A temp dir this server owns (removed after the process is killed).
    _tmp: Option<tempfile::TempDir>,
}

impl Server {
    /// A server for `db` in `dir`, not started yet.
    pub fn new(dir: &Path, name: &str, db: PathBuf, listen: Listen) -> Server {
        require("ovsdb-server");
        Server {
            dir: dir.to_owned(),
            db,
            name: name.to_owned(),
            sock: dir.join(format!("{name}.sock")),
            port: free_port(),
            listen,
            child: None,
            _tmp: None,
        }
    }

    /// A fresh `dir/<name>.db` with `schema`, served and started.
    pub fn create(dir: &Path, name: &str, schema: &Path, listen: Listen) -> Server {
        let db = create_db(dir, name, schema);
        let mut s = Server::new(dir, name, db, listen);
        s.start();
        s
    }

    /// A standalone NB database on a unix socket in its own temp dir.
    pub fn temp_nb() -> Server {
        let tmp = tempfile::Builder::new()
            .prefix("ovnkr-t")
            .tempdir()
            .unwrap();
        let mut s = Server::create(tmp.path(), "nb", &schema(), Listen::Unix);
        s._tmp = Some(tmp);
        s
    }

    /// A standalone NB database with a unix socket and a ptcp remote.
    pub fn standalone(dir: &Path) -> Server {
        Server::create(dir, "nb", &schema(), Listen::Tcp)
    }

    /// A standalone NB database served over pssl with `certs`' server certificate.
    pub fn standalone_tls(dir: &Path, certs: &super::Certs) -> Server {
        let args = vec![
            format!("--private-key={}", certs.path("server-key.pem").display()),
            format!("--certificate={}", certs.path("server-cert.pem").display()),
            format!("--ca-cert={}", certs.path("ca.pem").display()),
        ];
        Server::create(dir, "nb", &schema(), Listen::Ssl(args))
    }

    fn file(&self, ext: &str) -> PathBuf {
        self.dir.join(format!("{}.{ext}", self.name))
    }

    /// Start (or restart) the process on the same files, socket and port; returns once the
    /// socket (and the TCP port) accept connections.
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "{} already running", self.name);
        let _ = std::fs::remove_file(&self.sock);
        let mut cmd = Command::new("ovsdb-server");
        cmd.arg(&self.db)
            .arg(format!("--remote=punix:{}", self.sock.display()));
        match &self.listen {
            Listen::Unix => {}
            Listen::Tcp => {
                cmd.arg(format!("--remote=ptcp:{}:127.0.0.1", self.port));
            }
            Listen::Ssl(args) => {
                cmd.arg(format!("--remote=pssl:{}:127.0.0.1", self.port))
                    .args(args);
            }
        }
        let child = cmd
            .arg(format!("--pidfile={}", self.file("pid").display()))
            .arg(format!("--unixctl={}", self.file("ctl").display()))
            .arg(format!("--log-file={}", self.file("log").display()))
            .arg("--no-chdir")
            .arg("-vconsole:off")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn ovsdb-server");
        self.child = Some(child);
        let tcp = !matches!(self.listen, Listen::Unix);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !(UnixStream::connect(&self.sock).is_ok()
            && (!tcp || std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok()))
        {
            assert!(
                Instant::now() < deadline,
                "ovsdb-server {} did not come up; log: {}",
                self.name,
                std::fs::read_to_string(self.file("log")).unwrap_or_default()
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

    /// The unix socket as an ovsdb remote string (`unix:PATH`).
    pub fn remote(&self) -> String {
        format!("unix:{}", self.sock.display())
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

    /// `ovs-appctl -t <this server's unixctl socket> args...`; panics when it fails.
    pub fn appctl(&self, args: &[&str]) {
        let out = Command::new("ovs-appctl")
            .arg("-t")
            .arg(self.file("ctl"))
            .args(args)
            .output()
            .expect("ovs-appctl");
        assert!(out.status.success(), "{args:?}: {out:?}");
    }

    /// Whether `cluster/status` of this (clustered NB) member says it is the leader.
    pub fn is_raft_leader(&self) -> bool {
        Command::new("ovs-appctl")
            .arg("-t")
            .arg(self.file("ctl"))
            .args(["cluster/status", NB])
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("Role: leader"))
    }

    fn tcp_remote(&self) -> String {
        format!("ptcp:{}:127.0.0.1", self.port)
    }

    /// Takes the ptcp remote away (`ovsdb-server/remove-remote`): TCP clients are
    /// disconnected and cannot come back until `add_tcp_remote`.
    pub fn remove_tcp_remote(&self) {
        self.appctl(&["ovsdb-server/remove-remote", &self.tcp_remote()]);
    }

    /// Serves the ptcp remote again on the same port.
    pub fn add_tcp_remote(&self) {
        self.appctl(&["ovsdb-server/add-remote", &self.tcp_remote()]);
    }

    /// ovn-nbctl against this (NB) server; panics with stderr when it fails.
    pub fn nbctl<S: AsRef<str>>(&self, args: &[S]) -> String {
        let args: Vec<&str> = args.iter().map(|a| a.as_ref()).collect();
        let out = Command::new("ovn-nbctl")
            .arg("--no-leader-only")
            .arg(format!("--db={}", self.remote()))
            .args(&args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "ovn-nbctl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    /// Every NB row as JSON, by table and uuid (`ovsdb-client dump --format=json`); the
    /// `_uuid` and `_version` columns are kept in each row.
    pub fn dump(&self) -> BTreeMap<String, BTreeMap<String, serde_json::Map<String, Json>>> {
        let out =
            run(Command::new("ovsdb-client").args(["dump", "--format=json", &self.remote(), NB]));
        // One JSON object per table, one after the other.
        let tables: Vec<Json> = serde_json::Deserializer::from_str(&out)
            .into_iter()
            .collect::<Result<_, _>>()
            .unwrap();
        let mut result = BTreeMap::new();
        for t in &tables {
            let name = t["caption"]
                .as_str()
                .unwrap()
                .strip_suffix(" table")
                .unwrap()
                .to_owned();
            let headings: Vec<&str> = t["headings"]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| h.as_str().unwrap())
                .collect();
            let rows: &mut BTreeMap<_, _> = result.entry(name).or_default();
            for data in t["data"].as_array().unwrap() {
                let obj: serde_json::Map<String, Json> = headings
                    .iter()
                    .zip(data.as_array().unwrap())
                    .map(|(h, v)| ((*h).to_owned(), v.clone()))
                    .collect();
                let uuid = obj["_uuid"][1].as_str().unwrap().to_owned();
                rows.insert(uuid, obj);
            }
        }
        result
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
        for (i, port) in raft.iter().enumerate() {
            let db = dir.join(format!("nb{i}.db"));
            let local = format!("tcp:127.0.0.1:{port}");
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
            let mut s = Server::new(dir, &format!("nb{i}"), db, Listen::Tcp);
            s.start();
            members.push(s);
        }
        Cluster { members }
    }

    pub fn remotes(&self) -> Vec<Endpoint> {
        self.members.iter().map(Server::tcp).collect()
    }

    /// Waits (20 s at most) until every running member is a leader or follower with a
    /// known leader: a member that has not finished joining can leave the rest unable to
    /// elect (seen once in 15 runs of a `cluster/leave` right after start).
    pub fn wait_settled(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        for m in self.members.iter().filter(|m| m.pid().is_some()) {
            loop {
                let out = Command::new("ovs-appctl")
                    .arg("-t")
                    .arg(m.file("ctl"))
                    .args(["cluster/status", NB])
                    .output()
                    .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                    .unwrap_or_default();
                let role = out.contains("Role: leader") || out.contains("Role: follower");
                if role && !out.contains("Leader: unknown") {
                    break;
                }
                assert!(Instant::now() < deadline, "cluster not settled: {out}");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}
