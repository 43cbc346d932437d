//! Where a delivery may go. A subscriber names the URL, so without these checks a webhook is a
//! way to make our function call the VPC, the metadata service or loopback (SSRF). The URL is
//! checked when the subscription is made, and the addresses again when each connection is made
//! (the resolver below is the HTTP client's only resolver), so a name that later resolves
//! elsewhere (DNS rebinding) reaches nothing.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use url::Url;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetPolicy {
    pub allow_http: bool,
    pub allow_private: bool,
    pub ports: Vec<u16>,
}

impl TargetPolicy {
    pub fn from_config(config: &crate::config::OutboundConfig) -> Self {
        Self {
            allow_http: config.allow_http,
            allow_private: config.allow_private,
            ports: config.ports.clone(),
        }
    }

    /// The URL's own shape: scheme, credentials, port, and a literal address.
    pub fn check_url(&self, raw: &str) -> Result<Url, String> {
        let url = Url::parse(raw).map_err(|e| format!("not a valid absolute URL ({e})"))?;
        match url.scheme() {
            "https" => {}
            "http" if self.allow_http => {}
            _ => return Err("only https URLs are allowed".into()),
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("a URL with credentials is not allowed".into());
        }
        let port = url.port_or_known_default().unwrap_or(0);
        // http on loopback is the local run's receivers; their ports are whatever is free.
        if !self.ports.contains(&port) && !self.allow_private {
            return Err(format!("port {port} is not allowed (allowed: {:?})", self.ports));
        }
        match url.host() {
            None => return Err("the URL has no host".into()),
            Some(url::Host::Ipv4(ip)) => self.check_ip(IpAddr::V4(ip))?,
            Some(url::Host::Ipv6(ip)) => self.check_ip(IpAddr::V6(ip))?,
            Some(url::Host::Domain(name)) => {
                let name = name.trim_end_matches('.').to_ascii_lowercase();
                if !self.allow_private && (name == "localhost" || name.ends_with(".localhost") || !name.contains('.')) {
                    return Err(format!("the host {name} is not a public name"));
                }
            }
        }
        Ok(url)
    }

    pub fn check_ip(&self, ip: IpAddr) -> Result<(), String> {
        if self.allow_private || is_public(ip) {
            Ok(())
        } else {
            Err(format!("the address {ip} is not public"))
        }
    }

    /// Every address a name resolves to must be public: one private answer among public ones is
    /// how rebinding tricks get through.
    pub fn check_addrs(&self, addrs: &[SocketAddr]) -> Result<(), String> {
        if addrs.is_empty() {
            return Err("the host does not resolve".into());
        }
        addrs.iter().try_for_each(|a| self.check_ip(a.ip()))
    }
}

/// Whether an address is on the public internet: not loopback, private, link-local (the cloud
/// metadata services), shared, documentation, multicast or reserved, in IPv4 or IPv6 (including
/// IPv4 carried inside IPv6).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_documentation()
        || ip.is_multicast()
        || a == 0
        || (a == 100 && (64..128).contains(&b))
        || (a == 192 && b == 0 && c == 0)
        || (a == 198 && (b == 18 || b == 19))
        || a >= 240)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    let seg = ip.segments();
    // NAT64 carries an IPv4 address in its last 32 bits.
    if seg[0] == 0x64 && seg[1] == 0xff9b && seg[2..6] == [0, 0, 0, 0] {
        return is_public_v4(Ipv4Addr::new(
            (seg[6] >> 8) as u8,
            seg[6] as u8,
            (seg[7] >> 8) as u8,
            seg[7] as u8,
        ));
    }
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (seg[0] & 0xfe00) == 0xfc00
        || (seg[0] & 0xffc0) == 0xfe80
        || (seg[0] == 0x2001 && seg[1] == 0x0db8)
        || seg[0..6] == [0, 0, 0, 0, 0, 0])
}

/// Finds a host's addresses; a port in for tests.
#[async_trait::async_trait]
pub trait Lookup: Send + Sync {
    async fn lookup(&self, host: &str) -> std::io::Result<Vec<SocketAddr>>;
}

pub struct SystemLookup;

#[async_trait::async_trait]
impl Lookup for SystemLookup {
    async fn lookup(&self, host: &str) -> std::io::Result<Vec<SocketAddr>> {
        Ok(tokio::net::lookup_host((host, 0)).await?.collect())
    }
}

/// The delivery client's resolver: answers only with addresses the policy allows.
pub struct GuardedResolver {
    pub policy: TargetPolicy,
    pub lookup: std::sync::Arc<dyn Lookup>,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let (policy, lookup, host) = (self.policy.clone(), self.lookup.clone(), name.as_str().to_owned());
        Box::pin(async move {
            let addrs = lookup.lookup(&host).await?;
            policy
                .check_addrs(&addrs)
                .map_err(|e| Box::new(std::io::Error::new(std::io::ErrorKind::PermissionDenied, e)))?;
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strict() -> TargetPolicy {
        TargetPolicy {
            allow_http: false,
            allow_private: false,
            ports: vec![443, 8443],
        }
    }

    #[test]
    fn only_public_https_targets_on_allowed_ports_pass() {
        let p = strict();
        assert!(p.check_url("https://hooks.example.com/leads").is_ok());
        assert!(p.check_url("https://hooks.example.com:8443/leads").is_ok());
        for bad in [
            "http://hooks.example.com/",
            "https://hooks.example.com:22/",
            "https://user:pw@hooks.example.com/",
            "https://localhost/",
            "https://app.localhost/",
            "https://intranet/",
            "https://127.0.0.1/",
            "https://10.1.2.3/",
            "https://169.254.169.254/latest/meta-data/",
            "https://[::1]/",
            "https://[::ffff:127.0.0.1]/",
            "https://[fd00:ec2::254]/",
            "https://[64:ff9b::a9fe:a9fe]/",
            "https://100.64.0.1/",
            "https://0.0.0.0/",
            "ftp://hooks.example.com/",
            "not a url",
        ] {
            assert!(p.check_url(bad).is_err(), "{bad} must be refused");
        }
    }

    #[test]
    fn one_private_address_among_public_ones_is_refused() {
        let p = strict();
        let public: SocketAddr = "93.184.216.34:443".parse().unwrap();
        let metadata: SocketAddr = "169.254.169.254:443".parse().unwrap();
        assert!(p.check_addrs(&[public]).is_ok());
        assert!(p.check_addrs(&[public, metadata]).is_err());
        assert!(p.check_addrs(&[]).is_err());
        let local = TargetPolicy {
            allow_private: true,
            allow_http: true,
            ..strict()
        };
        assert!(local.check_addrs(&[metadata]).is_ok());
        assert!(local.check_url("http://127.0.0.1:9999/hook").is_ok());
    }
}
