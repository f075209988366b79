//! The estimated cost of a CRD's validation rules, as the API server computes it when the CRD
//! is written (Kubernetes docs, "Resource use by validation functions" and "Resource
//! constraints" of the CEL page): a worst case from the schema's bounds, in cost units.
//!
//! The model, per expression node:
//! - literals cost 0; reading a variable or a field costs 1; a call or an operator costs 1;
//! - functions that walk a string cost 0.1 per character of its bound (`StringTraversalCost
//!   Factor`), rounded up: `+`, `==` on strings, `contains`, `startsWith`, `bytes()`, and the
//!   IP/CIDR library's parsers (`isIP`, `ip`, `isCIDR`, `cidr`, `containsIP` of a string);
//!   an IP or CIDR value is fixed size, so its member functions cost 1;
//! - `matches` costs `ceil(0.1 × input bound) × ceil(0.25 × regex length)` (the docs'
//!   `length(regexString)*length(inputString)`, with cel-go's factors);
//! - a list literal costs 40 (the docs' figure), `x in list` one comparison per element;
//! - `&&`, `||` and `?:` cost both sides (the worst case); a comprehension (`all`, `exists`,
//!   ...) costs its range plus, per element of the range's bound, its loop condition and step.
//!
//! A rule's total is its cost times the number of times it runs: the product of `maxItems` /
//! `maxProperties` of the lists and maps above it. A string, list or map that a rule reads, or
//! that encloses it, without a bound has no worst case: that is an error, which is what the API
//! server answers too ("exceeded budget ... try adding maxItems, maxProperties, and maxLength").
use std::collections::HashMap;

use cel::common::ast::{Expr, IdedExpr, LiteralValue};
use serde_json::Value;

/// What an expression is, for sizes.
#[derive(Clone, Debug)]
enum Ty {
    /// A string of at most so many characters (`None`: unbounded).
    Str(Option<u64>),
    /// A list of at most so many items.
    List(Option<u64>, Box<Ty>),
    /// A map of at most so many entries, values of this type.
    Map(Option<u64>, Box<Ty>),
    /// An object with properties (its schema).
    Obj(Value),
    /// A fixed-size value: int, bool, bytes of a bounded string, an IP or a CIDR.
    Fixed,
}

fn from_schema(s: &Value) -> Ty {
    let n = |k: &str| s.get(k).and_then(Value::as_u64);
    match s.get("type").and_then(Value::as_str) {
        Some("string") => Ty::Str(n("maxLength")),
        Some("array") => Ty::List(
            n("maxItems"),
            Box::new(s.get("items").map(from_schema).unwrap_or(Ty::Fixed)),
        ),
        Some("object") if s.get("properties").is_some() => Ty::Obj(s.clone()),
        Some("object") => Ty::Map(
            n("maxProperties"),
            Box::new(
                s.get("additionalProperties")
                    .filter(|a| a.is_object())
                    .map(from_schema)
                    .unwrap_or(Ty::Fixed),
            ),
        ),
        _ => Ty::Fixed,
    }
}

/// `ceil(factor × n)`.
fn scaled(n: u64, factor: f64) -> u64 {
    (n as f64 * factor).ceil() as u64
}

struct Est<'a> {
    vars: HashMap<String, Ty>,
    errors: &'a mut Vec<String>,
}

impl Est<'_> {
    fn size(&mut self, t: &Ty, what: &str) -> u64 {
        let bound = match t {
            Ty::Str(b) | Ty::List(b, _) | Ty::Map(b, _) => *b,
            Ty::Obj(_) | Ty::Fixed => Some(1),
        };
        bound.unwrap_or_else(|| {
            self.errors.push(format!(
                "{what} reads a string, list or map without a bound"
            ));
            0
        })
    }

    fn expr(&mut self, e: &IdedExpr) -> (u64, Ty) {
        match &e.expr {
            Expr::Literal(LiteralValue::String(s)) => {
                (0, Ty::Str(Some(s.inner().chars().count() as u64)))
            }
            Expr::Literal(_) => (0, Ty::Fixed),
            Expr::Ident(name) => (1, self.vars.get(name).cloned().unwrap_or(Ty::Fixed)),
            Expr::Select(sel) => {
                let (c, t) = self.expr(&sel.operand);
                let field = match (&t, sel.test) {
                    (_, true) => Ty::Fixed,
                    (Ty::Obj(s), false) => s
                        .pointer(&format!("/properties/{}", sel.field))
                        .map(from_schema)
                        .unwrap_or(Ty::Fixed),
                    (Ty::Map(_, v), false) => (**v).clone(),
                    _ => Ty::Fixed,
                };
                (c + 1, field)
            }
            Expr::List(l) => {
                let mut cost = 40;
                let mut item = 0;
                for x in &l.elements {
                    let (c, t) = self.expr(x);
                    cost += c;
                    item = item.max(self.size(&t, "a list literal"));
                }
                (
                    cost,
                    Ty::List(Some(l.elements.len() as u64), Box::new(Ty::Str(Some(item)))),
                )
            }
            Expr::Comprehension(c) => {
                let (range_cost, range) = self.expr(&c.iter_range);
                let n = self.size(&range, "a comprehension's range");
                let item = match range {
                    Ty::List(_, t) => *t,
                    Ty::Map(_, _) => Ty::Str(None),
                    _ => Ty::Fixed,
                };
                let saved = self.vars.insert(c.iter_var.clone(), item);
                self.vars.insert(c.accu_var.clone(), Ty::Fixed);
                let (init, _) = self.expr(&c.accu_init);
                let (cond, _) = self.expr(&c.loop_cond);
                let (step, _) = self.expr(&c.loop_step);
                let (result, t) = self.expr(&c.result);
                match saved {
                    Some(s) => self.vars.insert(c.iter_var.clone(), s),
                    None => self.vars.remove(&c.iter_var),
                };
                (range_cost + init + n * (cond + step) + result, t)
            }
            Expr::Call(call) => self.call(&call.func_name, call.target.as_deref(), &call.args),
            Expr::Map(_) | Expr::Struct(_) | Expr::Unspecified => (1, Ty::Fixed),
        }
    }

    fn call(&mut self, f: &str, target: Option<&IdedExpr>, args: &[IdedExpr]) -> (u64, Ty) {
        let mut operands: Vec<(u64, Ty)> = target.into_iter().map(|t| self.expr(t)).collect();
        operands.extend(args.iter().map(|a| self.expr(a)));
        let sub: u64 = operands.iter().map(|(c, _)| *c).sum();
        let len = |me: &mut Self, i: usize| {
            let t = operands.get(i).map(|(_, t)| t.clone()).unwrap_or(Ty::Fixed);
            me.size(&t, f)
        };
        let (own, ty) = match f {
            "_?_:_" => {
                let a = operands.get(1).map_or(0, |o| o.0);
                let b = operands.get(2).map_or(0, |o| o.0);
                let t = operands.get(1).map(|o| o.1.clone()).unwrap_or(Ty::Fixed);
                return (operands[0].0 + a.max(b), t);
            }
            "_&&_" | "_||_" => return (sub, Ty::Fixed),
            "_+_" => {
                let n = len(self, 0) + len(self, 1);
                (1 + scaled(n, 0.1), Ty::Str(Some(n)))
            }
            "_==_" | "_!=_" => (1 + scaled(len(self, 0).min(len(self, 1)), 0.1), Ty::Fixed),
            "matches" => (
                1 + scaled(len(self, 0), 0.1) * scaled(len(self, 1), 0.25),
                Ty::Fixed,
            ),
            "contains" | "startsWith" | "endsWith" => (
                1 + scaled(len(self, 0), 0.1) * scaled(len(self, 1), 0.1),
                Ty::Fixed,
            ),
            "@in" => {
                let n = len(self, 1);
                (1 + n * (1 + scaled(len(self, 0), 0.1)), Ty::Fixed)
            }
            "trim" | "lowerAscii" | "upperAscii" => {
                let n = len(self, 0);
                (1 + scaled(n, 0.1), Ty::Str(Some(n)))
            }
            "bytes" | "isIP" | "isCIDR" | "ip" | "cidr" | "containsIP" | "containsCIDR"
            | "ip.isCanonical" => {
                // The string argument is walked once; an IP or CIDR is fixed size.
                let n = match operands.last() {
                    Some((_, t @ Ty::Str(_))) => {
                        let t = t.clone();
                        self.size(&t, f)
                    }
                    _ => 1,
                };
                (1 + scaled(n, 0.1), Ty::Fixed)
            }
            // `string()` of an IP or CIDR: at most 49 characters.
            "string" => (1, Ty::Str(Some(49))),
            "size"
            | "!_"
            | "family"
            | "prefixLength"
            | "masked"
            | "_<_"
            | "_<=_"
            | "_>_"
            | "_>=_"
            | "@not_strictly_false"
            | "isUnspecified"
            | "isLoopback"
            | "isLinkLocalMulticast"
            | "isLinkLocalUnicast"
            | "isGlobalUnicast" => (1, Ty::Fixed),
            "_[_]" => {
                let t = match operands.first().map(|o| o.1.clone()) {
                    Some(Ty::List(_, t) | Ty::Map(_, t)) => *t,
                    _ => Ty::Fixed,
                };
                (1, t)
            }
            other => {
                self.errors
                    .push(format!("no cost model for function {other:?}"));
                (1, Ty::Fixed)
            }
        };
        (sub + own, ty)
    }
}

/// The estimated cost of one run of `expr` with `self` typed by `schema`; problems (an
/// unbounded value read, a function without a cost model) go to `errors`.
pub fn estimate(expr: &str, schema: &Value, errors: &mut Vec<String>) -> u64 {
    let prog = match super::compile(expr) {
        Ok(p) => p,
        Err(e) => {
            errors.push(e);
            return 0;
        }
    };
    let mut est = Est {
        vars: HashMap::from([("self".to_owned(), from_schema(schema))]),
        errors,
    };
    est.expr(prog.expression()).0
}

/// One rule's estimate.
#[derive(Debug)]
pub struct RuleCost {
    /// Where the rule sits (`spec.route[].dst`).
    pub at: String,
    pub rule: String,
    /// One run of the rule.
    pub per_run: u64,
    /// One run of its `messageExpression` (a separate expression with its own limit; it runs
    /// only when the rule fails).
    pub message_per_run: u64,
    /// How many times it may run: the product of the bounds of the lists and maps above it.
    pub runs: u64,
    /// Unbounded values the rule reads or sits in, and missing cost models.
    pub errors: Vec<String>,
}

impl RuleCost {
    /// The rule's estimate: one run times the runs.
    pub fn total(&self) -> u64 {
        self.per_run.saturating_mul(self.runs)
    }

    /// The `messageExpression`'s estimate.
    pub fn message_total(&self) -> u64 {
        self.message_per_run.saturating_mul(self.runs)
    }
}

/// Every rule of `schema` (an `openAPIV3Schema`) with its estimate.
pub fn rules(schema: &Value) -> Vec<RuleCost> {
    let mut out = Vec::new();
    walk(schema, "", Some(1), &mut out);
    out
}

fn walk(s: &Value, at: &str, runs: Option<u64>, out: &mut Vec<RuleCost>) {
    for r in s
        .get("x-kubernetes-validations")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let rule = r.get("rule").and_then(Value::as_str).unwrap_or_default();
        let mut errors = Vec::new();
        let per_run = estimate(rule, s, &mut errors);
        let message_per_run = r
            .get("messageExpression")
            .and_then(Value::as_str)
            .map_or(0, |m| estimate(m, s, &mut errors));
        if runs.is_none() {
            errors.push(format!(
                "{at} sits in a list or map without maxItems / maxProperties"
            ));
        }
        out.push(RuleCost {
            at: at.to_owned(),
            rule: rule.to_owned(),
            per_run,
            message_per_run,
            runs: runs.unwrap_or(u64::MAX),
            errors,
        });
    }
    let times = |k: &str| runs.and_then(|r| s.get(k).and_then(Value::as_u64).map(|n| r * n));
    if let Some(item) = s.get("items") {
        walk(item, &format!("{at}[]"), times("maxItems"), out);
    }
    if let Some(extra) = s.get("additionalProperties").filter(|e| e.is_object()) {
        walk(extra, &format!("{at}{{}}"), times("maxProperties"), out);
    }
    for (k, p) in s
        .get("properties")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        let path = if at.is_empty() {
            k.clone()
        } else {
            format!("{at}.{k}")
        };
        walk(p, &path, runs, out);
    }
}
