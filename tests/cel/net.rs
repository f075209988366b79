//! The Kubernetes CEL IP and CIDR library (`isIP`, `ip`, `ip.isCanonical`, `family`,
//! `isUnspecified`, `isLoopback`, `isLinkLocalMulticast`, `isLinkLocalUnicast`,
//! `isGlobalUnicast`, `isCIDR`, `cidr`, `containsIP`, `containsCIDR`, `ip()`, `masked`,
//! `prefixLength`, `string`), written for the `cel` crate from the library's documentation.
//!
//! Addresses are parsed the way Go's `net/netip` parses them (the library's parser), written
//! here from Go's rules rather than borrowed from Rust's `std::net`, so that the tests that
//! compare these rules with the controller (which uses `std::net`) compare two readings.
//! On top of `netip`, the library refuses zones and IPv4-mapped IPv6 addresses.
use std::sync::Arc;

use cel::common::types::{CelString, Type};
use cel::common::value::CowVal;
use cel::extractors::This;
use cel::objects::{Opaque, Value};
use cel::{Context, Env, ExecutionError};

/// An address: 16 bytes, IPv4 in the last 4 when `v4`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ip {
    pub bytes: [u8; 16],
    pub v4: bool,
}

/// An address and a prefix length (not masked: `cidr('10.0.0.1/24')` keeps its host bits).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    pub ip: Ip,
    pub bits: u8,
}

impl Opaque for Ip {
    fn runtime_type_name(&self) -> &str {
        "net.IP"
    }
}

impl Opaque for Cidr {
    fn runtime_type_name(&self) -> &str {
        "net.CIDR"
    }
}

fn v4_fields(s: &str) -> Result<[u8; 4], String> {
    let b = s.as_bytes();
    let mut fields = [0u8; 4];
    let (mut val, mut digits, mut pos) = (0u32, 0, 0);
    for (i, &c) in b.iter().enumerate() {
        match c {
            b'0'..=b'9' => {
                if digits == 1 && val == 0 {
                    return Err("IPv4 field has octet with leading zero".into());
                }
                val = val * 10 + u32::from(c - b'0');
                digits += 1;
                if val > 255 {
                    return Err("IPv4 field has value >255".into());
                }
            }
            b'.' => {
                if i == 0 || i == b.len() - 1 || b[i - 1] == b'.' {
                    return Err("IPv4 field must have at least one digit".into());
                }
                if pos == 3 {
                    return Err("IPv4 address too long".into());
                }
                fields[pos] = val as u8;
                pos += 1;
                val = 0;
                digits = 0;
            }
            _ => return Err("unexpected character".into()),
        }
    }
    if pos < 3 {
        return Err("IPv4 address too short".into());
    }
    fields[3] = val as u8;
    Ok(fields)
}

fn hex(c: u8) -> Option<u32> {
    (c as char).to_digit(16)
}

/// Go's `parseIPv6`; the zone, if any, is returned beside the address.
fn v6(input: &str) -> Result<([u8; 16], String), String> {
    let (mut s, zone) = match input.split_once('%') {
        Some((_, "")) => return Err("zone must be a non-empty string".into()),
        Some((a, z)) => (a, z.to_owned()),
        None => (input, String::new()),
    };
    let mut ip = [0u8; 16];
    let mut ellipsis: Option<usize> = None;
    if s.starts_with("::") {
        ellipsis = Some(0);
        s = &s[2..];
        if s.is_empty() {
            return Ok((ip, zone));
        }
    }
    let mut i = 0;
    while i < 16 {
        let b = s.as_bytes();
        let (mut off, mut acc) = (0, 0u32);
        while off < b.len() {
            let Some(d) = hex(b[off]) else { break };
            acc = (acc << 4) + d;
            if off > 3 {
                return Err("each colon-separated field must have at most 4 hex digits".into());
            }
            off += 1;
        }
        if off == 0 {
            return Err("each colon-separated field must have at least one digit".into());
        }
        if off < b.len() && b[off] == b'.' {
            if ellipsis.is_none() && i != 12 {
                return Err(
                    "embedded IPv4 address must replace the final 2 fields of the address".into(),
                );
            }
            if i + 4 > 16 {
                return Err("too many hex fields to fit an embedded IPv4 at the end".into());
            }
            ip[i..i + 4].copy_from_slice(&v4_fields(s)?);
            s = "";
            i += 4;
            break;
        }
        ip[i] = (acc >> 8) as u8;
        ip[i + 1] = acc as u8;
        i += 2;
        s = &s[off..];
        if s.is_empty() {
            break;
        }
        if !s.starts_with(':') {
            return Err("unexpected character, want colon".into());
        }
        if s.len() == 1 {
            return Err("colon must be followed by more characters".into());
        }
        s = &s[1..];
        if s.starts_with(':') {
            if ellipsis.is_some() {
                return Err("multiple :: in address".into());
            }
            ellipsis = Some(i);
            s = &s[1..];
            if s.is_empty() {
                break;
            }
        }
    }
    if !s.is_empty() {
        return Err("trailing garbage after address".into());
    }
    if i < 16 {
        let Some(e) = ellipsis else {
            return Err("address string too short".into());
        };
        let n = 16 - i;
        for j in (e..i).rev() {
            ip[j + n] = ip[j];
        }
        ip[e..e + n].fill(0);
    } else if ellipsis.is_some() {
        return Err("the :: must expand to at least one field of zeros".into());
    }
    Ok((ip, zone))
}

/// Go's `netip.ParseAddr`, returning the zone beside the address.
fn netip_parse_addr(s: &str) -> Result<(Ip, String), String> {
    if s.is_empty() {
        return Err("missing IP address".into());
    }
    for c in s.bytes() {
        match c {
            b'.' => {
                let f = v4_fields(s)?;
                let mut bytes = [0u8; 16];
                bytes[12..].copy_from_slice(&f);
                return Ok((Ip { bytes, v4: true }, String::new()));
            }
            b':' => {
                let (bytes, zone) = v6(s)?;
                return Ok((Ip { bytes, v4: false }, zone));
            }
            b'%' => return Err("missing IPv6 address".into()),
            _ => {}
        }
    }
    Err("unable to parse IP".into())
}

impl Ip {
    fn is_4in6(&self) -> bool {
        !self.v4 && self.bytes[..10].iter().all(|b| *b == 0) && self.bytes[10..12] == [0xff, 0xff]
    }

    fn bits(&self) -> u8 {
        if self.v4 { 32 } else { 128 }
    }

    fn v6u16(&self, i: usize) -> u16 {
        u16::from_be_bytes([self.bytes[2 * i], self.bytes[2 * i + 1]])
    }

    pub fn family(&self) -> i64 {
        if self.v4 { 4 } else { 6 }
    }

    /// Go's `Addr.String()`: dotted decimal, or RFC 5952 (longest run of two or more zero
    /// groups as `::`, the first on a tie, lowercase hex).
    pub fn to_go_string(self) -> String {
        if self.v4 {
            let b = &self.bytes[12..];
            return format!("{}.{}.{}.{}", b[0], b[1], b[2], b[3]);
        }
        let (mut best, mut best_len, mut cur, mut cur_len) = (usize::MAX, 0, 0, 0);
        for i in 0..8 {
            if self.v6u16(i) == 0 {
                if cur_len == 0 {
                    cur = i;
                }
                cur_len += 1;
                if cur_len >= 2 && cur_len > best_len {
                    best = cur;
                    best_len = cur_len;
                }
            } else {
                cur_len = 0;
            }
        }
        let mut out = String::new();
        let mut i = 0;
        while i < 8 {
            if i == best {
                out.push_str("::");
                i += best_len;
                continue;
            }
            if i > 0 && !out.ends_with(':') {
                out.push(':');
            }
            out.push_str(&format!("{:x}", self.v6u16(i)));
            i += 1;
        }
        out
    }

    fn masked(&self, bits: u8) -> Ip {
        let start = if self.v4 { 12 } else { 0 };
        let mut out = *self;
        for (k, b) in out.bytes[start..].iter_mut().enumerate() {
            let keep = i64::from(bits) - 8 * k as i64;
            *b &= match keep {
                k if k >= 8 => 0xff,
                k if k <= 0 => 0,
                k => 0xffu8 << (8 - k),
            };
        }
        out
    }

    fn is_unspecified(&self) -> bool {
        self.bytes[if self.v4 { 12 } else { 0 }..]
            .iter()
            .all(|b| *b == 0)
    }

    fn is_loopback(&self) -> bool {
        if self.v4 {
            self.bytes[12] == 127
        } else {
            self.bytes[..15].iter().all(|b| *b == 0) && self.bytes[15] == 1
        }
    }

    fn is_multicast(&self) -> bool {
        if self.v4 {
            self.bytes[12] >> 4 == 14
        } else {
            self.bytes[0] == 0xff
        }
    }

    fn is_link_local_multicast(&self) -> bool {
        if self.v4 {
            self.bytes[12..15] == [224, 0, 0]
        } else {
            self.v6u16(0) & 0xff0f == 0xff02
        }
    }

    fn is_link_local_unicast(&self) -> bool {
        if self.v4 {
            self.bytes[12..14] == [169, 254]
        } else {
            self.v6u16(0) & 0xffc0 == 0xfe80
        }
    }

    fn is_global_unicast(&self) -> bool {
        if self.v4 && (self.is_unspecified() || self.bytes[12..] == [255, 255, 255, 255]) {
            return false;
        }
        !self.is_unspecified()
            && !self.is_loopback()
            && !self.is_multicast()
            && !self.is_link_local_unicast()
    }
}

impl Cidr {
    pub fn to_go_string(self) -> String {
        format!("{}/{}", self.ip.to_go_string(), self.bits)
    }

    fn masked(&self) -> Cidr {
        Cidr {
            ip: self.ip.masked(self.bits),
            bits: self.bits,
        }
    }

    fn contains(&self, ip: &Ip) -> bool {
        ip.v4 == self.ip.v4 && ip.masked(self.bits) == self.ip.masked(self.bits)
    }
}

/// The library's `parseIPAddr`: `netip.ParseAddr`, then no zone and no IPv4-mapped address.
pub fn parse_ip(s: &str) -> Result<Ip, String> {
    let (ip, zone) = netip_parse_addr(s)?;
    if !zone.is_empty() {
        return Err(format!("IP address {s:?} with zone value is not allowed"));
    }
    if ip.is_4in6() {
        return Err(format!("IPv4-mapped IPv6 address {s:?} is not allowed"));
    }
    Ok(ip)
}

/// The library's `parseCIDR`: Go's `netip.ParsePrefix` (no zone, the length in decimal with
/// no sign or leading zero), then no IPv4-mapped address.
pub fn parse_cidr(s: &str) -> Result<Cidr, String> {
    let (addr, bits) = s.rsplit_once('/').ok_or("no '/'")?;
    let (ip, zone) = netip_parse_addr(addr)?;
    if !zone.is_empty() {
        return Err("IPv6 zones cannot be present in a prefix".into());
    }
    let b = bits.as_bytes();
    if b.len() > 1 && !(b'1'..=b'9').contains(&b[0]) {
        return Err("bad bits after slash".into());
    }
    let n: u64 = if !b.is_empty() && b.iter().all(u8::is_ascii_digit) && b.len() < 19 {
        bits.parse().map_err(|_| "bad bits after slash")?
    } else {
        return Err("bad bits after slash".into());
    };
    if n > u64::from(ip.bits()) {
        return Err("prefix length out of range".into());
    }
    if ip.is_4in6() {
        return Err(format!("IPv4-mapped IPv6 address {s:?} is not allowed"));
    }
    Ok(Cidr { ip, bits: n as u8 })
}

fn err(f: &str, m: impl Into<String>) -> ExecutionError {
    ExecutionError::function_error(f, m.into())
}

fn opaque<T: 'static>(v: &Value) -> Option<&T> {
    match v {
        Value::Opaque(o) => o.downcast_ref::<T>(),
        _ => None,
    }
}

fn as_ip(f: &str, v: &Value) -> Result<Ip, ExecutionError> {
    match v {
        Value::String(s) => parse_ip(s).map_err(|e| err(f, e)),
        _ => opaque::<Ip>(v)
            .copied()
            .ok_or_else(|| err(f, "no such overload")),
    }
}

fn as_cidr(f: &str, v: &Value) -> Result<Cidr, ExecutionError> {
    match v {
        Value::String(s) => parse_cidr(s).map_err(|e| err(f, e)),
        _ => opaque::<Cidr>(v)
            .copied()
            .ok_or_else(|| err(f, "no such overload")),
    }
}

fn ip_value(ip: Ip) -> Value {
    Value::Opaque(Arc::new(ip))
}

fn cidr_value(c: Cidr) -> Value {
    Value::Opaque(Arc::new(c))
}

type Res = Result<Value, ExecutionError>;

fn string_of<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let v = Value::try_from(args[0].as_ref())?;
    let s = if let Some(ip) = opaque::<Ip>(&v) {
        ip.to_go_string()
    } else if let Some(c) = opaque::<Cidr>(&v) {
        c.to_go_string()
    } else {
        return Err(err("string", "no such overload"));
    };
    Ok(CowVal::owned(CelString::from(s)))
}

/// Declares `string(net.IP)` and `string(net.CIDR)` on `env` (`string` is a standard
/// overload, so it cannot be a context function).
pub fn declare(env: &mut Env) {
    env.add_overload(
        "string",
        "ip_to_string",
        vec![Type::new_opaque_type("net.IP")],
        string_of,
    )
    .expect("string(net.IP) is declared once");
    env.add_overload(
        "string",
        "cidr_to_string",
        vec![Type::new_opaque_type("net.CIDR")],
        string_of,
    )
    .expect("string(net.CIDR) is declared once");
}

fn must(name: &str, r: Result<(), cel::DeclarationError>) {
    r.unwrap_or_else(|e| panic!("declaring {name}: {e:?}"))
}

/// Adds the library's functions to `ctx`.
pub fn register(ctx: &mut Context) {
    must(
        "isIP",
        ctx.add_function("isIP", |s: Arc<String>| parse_ip(&s).is_ok()),
    );
    must(
        "isCIDR",
        ctx.add_function("isCIDR", |s: Arc<String>| parse_cidr(&s).is_ok()),
    );
    must(
        "ip.isCanonical",
        ctx.add_function("ip.isCanonical", |s: Arc<String>| -> Res {
            let ip = parse_ip(&s).map_err(|e| err("ip.isCanonical", e))?;
            Ok(Value::Bool(ip.to_go_string() == *s))
        }),
    );
    // `ip(string)` and `<cidr>.ip()`.
    must(
        "ip",
        ctx.add_function("ip", |This(v): This<Value>| -> Res {
            if let Some(c) = opaque::<Cidr>(&v) {
                return Ok(ip_value(c.ip));
            }
            as_ip("ip", &v).map(ip_value)
        }),
    );
    must(
        "cidr",
        ctx.add_function("cidr", |This(v): This<Value>| -> Res {
            as_cidr("cidr", &v).map(cidr_value)
        }),
    );
    must(
        "family",
        ctx.add_function("family", |This(v): This<Value>| -> Res {
            Ok(Value::Int(as_ip("family", &v)?.family()))
        }),
    );
    type Pred = fn(&Ip) -> bool;
    let preds: [(&str, Pred); 5] = [
        ("isUnspecified", Ip::is_unspecified),
        ("isLoopback", Ip::is_loopback),
        ("isLinkLocalMulticast", Ip::is_link_local_multicast),
        ("isLinkLocalUnicast", Ip::is_link_local_unicast),
        ("isGlobalUnicast", Ip::is_global_unicast),
    ];
    for (name, pred) in preds {
        must(
            name,
            ctx.add_function(name, move |This(v): This<Value>| -> Res {
                Ok(Value::Bool(pred(&as_ip(name, &v)?)))
            }),
        );
    }
    must(
        "masked",
        ctx.add_function("masked", |This(v): This<Value>| -> Res {
            Ok(cidr_value(as_cidr("masked", &v)?.masked()))
        }),
    );
    must(
        "prefixLength",
        ctx.add_function("prefixLength", |This(v): This<Value>| -> Res {
            Ok(Value::Int(i64::from(as_cidr("prefixLength", &v)?.bits)))
        }),
    );
    must(
        "containsIP",
        ctx.add_function("containsIP", |This(v): This<Value>, other: Value| -> Res {
            let c = as_cidr("containsIP", &v)?;
            Ok(Value::Bool(c.contains(&as_ip("containsIP", &other)?)))
        }),
    );
    must(
        "containsCIDR",
        ctx.add_function(
            "containsCIDR",
            |This(v): This<Value>, other: Value| -> Res {
                let c = as_cidr("containsCIDR", &v)?;
                let o = as_cidr("containsCIDR", &other)?;
                // The library: `c.Masked() == PrefixFrom(o.Addr(), c.Bits())` and c no longer.
                let same = o.ip.v4 == c.ip.v4
                    && c.masked()
                        == Cidr {
                            ip: o.ip.masked(c.bits),
                            bits: c.bits,
                        };
                Ok(Value::Bool(same && c.bits <= o.bits))
            },
        ),
    );
}
