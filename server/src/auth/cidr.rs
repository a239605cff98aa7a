//! CIDR blocks and the admin allow-list (`--admin-allow`).
//!
//! Invariant: a parsed [`Cidr`] has its host bits cleared, so `contains` is a
//! plain masked compare. IPv4-mapped IPv6 clients (`::ffff:127.0.0.1`, what a
//! dual-stack listener reports for an IPv4 peer) match IPv4 blocks, so an
//! allow-list written with IPv4 ranges keeps working behind `[::]:4000`.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use serde::{Deserialize, Deserializer};

/// A bad CIDR in the allow-list.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid CIDR `{input}`: {reason} (expected e.g. 10.0.0.0/8 or ::1/128)")]
pub struct CidrError {
    input: String,
    reason: &'static str,
}

/// One network, e.g. `127.0.0.0/8`. A bare address means a single host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// True when `ip` is inside this network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => mask4(ip, self.prefix) == net,
            (IpAddr::V6(net), IpAddr::V6(ip)) => mask6(ip, self.prefix) == net,
            _ => false,
        }
    }
}

fn mask4(ip: Ipv4Addr, prefix: u8) -> Ipv4Addr {
    let bits = u32::from(ip);
    let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
    Ipv4Addr::from(bits & mask)
}

fn mask6(ip: Ipv6Addr, prefix: u8) -> Ipv6Addr {
    let bits = u128::from(ip);
    let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
    Ipv6Addr::from(bits & mask)
}

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason| CidrError { input: s.to_string(), reason };
        let (addr, prefix) = match s.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s.trim(), None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| err("not an IP address"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.parse::<u8>().map_err(|_| err("prefix is not a number"))?,
            None => max,
        };
        if prefix > max {
            return Err(err("prefix longer than the address"));
        }
        let addr = match addr {
            IpAddr::V4(a) => IpAddr::V4(mask4(a, prefix)),
            IpAddr::V6(a) => IpAddr::V6(mask6(a, prefix)),
        };
        Ok(Cidr { addr, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// Comma-separated CIDRs; an address is allowed when any block contains it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AllowList(pub Vec<Cidr>);

impl AllowList {
    pub fn allows(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|c| c.contains(ip))
    }
}

impl FromStr for AllowList {
    type Err = CidrError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.split(',')
            .map(str::trim)
            .filter(|part| !part.is_empty())
            .map(Cidr::from_str)
            .collect::<Result<Vec<_>, _>>()
            .map(AllowList)
    }
}

impl fmt::Display for AllowList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, cidr) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{cidr}")?;
        }
        Ok(())
    }
}

impl<'de> Deserialize<'de> for AllowList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test ip")
    }

    #[test]
    fn default_loopback_list_allows_loopback_only() {
        let list: AllowList = "127.0.0.0/8,::1/128".parse().expect("parse");
        assert!(list.allows(ip("127.0.0.1")));
        assert!(list.allows(ip("127.9.8.7")));
        assert!(list.allows(ip("::1")));
        assert!(list.allows(ip("::ffff:127.0.0.1")));
        assert!(!list.allows(ip("10.0.0.1")));
        assert!(!list.allows(ip("::2")));
    }

    #[test]
    fn host_bits_are_cleared_and_bare_address_is_a_host() {
        assert_eq!("10.1.2.3/8".parse::<Cidr>().expect("parse").to_string(), "10.0.0.0/8");
        assert_eq!("10.1.2.3".parse::<Cidr>().expect("parse").to_string(), "10.1.2.3/32");
        let all: Cidr = "0.0.0.0/0".parse().expect("parse");
        assert!(all.contains(ip("203.0.113.9")));
    }

    #[test]
    fn invalid_cidrs_are_rejected_with_the_input() {
        for bad in ["nope", "10.0.0.0/33", "::1/129", "1.2.3.4/x"] {
            let err = bad.parse::<AllowList>().expect_err(bad);
            assert!(err.to_string().contains(bad), "{err}");
        }
    }
}
