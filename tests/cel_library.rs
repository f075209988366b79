//! The Kubernetes CEL IP/CIDR library of tests/cel, checked against the examples of its
//! documentation (the `k8s.io/apiserver/pkg/cel/library` `IP()` and `CIDR()` docs, repeated on
//! the Kubernetes "Common Expression Language in Kubernetes" page) before any admission rule
//! is evaluated with it.
#![allow(clippy::unwrap_used)] // test helpers: a panic is the failure report

#[path = "cel/mod.rs"]
mod cel_k8s;

use cel_k8s::{eval, eval_bool, eval_string};

fn t(expr: &str) {
    assert_eq!(eval_bool(expr, &[]), Ok(true), "{expr}");
}

fn f(expr: &str) {
    assert_eq!(eval_bool(expr, &[]), Ok(false), "{expr}");
}

fn fails(expr: &str) {
    assert!(eval(expr, &[]).is_err(), "{expr} should be an error");
}

#[test]
fn ip_examples_of_the_documentation() {
    // ip(), isIP()
    t("isIP('127.0.0.1')");
    t("isIP('::1')");
    f("isIP('127.0.0.256')");
    f("isIP(':::1')");
    fails("ip('127.0.0.256')");
    fails("ip(':::1')");
    // "IPv4-mapped IPv6 addresses (e.g. ::ffff:1.2.3.4) are not allowed. IP addresses with
    // zones (e.g. fe80::1%eth0) are not allowed. Leading zeros in IPv4 address octets are not
    // allowed."
    f("isIP('::ffff:1.2.3.4')");
    f("isIP('fe80::1%eth0')");
    f("isIP('010.0.0.1')");
    // ip.isCanonical
    t("ip.isCanonical('127.0.0.1')");
    t("ip.isCanonical('2001:db8::abcd')");
    f("ip.isCanonical('2001:DB8::ABCD')");
    f("ip.isCanonical('2001:db8::0:0:0:abcd')");
    // family and the predicates
    t("ip('127.0.0.1').family() == 4");
    t("ip('::1').family() == 6");
    t("ip('0.0.0.0').isUnspecified()");
    f("ip('127.0.0.1').isUnspecified()");
    t("ip('::').isUnspecified()");
    f("ip('::1').isUnspecified()");
    t("ip('127.0.0.1').isLoopback()");
    f("ip('192.168.0.1').isLoopback()");
    t("ip('::1').isLoopback()");
    f("ip('2001:db8::abcd').isLoopback()");
    t("ip('224.0.0.1').isLinkLocalMulticast()");
    f("ip('224.0.1.1').isLinkLocalMulticast()");
    t("ip('ff02::1').isLinkLocalMulticast()");
    f("ip('fd00::1').isLinkLocalMulticast()");
    t("ip('169.254.169.254').isLinkLocalUnicast()");
    f("ip('192.168.0.1').isLinkLocalUnicast()");
    t("ip('fe80::1').isLinkLocalUnicast()");
    f("ip('fd80::1').isLinkLocalUnicast()");
    t("ip('192.168.0.1').isGlobalUnicast()");
    f("ip('255.255.255.255').isGlobalUnicast()");
    t("ip('2001:db8::abcd').isGlobalUnicast()");
    f("ip('ff00::1').isGlobalUnicast()");
    // string(): the canonical form
    t("string(ip('192.168.0.1')) == '192.168.0.1'");
    t("string(ip('2001:DB8::ABCD')) == '2001:db8::abcd'");
}

#[test]
fn cidr_examples_of_the_documentation() {
    t("isCIDR('192.168.0.0/16')");
    t("isCIDR('::1/128')");
    f("isCIDR('192.168.0.0/33')");
    f("isCIDR('::1/129')");
    fails("cidr('192.168.0.0/33')");
    fails("cidr('::1/129')");
    // "IPv4-mapped IPv6 addresses (e.g. ::ffff:1.2.3.4/24) are not allowed."
    f("isCIDR('::ffff:1.2.3.4/24')");
    t("cidr('192.168.0.0/24').containsIP(ip('192.168.0.1'))");
    f("cidr('192.168.0.0/24').containsIP(ip('192.168.1.1'))");
    t("cidr('192.168.0.0/24').containsIP('192.168.0.1')");
    f("cidr('192.168.0.0/24').containsIP('192.168.1.1')");
    t("cidr('192.168.0.0/16').containsCIDR(cidr('192.168.10.0/24'))");
    f("cidr('192.168.1.0/24').containsCIDR(cidr('192.168.2.0/24'))");
    t("cidr('192.168.0.0/16').containsCIDR('192.168.10.0/24')");
    f("cidr('192.168.1.0/24').containsCIDR('192.168.2.0/24')");
    t("cidr('192.168.0.1/24').ip() == ip('192.168.0.1')");
    t("cidr('192.168.0.1/24').ip().family() == 4");
    t("cidr('::1/128').ip() == ip('::1')");
    t("cidr('::1/128').ip().family() == 6");
    t("cidr('192.168.0.0/24').masked() == cidr('192.168.0.0/24')");
    t("cidr('192.168.0.1/24').masked() == cidr('192.168.0.0/24')");
    t("cidr('192.168.0.0/24') == cidr('192.168.0.0/24').masked()");
    f("cidr('192.168.0.1/24') == cidr('192.168.0.1/24').masked()");
    t("cidr('192.168.0.0/16').prefixLength() == 16");
    t("cidr('::1/128').prefixLength() == 128");
    t("string(cidr('192.168.0.1/24').masked()) == '192.168.0.0/24'");
    // The doc comment also says `cidr('192.168.0.1/16')` is an error "because there are
    // non-0 bits after the prefix", which its own `masked()` examples above contradict; the
    // library's parser (netip.ParsePrefix) keeps host bits, and so does this one.
    t("isCIDR('192.168.0.1/16')");
}

/// Go's `netip` rules the library inherits, where other parsers differ.
#[test]
fn go_netip_forms() {
    for (s, ok) in [
        ("1.2.3.4", true),
        ("1.2.3", false),
        ("1.2.3.4.5", false),
        ("1..3.4", false),
        ("0x1.2.3.4", false),
        ("::", true),
        ("1::", true),
        ("::1.2.3.4", true),
        ("1:2:3:4:5:6:1.2.3.4", true),
        ("1:2:3:4:5:6:7:1.2.3.4", false),
        ("1:2:3:4::5:6:7:8", false),
        ("1:2:3:4:5:6:7:8::", false),
        ("12345::1", false),
        ("1:::2", false),
        ("::ffff:102:304", false),
        ("[::1]", false),
        (" 1.2.3.4", false),
    ] {
        assert_eq!(
            eval_bool(&format!("isIP('{s}')"), &[]),
            Ok(ok),
            "isIP({s:?})"
        );
    }
    for (s, ok) in [
        ("10.0.0.0/8", true),
        ("10.0.0.0/08", false),
        ("10.0.0.0/+8", false),
        ("10.0.0.0/", false),
        ("10.0.0.0", false),
        ("10.0.0.0/0", true),
        ("10.0.0.0/00", false),
        ("fe80::/10", true),
        ("fe80::1%eth0/64", false),
        ("10.0.0.0/8/8", false),
    ] {
        assert_eq!(
            eval_bool(&format!("isCIDR('{s}')"), &[]),
            Ok(ok),
            "isCIDR({s:?})"
        );
    }
    // RFC 5952 text, as Go prints it.
    for (s, canonical) in [
        ("2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"),
        ("2001:0db8::0001", "2001:db8::1"),
        ("2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"),
        ("0:0:0:0:0:0:0:0", "::"),
        ("::1.2.3.4", "::102:304"),
        ("fe80:0:0:0:0:0:0:0", "fe80::"),
    ] {
        assert_eq!(
            eval_string(&format!("string(ip('{s}'))"), &[]).as_deref(),
            Ok(canonical),
            "{s}"
        );
    }
}

/// `self` and the other variables are bound from JSON as the API server binds them.
#[test]
fn variables_from_json() {
    let v = serde_json::json!({"dst": "10.0.0.0/8", "via": "", "n": 3, "l": ["a", "b"]});
    assert_eq!(
        eval_bool(
            "isCIDR(self.dst) && self.via == '' && self.n == 3 && size(self.l) == 2 && !has(self.x)",
            &[("self", &v)]
        ),
        Ok(true)
    );
    assert_eq!(
        eval_bool("size(bytes('é')) == 2 && 'a b'.matches('[ ]')", &[]),
        Ok(true)
    );
}
