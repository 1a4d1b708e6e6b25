//! The SSRF guard: delivery targets must be global addresses unless their network is listed in
//! `delivery.allowed_networks`. Checked when an event is saved (a clear 422) and again on every
//! connection, inside the HTTP client's resolver, so a name that later resolves elsewhere (DNS
//! rebinding) is still refused. IP-literal hosts never reach a resolver and are checked before
//! sending.
//!
//! Non-global means loopback, private, link-local, CGNAT, multicast, reserved, documentation,
//! benchmarking and the like, in IPv4 and IPv6; IPv4-mapped, NAT64 and 6to4 addresses are
//! judged by the IPv4 address they reach. `delivery.hosts` pins names to addresses (checked
//! like any other).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::Url;

/// The SSRF policy: which networks are allowed although not global, and fixed name → address
/// entries. Read-only once built; the default allows no non-global address.
#[derive(Debug, Clone, Default)]
pub struct Guard {
    allowed: Vec<IpNet>,
    hosts: BTreeMap<String, Vec<IpAddr>>,
}

/// Why an address is not global, or `None` when it is.
pub fn non_global(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => non_global_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return non_global_v4(v4);
            }
            let s = v6.segments();
            if v6.is_loopback() {
                Some("loopback")
            } else if v6.is_unspecified() {
                Some("unspecified")
            } else if v6.is_multicast() {
                Some("multicast")
            } else if (s[0] & 0xfe00) == 0xfc00 {
                Some("unique-local")
            } else if (s[0] & 0xffc0) == 0xfe80 {
                Some("link-local")
            } else if (s[0] & 0xffc0) == 0xfec0 {
                Some("site-local (deprecated)")
            } else if s[0] == 0x2001 && s[1] == 0 {
                // Teredo: a tunnel whose far end (and so the host reached) the address does not
                // name reliably.
                Some("Teredo")
            } else if s[0] == 0x2001 && s[1] == 0x0db8 {
                Some("documentation")
            } else if s[0] == 0x64 && s[1] == 0xff9b {
                // NAT64: the embedded IPv4 address decides.
                non_global_v4(Ipv4Addr::new(
                    (s[6] >> 8) as u8,
                    s[6] as u8,
                    (s[7] >> 8) as u8,
                    s[7] as u8,
                ))
            } else if let Some(v4) = six_to_four(ip) {
                non_global_v4(v4)
            } else if s[..6] == [0, 0, 0, 0, 0, 0] {
                Some("IPv4-compatible (deprecated)")
            } else {
                None
            }
        }
    }
}

fn non_global_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let o = ip.octets();
    if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_private() {
        Some("private")
    } else if ip.is_link_local() {
        Some("link-local")
    } else if o[0] == 100 && (o[1] & 0xc0) == 64 {
        Some("CGNAT (shared address space)")
    } else if o[0] == 0 {
        Some("\"this network\"")
    } else if ip.is_multicast() {
        Some("multicast")
    } else if ip.is_broadcast() || o[0] >= 240 {
        Some("reserved")
    } else if ip.is_documentation() {
        Some("documentation")
    } else if o[0] == 198 && (o[1] & 0xfe) == 18 {
        Some("benchmarking")
    } else if o[0] == 192 && o[1] == 0 && o[2] == 0 {
        Some("IETF protocol assignments")
    } else {
        None
    }
}

/// The IPv4 address embedded in a 6to4 address (2002:AABB:CCDD::/48), whose relay delivers to it.
pub fn six_to_four(ip: IpAddr) -> Option<Ipv4Addr> {
    let IpAddr::V6(v6) = ip else { return None };
    let s = v6.segments();
    (s[0] == 0x2002)
        .then(|| Ipv4Addr::new((s[1] >> 8) as u8, s[1] as u8, (s[2] >> 8) as u8, s[2] as u8))
}

impl Guard {
    /// A guard allowing the non-global networks `allowed` (`delivery.allowed_networks`) and
    /// resolving the names in `hosts` (`delivery.hosts`) to the given addresses without DNS.
    pub fn new(allowed: Vec<IpNet>, hosts: BTreeMap<String, Vec<IpAddr>>) -> Guard {
        Guard { allowed, hosts }
    }

    /// `Err` names the address, why it is refused, and the setting that allows it.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), String> {
        // 6to4 reaches the IPv4 address inside it: that address decides, as if given itself.
        if let Some(v4) = six_to_four(ip) {
            if self.allowed.iter().any(|n| n.contains(&ip)) {
                return Ok(());
            }
            return self
                .check_ip(IpAddr::V4(v4))
                .map_err(|e| format!("{ip} is 6to4 for {e}"));
        }
        let Some(why) = non_global(ip) else {
            return Ok(());
        };
        if self.allowed.iter().any(|n| n.contains(&ip)) {
            return Ok(());
        }
        Err(format!(
            "{ip} is a {why} address; delivery to it is refused unless its network is listed in delivery.allowed_networks"
        ))
    }

    async fn resolve(&self, host: &str) -> std::io::Result<Vec<IpAddr>> {
        if let Some(ips) = self.hosts.get(host) {
            return Ok(ips.clone());
        }
        let addrs =
            tokio::time::timeout(Duration::from_secs(5), tokio::net::lookup_host((host, 0)))
                .await
                .map_err(|_| {
                    std::io::Error::new(std::io::ErrorKind::TimedOut, "DNS lookup timed out")
                })??;
        Ok(addrs.map(|a| a.ip()).collect())
    }

    /// Checks a URL when an event is saved. A host that does not resolve now is accepted (DNS
    /// may differ where and when it is delivered); the delivery-time check still applies.
    pub async fn check_url(&self, url: &str) -> Result<(), String> {
        let u = Url::parse(url).map_err(|e| format!("'{url}' is not a valid URL ({e})"))?;
        match u.host() {
            Some(url::Host::Ipv4(ip)) => self.check_ip(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => self.check_ip(IpAddr::V6(ip)),
            Some(url::Host::Domain(d)) => match self.resolve(d).await {
                Ok(ips) => ips.into_iter().try_for_each(|ip| {
                    self.check_ip(ip)
                        .map_err(|e| format!("'{d}' resolves to {e}"))
                }),
                Err(_) => Ok(()),
            },
            None => Err(format!("'{url}' has no host")),
        }
    }

    /// The check for IP-literal hosts, which the client connects to without resolving.
    pub fn check_literal(&self, url: &str) -> Result<(), String> {
        match Url::parse(url)
            .ok()
            .and_then(|u| u.host().map(|h| h.to_owned()))
        {
            Some(url::Host::Ipv4(ip)) => self.check_ip(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => self.check_ip(IpAddr::V6(ip)),
            _ => Ok(()),
        }
    }
}

/// The HTTP client's resolver: resolves (`delivery.hosts` first, else DNS with a 5 s timeout),
/// then keeps only allowed addresses, so the client never connects to a refused one. When none
/// is left the connection fails with the reason of the last refused address (or "does not
/// resolve").
pub struct GuardedResolver(pub Arc<Guard>);

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let guard = self.0.clone();
        Box::pin(async move {
            let host = name.as_str().to_string();
            let ips = guard.resolve(&host).await?;
            let mut refused = None;
            let ok: Vec<SocketAddr> = ips
                .into_iter()
                .filter(|ip| match guard.check_ip(*ip) {
                    Ok(()) => true,
                    Err(e) => {
                        refused = Some(e);
                        false
                    }
                })
                .map(|ip| SocketAddr::new(ip, 0))
                .collect();
            if ok.is_empty() {
                let msg = match refused {
                    Some(e) => format!("'{host}' resolves to {e}"),
                    None => format!("'{host}' does not resolve"),
                };
                return Err(msg.into());
            }
            Ok(Box::new(ok.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(allowed: &[&str]) -> Guard {
        Guard::new(
            allowed.iter().map(|n| n.parse().unwrap()).collect(),
            BTreeMap::new(),
        )
    }

    #[test]
    fn every_non_global_range_is_refused() {
        let g = guard(&[]);
        for ip in [
            "127.0.0.1",
            "127.1.2.3",
            "10.0.0.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.254",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "240.0.0.1",
            "192.0.2.1",
            "198.18.0.1",
            "192.0.0.8",
            "::1",
            "::",
            "fc00::1",
            "fd12::1",
            "fe80::1",
            "ff02::1",
            "2001:db8::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "::127.0.0.1",
            // 6to4 of loopback, private, link-local (metadata) addresses.
            "2002:7f00:1::",
            "2002:a00:1::1",
            "2002:a9fe:a9fe::",
            // Teredo, site-local.
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "2001::1",
            "fec0::1",
            "feff::1",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            let e = g.check_ip(ip).unwrap_err();
            assert!(e.contains("delivery.allowed_networks"), "{e}");
        }
        for ip in [
            "93.184.216.34",
            "1.1.1.1",
            "2606:4700:4700::1111",
            "172.32.0.1",
            "100.128.0.1",
            // 6to4 of a global address; 2001:db9:: is not Teredo (2001:0::/32).
            "2002:5db8:d822::1",
            "2001:db9::1",
        ] {
            assert!(g.check_ip(ip.parse().unwrap()).is_ok(), "{ip}");
        }
    }

    #[test]
    fn six_to_four_is_judged_by_its_embedded_ipv4_address() {
        let e = guard(&[])
            .check_ip("2002:7f00:1::".parse().unwrap())
            .unwrap_err();
        assert!(
            e.contains("6to4 for 127.0.0.1 is a loopback address"),
            "{e}"
        );
        // Allowing the IPv4 network allows its 6to4 form, as with the address itself.
        let g = guard(&["127.0.0.0/8"]);
        assert!(g.check_ip("2002:7f00:1::".parse().unwrap()).is_ok());
        assert!(g.check_ip("2002:a00:1::".parse().unwrap()).is_err());
    }

    #[test]
    fn allowed_networks_open_exactly_their_range() {
        let g = guard(&["127.0.0.0/8", "10.1.0.0/16"]);
        assert!(g.check_ip("127.0.0.1".parse().unwrap()).is_ok());
        assert!(g.check_ip("10.1.2.3".parse().unwrap()).is_ok());
        assert!(g.check_ip("10.2.0.1".parse().unwrap()).is_err());
        assert!(g.check_ip("::1".parse().unwrap()).is_err());
    }

    #[test]
    fn ip_literals_in_every_notation_are_caught() {
        let g = guard(&[]);
        for url in [
            "http://127.0.0.1/",
            "http://0x7f.1/",
            "http://2130706433/",
            "http://0177.0.0.1/",
            "http://127.1/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::1]:8080/",
            "http://0x7f000001/",
            "http://169.254.169.254/latest/meta-data",
        ] {
            assert!(g.check_literal(url).is_err(), "{url}");
        }
        assert!(g.check_literal("http://93.184.216.34/").is_ok());
        assert!(g.check_literal("http://example.com/").is_ok());
    }
}
