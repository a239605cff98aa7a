//! Where deliveries may go. Tenants choose their webhook URLs (and providers'
//! base URLs); without a guard, a tenant could make the server call into its
//! own network — a cloud metadata service, an admin port on loopback: SSRF.
//! By default a delivery goes only to public addresses: every address a host
//! name resolves to is checked (so a name pointing inward is refused too), as
//! is a literal IP in the URL, and redirects are not followed.
//! `--delivery-allow-private` lifts the guard (on-premise receivers, tests).
//! `localhost` and `*.localhost` (RFC 6761 §6.3) are refused by name, with or
//! without the final dot, before anything is resolved.
//!
//! A refusal is a [`Refused`]: the resolver returns it as its error, so the
//! worker finds it in the source chain of the HTTP client's error
//! ([`refusal_in`]) and records a permanent failure, not a network error to
//! retry: the same URL would be refused again at every attempt.

use std::error::Error;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// A destination the guard will not deliver to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// The URL does not parse.
    #[error("bad URL: {0}")]
    BadUrl(String),
    /// A literal IP that is not public.
    #[error("{0} is not a public address (deliveries to private networks need --delivery-allow-private)")]
    PrivateAddress(IpAddr),
    /// `localhost` or a name under it.
    #[error("{0} is a loopback name (deliveries to private networks need --delivery-allow-private)")]
    LoopbackName(String),
    /// A name whose every address is not public.
    #[error("{0} resolves to no public address (deliveries to private networks need --delivery-allow-private)")]
    NoPublicAddress(String),
}

/// The guard's refusal somewhere in `error`'s source chain (`error` included):
/// how a refusal by [`PublicOnly`] is told from a network failure once the
/// HTTP client has wrapped it.
pub fn refusal_in<'a>(error: &'a (dyn Error + 'static)) -> Option<&'a Refused> {
    let mut next = Some(error);
    while let Some(e) = next {
        if let Some(refused) = e.downcast_ref::<Refused>() {
            return Some(refused);
        }
        next = e.source();
    }
    None
}

/// Whether `ip` is an address on the public internet.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(v6),
        },
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    !(ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        // Shared address space (carrier-grade NAT), 100.64.0.0/10.
        || (a == 100 && (64..128).contains(&b))
        // Benchmarking, 198.18.0.0/15, and the reserved 240.0.0.0/4.
        || (a == 198 && (b == 18 || b == 19))
        || a >= 240)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    !(ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        // Unique local fc00::/7, link-local fe80::/10, documentation 2001:db8::/32.
        || (first & 0xfe00) == 0xfc00
        || (first & 0xffc0) == 0xfe80
        || (first == 0x2001 && ip.segments()[1] == 0x0db8))
}

/// Refuses a URL whose host is a literal non-public IP or a loopback name
/// (other names are checked when they are resolved, by [`PublicOnly`]).
pub fn check_url(url: &str) -> Result<(), Refused> {
    let parsed = reqwest::Url::parse(url).map_err(|e| Refused::BadUrl(e.to_string()))?;
    // The URL parser has normalized the host: IPv4 in dotted decimal, IPv6 in brackets.
    let host = parsed.host_str().unwrap_or_default();
    match host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
        Ok(ip) => check_ip(ip),
        Err(_) => check_name(host),
    }
}

fn check_ip(ip: IpAddr) -> Result<(), Refused> {
    if is_public(ip) {
        Ok(())
    } else {
        Err(Refused::PrivateAddress(ip))
    }
}

/// `localhost`, `localhost.` and names under it: resolvers answer them with
/// loopback (or fail), never with a public address.
fn check_name(name: &str) -> Result<(), Refused> {
    let name = name.strip_suffix('.').unwrap_or(name);
    let loopback = name.eq_ignore_ascii_case("localhost")
        || name.len() > ".localhost".len()
            && name.as_bytes()[name.len() - ".localhost".len()..].eq_ignore_ascii_case(b".localhost");
    if loopback {
        Err(Refused::LoopbackName(name.to_string()))
    } else {
        Ok(())
    }
}

/// A DNS resolver that answers only a name's public addresses, and refuses
/// (with [`Refused`]) a name that has none.
pub struct PublicOnly;

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_string();
        Box::pin(async move {
            check_name(&host)?;
            let all: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let public: Vec<SocketAddr> = all.into_iter().filter(|a| is_public(a.ip())).collect();
            if public.is_empty() {
                return Err(Refused::NoPublicAddress(host).into());
            }
            Ok(Box::new(public.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_loopback_link_local_and_reserved_addresses_are_not_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "198.18.0.1",
            "240.0.0.1",
            "::1",
            "::",
            "fc00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "2001:db8::1",
        ] {
            assert!(!is_public(ip.parse().expect("ip")), "{ip}");
        }
        for ip in ["8.8.8.8", "1.1.1.1", "100.128.0.1", "2606:4700:4700::1111", "::ffff:8.8.8.8"] {
            assert!(is_public(ip.parse().expect("ip")), "{ip}");
        }
    }

    #[test]
    fn literal_private_urls_are_refused_and_names_left_to_the_resolver() {
        let ip = |s: &str| Refused::PrivateAddress(s.parse().expect("ip"));
        assert_eq!(check_url("http://127.0.0.1:9/hook"), Err(ip("127.0.0.1")));
        assert_eq!(check_url("http://[::1]/hook"), Err(ip("::1")));
        assert_eq!(check_url("http://169.254.169.254/latest/meta-data"), Err(ip("169.254.169.254")));
        // The URL parser normalizes other spellings of an IPv4 address first.
        assert_eq!(check_url("http://0x7f.1/hook"), Err(ip("127.0.0.1")));
        assert!(check_url("https://8.8.8.8/hook").is_ok());
        assert!(check_url("https://hooks.example.com/x").is_ok());
        assert!(matches!(check_url("not a url"), Err(Refused::BadUrl(_))));
    }

    #[test]
    fn loopback_names_are_refused_without_resolving_them() {
        for url in ["http://localhost/x", "http://localhost.:8080/x", "http://LocalHost/x", "http://a.b.localhost./x"] {
            assert!(matches!(check_url(url), Err(Refused::LoopbackName(_))), "{url}");
        }
        for url in ["http://localhost.example.com/x", "http://mylocalhost/x", "http://localhost-1.example/x"] {
            assert_eq!(check_url(url), Ok(()), "{url}");
        }
    }

    #[tokio::test]
    async fn the_resolver_refuses_a_name_with_no_public_address_with_a_typed_error() {
        async fn refusal(name: &str) -> Option<Refused> {
            let name: Name = name.parse().expect("name");
            let error = PublicOnly.resolve(name).await.err().expect("refused");
            refusal_in(&*error).cloned()
        }
        // A name whose only address is loopback (an address literal resolves to itself).
        assert_eq!(refusal("127.0.0.1").await, Some(Refused::NoPublicAddress("127.0.0.1".into())));
        assert_eq!(refusal("localhost.").await, Some(Refused::LoopbackName("localhost".into())));
    }

    #[test]
    fn a_refusal_is_found_anywhere_in_a_source_chain() {
        #[derive(Debug, thiserror::Error)]
        #[error("outer")]
        struct Outer(#[source] Box<dyn Error + Send + Sync>);
        let refused = Refused::NoPublicAddress("inward.example".into());
        let wrapped = Outer(Box::new(Outer(Box::new(refused.clone()))));
        assert_eq!(refusal_in(&wrapped), Some(&refused));
        let other = Outer(Box::new(std::io::Error::other("connection refused")));
        assert_eq!(refusal_in(&other), None);
    }
}
