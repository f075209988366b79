//! A real ovsdb-server for integration tests (temp dir, unix socket, stopped by pid on
//! drop), a minimal monitor connection speaking raw JSON-RPC, and helpers to compare a
//! replica with the server's content. It panics when ovsdb-server or ovn-nbctl is missing.

// Test helpers may unwrap, like the tests themselves (see clippy.toml).
#![allow(clippy::unwrap_used, dead_code)]

use std::collections::BTreeMap;
use std::io::{BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value as Json, json};

use ovnkube_route::ovsdb::update::{parse_table_updates, parse_table_updates2};
use ovnkube_route::ovsdb::value::row_from_json;
use ovnkube_route::ovsdb::{
    DatabaseSchema, Replica, ResetBuilder, Row, Snapshot, TableSpec, Update, Uuid,
};

pub const SCHEMA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/schemas/ovn-nb.ovsschema");
pub const ID_KEY: &str = "k8s.ovn.org/id";

pub fn require(tool: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        found,
        "{tool} is not installed: install ovn-central / openvswitch-common"
    );
}

/// An ovsdb-server on a unix socket in a temp dir, killed (by its pid) when dropped.
pub struct Server {
    child: Child,
    dir: tempfile::TempDir,
}

impl Server {
    pub fn start() -> Server {
        for tool in ["ovsdb-server", "ovsdb-tool", "ovsdb-client", "ovn-nbctl"] {
            require(tool);
        }
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("nb.db");
        let st = Command::new("ovsdb-tool")
            .arg("create")
            .arg(&db)
            .arg(SCHEMA)
            .status()
            .unwrap();
        assert!(st.success(), "ovsdb-tool create failed");
        let child = Command::new("ovsdb-server")
            .arg(&db)
            .arg(format!(
                "--remote=punix:{}",
                dir.path().join("nb.sock").display()
            ))
            .arg(format!("--unixctl={}", dir.path().join("nb.ctl").display()))
            .arg(format!(
                "--log-file={}",
                dir.path().join("nb.log").display()
            ))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start ovsdb-server");
        let server = Server { child, dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while UnixStream::connect(server.sock()).is_err() {
            assert!(
                Instant::now() < deadline,
                "ovsdb-server did not open its socket"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    pub fn sock(&self) -> PathBuf {
        self.dir.path().join("nb.sock")
    }

    pub fn remote(&self) -> String {
        format!("unix:{}", self.sock().display())
    }

    pub fn nbctl(&self, args: &[&str]) -> String {
        let out = Command::new("ovn-nbctl")
            .arg(format!("--db={}", self.remote()))
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "ovn-nbctl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    /// `ovsdb-client dump --format=json`: table name -> uuid -> row.
    pub fn dump(&self) -> BTreeMap<String, BTreeMap<Uuid, Row>> {
        let out = Command::new("ovsdb-client")
            .args(["dump", "--format=json", &self.remote(), "OVN_Northbound"])
            .output()
            .unwrap();
        assert!(out.status.success(), "ovsdb-client dump failed");
        // One JSON object per table, one after the other.
        let tables: Vec<Json> = serde_json::Deserializer::from_slice(&out.stdout)
            .into_iter()
            .collect::<Result<_, _>>()
            .unwrap();
        let mut result = BTreeMap::new();
        for t in &tables {
            let caption = t["caption"].as_str().unwrap();
            let name = caption.strip_suffix(" table").unwrap().to_owned();
            let headings: Vec<&str> = t["headings"]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| h.as_str().unwrap())
                .collect();
            let rows = result.entry(name).or_insert_with(BTreeMap::new);
            for data in t["data"].as_array().unwrap() {
                let obj: serde_json::Map<String, Json> = headings
                    .iter()
                    .zip(data.as_array().unwrap())
                    .map(|(h, v)| ((*h).to_owned(), v.clone()))
                    .collect();
                let mut row = row_from_json(&Json::Object(obj)).unwrap();
                let uuid = row
                    .remove("_uuid")
                    .unwrap()
                    .as_atom()
                    .unwrap()
                    .as_uuid()
                    .unwrap();
                row.remove("_version");
                rows.insert(uuid, row);
            }
        }
        result
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One monitor connection, speaking just enough JSON-RPC for this test.
pub struct Monitor {
    write: UnixStream,
    read: serde_json::StreamDeserializer<
        'static,
        serde_json::de::IoRead<BufReader<UnixStream>>,
        Json,
    >,
    pub method: &'static str,
}

impl Monitor {
    pub fn open(server: &Server, method: &'static str, requests: Json) -> (Monitor, Json) {
        let stream = UnixStream::connect(server.sock()).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut params = vec![json!("OVN_Northbound"), json!(method), requests];
        if method == "monitor_cond_since" {
            params.push(json!(Uuid::ZERO.to_string()));
        }
        let mut write = stream.try_clone().unwrap();
        let req = json!({"id": 1, "method": method, "params": params});
        write.write_all(req.to_string().as_bytes()).unwrap();
        let read = serde_json::Deserializer::from_reader(BufReader::new(stream)).into_iter();
        let mut m = Monitor {
            write,
            read,
            method,
        };
        let reply = m.next();
        assert_eq!(reply["id"], json!(1), "unexpected first message {reply}");
        assert!(reply["error"].is_null(), "{method} failed: {reply}");
        (m, reply["result"].clone())
    }

    pub fn next(&mut self) -> Json {
        loop {
            let msg = self
                .read
                .next()
                .expect("ovsdb-server closed the connection")
                .expect("no notification within 10 s");
            if msg["method"] == "echo" {
                let reply = json!({"id": msg["id"], "result": msg["params"], "error": null});
                self.write.write_all(reply.to_string().as_bytes()).unwrap();
                continue;
            }
            return msg;
        }
    }

    /// The next update notification, parsed.
    pub fn update(&mut self) -> Update {
        let msg = self.next();
        let p = &msg["params"];
        match self.method {
            "monitor" => {
                assert_eq!(msg["method"], "update", "{msg}");
                Update::V1(parse_table_updates(&p[1]).unwrap())
            }
            "monitor_cond" => {
                assert_eq!(msg["method"], "update2", "{msg}");
                Update::V2(parse_table_updates2(&p[1]).unwrap())
            }
            _ => {
                assert_eq!(msg["method"], "update3", "{msg}");
                Update::V3 {
                    last_txn_id: p[1].as_str().unwrap().parse().unwrap(),
                    updates: parse_table_updates2(&p[2]).unwrap(),
                }
            }
        }
    }
}

pub fn snapshot_update(method: &str, result: &Json) -> Update {
    match method {
        "monitor" => Update::V1(parse_table_updates(result).unwrap()),
        "monitor_cond" => Update::V2(parse_table_updates2(result).unwrap()),
        _ => {
            assert_eq!(
                result[0],
                json!(false),
                "a standalone server never finds the txn id"
            );
            Update::V3 {
                last_txn_id: result[1].as_str().unwrap().parse().unwrap(),
                updates: parse_table_updates2(&result[2]).unwrap(),
            }
        }
    }
}

pub fn schema() -> DatabaseSchema {
    let text = std::fs::read_to_string(Path::new(SCHEMA)).unwrap();
    DatabaseSchema::from_json(&serde_json::from_str(&text).unwrap()).unwrap()
}

pub fn specs(schema: &DatabaseSchema) -> Vec<TableSpec> {
    schema
        .tables
        .values()
        .map(|t| {
            let spec = TableSpec::all(&t.name);
            if t.column("external_ids").is_some_and(|c| c.ty.is_map()) {
                spec.with_external_id_keys(&[ID_KEY])
            } else {
                spec
            }
        })
        .collect()
}

pub fn content(s: &Snapshot) -> BTreeMap<String, BTreeMap<Uuid, Row>> {
    s.tables()
        .map(|t| {
            (
                t.to_owned(),
                s.iter(t).map(|r| (r.uuid(), r.to_row())).collect(),
            )
        })
        .collect()
}

/// Bring a dumped row into the replica's canonical form using the schema.
pub fn canonical(schema: &DatabaseSchema, table: &str, row: Row) -> Row {
    let t = schema.table(table).unwrap();
    row.into_iter()
        .map(|(k, v)| {
            let ty = &t.column(&k).unwrap().ty;
            let v = ty.normalize(&k, v, false).unwrap();
            (k, v)
        })
        .collect()
}

pub fn fresh_snapshot(server: &Server, schema: &DatabaseSchema) -> Snapshot {
    let fresh = Replica::new(schema, &specs(schema)).unwrap();
    let (_m, result) = Monitor::open(server, "monitor_cond", fresh.monitor_requests());
    fresh
        .reset(&snapshot_update("monitor_cond", &result))
        .unwrap();
    fresh.snapshot()
}

/// Decodes a JSON-RPC reply, streaming its `result` into a snapshot loader.
pub struct ReplyIntoReset<'b, 'r>(pub &'b mut ResetBuilder<'r>);

impl<'de> serde::de::Visitor<'de> for ReplyIntoReset<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON-RPC reply")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(k) = map.next_key::<String>()? {
            if k == "result" {
                map.next_value_seed(self.0.seed())?;
            } else {
                map.next_value::<serde::de::IgnoredAny>()?;
            }
        }
        Ok(())
    }
}
