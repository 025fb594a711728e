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
        let forwarded: Vec<IpAddr> = self.forwarded_chain(req);
        // Walk from the nearest hop outwards; the first untrusted hop is the client.
        let mut client = peer;
        for hop in forwarded.into_iter().rev() {
            client = hop;
            if !self.is_trusted(&hop) {
                break;
            }
        }
        Some(client)
    }

    fn forwarded_chain(&self, req: &Request) -> Vec<IpAddr> {
        let xff: Vec<IpAddr> = req
            .headers()
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(parse_ip)
            .collect();
        if !xff.is_empty() {
            return xff;
        }
        req.headers()
            .get_all("forwarded")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|element| {
                element.split(';').find_map(|pair| {
                    let (k, v) = pair.split_once('=')?;
                    k.trim().eq_ignore_ascii_case("for").then_some(v)
                })
            })
            .filter_map(parse_ip)
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

/// IPv4-mapped IPv6 addresses count as the IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_items_parse_with_ports_brackets_and_quotes() {
        assert_eq!(parse_ip(" 1.2.3.4 "), Some("1.2.3.4".parse().unwrap()));
        assert_eq!(parse_ip("1.2.3.4:80"), Some("1.2.3.4".parse().unwrap()));
        assert_eq!(parse_ip("\"[::1]:80\""), Some("::1".parse().unwrap()));
        assert_eq!(parse_ip("unknown"), None);
    }
}
