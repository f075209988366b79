//! CEL as the Kubernetes API server runs it, for the tests and for the Kubernetes API test
//! server (tests/kube_api): the `cel` crate with the Kubernetes IP/CIDR library (`net.rs`),
//! a CRD validator (OpenAPI bounds and `x-kubernetes-validations`, `crd.rs`) and the
//! estimated cost of a rule from the schema's bounds (`cost.rs`).
//!
//! No kube-apiserver can be installed on these machines; this is the stand-in, checked
//! against the Kubernetes library's documented examples (tests/cel_library.rs).
#![allow(dead_code)]

pub mod cost;
pub mod crd;
pub mod net;

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use cel::objects::Value;
use cel::{Context, Env, Program};

/// The environment: the standard library, the strings extension (`trim`, `split`, ...) and
/// the IP/CIDR library's `string()` overloads.
fn env() -> Arc<Env> {
    let mut env = Env::stdlib();
    env.add_extension(cel::extensions::strings)
        .expect("the strings extension is declared once");
    net::declare(&mut env);
    Arc::new(env)
}

thread_local! {
    static ROOT: RefCell<Option<Context<'static, 'static>>> = const { RefCell::new(None) };
    static PROGRAMS: RefCell<HashMap<String, Arc<Program>>> = RefCell::new(HashMap::new());
}

/// A compiled expression, cached per thread (the CRD's rules are compiled once).
pub fn compile(expr: &str) -> Result<Arc<Program>, String> {
    PROGRAMS.with(|p| {
        if let Some(prog) = p.borrow().get(expr) {
            return Ok(prog.clone());
        }
        let prog = Arc::new(
            env()
                .compile(expr)
                .map_err(|e| format!("compile error: {e}"))?,
        );
        p.borrow_mut().insert(expr.to_owned(), prog.clone());
        Ok(prog)
    })
}

/// Runs `expr` with `vars` bound (JSON values, as the API server binds `self`, `object`,
/// `request`, ...).
pub fn eval(expr: &str, vars: &[(&str, &serde_json::Value)]) -> Result<Value, String> {
    let prog = compile(expr)?;
    ROOT.with(|root| {
        let mut root = root.borrow_mut();
        let root = root.get_or_insert_with(|| {
            let mut ctx = Context::with_env(env());
            net::register(&mut ctx);
            ctx
        });
        let mut scope = root.new_inner_scope();
        for (name, v) in vars {
            scope.add_variable_from_value(*name, to_cel(v));
        }
        prog.execute(&scope).map_err(|e| e.to_string())
    })
}

/// `eval` of a boolean expression.
pub fn eval_bool(expr: &str, vars: &[(&str, &serde_json::Value)]) -> Result<bool, String> {
    match eval(expr, vars)? {
        Value::Bool(b) => Ok(b),
        other => Err(format!("{expr} is not a boolean: {other:?}")),
    }
}

/// `eval` of an expression whose value is a string (a `messageExpression`).
pub fn eval_string(expr: &str, vars: &[(&str, &serde_json::Value)]) -> Result<String, String> {
    match eval(expr, vars)? {
        Value::String(s) => Ok(s.to_string()),
        other => Err(format!("{expr} is not a string: {other:?}")),
    }
}

/// JSON as CEL sees a custom resource: objects are maps, integers are `int`.
pub fn to_cel(v: &serde_json::Value) -> Value {
    use serde_json::Value as J;
    match v {
        J::Null => Value::Null,
        J::Bool(b) => Value::Bool(*b),
        J::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        J::String(s) => Value::String(Arc::new(s.clone())),
        J::Array(items) => Value::List(Arc::new(items.iter().map(to_cel).collect())),
        J::Object(m) => {
            let map: HashMap<String, Value> =
                m.iter().map(|(k, v)| (k.clone(), to_cel(v))).collect();
            Value::from(map)
        }
    }
}

/// A CEL value back as JSON (for `variables` of a ValidatingAdmissionPolicy, which later
/// expressions read); IPs and CIDRs become their text.
pub fn to_json(v: &Value) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        Value::Null => J::Null,
        Value::Bool(b) => J::Bool(*b),
        Value::Int(i) => J::from(*i),
        Value::UInt(u) => J::from(*u),
        Value::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
        Value::String(s) => J::String(s.to_string()),
        Value::List(items) => J::Array(items.iter().map(to_json).collect()),
        Value::Map(m) => J::Object(
            m.map
                .iter()
                .map(|(k, v)| {
                    let key = match k {
                        cel::objects::Key::String(s) => s.to_string(),
                        cel::objects::Key::Int(i) => i.to_string(),
                        cel::objects::Key::Uint(u) => u.to_string(),
                        cel::objects::Key::Bool(b) => b.to_string(),
                    };
                    (key, to_json(v))
                })
                .collect(),
        ),
        other => J::String(format!("{other:?}")),
    }
}
