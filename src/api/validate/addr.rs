//! Addresses and networks as a Route writes them: exactly the text the API server's CEL
//! IP/CIDR library accepts (`isIP`, `isCIDR`), so admission and the controller agree.
//!
//! That library reads Go's `net/netip` forms and refuses two more: zones (`fe80::1%eth0`) and
//! IPv4-mapped IPv6 addresses (`::ffff:1.2.3.4`, which a pod's kernel would treat as an IPv6
//! route that IPv4 traffic never takes). No surrounding whitespace, no leading zeros in an
//! IPv4 octet or a prefix length.
use std::net::IpAddr;

use ipnet::IpNet;

use crate::api::limits;
use crate::api::quote::quote;

/// An IPv4 or IPv6 address (Rust's parser refuses zones and leading zeros already).
pub fn parse_ip(s: &str) -> Option<IpAddr> {
    match s.parse::<IpAddr>().ok()? {
        IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some() => None,
        ip => Some(ip),
    }
}

/// `address/length`, the length in decimal without a sign or leading zeros.
fn parse_cidr(s: &str) -> Option<IpNet> {
    let (addr, bits) = s.rsplit_once('/')?;
    let ip = parse_ip(addr)?;
    let digits_ok = !bits.is_empty()
        && bits.bytes().all(|b| b.is_ascii_digit())
        && (bits == "0" || !bits.starts_with('0'));
    if !digits_ok || bits.len() > 3 {
        return None;
    }
    IpNet::new(ip, bits.parse().ok()?).ok()
}

/// Parses a destination: a CIDR, or a bare address meaning a host route. Host bits set
/// (`10.0.0.5/24`) are refused rather than silently truncated.
pub fn parse_dst(s: &str) -> Result<IpNet, String> {
    if s.is_empty() {
        return Err("empty destination".into());
    }
    if limits::too_long(s, limits::ADDRESS_CHARS) {
        return Err(limits::too_long_message(limits::ADDRESS_CHARS));
    }
    if let Some(ip) = parse_ip(s) {
        return Ok(IpNet::from(ip));
    }
    let net = parse_cidr(s).ok_or_else(|| format!("not a CIDR or IP address: {}", quote(s)))?;
    if net.prefix_len() == 0 {
        return Err(format!(
            "{} would replace the default route; use spec.defaultRoute for that",
            quote(s)
        ));
    }
    if net.trunc() != net {
        return Err(format!(
            "{} has host bits set; did you mean {}?",
            quote(s),
            net.trunc()
        ));
    }
    Ok(net)
}

/// `via`: absent or `""` means the interface's gateway (the seed's clients wrote `""`).
pub fn parse_via(via: &Option<String>) -> Result<Option<IpAddr>, String> {
    match via.as_deref() {
        None | Some("") => Ok(None),
        Some(v) if limits::too_long(v, limits::ADDRESS_CHARS) => {
            Err(limits::too_long_message(limits::ADDRESS_CHARS))
        }
        Some(v) => parse_ip(v)
            .map(Some)
            .ok_or_else(|| format!("via {} is not an IP address", quote(v))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_forms_kubernetes_refuses_are_refused() {
        for bad in [
            "::ffff:1.2.3.4",
            "010.0.0.1",
            "fe80::1%eth0",
            " 10.0.0.1",
            "10.0.0.1 ",
            "[::1]",
        ] {
            assert_eq!(parse_ip(bad), None, "{bad:?}");
        }
        for bad in [
            "10.0.0.0/08",
            "10.0.0.0/+8",
            "10.0.0.0/",
            "::ffff:1.2.3.0/120",
            "10.0.0.0/8 ",
            "10.0.0.0/0008",
            "10.0.0.0/33",
        ] {
            assert!(parse_dst(bad).is_err(), "{bad:?}");
        }
        assert_eq!(parse_dst("::1.2.3.4").unwrap().to_string(), "::102:304/128");
        assert_eq!(parse_dst("10.0.0.0/8").unwrap().to_string(), "10.0.0.0/8");
        assert_eq!(
            parse_dst("fd00::/0").unwrap_err(),
            "\"fd00::/0\" would replace the default route; use spec.defaultRoute for that"
        );
        assert_eq!(parse_via(&Some(String::new())), Ok(None));
        assert!(parse_via(&Some(" ".into())).is_err());
        assert!(
            parse_dst(&format!("10.0.0.0/8{}", " ".repeat(60)))
                .unwrap_err()
                .starts_with("Too long")
        );
    }
}
