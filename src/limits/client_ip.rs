//! Who is on the other end: the TCP peer, or the client a trusted proxy says it forwards.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use axum::http::{HeaderMap, HeaderName};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// The client's address, as the limits and the resolvers see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ClientIp(pub IpAddr);

impl ClientIp {
    /// The key the per-IP limits count under: the address, or for IPv6 its /64, which one
    /// subscriber usually holds whole.
    pub fn limit_key(self) -> IpAddr {
        match self.0 {
            IpAddr::V6(ip) => IpAddr::V6((u128::from(ip) & !(u128::MAX >> 64)).into()),
            v4 => v4,
        }
    }
}

/// The proxies (addresses or CIDR blocks) whose `X-Forwarded-For` is believed, written
/// comma-separated in the settings.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    fn contains(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client behind `peer`. `X-Forwarded-For` counts only when `peer` is a trusted proxy;
    /// its entries are read from the right (each proxy appends the address it saw), past the
    /// trusted proxies, to the first address that is not one: what a client writes itself
    /// stays on the left of it and is never reached.
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> ClientIp {
        let mut client = peer.to_canonical();
        if !self.contains(client) {
            return ClientIp(client);
        }
        let entries = headers
            .get_all(X_FORWARDED_FOR)
            .iter()
            .rev()
            .flat_map(|header| header.as_bytes().rsplit(|&b| b == b','));
        for entry in entries {
            // A trusted proxy wrote this entry; if it is not an address, the hop before it
            // is the last one known.
            let Some(ip) = parse_entry(entry) else {
                break;
            };
            client = ip;
            if !self.contains(ip) {
                break;
            }
        }
        ClientIp(client)
    }
}

/// An address as proxies write them: `192.0.2.1`, `2001:db8::1`, or with a port.
fn parse_entry(entry: &[u8]) -> Option<IpAddr> {
    let entry = std::str::from_utf8(entry).ok()?.trim();
    entry
        .parse::<IpAddr>()
        .or_else(|_| entry.parse::<SocketAddr>().map(|addr| addr.ip()))
        .ok()
        .map(|ip| ip.to_canonical())
}

impl TryFrom<String> for TrustedProxies {
    type Error = String;

    fn try_from(value: String) -> Result<Self, String> {
        value
            .split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(|entry| {
                entry
                    .parse::<IpNet>()
                    .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
                    .map(|net| net.trunc())
                    .map_err(|_| {
                        format!("{entry:?} is not an IP address or a CIDR block such as 10.0.0.0/8")
                    })
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }
}

impl fmt::Display for TrustedProxies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list: Vec<String> = self.0.iter().map(IpNet::to_string).collect();
        f.write_str(&list.join(","))
    }
}

impl From<TrustedProxies> for String {
    fn from(proxies: TrustedProxies) -> Self {
        proxies.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(trusted: &str, peer: &str, headers: &[&str]) -> String {
        let proxies = TrustedProxies::try_from(trusted.to_owned()).unwrap();
        let mut map = HeaderMap::new();
        for header in headers {
            map.append(X_FORWARDED_FOR, header.parse().unwrap());
        }
        proxies.client_ip(peer.parse().unwrap(), &map).0.to_string()
    }

    #[test]
    fn forwarded_for_counts_only_from_trusted_proxies_and_only_up_to_the_first_untrusted_hop() {
        assert_eq!(client("", "192.0.2.7", &["198.51.100.1"]), "192.0.2.7");
        assert_eq!(
            client("10.0.0.0/8", "192.0.2.7", &["198.51.100.1"]),
            "192.0.2.7"
        );
        assert_eq!(
            client("10.0.0.0/8", "10.1.2.3", &["198.51.100.1"]),
            "198.51.100.1"
        );
        // A client writing its own header only adds entries on the left.
        assert_eq!(
            client("10.0.0.0/8", "10.1.2.3", &["6.6.6.6, 198.51.100.1"]),
            "198.51.100.1"
        );
        // Several proxies: all trusted hops are skipped, over several header lines.
        assert_eq!(
            client(
                "10.0.0.0/8, 127.0.0.1",
                "127.0.0.1",
                &["6.6.6.6, 203.0.113.9", "10.0.0.5 , 10.2.0.1"]
            ),
            "203.0.113.9"
        );
        assert_eq!(
            client("10.0.0.1", "10.0.0.1", &["203.0.113.9:4711"]),
            "203.0.113.9"
        );
        assert_eq!(
            client("10.0.0.1", "10.0.0.1", &["[2001:db8::1]:443"]),
            "2001:db8::1"
        );
        // Garbage written by a trusted hop: the last address known is that hop's.
        assert_eq!(
            client("10.0.0.0/8", "10.0.0.1", &["6.6.6.6, nonsense, 10.0.0.2"]),
            "10.0.0.2"
        );
        // No header: the proxy itself.
        assert_eq!(client("10.0.0.0/8", "10.0.0.1", &[]), "10.0.0.1");
        // IPv4 peers of a dual-stack socket.
        assert_eq!(
            client("127.0.0.1", "::ffff:127.0.0.1", &["198.51.100.1"]),
            "198.51.100.1"
        );
    }

    #[test]
    fn proxies_are_addresses_or_blocks() {
        let parsed = TrustedProxies::try_from(" 10.0.0.1/8, ::1 ,192.168.0.7".to_owned()).unwrap();
        assert_eq!(parsed.to_string(), "10.0.0.0/8,::1/128,192.168.0.7/32");
        assert_eq!(
            TrustedProxies::try_from(String::new()).unwrap(),
            TrustedProxies::default()
        );
        for bad in ["localhost", "10.0.0.0/33", "10.0.0.1 10.0.0.2"] {
            assert!(TrustedProxies::try_from(bad.to_owned()).is_err(), "{bad}");
        }
    }

    #[test]
    fn ipv6_clients_count_by_their_64_block() {
        let a = ClientIp("2001:db8:1:2:aaaa::1".parse().unwrap()).limit_key();
        let b = ClientIp("2001:db8:1:2:bbbb::9".parse().unwrap()).limit_key();
        assert_eq!(a, b);
        assert_eq!(a.to_string(), "2001:db8:1:2::");
        let v4 = ClientIp("192.0.2.1".parse().unwrap());
        assert_eq!(v4.limit_key(), v4.0);
    }
}
