//! `tcpfetch ping ADDR`: is a tcpfetch server there, which version, how fast.

use std::time::Instant;

use lexopt::prelude::*;

use crate::client::{Peer, ProtocolFlags, Source, Timeouts};
use crate::error::Result;
use crate::util::cli;

pub const USAGE: &str = "\
Usage: tcpfetch ping ADDR [--count N] [--timeout SECS] [--key-file FILE] [--legacy]

Connect to a tcpfetch server, send PING, and print its version and the
round-trip time. With --count N above 1, a last line sums up the round
trips as ping(8) does (min/avg/max/mdev). Exits 0 only when a tcpfetch
server answered every ping.

Options:
  -c, --count N     send N pings on one connection (default 1)
  --timeout SECS    give up on a silent server after SECS (default 30)
  --key-file FILE   authenticate with the server's shared key
  --legacy          send the old Python tcp-server's TEST and expect OK
  -h, --help        show this help
";

#[derive(Debug)]
pub struct Args {
    /// ADDR, `--key-file` and `--legacy`.
    pub peer: Peer,
    pub count: usize,
}

/// The most pings one run sends.
const MAX_COUNT: usize = 1_000_000;

pub fn parse(parser: &mut lexopt::Parser) -> Result<Option<Args>> {
    let mut addr = None;
    let mut count = 1;
    let mut timeouts = Timeouts::default();
    let mut flags = ProtocolFlags::default();
    while let Some(arg) = parser.next()? {
        if let Some(done) = cli::common_flag(&arg, USAGE) {
            return done.map(|()| None);
        }
        match arg {
            Short('c') | Long("count") => {
                count = cli::count_value(parser, "--count", MAX_COUNT)?.get()
            }
            Long("timeout") => {
                timeouts = Timeouts::silent_after(cli::seconds_value(parser, "--timeout")?)
            }
            Long("key-file") => flags.key_file(parser)?,
            Long("legacy") => flags.legacy = true,
            Value(v) if addr.is_none() => addr = Some(v.string()?),
            _ => return Err(arg.unexpected().into()),
        }
    }
    Ok(Some(Args {
        peer: Peer {
            addr: cli::required(addr, "ADDR", USAGE)?,
            timeouts,
            protocol: flags.protocol(),
        },
        count,
    }))
}

/// Every ping on one connection, or on one each when the server closes
/// after answering (the old protocol). The first failure ends the run; with
/// --count above 1 and some pings answered, the summary still closes it,
/// counting the one that failed as sent.
pub fn run(args: Args) -> Result<()> {
    let mut open: Option<(Box<dyn Source>, f64)> = None;
    let mut times = Vec::with_capacity(args.count.min(4096));
    let mut answered_by = None;
    let mut failed = None;
    for _ in 0..args.count {
        if let Err(e) = ping_once(&args.peer, &mut open, &mut times, &mut answered_by) {
            failed = Some(e);
            break;
        }
    }
    let sent = times.len() + usize::from(failed.is_some());
    let summed = match answered_by {
        Some(peer) if sent > 1 => cli::print_text(&summary(&peer.to_string(), sent, &times)),
        _ => Ok(()),
    };
    failed.map_or(summed, Err)
}

/// One ping, on the kept connection or a new one, and its line.
fn ping_once(
    peer: &Peer,
    open: &mut Option<(Box<dyn Source>, f64)>,
    times: &mut Vec<f64>,
    answered_by: &mut Option<std::net::SocketAddr>,
) -> Result<()> {
    let (source, connect_ms) = match open.take() {
        Some(kept) => open.insert(kept),
        None => {
            let started = Instant::now();
            let source = peer.open()?;
            open.insert((source, ms(started)))
        }
    };
    let sent = Instant::now();
    let pong = source.ping()?;
    let time = ms(sent);
    times.push(time);
    *answered_by = Some(source.peer());
    cli::print_text(&format!(
        "{} at {}: {}time={time:.3} ms (connect {connect_ms:.3} ms)\n",
        pong.server,
        source.peer(),
        pong.answer,
    ))?;
    if !source.keeps_connection() {
        *open = None;
    }
    Ok(())
}

/// ping(8)'s closing lines: how many answered, and the round trips'
/// minimum, mean, maximum and mean deviation (its `mdev`, the standard
/// deviation), in milliseconds.
fn summary(peer: &str, sent: usize, times: &[f64]) -> String {
    let n = times.len() as f64;
    let min = times.iter().copied().fold(f64::INFINITY, f64::min);
    let max = times.iter().copied().fold(0.0, f64::max);
    let avg = times.iter().sum::<f64>() / n;
    let mdev = (times.iter().map(|t| t * t).sum::<f64>() / n - avg * avg)
        .max(0.0)
        .sqrt();
    format!(
        "--- {peer} ping statistics ---\n{sent} pings sent, {} answered\nrtt min/avg/max/mdev = {min:.3}/{avg:.3}/{max:.3}/{mdev:.3} ms\n",
        times.len()
    )
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_is_ping_8s() {
        let text = summary("127.0.0.1:1", 3, &[1.0, 2.0, 3.0]);
        assert_eq!(
            text.lines().last(),
            Some("rtt min/avg/max/mdev = 1.000/2.000/3.000/0.816 ms")
        );
        assert!(text.starts_with("--- 127.0.0.1:1 ping statistics ---\n3 pings sent, 3 answered\n"));
    }

    #[test]
    fn a_count_below_one_is_a_usage_error() {
        for bad in [
            &["h", "-c", "0"][..],
            &["h", "--count", "-1"],
            &["h", "--timeout", "0"],
        ] {
            let err = parse(&mut lexopt::Parser::from_args(bad.iter().copied())).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{bad:?}");
        }
    }
}
