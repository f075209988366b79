//! The replica tests' view of a real NB ovsdb-server (started and stopped by `common`), a
//! minimal monitor connection speaking raw JSON-RPC, and helpers to compare a replica with
//! the server's content. It panics when ovsdb-server or ovn-nbctl is missing.

// Test helpers may unwrap, like the tests themselves (see clippy.toml).
#![allow(clippy::unwrap_used, dead_code)]

use std::collections::BTreeMap;
use std::io::{BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value as Json, json};

use crate::common;

use ovnkube_route::ovsdb::update::{parse_table_updates, parse_table_updates2};
use ovnkube_route::ovsdb::value::row_from_json;
use ovnkube_route::ovsdb::{
    DatabaseSchema, Replica, ResetBuilder, Row, Snapshot, TableSpec, Update, Uuid,
};

pub const ID_KEY: &str = "k8s.ovn.org/id";

/// A standalone NB ovsdb-server (see `common::Server::temp_nb`) with the dump in this
/// module's typed form.
pub struct Server(common::Server);

impl Server {
    pub fn start() -> Server {
        for tool in ["ovsdb-server", "ovsdb-tool", "ovsdb-client", "ovn-nbctl"] {
            common::require(tool);
        }
        Server(common::Server::temp_nb())
    }

    pub fn sock(&self) -> PathBuf {
        self.0.sock.clone()
    }

    pub fn remote(&self) -> String {
        self.0.remote()
    }

    pub fn nbctl(&self, args: &[&str]) -> String {
        self.0.nbctl(args)
    }

    /// `ovsdb-client dump --format=json`: table name -> uuid -> row.
    pub fn dump(&self) -> BTreeMap<String, BTreeMap<Uuid, Row>> {
        self.0
            .dump()
            .into_iter()
            .map(|(table, rows)| {
                let rows = rows
                    .into_values()
                    .map(|obj| {
                        let mut row = row_from_json(&Json::Object(obj)).unwrap();
                        let uuid = row
                            .remove("_uuid")
                            .unwrap()
                            .as_atom()
                            .unwrap()
                            .as_uuid()
                            .unwrap();
                        row.remove("_version");
                        (uuid, row)
                    })
                    .collect();
                (table, rows)
            })
            .collect()
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
    let text = std::fs::read_to_string(common::schema()).unwrap();
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

/// `ovsdb-client dump` in the replica's canonical form.
pub fn canonical_dump(
    server: &Server,
    schema: &DatabaseSchema,
) -> BTreeMap<String, BTreeMap<Uuid, Row>> {
    server
        .dump()
        .into_iter()
        .map(|(t, rows)| {
            let rows = rows
                .into_iter()
                .map(|(u, r)| (u, canonical(schema, &t, r)))
                .collect();
            (t, rows)
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
