//! [`IpFamily`]: IPv4 or IPv6, the one way the planner and the NB side name a family (no
//! `bool`s, no `[_; 2]` indexes).
use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;

/// An IP address family. Orders IPv4 first, so per-family lists come out v4, v6.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IpFamily {
    V4,
    V6,
}

impl IpFamily {
    /// Both families, IPv4 first.
    pub const ALL: [IpFamily; 2] = [IpFamily::V4, IpFamily::V6];

    pub fn of_addr(a: &IpAddr) -> IpFamily {
        match a {
            IpAddr::V4(_) => IpFamily::V4,
            IpAddr::V6(_) => IpFamily::V6,
        }
    }

    pub fn of_net(n: &IpNet) -> IpFamily {
        match n {
            IpNet::V4(_) => IpFamily::V4,
            IpNet::V6(_) => IpFamily::V6,
        }
    }

    pub fn is_v6(self) -> bool {
        self == IpFamily::V6
    }

    /// The prefix of OVN match fields of this family (`ip4.src`, `ip6.dst`, ovn-nb(5)).
    pub fn ovn_field(self) -> &'static str {
        match self {
            IpFamily::V4 => "ip4",
            IpFamily::V6 => "ip6",
        }
    }

    /// Suffix of per-family names (`_v4`, `_v6`) and `k8s.ovn.org/id`s.
    pub fn suffix(self) -> &'static str {
        match self {
            IpFamily::V4 => "v4",
            IpFamily::V6 => "v6",
        }
    }

    /// The default route's destination (`0.0.0.0/0`, `::/0`).
    pub fn default_dst(self) -> IpNet {
        match self {
            IpFamily::V4 => IpNet::V4(ipnet::Ipv4Net::default()),
            IpFamily::V6 => IpNet::V6(ipnet::Ipv6Net::default()),
        }
    }
}

impl fmt::Display for IpFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IpFamily::V4 => "IPv4",
            IpFamily::V6 => "IPv6",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_of_addresses_and_prefixes() {
        let v4: IpAddr = "10.0.0.1".parse().unwrap();
        let v6: IpNet = "fd00::/64".parse().unwrap();
        assert_eq!(IpFamily::of_addr(&v4), IpFamily::V4);
        assert_eq!(IpFamily::of_net(&v6), IpFamily::V6);
        assert!(IpFamily::V4 < IpFamily::V6);
        assert_eq!(IpFamily::V6.default_dst().to_string(), "::/0");
        assert_eq!(IpFamily::V4.default_dst().to_string(), "0.0.0.0/0");
        assert_eq!(
            (IpFamily::V4.ovn_field(), IpFamily::V6.suffix()),
            ("ip4", "v6")
        );
    }
}
