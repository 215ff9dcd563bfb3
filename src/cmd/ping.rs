//! `tcpfetch ping ADDR`: is a tcpfetch server there, which version, how fast.

use std::time::Instant;

use lexopt::prelude::*;

use crate::client::{Peer, Protocol, Source, Timeouts};
use crate::error::Result;
use crate::util::cli;

const USAGE: &str = "\
Usage: tcpfetch ping ADDR [--count N] [--legacy]

Connect to a tcpfetch server, send PING, and print its version and the
round-trip time. Exits 0 only when a tcpfetch server answered.

Options:
  -c, --count N   send N pings on one connection (default 1)
  --key-file FILE   authenticate with the server's shared key
  --legacy        send the old Python tcp-server's TEST and expect OK
  -h, --help      show this help
";

#[derive(Debug)]
pub struct Args {
    /// ADDR, `--key-file` and `--legacy`.
    pub peer: Peer,
    pub count: u32,
}

pub fn parse(parser: &mut lexopt::Parser) -> Result<Option<Args>> {
    let mut addr = None;
    let mut count = 1;
    let mut key = None;
    let mut legacy = false;
    while let Some(arg) = parser.next()? {
        if let Some(done) = cli::common_flag(&arg, USAGE) {
            return done.map(|()| None);
        }
        match arg {
            Long("key-file") => {
                key = Some(crate::proto::auth::Key::load(parser.value()?.as_ref())?)
            }
            Short('c') | Long("count") => count = cli::number_value(parser, "--count")?,
            Long("legacy") => legacy = true,
            Value(v) if addr.is_none() => addr = Some(v.string()?),
            _ => return Err(arg.unexpected().into()),
        }
    }
    Ok(Some(Args {
        peer: Peer {
            addr: cli::required(addr, "ADDR", USAGE)?,
            timeouts: Timeouts::default(),
            protocol: Protocol::from_flags(legacy, key),
        },
        count: count.max(1),
    }))
}

/// Every ping on one connection, or on one each when the server closes
/// after answering (the old protocol).
pub fn run(args: Args) -> Result<()> {
    let mut open: Option<(Box<dyn Source>, f64)> = None;
    for _ in 0..args.count {
        let (source, connect_ms) = match open.take() {
            Some(kept) => open.insert(kept),
            None => {
                let started = Instant::now();
                let source = args.peer.open()?;
                open.insert((source, ms(started)))
            }
        };
        let sent = Instant::now();
        let pong = source.ping()?;
        cli::print_text(&format!(
            "{} at {}: {}time={:.3} ms (connect {connect_ms:.3} ms)\n",
            pong.server,
            source.peer(),
            pong.answer,
            ms(sent)
        ))?;
        if !source.keeps_connection() {
            open = None;
        }
    }
    Ok(())
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}
