//! `tcpfetch ping ADDR`: is a tcpfetch server there, which version, how fast.

use std::time::Instant;

use lexopt::prelude::*;

use crate::client::{Connection, Timeouts};
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
    pub addr: String,
    pub key: Option<crate::proto::auth::Key>,
    pub count: u32,
    /// `--legacy`: speak the old Python tcp-server protocol (src/legacy).
    pub legacy: bool,
}

pub fn parse(parser: &mut lexopt::Parser) -> Result<Option<Args>> {
    let mut addr = None;
    let mut count = 1;
    let mut key = None;
    let mut legacy = false; // legacy hook
    while let Some(arg) = parser.next()? {
        if let Some(done) = cli::common_flag(&arg, USAGE) {
            return done.map(|()| None);
        }
        match arg {
            Long("key-file") => {
                key = Some(crate::proto::auth::Key::load(parser.value()?.as_ref())?)
            }
            Short('c') | Long("count") => count = cli::number_value(parser, "--count")?,
            Long("legacy") => legacy = true, // legacy hook
            Value(v) if addr.is_none() => addr = Some(v.string()?),
            _ => return Err(arg.unexpected().into()),
        }
    }
    Ok(Some(Args {
        addr: cli::required(addr, "ADDR", USAGE)?,
        key,
        count: count.max(1),
        legacy,
    }))
}

pub fn run(args: Args) -> Result<()> {
    if args.legacy {
        return crate::client::legacy::ping(&args); // legacy hook
    }
    let started = Instant::now();
    let mut conn = Connection::open_with_key(&args.addr, Timeouts::default(), args.key.as_ref())?;
    let connect_ms = ms(started);
    for _ in 0..args.count {
        let sent = Instant::now();
        let version = conn.ping()?;
        cli::print_text(&format!(
            "{} at {}: time={:.3} ms (connect {connect_ms:.3} ms)\n",
            crate::util::format::visible(&version),
            conn.peer,
            ms(sent)
        ))?;
    }
    Ok(())
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}
