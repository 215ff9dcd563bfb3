//! `tcpfetch bench`: the command line of a load test. It parses into
//! [`Args`], whose [`Plan`] the library runs ([`bench::measure`]), then
//! prints the report and decides the exit status.

use std::path::PathBuf;

use lexopt::prelude::*;

use crate::bench::stats::Results;
use crate::bench::{self, load, Measured, Plan, MAX_CLIENTS};
use crate::client::{ProtocolFlags, Timeouts};
use crate::error::{Error, ExitKind, Result};
use crate::proto;
use crate::util::{cli, format};

pub const USAGE: &str = "\
Usage: tcpfetch bench ADDR NAME... --clients N [OPTIONS]
       tcpfetch bench --merge RUN.json... [--json] [--report FILE.html]

Simulate N concurrent clients downloading NAME from a tcpfetch server and
report how it held up. With several NAMEs each client cycles through them.
Every transfer is verified against the SHA-256 the server announced; the
bytes are discarded unless --save is given.

Options:
  -c, --clients N       concurrent clients, one thread each (required)
  -n, --requests M      requests per client (default 1)
  --total M             M requests in all, shared by the clients (instead
                        of --requests)
  -d, --duration SECS   keep requesting for SECS instead
  --warmup K            K requests per client before the measured run, not
                        counted
  --keep-alive          one connection per client for all its requests (a new
                        one after an error); default: a connection per request
  --rate R              open loop: R requests per second in total, each one's
                        latency measured from its scheduled start
  --log FILE            write one JSON line per request to FILE
  --json                print the result as one JSON object (with the
                        histograms and the timeline, for --merge)
  --report FILE         also write the report as a self-contained HTML page
  --test-id ID          name the run ID (letters, digits, '.', '_', '-'):
                        runs on several hosts share one, to be merged
  --save DIR            keep each file as DIR/CLIENT-REQUEST-NAME
  --timeout SECS        give up on a silent server after SECS (default 30)
  --retries N           retry a transient failure (refused, reset, timeout,
                        busy) up to N times within the request (default 0)
  --key-file FILE       authenticate every connection with the shared key
                        (and check every header's MAC)
  --legacy              load-test an old Python tcp-server: NAME is a file
                        number (1, 2, ...) or a listed name; one session per
                        request
  --merge               read RUN.json files (from bench --json) and report
                        them as one run: counts add, percentiles come from
                        the merged histograms
  -h, --help            show this help

Exit status: 0 every request verified, 1 some request failed, 2 usage error
(with --merge: a RUN.json that cannot be read or merged), 3 some transfer
was corrupt.
";

/// The longest `--test-id`.
const MAX_TEST_ID: usize = 64;

#[derive(Debug)]
pub struct Args {
    pub plan: Plan,
    /// `--json`: the report as one JSON object.
    pub json: bool,
    /// `--report FILE`: the HTML report.
    pub report: Option<PathBuf>,
    /// `--merge`: the runs to merge instead of running one.
    pub merge: Option<Vec<PathBuf>>,
}

pub fn parse(parser: &mut lexopt::Parser) -> Result<Option<Args>> {
    let mut positional = Vec::new();
    let mut clients = None;
    let mut requests = None;
    let mut args = Plan::default();
    let mut json = false;
    let mut report = None;
    let mut merge = false;
    let mut run_flags = Vec::new();
    let mut flags = ProtocolFlags::default();
    while let Some(arg) = parser.next()? {
        if let Some(done) = cli::common_flag(&arg, USAGE) {
            return done.map(|()| None);
        }
        match &arg {
            Long("json") | Long("report") | Long("merge") | Value(_) => {}
            Short(c) => run_flags.push(format!("-{c}")),
            Long(l) => run_flags.push(format!("--{l}")),
        }
        match arg {
            Short('c') | Long("clients") => clients = Some(cli::number_value(parser, "--clients")?),
            Short('n') | Long("requests") => {
                requests = Some(cli::number_value(parser, "--requests")?)
            }
            Long("total") => args.total = Some(cli::number_value(parser, "--total")?),
            Short('d') | Long("duration") => {
                args.duration = Some(cli::seconds_value(parser, "--duration")?)
            }
            Long("warmup") => args.warmup = cli::number_value(parser, "--warmup")?,
            Long("keep-alive") => args.keep_alive = true,
            Long("rate") => args.rate = Some(rate_value(parser)?),
            Long("log") => args.log = Some(PathBuf::from(parser.value()?)),
            Long("json") => json = true,
            Long("report") => report = Some(PathBuf::from(parser.value()?)),
            Long("merge") => merge = true,
            Long("test-id") => args.test_id = Some(test_id(parser.value()?.string()?)?),
            Long("save") => args.save = Some(PathBuf::from(parser.value()?)),
            Long("timeout") => {
                args.peer.timeouts =
                    Timeouts::silent_after(cli::seconds_value(parser, "--timeout")?)
            }
            Long("retries") => args.retries = cli::number_value(parser, "--retries")?,
            Long("key-file") => flags.key_file(parser)?,
            Long("legacy") => flags.legacy = true,
            Value(v) => positional.push(v),
            _ => return Err(arg.unexpected().into()),
        }
    }
    if merge {
        if let Some(flag) = run_flags.first() {
            return Err(Error::usage(format!(
                "{flag} is for a run, not for --merge (which takes RUN.json files, --json and --report)"
            )));
        }
        if positional.is_empty() {
            return Err(cli::missing("RUN.json", USAGE));
        }
        let merge = Some(positional.into_iter().map(PathBuf::from).collect());
        return Ok(Some(Args {
            plan: args,
            json,
            report,
            merge,
        }));
    }
    args.peer.protocol = flags.protocol();
    finish_plan(&mut args, positional, clients, requests)?;
    Ok(Some(Args {
        plan: args,
        json,
        report,
        merge: None,
    }))
}

/// Fill in and check what a run needs beyond its flags: the positional
/// ADDR and NAMEs, the client count and one way of ending.
fn finish_plan(
    args: &mut Plan,
    positional: Vec<std::ffi::OsString>,
    clients: Option<usize>,
    requests: Option<u64>,
) -> Result<()> {
    let mut positional = positional
        .into_iter()
        .map(|v| v.string())
        .collect::<Result<Vec<_>, _>>()?
        .into_iter();
    args.peer.addr = cli::required(positional.next(), "ADDR", USAGE)?;
    args.names = positional.collect();
    if args.names.is_empty() {
        return Err(cli::missing("NAME (the file to download)", USAGE));
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
    match (requests, args.total, args.duration) {
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) | (_, Some(_), Some(_)) => {
            return Err(Error::usage(
                "give one of --requests, --total and --duration",
            ))
        }
        (Some(0), _, _) => return Err(Error::usage("--requests must be at least 1")),
        (_, Some(0), _) => return Err(Error::usage("--total must be at least 1")),
        (Some(m), _, _) => args.requests = m,
        _ => {}
    }
    Ok(())
}

fn rate_value(parser: &mut lexopt::Parser) -> Result<f64> {
    let rate: f64 = cli::number_value(parser, "--rate")?;
    if !(0.001..=1e9).contains(&rate) {
        return Err(Error::usage(
            "--rate needs a number of requests per second from 0.001 to 1e9",
        ));
    }
    Ok(rate)
}

/// A `--test-id`: it lands in file names and logs, so plain characters only.
fn test_id(id: String) -> Result<String> {
    let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if id.is_empty() || id.len() > MAX_TEST_ID || !id.chars().all(plain) {
        return Err(Error::usage(format!(
            "--test-id needs 1 to {MAX_TEST_ID} letters, digits, '.', '_' or '-'"
        )));
    }
    Ok(id)
}

pub fn run(args: Args) -> Result<()> {
    // A run opens its report first, as it does its --log: a path that
    // cannot be written is better known before a long run than after.
    let report = match (&args.report, &args.merge) {
        (Some(path), None) => Some(create(path)?),
        _ => None,
    };
    let (results, log_error) = match &args.merge {
        Some(paths) => match load::merge_files(paths) {
            Ok(results) => (results, None),
            Err(e) => {
                // Exit 2 like a usage error, without its hint: the command
                // line was fine, its files were not.
                // The message quotes the file, which may hold anything.
                eprintln!("tcpfetch: {}", format::visible(&e));
                return Err(Error::Reported(ExitKind::Usage));
            }
        },
        None => {
            let Measured { results, log_error } = bench::measure(&args.plan, None)?;
            (results, log_error)
        }
    };
    // Every output is attempted and every one that fails is told, but the
    // requests decide the exit: a corrupt transfer is exit 3 even when its
    // report could not be written, and a log cut short by a full disk is
    // said even when some request failed (the verdict's own message).
    let mut unwritten = Vec::new();
    let printed = cli::print_text(&if args.json {
        bench::json::json(&results)
    } else {
        bench::text(&results)
    });
    unwritten.extend(printed.err());
    if let Some(path) = &args.report {
        let written = match report {
            Some(file) => Ok(file),
            None => create(path),
        }
        .and_then(|file| {
            std::io::Write::write_all(&mut &file, bench::html::report(&results).as_bytes())
                .map_err(|e| cannot_write(path, e))
        });
        unwritten.extend(written.err());
    }
    if let (Some(e), Some(path)) = (log_error, &args.plan.log) {
        unwritten.push(cannot_write(path, e));
    }
    unwritten.extend(verdict(&results).err());
    // The last is the verdict when there is one: main prints it (with its
    // hint) and exits with its code; the others are said before it.
    let last = unwritten.pop();
    for e in unwritten {
        eprintln!("tcpfetch: {e}");
    }
    last.map_or(Ok(()), Err)
}

fn create(path: &std::path::Path) -> Result<std::fs::File> {
    std::fs::File::create(path).map_err(|e| cannot_write(path, e))
}

/// The report or the log could not be created or written.
fn cannot_write(path: &std::path::Path, e: std::io::Error) -> Error {
    Error::local(format!("cannot write '{}'", path.display()), e)
}

/// How a run (or merged runs) ends: 3 if a transfer was corrupt, 1 if a
/// request failed.
fn verdict(results: &Results) -> Result<()> {
    let stats = &results.stats;
    let requests = stats.requests();
    let first = results.first_error.as_ref().map_or_else(String::new, |e| {
        format!("; the first: {}", format::visible(e))
    });
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
        let a = parse_args(&[
            "h",
            "f",
            "-c",
            "2",
            "--total",
            "9",
            "--warmup",
            "3",
            "--test-id",
            "run-1.a",
            "--report",
            "r.html",
        ])
        .unwrap();
        assert_eq!(a.report, Some(PathBuf::from("r.html")));
        let a = a.plan;
        assert_eq!((a.total, a.warmup), (Some(9), 3));
        assert_eq!(a.test_id.as_deref(), Some("run-1.a"));
        let a = parse_args(&["--merge", "a.json", "b.json", "--json"]).unwrap();
        assert_eq!(
            a.merge.unwrap(),
            [PathBuf::from("a.json"), PathBuf::from("b.json")]
        );
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
