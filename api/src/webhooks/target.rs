//! Where a notification may go. A callback URL is a request the server makes on a user's
//! behalf, so it must not reach what only the server can: loopback, link-local (cloud metadata
//! at 169.254.169.254), private and other non-public ranges are refused unless
//! `ARGUS_WEBHOOK_ALLOW` lists them. Checked when a URL is given, and again on every attempt
//! against the addresses the name resolves to then (DNS may have changed); the connection goes
//! to an address that was checked, never to a fresh lookup.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use ipnet::IpNet;
use url::{Host, Url};

/// Longest callback URL.
pub const MAX_URL_BYTES: usize = 2048;
/// How long a name may take to resolve.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// The addresses `ARGUS_WEBHOOK_ALLOW` lets through although they are not public.
#[derive(Clone, Debug, Default)]
pub struct AllowList(Vec<IpNet>);

impl AllowList {
    /// Parses IP addresses and CIDR blocks.
    pub fn parse(list: &[String]) -> Result<AllowList, String> {
        list.iter()
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<IpNet>()
                    .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| {
                        format!("ARGUS_WEBHOOK_ALLOW: {s:?} is not an IP address or CIDR block")
                    })
            })
            .collect::<Result<_, _>>()
            .map(AllowList)
    }

    fn allows(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// Why `ip` may not be sent to, or `None` when it may.
    pub fn refusal(&self, ip: IpAddr) -> Option<&'static str> {
        let ip = canonical(ip);
        if self.allows(ip) {
            return None;
        }
        non_public(ip)
    }
}

/// An IPv4 address written as IPv6 (`::ffff:127.0.0.1`) is that IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// What kind of non-public address `ip` is, if it is one.
fn non_public(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            if v4.is_loopback() {
                Some("a loopback address")
            } else if v4.is_link_local() {
                Some("a link-local address")
            } else if v4.is_private() {
                Some("a private address")
            } else if v4.is_unspecified() || o[0] == 0 {
                Some("an unspecified address")
            } else if o[0] == 100 && (o[1] & 0xc0) == 64 {
                Some("a shared (carrier-grade NAT) address")
            } else if v4.is_multicast() || v4.is_broadcast() || o[0] >= 240 {
                Some("a multicast, broadcast or reserved address")
            } else if v4.is_documentation() || (o[0] == 198 && (o[1] & 0xfe) == 18) {
                Some("a documentation or benchmarking address")
            } else if o[0] == 192 && o[1] == 0 && o[2] == 0 {
                Some("an IETF protocol address")
            } else {
                None
            }
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            let embedded = |hi: u16, lo: u16| {
                Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8)
            };
            if v6.is_loopback() || v6.is_unspecified() {
                Some("a loopback or unspecified address")
            } else if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
                // NAT64 (the well-known prefix) of an IPv4 address: judged as that address.
                non_public(IpAddr::V4(embedded(s[6], s[7])))
            } else if s[0] == 0x2002 {
                // 6to4: its gateway's IPv4 address is inside.
                non_public(IpAddr::V4(embedded(s[1], s[2])))
            } else if (s[0] & 0xe000) != 0x2000 {
                // Outside global unicast: link-local, unique local, multicast, the
                // IPv4-compatible and translated forms, site-local, discard, local NAT64…
                Some("a non-global IPv6 address")
            } else if s[0] == 0x2001 && s[1] < 0x200 {
                // IETF protocol assignments: Teredo (which embeds an IPv4 address), ORCHID,
                // benchmarking…
                Some("an IETF protocol address")
            } else if s[0] == 0x2001 && s[1] == 0xdb8 {
                Some("a documentation address")
            } else {
                None
            }
        }
    }
}

/// A callback URL, checked for shape: http or https, a host, no credentials, no fragment.
pub fn parse(raw: &str) -> Result<Url, String> {
    let raw = raw.trim();
    if raw.len() > MAX_URL_BYTES {
        return Err(format!("callback_url is longer than {MAX_URL_BYTES} bytes"));
    }
    let url = Url::parse(raw).map_err(|e| format!("callback_url is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "callback_url must be http or https, not {:?}",
            url.scheme()
        ));
    }
    if url.host().is_none() {
        return Err("callback_url has no host".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        // They would sit in logs and in the delivery log: the signature authenticates instead.
        return Err("callback_url must not carry a user name or password".into());
    }
    if url.fragment().is_some() {
        return Err("callback_url must not have a #fragment".into());
    }
    Ok(url)
}

/// The addresses `url`'s host stands for, each checked: a literal address as it is, a name as
/// it resolves now. Refused when any of them is refused (a name that also resolves to an
/// internal address could be pinned to it).
pub async fn resolve(url: &Url, allow: &AllowList) -> Result<Vec<SocketAddr>, String> {
    let port = url.port_or_known_default().unwrap_or(443);
    let addrs: Vec<SocketAddr> = match url.host() {
        Some(Host::Ipv4(ip)) => vec![SocketAddr::new(IpAddr::V4(ip), port)],
        Some(Host::Ipv6(ip)) => vec![SocketAddr::new(IpAddr::V6(ip), port)],
        Some(Host::Domain(name)) => {
            let lookup = tokio::net::lookup_host((name, port));
            match tokio::time::timeout(RESOLVE_TIMEOUT, lookup).await {
                Ok(Ok(addrs)) => addrs.collect(),
                Ok(Err(e)) => return Err(format!("cannot resolve {name:?}: {e}")),
                Err(_) => return Err(format!("resolving {name:?} took over {RESOLVE_TIMEOUT:?}")),
            }
        }
        None => return Err("callback_url has no host".into()),
    };
    if addrs.is_empty() {
        return Err("the host resolves to no address".into());
    }
    let literal = !matches!(url.host(), Some(Host::Domain(_)));
    for addr in &addrs {
        if let Some(why) = allow.refusal(addr.ip()) {
            // A name's addresses are not told: they would map the inside of the network.
            return Err(if literal {
                format!(
                    "{} is {why}; ARGUS_WEBHOOK_ALLOW does not list it",
                    addr.ip()
                )
            } else {
                format!("the host resolves to {why}; ARGUS_WEBHOOK_ALLOW does not list it")
            });
        }
    }
    Ok(addrs)
}

/// A URL given with an upload or as a user's default: its shape, and its host's addresses as
/// far as they can be known now (a name that does not resolve yet is let through: every
/// attempt checks again).
pub async fn check(raw: &str, allow: &AllowList) -> Result<String, String> {
    let url = parse(raw)?;
    match resolve(&url, allow).await {
        Ok(_) => Ok(url.to_string()),
        Err(e) if e.starts_with("cannot resolve") || e.starts_with("resolving") => {
            Ok(url.to_string())
        }
        Err(e) => Err(format!("callback_url refused: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn non_public_addresses_are_refused_unless_listed() {
        let none = AllowList::default();
        for refused in [
            "127.0.0.1",
            "127.0.0.2",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "::",
            "::127.0.0.1",
            "64:ff9b:1::a9fe:a9fe",
            "2002:7f00:1::1",
            "2001:0:4136:e378::1",
            "fec0::1",
            "100::1",
            "ff02::1",
        ] {
            assert!(none.refusal(ip(refused)).is_some(), "{refused}");
        }
        for public in [
            "93.184.216.34",
            "8.8.8.8",
            "2606:4700::1111",
            "64:ff9b::808:808",
        ] {
            assert_eq!(none.refusal(ip(public)), None, "{public}");
        }
        let listed = AllowList::parse(&["127.0.0.1".into(), " 10.0.0.0/8 ".into()]).unwrap();
        assert_eq!(listed.refusal(ip("127.0.0.1")), None);
        assert_eq!(listed.refusal(ip("::ffff:127.0.0.1")), None);
        assert_eq!(listed.refusal(ip("10.9.9.9")), None);
        assert!(listed.refusal(ip("127.0.0.2")).is_some());
        assert!(AllowList::parse(&["localhost".into()]).is_err());
    }

    #[test]
    fn urls_are_checked_for_shape() {
        assert!(parse("https://hooks.example.com/argus?x=1").is_ok());
        for (bad, why) in [
            ("ftp://example.com/", "http or https"),
            ("file:///etc/passwd", "http or https"),
            ("https://user:pw@example.com/", "user name or password"),
            ("https://example.com/#x", "fragment"),
            ("not a url", "not a URL"),
        ] {
            let err = parse(bad).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
        assert!(parse(&format!("https://example.com/{}", "a".repeat(3000))).is_err());
    }

    #[tokio::test]
    async fn literal_addresses_are_judged_without_a_lookup() {
        let allow = AllowList::parse(&["127.0.0.1".into()]).unwrap();
        let ok = resolve(&parse("http://127.0.0.1:9/x").unwrap(), &allow).await;
        assert_eq!(ok.unwrap(), vec!["127.0.0.1:9".parse().unwrap()]);
        let err = resolve(&parse("http://127.0.0.2:9/x").unwrap(), &allow).await;
        assert!(err.unwrap_err().contains("loopback"));
        let err = check("http://[::1]:9/", &allow).await.unwrap_err();
        assert!(err.contains("refused"), "{err}");
    }
}
