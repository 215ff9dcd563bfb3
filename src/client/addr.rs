//! Where a server is: `ADDR` split into host and port, resolved to socket
//! addresses, and the one TCP connect (with its timeouts) that both
//! protocols' clients use.

use std::io::{self, BufReader};
#[cfg(not(all(target_feature = "crt-static", target_env = "gnu")))]
use std::net::ToSocketAddrs;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::{mpsc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::error::{Error, Phase, Result};
use crate::proto::DEFAULT_PORT;

/// How long to wait for a connection, and for each read or write after it.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub connect: Duration,
    pub io: Duration,
}

impl Default for Timeouts {
    fn default() -> Timeouts {
        Timeouts {
            connect: Duration::from_secs(10),
            io: Duration::from_secs(30),
        }
    }
}

impl Timeouts {
    /// `--timeout SECS`, "give up on a silent server after SECS": no read
    /// or write waits longer, and neither does the connect, which a host
    /// that drops the SYN (a full backlog, a firewall) leaves hanging. The
    /// connect keeps its shorter default bound when SECS is longer.
    pub fn silent_after(secs: Duration) -> Timeouts {
        let default = Timeouts::default();
        Timeouts {
            connect: secs.min(default.connect),
            io: secs,
        }
    }
}

/// Split `ADDR` into host and port: `HOST`, `HOST:PORT`, `IP`, `IP:PORT`,
/// `[IPv6]`, `[IPv6]:PORT`, or a bare IPv6 address. The port defaults to
/// 1236.
pub fn split_addr(addr: &str) -> Result<(String, u16)> {
    let bad = |why: &str| Error::usage(format!("bad address '{addr}': {why}"));
    if let Some(rest) = addr.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(|| bad("missing ']'"))?;
        let port = match after {
            "" => DEFAULT_PORT,
            p => parse_port(
                p.strip_prefix(':')
                    .ok_or_else(|| bad("expected ':PORT' after ']'"))?,
            )
            .ok_or_else(|| bad("the port must be a number from 0 to 65535"))?,
        };
        return Ok((host.to_string(), port));
    }
    if addr.parse::<IpAddr>().is_ok() {
        return Ok((addr.to_string(), DEFAULT_PORT));
    }
    // A pasted URL has a colon before its host, which read as a bare IPv6
    // address would get the advice to add brackets.
    if addr.contains("://") {
        return Err(bad("give HOST[:PORT], not a URL"));
    }
    match addr.rsplit_once(':') {
        Some((host, _)) if host.contains(':') => {
            Err(bad("put an IPv6 address in brackets: [::1]:1236"))
        }
        Some((host, port)) => {
            let port =
                parse_port(port).ok_or_else(|| bad("the port must be a number from 0 to 65535"))?;
            if host.is_empty() {
                return Err(bad("the host is missing"));
            }
            Ok((host.to_string(), port))
        }
        None if addr.is_empty() => Err(bad("the host is missing")),
        None => Ok((addr.to_string(), DEFAULT_PORT)),
    }
}

fn parse_port(text: &str) -> Option<u16> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// The socket addresses `ADDR` stands for. IP addresses are used as they
/// are, so a box without DNS or NSS configuration never needs a lookup.
pub fn resolve(addr: &str) -> Result<Vec<SocketAddr>> {
    resolve_within(addr, None)
}

/// [`resolve`], giving up on a lookup after `limit`: a box whose
/// resolv.conf names a DNS server it cannot reach (an air-gapped site's
/// leftover) made `ping --timeout 1` wait for the resolver's own timeouts,
/// 10 s and more.
fn resolve_within(addr: &str, limit: Option<Duration>) -> Result<Vec<SocketAddr>> {
    let (host, port) = split_addr(addr)?;
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    // RFC 6761: `localhost` is loopback, with or without /etc/hosts (an
    // empty chroot or a minimal box may have none).
    if host.eq_ignore_ascii_case("localhost") {
        return Ok(vec![
            SocketAddr::new(IpAddr::from([127, 0, 0, 1]), port),
            SocketAddr::new(IpAddr::from(std::net::Ipv6Addr::LOCALHOST), port),
        ]);
    }
    LAST_LOOKUP.remembered(&host, port, Instant::now(), || {
        let found = match limit {
            Some(limit) => lookup_within(&host, port, limit)?,
            None => lookup(&host, port)?,
        };
        if found.is_empty() {
            return Err(Error::Resolve {
                host: host.clone(),
                reason: "no addresses found".into(),
            });
        }
        Ok(found)
    })
}

/// The last name looked up, kept for [`REMEMBERED_FOR`]: `bench` connects
/// once per request, and asked the resolver every time (a DNS query per
/// request measures the DNS server, and loads it); a `get` that retries
/// after a pause still sees a name that changed.
static LAST_LOOKUP: Recent = Recent(Mutex::new(None));

const REMEMBERED_FOR: Duration = Duration::from_secs(10);

struct Recent(Mutex<Option<Lookup>>);

struct Lookup {
    host: String,
    port: u16,
    at: Instant,
    found: Vec<SocketAddr>,
}

impl Recent {
    /// What `host:port` stood for at most [`REMEMBERED_FOR`] before `now`,
    /// else what `look_up` finds now (an error is not remembered).
    fn remembered(
        &self,
        host: &str,
        port: u16,
        now: Instant,
        look_up: impl FnOnce() -> Result<Vec<SocketAddr>>,
    ) -> Result<Vec<SocketAddr>> {
        let fresh = |last: &Lookup| {
            last.host == host && last.port == port && now.duration_since(last.at) < REMEMBERED_FOR
        };
        if let Some(last) = self.lock().as_ref().filter(|last| fresh(last)) {
            return Ok(last.found.clone());
        }
        // Not under the lock: a slow resolver must not hold up the others.
        let found = look_up()?;
        *self.lock() = Some(Lookup {
            host: host.to_string(),
            port,
            at: now,
            found: found.clone(),
        });
        Ok(found)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Lookup>> {
        crate::util::lock(&self.0)
    }
}

/// [`lookup`] on a thread of its own, waited for at most `limit`. One that
/// takes longer is left to finish on its own (getaddrinfo cannot be
/// interrupted); the process has moved on.
fn lookup_within(host: &str, port: u16, limit: Duration) -> Result<Vec<SocketAddr>> {
    let (tx, rx) = mpsc::channel();
    let name = host.to_string();
    let looking = thread::Builder::new()
        .name("resolver".into())
        .spawn(move || tx.send(lookup(&name, port)));
    if looking.is_err() {
        // No thread to be had: wait for the resolver here, as before.
        return lookup(host, port);
    }
    rx.recv_timeout(limit).unwrap_or_else(|_| {
        Err(Error::Resolve {
            host: host.to_string(),
            reason: format!(
                "no answer from the resolver within {limit:?} (on a box without DNS, give an IP address)"
            ),
        })
    })
}

/// A name lookup through the system resolver (getaddrinfo: /etc/hosts, DNS,
/// whatever NSS is configured to do; a static musl build has its own
/// resolver that reads /etc/hosts and /etc/resolv.conf, no NSS).
#[cfg(not(all(target_feature = "crt-static", target_env = "gnu")))]
fn lookup(host: &str, port: u16) -> Result<Vec<SocketAddr>> {
    let found = (host, port).to_socket_addrs().map_err(|e| Error::Resolve {
        host: host.to_string(),
        reason: format!(
            "{} (on a box without DNS, give an IP address)",
            crate::error::describe_io(&e)
        ),
    })?;
    Ok(found.collect())
}

/// The static glibc build resolves names itself, from `localhost` and
/// `/etc/hosts` only. A statically linked glibc would otherwise `dlopen` the
/// host's NSS libraries at run time, which break when their glibc version
/// differs, and getaddrinfo alone costs 131 KB of the 1.5 MiB size budget.
#[cfg(all(target_feature = "crt-static", target_env = "gnu"))]
fn lookup(host: &str, port: u16) -> Result<Vec<SocketAddr>> {
    let hosts = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
    let ips = hosts_lookup(&hosts, host);
    if ips.is_empty() {
        return Err(Error::Resolve {
            host: host.to_string(),
            reason:
                "this static build looks names up only in /etc/hosts (no DNS); give an IP address"
                    .into(),
        });
    }
    Ok(ips
        .into_iter()
        .map(|ip| SocketAddr::new(ip, port))
        .collect())
}

/// The addresses `/etc/hosts` text gives `name` (case-insensitive).
#[cfg_attr(
    not(all(target_feature = "crt-static", target_env = "gnu")),
    allow(dead_code)
)]
fn hosts_lookup(hosts: &str, name: &str) -> Vec<IpAddr> {
    hosts
        .lines()
        .map(|line| line.split('#').next().unwrap_or(""))
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let ip = fields.next()?.parse::<IpAddr>().ok()?;
            fields.any(|n| n.eq_ignore_ascii_case(name)).then_some(ip)
        })
        .collect()
}

/// Connect to the first address of `addr` that accepts, with `TCP_NODELAY`
/// and the read and write timeouts set; the stream comes buffered for
/// reading, as both protocols' conversations read it (writes go to
/// `get_mut()`).
pub fn connect(addr: &str, timeouts: Timeouts) -> Result<(BufReader<TcpStream>, SocketAddr)> {
    let mut failed = Vec::new();
    for target in resolve_within(addr, Some(timeouts.connect))? {
        match TcpStream::connect_timeout(&target, timeouts.connect) {
            Ok(stream) => {
                let setup = || -> io::Result<()> {
                    stream.set_nodelay(true)?;
                    stream.set_read_timeout(Some(timeouts.io))?;
                    stream.set_write_timeout(Some(timeouts.io))
                };
                setup().map_err(|e| Error::network("cannot set up the connection", e))?;
                return Ok((BufReader::with_capacity(8 * 1024, stream), target));
            }
            Err(e) => failed.push((target, e)),
        }
    }
    let (target, source) =
        most_telling(failed).ok_or_else(|| Error::Other(format!("no address for {addr}")))?;
    if matches!(
        source.kind(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
    ) {
        return Err(Error::Timeout {
            phase: Phase::Connect,
        });
    }
    Err(Error::Connect {
        addr: target.to_string(),
        source,
    })
}

/// Of the failed attempts at each address of a name, the one to report:
/// the first that reached its host (refused, timed out) rather than one
/// this machine could not even route (an IPv6 address on a box without
/// IPv6). `localhost` tries 127.0.0.1 then ::1, and a refused IPv4 connect
/// was reported as ::1's 'cannot assign requested address'.
fn most_telling(failed: Vec<(SocketAddr, io::Error)>) -> Option<(SocketAddr, io::Error)> {
    let local = |e: &io::Error| {
        matches!(
            e.kind(),
            io::ErrorKind::NetworkUnreachable
                | io::ErrorKind::HostUnreachable
                | io::ErrorKind::AddrNotAvailable
                | io::ErrorKind::Unsupported
        ) || e.raw_os_error() == Some(97) // EAFNOSUPPORT on Linux
    };
    let reached = failed.iter().position(|(_, e)| !local(e)).unwrap_or(0);
    failed.into_iter().nth(reached)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_split_into_host_and_port() {
        let cases = [
            ("example.org", ("example.org", 1236)),
            ("example.org:99", ("example.org", 99)),
            ("10.0.0.2", ("10.0.0.2", 1236)),
            ("10.0.0.2:0", ("10.0.0.2", 0)),
            ("[::1]:8080", ("::1", 8080)),
            ("[::1]", ("::1", 1236)),
            ("::1", ("::1", 1236)),
            ("fe80::1", ("fe80::1", 1236)),
        ];
        for (input, (host, port)) in cases {
            assert_eq!(
                split_addr(input).unwrap(),
                (host.to_string(), port),
                "{input}"
            );
        }
    }

    #[test]
    fn bad_addresses_are_usage_errors() {
        for input in [
            "",
            ":80",
            "host:",
            "host:x",
            "host:70000",
            "[::1",
            "[::1]x",
            "fe80::1:zz:80",
            "http://10.0.0.2:1236",
        ] {
            let err = split_addr(input).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{input}: {err}");
        }
    }

    #[test]
    fn hosts_files_are_read_like_the_c_library_reads_them() {
        let hosts = "127.0.0.1 localhost\n# 10.0.0.9 commented\n10.0.0.2  box Box.lan # trailing\n::1 ip6-localhost\nbad line\n";
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(hosts_lookup(hosts, "BOX"), vec![ip("10.0.0.2")]);
        assert_eq!(hosts_lookup(hosts, "box.lan"), vec![ip("10.0.0.2")]);
        assert!(hosts_lookup(hosts, "commented").is_empty());
        assert_eq!(hosts_lookup(hosts, "localhost"), vec![ip("127.0.0.1")]);
        assert!(hosts_lookup("", "box").is_empty());
        assert_eq!(hosts_lookup(hosts, "ip6-localhost"), vec![ip("::1")]);
    }

    #[test]
    fn localhost_is_loopback_without_any_lookup() {
        let addrs = resolve("LocalHost:7").unwrap();
        assert_eq!(addrs[0], "127.0.0.1:7".parse::<SocketAddr>().unwrap());
        assert_eq!(addrs[1], "[::1]:7".parse::<SocketAddr>().unwrap());
    }

    #[test]
    fn the_failure_reported_is_the_first_that_reached_its_host() {
        let at = |s: &str| s.parse::<SocketAddr>().unwrap();
        let err = |kind: io::ErrorKind| io::Error::from(kind);
        let pick =
            |failed: Vec<(SocketAddr, io::Error)>| most_telling(failed).map(|(a, e)| (a, e.kind()));
        let (v4, v6) = (at("127.0.0.1:1"), at("[::1]:1"));
        use io::ErrorKind::{AddrNotAvailable, ConnectionRefused, NetworkUnreachable, TimedOut};
        let rows = [
            (
                vec![(v4, err(ConnectionRefused)), (v6, err(AddrNotAvailable))],
                (v4, ConnectionRefused),
            ),
            (
                vec![(v6, err(NetworkUnreachable)), (v4, err(TimedOut))],
                (v4, TimedOut),
            ),
            (
                vec![(v4, err(ConnectionRefused)), (v6, err(ConnectionRefused))],
                (v4, ConnectionRefused),
            ),
            (
                vec![(v4, err(NetworkUnreachable)), (v6, err(AddrNotAvailable))],
                (v4, NetworkUnreachable),
            ),
        ];
        for (failed, want) in rows {
            assert_eq!(pick(failed), Some(want));
        }
        assert!(most_telling(Vec::new()).is_none());
    }

    #[test]
    fn a_timeout_bounds_the_connect_as_well() {
        let short = Timeouts::silent_after(Duration::from_millis(300));
        assert_eq!(
            (short.connect, short.io),
            (Duration::from_millis(300), Duration::from_millis(300))
        );
        let long = Timeouts::silent_after(Duration::from_secs(60));
        assert_eq!(
            (long.connect, long.io),
            (Timeouts::default().connect, Duration::from_secs(60))
        );
    }

    #[test]
    fn ip_addresses_resolve_without_lookup() {
        assert_eq!(
            resolve("127.0.0.1:5").unwrap(),
            vec!["127.0.0.1:5".parse::<SocketAddr>().unwrap()]
        );
    }

    /// A name is looked up once for all the connections made within
    /// REMEMBERED_FOR of it (bench's, one per request), again after that or
    /// for another name or port, and a failed lookup is not remembered.
    #[test]
    fn a_lookup_is_remembered_for_a_while() {
        let recent = Recent(Mutex::new(None));
        let calls = std::cell::Cell::new(0);
        let one: Vec<SocketAddr> = vec!["10.0.0.1:1236".parse().unwrap()];
        let two: Vec<SocketAddr> = vec!["10.0.0.2:1236".parse().unwrap()];
        let look = |answer: &Vec<SocketAddr>| {
            calls.set(calls.get() + 1);
            Ok(answer.clone())
        };
        let t0 = Instant::now();
        let at = |secs: u64| t0 + Duration::from_secs(secs);
        assert_eq!(
            recent.remembered("fs", 1236, at(0), || look(&one)).unwrap(),
            one
        );
        assert_eq!(
            recent.remembered("fs", 1236, at(9), || look(&two)).unwrap(),
            one
        );
        assert_eq!(calls.get(), 1);
        assert_eq!(
            recent
                .remembered("fs", 1236, at(10), || look(&two))
                .unwrap(),
            two
        );
        assert_eq!(
            recent.remembered("fs", 9, at(10), || look(&one)).unwrap(),
            one
        );
        assert_eq!(
            recent.remembered("gs", 9, at(10), || look(&two)).unwrap(),
            two
        );
        assert_eq!(calls.get(), 4);
        let failed = recent.remembered("hs", 9, at(11), || Err(Error::Other("no".into())));
        assert!(failed.is_err());
        assert_eq!(
            recent.remembered("hs", 9, at(11), || look(&one)).unwrap(),
            one
        );
        assert_eq!(calls.get(), 5);
    }
}
