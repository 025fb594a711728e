//! The client's IP address: the socket peer, unless the peer is a configured trusted
//! proxy, in which case the forwarding headers say who is behind it.
//!
//! `X-Forwarded-For` is read right to left, skipping trusted proxies, so a client
//! cannot prepend an address of its choosing; `Forwarded: for=` is read the same way.

use std::net::IpAddr;

use ipnet::IpNet;
use poem::Request;

#[derive(Debug, Clone, Default)]
pub struct ClientIp {
    trusted: Vec<IpNet>,
}

impl ClientIp {
    pub fn new(trusted: Vec<IpNet>) -> Self {
        Self { trusted }
    }

    fn is_trusted(&self, ip: &IpAddr) -> bool {
        self.trusted.iter().any(|net| net.contains(ip))
    }

    /// The address rate limits and logs use.
    pub fn of(&self, req: &Request) -> Option<IpAddr> {
        let peer = req.remote_addr().as_socket_addr()?.ip();
        let peer = canonical(peer);
        if !self.is_trusted(&peer) {
            return Some(peer);
        }
        let forwarded = self.forwarded_chain(req);
        // Walk from the nearest hop outwards; the first untrusted hop is the client.
        // A hop that does not parse (`unknown`, an obfuscated name) ends the walk at
        // the last trusted hop: what lies beyond it may be the client's own words.
        let mut client = peer;
        for hop in forwarded.into_iter().rev() {
            let Some(hop) = hop else { break };
            client = hop;
            if !self.is_trusted(&hop) {
                break;
            }
        }
        Some(client)
    }

    fn forwarded_chain(&self, req: &Request) -> Vec<Option<IpAddr>> {
        let xff: Vec<Option<IpAddr>> = req
            .headers()
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(parse_ip)
            .collect();
        if !xff.is_empty() {
            return xff;
        }
        req.headers()
            .get_all("forwarded")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|element| {
                element
                    .split(';')
                    .find_map(|pair| {
                        let (k, v) = pair.split_once('=')?;
                        k.trim().eq_ignore_ascii_case("for").then_some(v)
                    })
                    .and_then(parse_ip)
            })
            .collect()
    }
}

/// An IP from a header item: `1.2.3.4`, `"[::1]:80"`, `1.2.3.4:5`.
fn parse_ip(raw: &str) -> Option<IpAddr> {
    let s = raw.trim().trim_matches('"');
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    if let Some(rest) = s.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok().map(canonical);
    }
    s.rsplit_once(':')
        .and_then(|(ip, _port)| ip.parse().ok())
        .map(canonical)
}

/// The key rate limits use for an address: IPv6 addresses by their /64, since one
/// subscriber commonly holds a whole /64 and could otherwise rotate through it.
pub fn limit_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::from([s[0], s[1], s[2], s[3], 0, 0, 0, 0])
        }
        v4 => v4,
    }
}

/// IPv4-mapped IPv6 addresses count as the IPv4 address.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_addresses_share_a_limit_key_per_64() {
        let a = limit_key("2001:db8:1:2:aaaa::1".parse().unwrap());
        let b = limit_key("2001:db8:1:2:bbbb::2".parse().unwrap());
        assert_eq!(a, b);
        assert_ne!(a, limit_key("2001:db8:1:3::1".parse().unwrap()));
        let v4: IpAddr = "192.0.2.7".parse().unwrap();
        assert_eq!(limit_key(v4), v4);
    }

    #[test]
    fn header_items_parse_with_ports_brackets_and_quotes() {
        assert_eq!(parse_ip(" 1.2.3.4 "), Some("1.2.3.4".parse().unwrap()));
        assert_eq!(parse_ip("1.2.3.4:80"), Some("1.2.3.4".parse().unwrap()));
        assert_eq!(parse_ip("\"[::1]:80\""), Some("::1".parse().unwrap()));
        assert_eq!(parse_ip("unknown"), None);
    }
}
