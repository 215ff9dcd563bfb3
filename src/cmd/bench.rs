//! `tcpfetch bench`: the command line of a load test. It parses into
//! [`Args`], whose [`Plan`] the library runs ([`bench::measure`]), then
//! prints the report and decides the exit status.

use std::path::PathBuf;

use lexopt::prelude::*;

use crate::bench::{self, Measured, Plan, MAX_CLIENTS};
use crate::client::Protocol;
use crate::error::{Error, Result};
use crate::proto;
use crate::util::cli;

const USAGE: &str = "\
Usage: tcpfetch bench ADDR NAME... --clients N [OPTIONS]

Simulate N concurrent clients downloading NAME from a tcpfetch server and
report how it held up. With several NAMEs each client cycles through them.
Every transfer is verified against the SHA-256 the server announced; the
bytes are discarded unless --save is given.

Options:
  -c, --clients N       concurrent clients, one thread each (required)
  -n, --requests M      requests per client (default 1)
  -d, --duration SECS   keep requesting for SECS instead
  --keep-alive          one connection per client for all its requests (a new
                        one after an error); default: a connection per request
  --rate R              open loop: R requests per second in total, each one's
                        latency measured from its scheduled start
  --log FILE            write one JSON line per request to FILE
  --json                print the result as one JSON object
  --save DIR            keep each file as DIR/CLIENT-REQUEST-NAME
  --timeout SECS        give up on a silent server after SECS (default 30)
  --retries N           retry a transient failure (refused, reset, timeout,
                        busy) up to N times within the request (default 0)
  --key-file FILE       authenticate every connection with the shared key
                        (and check every header's MAC)
  --legacy              load-test an old Python tcp-server: NAME is a file
                        number (1, 2, ...) or a listed name; one session per
                        request
  -h, --help            show this help

Exit status: 0 every request verified, 1 some request failed, 2 usage error,
3 some transfer was corrupt.
";

#[derive(Debug)]
pub struct Args {
    pub plan: Plan,
    /// `--json`: the report as one JSON object.
    pub json: bool,
}

pub fn parse(parser: &mut lexopt::Parser) -> Result<Option<Args>> {
    let mut positional = Vec::new();
    let mut clients = None;
    let mut requests = None;
    let mut args = Plan::default();
    let mut json = false;
    let mut key = None;
    let mut legacy = false;
    while let Some(arg) = parser.next()? {
        if let Some(done) = cli::common_flag(&arg, USAGE) {
            return done.map(|()| None);
        }
        match arg {
            Short('c') | Long("clients") => clients = Some(cli::number_value(parser, "--clients")?),
            Short('n') | Long("requests") => {
                requests = Some(cli::number_value(parser, "--requests")?)
            }
            Short('d') | Long("duration") => {
                args.duration = Some(cli::seconds_value(parser, "--duration")?)
            }
            Long("keep-alive") => args.keep_alive = true,
            Long("rate") => {
                let rate: f64 = cli::number_value(parser, "--rate")?;
                if !(0.001..=1e9).contains(&rate) {
                    return Err(Error::usage(
                        "--rate needs a number of requests per second from 0.001 to 1e9",
                    ));
                }
                args.rate = Some(rate);
            }
            Long("log") => args.log = Some(PathBuf::from(parser.value()?)),
            Long("json") => json = true,
            Long("save") => args.save = Some(PathBuf::from(parser.value()?)),
            Long("timeout") => args.peer.timeouts.io = cli::seconds_value(parser, "--timeout")?,
            Long("retries") => args.retries = cli::number_value(parser, "--retries")?,
            Long("key-file") => {
                key = Some(crate::proto::auth::Key::load(parser.value()?.as_ref())?)
            }
            Long("legacy") => legacy = true,
            Value(v) => positional.push(v.string()?),
            _ => return Err(arg.unexpected().into()),
        }
    }
    let mut positional = positional.into_iter();
    args.peer.addr = cli::required(positional.next(), "ADDR", USAGE)?;
    args.peer.protocol = Protocol::from_flags(legacy, key);
    args.names = positional.collect();
    if args.names.is_empty() {
        return Err(Error::usage(format!(
            "missing NAME (the file to download)\n\n{USAGE}"
        )));
    }
    for name in &args.names {
        proto::check_name(name).map_err(|why| Error::usage(format!("bad NAME: {why}")))?;
        if args.save.is_some() {
            crate::fetch::local_path(name, None)?;
        }
    }
    args.clients = clients.ok_or_else(|| Error::usage("--clients N is needed"))?;
    if !(1..=MAX_CLIENTS).contains(&args.clients) {
        return Err(Error::usage(format!(
            "--clients must be from 1 to {MAX_CLIENTS}"
        )));
    }
    match (requests, args.duration) {
        (Some(_), Some(_)) => {
            return Err(Error::usage(
                "give either --requests or --duration, not both",
            ))
        }
        (Some(0), None) => return Err(Error::usage("--requests must be at least 1")),
        (Some(m), None) => args.requests = m,
        _ => {}
    }
    Ok(Some(Args { plan: args, json }))
}

pub fn run(args: Args) -> Result<()> {
    let plan = &args.plan;
    let measured = bench::measure(plan, None)?;
    cli::print_text(&if args.json {
        measured.json(plan)
    } else {
        measured.text(plan)
    })?;
    let Measured {
        stats,
        first_error,
        log_error,
        ..
    } = measured;
    let requests = stats.requests();
    let first = first_error
        .as_ref()
        .map_or_else(String::new, |e| format!("; the first: {e}"));
    if stats.corrupt > 0 {
        return Err(Error::Integrity(format!(
            "{} of {requests} transfers were corrupt{first}",
            stats.corrupt
        )));
    }
    if stats.failed() > 0 {
        return Err(Error::Other(format!(
            "{} of {requests} requests failed{first}",
            stats.failed()
        )));
    }
    if let (Some(e), Some(path)) = (log_error, &plan.log) {
        return Err(Error::local(
            format!("cannot write '{}'", path.display()),
            e,
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn parse_args(args: &[&str]) -> Result<Args> {
        parse(&mut lexopt::Parser::from_args(args.iter().copied())).map(|a| a.unwrap())
    }

    #[test]
    fn flags_parse() {
        let a = parse_args(&[
            "h:1",
            "a.bin",
            "b.bin",
            "--clients",
            "50",
            "-n",
            "3",
            "--keep-alive",
            "--rate",
            "12.5",
            "--log",
            "x.jsonl",
            "--json",
            "--save",
            "out",
            "--timeout",
            "2",
            "--retries",
            "4",
        ])
        .unwrap();
        assert!(a.json);
        let a = a.plan;
        assert_eq!(a.peer.addr, "h:1");
        assert_eq!(a.names, ["a.bin", "b.bin"]);
        assert_eq!((a.clients, a.requests, a.retries), (50, 3, 4));
        assert!(a.keep_alive);
        assert_eq!(a.rate, Some(12.5));
        assert_eq!(a.peer.timeouts.io, Duration::from_secs(2));
        assert_eq!(a.log, Some(PathBuf::from("x.jsonl")));
        let a = parse_args(&["h", "f", "-c", "2", "-d", "1.5"])
            .unwrap()
            .plan;
        assert_eq!(a.duration, Some(Duration::from_millis(1500)));
        assert_eq!(a.requests, 1);
    }

    #[test]
    fn bad_command_lines_are_usage_errors() {
        let cases: &[&[&str]] = &[
            &[],
            &["h"],
            &["h", "f"],
            &["h", "f", "--clients", "0"],
            &["h", "f", "--clients", "10001"],
            &["h", "f", "--clients", "x"],
            &["h", "f", "-c", "1", "--requests", "0"],
            &["h", "f", "-c", "1", "-n", "2", "-d", "1"],
            &["h", "f", "-c", "1", "--rate", "0"],
            &["h", "f", "-c", "1", "--rate", "-3"],
            &["h", "f", "-c", "1", "--rate", "NaN"],
            &["h", "f", "-c", "1", "--duration", "0"],
            &["h", "f", "-c", "1", "--bogus"],
            &["h", "", "-c", "1"],
            &["h", "a\nb", "-c", "1"],
            &["h", "dir/", "-c", "1", "--save", "out"],
            &["h", "..", "-c", "1", "--save", "out"],
        ];
        for args in cases {
            let err = parse_args(args).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{args:?}: {err}");
        }
    }
}
