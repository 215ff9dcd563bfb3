//! `serve --allow CIDR`: which peer addresses may connect.

use std::net::IpAddr;

/// One IPv4 or IPv6 prefix, such as `10.0.0.0/8` or `fd00::/8`. A bare
/// address is a prefix of full length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    bits: u8,
}

impl Cidr {
    pub fn parse(text: &str) -> Result<Cidr, String> {
        let bad = |why: &str| format!("bad --allow prefix '{text}': {why}");
        let (addr_text, bits_text) = match text.split_once('/') {
            Some((a, b)) => (a, Some(b)),
            None => (text, None),
        };
        let addr: IpAddr = addr_text
            .parse()
            .map_err(|_| bad("not an IPv4 or IPv6 address"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let bits = match bits_text {
            None => max,
            Some(b) => match b.parse::<u8>() {
                Ok(n) if n <= max && !b.starts_with('+') => n,
                _ => return Err(bad(&format!("the prefix length must be 0 to {max}"))),
            },
        };
        Ok(Cidr { addr, bits })
    }

    /// Whether `peer` lies inside the prefix. An IPv4 peer seen through an
    /// IPv6 socket (`::ffff:10.0.0.1`) is matched as the IPv4 address it is.
    pub fn contains(&self, peer: IpAddr) -> bool {
        let peer = match peer {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(peer, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, peer) {
            (IpAddr::V4(net), IpAddr::V4(p)) => prefix_eq(
                u128::from(u32::from(net)),
                u128::from(u32::from(p)),
                self.bits,
                32,
            ),
            (IpAddr::V6(net), IpAddr::V6(p)) => {
                prefix_eq(u128::from(net), u128::from(p), self.bits, 128)
            }
            _ => false,
        }
    }
}

fn prefix_eq(net: u128, peer: u128, bits: u8, width: u32) -> bool {
    if bits == 0 {
        return true;
    }
    let shift = width - u32::from(bits);
    (net >> shift) == (peer >> shift)
}

/// The `--allow` list: empty allows everyone.
#[derive(Debug, Clone, Default)]
pub struct AllowList(Vec<Cidr>);

impl AllowList {
    pub fn push(&mut self, cidr: Cidr) {
        self.0.push(cidr);
    }

    pub fn permits(&self, peer: IpAddr) -> bool {
        self.0.is_empty() || self.0.iter().any(|c| c.contains(peer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn prefixes_match_inside_and_not_outside() {
        let cases = [
            ("127.0.0.0/8", "127.0.0.1", true),
            ("127.0.0.0/8", "127.255.255.255", true),
            ("127.0.0.0/8", "128.0.0.1", false),
            ("10.1.2.0/23", "10.1.3.9", true),
            ("10.1.2.0/23", "10.1.4.0", false),
            ("192.168.1.7", "192.168.1.7", true),
            ("192.168.1.7", "192.168.1.8", false),
            ("0.0.0.0/0", "8.8.8.8", true),
            ("0.0.0.0/0", "::1", false),
            ("10.0.0.0/8", "::ffff:10.9.9.9", true),
            ("::1/128", "::1", true),
            ("::1", "::2", false),
            ("fd00::/8", "fd12:3456::1", true),
            ("fd00::/8", "fe80::1", false),
            ("2001:db8::/32", "2001:db8:ffff::1", true),
            ("2001:db8::/32", "2001:db9::1", false),
            ("::/0", "2001:db8::1", true),
            ("::/0", "1.2.3.4", false),
        ];
        for (cidr, peer, want) in cases {
            assert_eq!(
                Cidr::parse(cidr).unwrap().contains(ip(peer)),
                want,
                "{cidr} {peer}"
            );
        }
    }

    #[test]
    fn bad_prefixes_are_refused() {
        for bad in [
            "",
            "10.0.0.0/33",
            "::/129",
            "10.0.0/8",
            "host/8",
            "10.0.0.0/",
            "10.0.0.0/+8",
            "10.0.0.0/-1",
        ] {
            assert!(Cidr::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_empty_list_allows_everyone() {
        let mut list = AllowList::default();
        assert!(list.permits(ip("1.2.3.4")));
        list.push(Cidr::parse("10.0.0.0/8").unwrap());
        assert!(!list.permits(ip("1.2.3.4")));
        assert!(list.permits(ip("10.2.3.4")));
    }
}
