//! The benchmark's own view of the NB, over raw OVSDB (RFC 7047) on the server's unix socket,
//! never through the controller's client: loading the base topology, counting our rows,
//! waiting for a change to show (`wait` operations: the server re-checks them at every
//! commit, so the answer comes as soon as the change is committed), watching the size of
//! every transaction (a monitor), and the raw single-transaction floor.
use std::collections::BTreeMap;
use std::io::{BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::world::{self, Spec};

pub const DB: &str = "OVN_Northbound";
pub const ROUTER: &str = "ovn_cluster_router";
/// Tables whose rows the controller writes.
pub const OURS: [&str; 5] = [
    "Address_Set",
    "Port_Group",
    "Logical_Router_Policy",
    "ACL",
    "Logical_Router_Static_Route",
];

type Stream =
    serde_json::StreamDeserializer<'static, serde_json::de::IoRead<BufReader<UnixStream>>, Value>;

/// One raw connection.
pub struct Conn {
    w: UnixStream,
    r: Stream,
    id: u64,
}

impl Conn {
    pub fn open(sock: &Path) -> Conn {
        let s = UnixStream::connect(sock).unwrap();
        let r = serde_json::Deserializer::from_reader(BufReader::with_capacity(
            1 << 20,
            s.try_clone().unwrap(),
        ))
        .into_iter::<Value>();
        Conn { w: s, r, id: 0 }
    }

    pub fn send(&mut self, method: &str, params: Value) -> u64 {
        self.id += 1;
        let msg = json!({"id": self.id, "method": method, "params": params});
        self.w
            .write_all(&serde_json::to_vec(&msg).unwrap())
            .unwrap();
        self.id
    }

    /// The next message that is not an echo request (answered on the way).
    pub fn next(&mut self) -> Value {
        loop {
            let m = self.r.next().expect("NB closed the connection").unwrap();
            if m["method"] == "echo" {
                let reply = json!({"id": m["id"], "result": m["params"], "error": null});
                self.w
                    .write_all(&serde_json::to_vec(&reply).unwrap())
                    .unwrap();
                continue;
            }
            return m;
        }
    }

    pub fn reply(&mut self, id: u64) -> Value {
        loop {
            let m = self.next();
            if m["id"] == json!(id) {
                return m;
            }
        }
    }

    /// One transaction; panics on any error (the benchmark's own writes must work).
    pub fn transact(&mut self, ops: Vec<Value>) -> Vec<Value> {
        let mut params = vec![json!(DB)];
        params.extend(ops);
        let id = self.send("transact", Value::Array(params));
        let r = self.reply(id);
        let res = r["result"].as_array().cloned().unwrap_or_default();
        assert!(
            r["error"].is_null() && res.iter().all(|o| o.get("error").is_none()),
            "NB transaction failed: {}",
            truncate(&r.to_string())
        );
        res
    }

    pub fn select(&mut self, table: &str, cond: Value, columns: &[&str]) -> Vec<Value> {
        let r = self.transact(vec![
            json!({"op": "select", "table": table, "where": cond, "columns": columns}),
        ]);
        r[0]["rows"].as_array().cloned().unwrap_or_default()
    }

    /// Sends a transaction of `wait` operations that the server answers once every one of
    /// them holds (or after `timeout`); read the answer with [`Conn::waited`].
    pub fn start_wait(&mut self, waits: &[Wait], timeout: Duration) -> u64 {
        let mut params = vec![json!(DB)];
        for w in waits {
            params.push(w.op(timeout));
        }
        self.send("transact", Value::Array(params))
    }

    /// Whether every wait holds now.
    pub fn holds(&mut self, waits: &[Wait]) -> bool {
        let id = self.start_wait(waits, Duration::ZERO);
        self.waited(id)
    }

    /// Whether the waits held before their timeout.
    pub fn waited(&mut self, id: u64) -> bool {
        let r = self.reply(id);
        r["error"].is_null()
            && r["result"]
                .as_array()
                .is_some_and(|ops| ops.iter().all(|o| o.get("error").is_none()))
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(400).collect()
}

/// A condition the NB must reach.
pub enum Wait {
    /// Some row of `table` has `column == value`.
    Exists(&'static str, &'static str, String),
    /// No row of `table` has `column == value`.
    Gone(&'static str, &'static str, String),
    /// The address set named so holds every address.
    Holds(String, Vec<String>),
    /// The address set named so holds none of the addresses.
    Lacks(String, Vec<String>),
    /// Some row of `table` has every `column == value`.
    Row(&'static str, Vec<(&'static str, Value)>),
}

impl Wait {
    fn op(&self, timeout: Duration) -> Value {
        let ms = timeout.as_millis() as u64;
        let set = |v: &[String]| json!(["set", v]);
        let (table, cond, until) = match self {
            Wait::Exists(t, c, v) => (*t, json!([[c, "==", v]]), "!="),
            Wait::Gone(t, c, v) => (*t, json!([[c, "==", v]]), "=="),
            Wait::Holds(name, a) => (
                "Address_Set",
                json!([["name", "==", name], ["addresses", "includes", set(a)]]),
                "!=",
            ),
            Wait::Lacks(name, a) => (
                "Address_Set",
                json!([["name", "==", name], ["addresses", "excludes", set(a)]]),
                "!=",
            ),
            Wait::Row(t, cols) => (
                *t,
                Value::Array(cols.iter().map(|(c, v)| json!([c, "==", v])).collect()),
                "!=",
            ),
        };
        json!({"op": "wait", "timeout": ms, "table": table, "where": cond, "columns": ["_uuid"],
            "until": until, "rows": []})
    }
}

/// The base topology: a switch per node with an LSP per pod, and `ovn_cluster_router` with
/// its join port (100.64.0.1/16, where the next hops live). Written in a few large
/// transactions.
pub fn load_base(sock: &Path, spec: &Spec) {
    let mut c = Conn::open(sock);
    c.transact(vec![
        json!({"op": "insert", "table": "Logical_Router_Port", "uuid-name": "rtoj",
            "row": {"name": "rtoj-ovn_cluster_router", "mac": "0a:58:64:40:00:01", "networks": ["set", ["100.64.0.1/16"]]}}),
        json!({"op": "insert", "table": "Logical_Router",
            "row": {"name": ROUTER, "ports": ["set", [["named-uuid", "rtoj"]]]}}),
    ]);
    let nodes = spec.nodes();
    let mut by_node: Vec<Vec<usize>> = vec![Vec::new(); nodes];
    for p in 0..spec.pods {
        by_node[p % nodes].push(p);
    }
    for chunk in by_node.chunks(25).enumerate() {
        let (k, chunk) = chunk;
        let mut ops = Vec::new();
        for (j, pods) in chunk.iter().enumerate() {
            let node = k * 25 + j;
            let mut ports = Vec::new();
            for &p in pods {
                let n = format!("lsp{p}");
                let ip = world::ovn_ip(p);
                ops.push(json!({"op": "insert", "table": "Logical_Switch_Port", "uuid-name": n,
                    "row": {"name": world::lsp(p), "addresses": format!("{} {ip}", world::mac(ip))}}));
                ports.push(json!(["named-uuid", n]));
            }
            ops.push(json!({"op": "insert", "table": "Logical_Switch",
                "row": {"name": format!("node-{node}"), "ports": ["set", ports]}}));
        }
        c.transact(ops);
    }
}

/// Adds the logical switch port of a pod made during the run (ovn-kubernetes does this when
/// the pod is scheduled, before the pod reaches the controller).
pub fn add_lsp(c: &mut Conn, node: &str, name: &str, ip: std::net::Ipv4Addr) {
    c.transact(vec![
        json!({"op": "insert", "table": "Logical_Switch_Port", "uuid-name": "n",
            "row": {"name": name, "addresses": format!("{} {ip}", world::mac(ip))}}),
        json!({"op": "mutate", "table": "Logical_Switch", "where": [["name", "==", node]],
            "mutations": [["ports", "insert", ["set", [["named-uuid", "n"]]]]]}),
    ]);
}

/// Rows of ours per table.
pub fn counts(c: &mut Conn) -> BTreeMap<&'static str, usize> {
    OURS.iter()
        .map(|t| (*t, c.select(t, json!([]), &["_uuid"]).len()))
        .collect()
}

/// Addresses over every address set.
pub fn members(c: &mut Conn) -> usize {
    c.select("Address_Set", json!([]), &["addresses"])
        .iter()
        .map(|r| set_len(&r["addresses"]))
        .sum()
}

fn set_len(v: &Value) -> usize {
    match v {
        Value::Array(a) if a.first() == Some(&json!("set")) => a[1].as_array().map_or(0, Vec::len),
        Value::String(_) => 1,
        _ => 0,
    }
}

/// Whether the NB holds exactly what the cluster asks for.
pub fn converged(c: &mut Conn, spec: &Spec) -> bool {
    let (a, g, p, acl) = spec.rows();
    let n = counts(c);
    n["Address_Set"] == a
        && n["Port_Group"] == g
        && n["Logical_Router_Policy"] == p
        && n["ACL"] == acl
        && members(c) == spec.total_members()
}

/// What the monitor saw: per committed transaction touching our tables, the rows it changed.
#[derive(Default)]
pub struct TxnLog {
    pub txns: Vec<(Instant, usize, usize)>,
}

/// Watches every transaction that inserts or deletes rows of our tables or changes their
/// `external_ids` (one `update2` per transaction).
pub fn monitor(sock: &Path) -> Arc<Mutex<TxnLog>> {
    monitor_columns(sock, json!([{"columns": ["external_ids"]}]))
}

/// Watches every transaction that changes any column of our tables.
pub fn monitor_all(sock: &Path) -> Arc<Mutex<TxnLog>> {
    monitor_columns(sock, json!([{}]))
}

fn monitor_columns(sock: &Path, request: Value) -> Arc<Mutex<TxnLog>> {
    let log = Arc::new(Mutex::new(TxnLog::default()));
    let mut c = Conn::open(sock);
    let reqs: serde_json::Map<String, Value> = OURS
        .iter()
        .map(|t| (t.to_string(), request.clone()))
        .collect();
    let id = c.send("monitor_cond", json!([DB, "txn-sizes", reqs]));
    let reply = c.reply(id);
    assert!(
        reply["error"].is_null(),
        "monitor refused: {}",
        truncate(&reply.to_string())
    );
    let out = log.clone();
    std::thread::spawn(move || {
        loop {
            let Some(Ok(m)) = c.r.next() else { return };
            if m["method"] == "echo" {
                let reply = json!({"id": m["id"], "result": m["params"], "error": null});
                if c.w.write_all(&serde_json::to_vec(&reply).unwrap()).is_err() {
                    return;
                }
                continue;
            }
            if m["method"] != "update2" {
                continue;
            }
            let (mut rows, mut deletes) = (0, 0);
            if let Some(tables) = m["params"][1].as_object() {
                for t in tables.values() {
                    if let Some(r) = t.as_object() {
                        rows += r.len();
                        deletes += r.values().filter(|u| u.get("delete").is_some()).count();
                    }
                }
            }
            if let Ok(mut l) = out.lock() {
                l.txns.push((Instant::now(), rows, deletes));
            }
        }
    });
    log
}

/// The rows of ours, as insert operations for another NB with the same base topology, in one
/// transaction: the raw floor of writing them.
pub fn floor_ops(c: &mut Conn) -> Vec<Value> {
    let strip = |mut r: Value| {
        if let Some(m) = r.as_object_mut() {
            m.remove("_uuid");
            m.remove("_version");
        }
        r
    };
    let lsp_names: BTreeMap<String, String> = c
        .select("Logical_Switch_Port", json!([]), &["_uuid", "name"])
        .into_iter()
        .map(|r| {
            (
                r["_uuid"][1].as_str().unwrap().to_owned(),
                r["name"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let mut ops = Vec::new();
    for r in c.select(
        "Address_Set",
        json!([]),
        &["name", "addresses", "external_ids"],
    ) {
        ops.push(json!({"op": "insert", "table": "Address_Set", "row": strip(r)}));
    }
    let acls = c.select(
        "ACL",
        json!([]),
        &[
            "_uuid",
            "action",
            "direction",
            "match",
            "priority",
            "external_ids",
        ],
    );
    let mut acl_names = BTreeMap::new();
    for (k, r) in acls.into_iter().enumerate() {
        acl_names.insert(
            r["_uuid"][1].as_str().unwrap().to_owned(),
            format!("acl{k}"),
        );
        ops.push(json!({"op": "insert", "table": "ACL", "uuid-name": format!("acl{k}"), "row": strip(r)}));
    }
    for mut r in c.select(
        "Port_Group",
        json!([]),
        &["name", "ports", "acls", "external_ids"],
    ) {
        // Ports by name in the other NB; ACLs by their new names.
        r["ports"] = json!([
            "set",
            uuids(&r["ports"])
                .iter()
                .map(|u| json!(["named-uuid", format!("port:{}", lsp_names[u])]))
                .collect::<Vec<_>>()
        ]);
        r["acls"] = json!([
            "set",
            uuids(&r["acls"])
                .iter()
                .map(|u| json!(["named-uuid", acl_names[u]]))
                .collect::<Vec<_>>()
        ]);
        ops.push(json!({"op": "insert", "table": "Port_Group", "row": r}));
    }
    let mut policies = Vec::new();
    for (k, r) in c
        .select(
            "Logical_Router_Policy",
            json!([]),
            &["priority", "match", "action", "nexthops", "external_ids"],
        )
        .into_iter()
        .enumerate()
    {
        ops.push(json!({"op": "insert", "table": "Logical_Router_Policy", "uuid-name": format!("pol{k}"), "row": r}));
        policies.push(json!(["named-uuid", format!("pol{k}")]));
    }
    ops.push(
        json!({"op": "mutate", "table": "Logical_Router", "where": [["name", "==", ROUTER]],
        "mutations": [["policies", "insert", ["set", policies]]]}),
    );
    ops
}

/// `floor_ops` refers to switch ports as `port:<name>`: resolve them against `c`'s NB.
pub fn resolve_ports(c: &mut Conn, ops: &mut [Value]) {
    let by_name: BTreeMap<String, String> = c
        .select("Logical_Switch_Port", json!([]), &["_uuid", "name"])
        .into_iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap().to_owned(),
                r["_uuid"][1].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    for op in ops.iter_mut().filter(|o| o["table"] == "Port_Group") {
        let ports: Vec<Value> = op["row"]["ports"][1]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                let n = p[1].as_str().unwrap().strip_prefix("port:").unwrap();
                json!(["uuid", by_name[n]])
            })
            .collect();
        op["row"]["ports"] = json!(["set", ports]);
    }
}

fn uuids(v: &Value) -> Vec<String> {
    match v {
        Value::Array(a) if a.first() == Some(&json!("set")) => a[1]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|u| u[1].as_str().map(str::to_owned))
            .collect(),
        Value::Array(a) if a.first() == Some(&json!("uuid")) => {
            vec![a[1].as_str().unwrap().to_owned()]
        }
        _ => Vec::new(),
    }
}

/// Times one transaction of `ops` on `c`, from sending until the reply.
pub fn timed(c: &mut Conn, ops: Vec<Value>) -> Duration {
    let t = Instant::now();
    let r = c.transact(ops);
    let d = t.elapsed();
    assert!(!r.is_empty());
    d
}
