//! `tcpfetch serve [DIR]`: the command line of the server; the server
//! itself is `crate::serve`.

use std::path::PathBuf;
use std::time::Duration;

use lexopt::prelude::*;

use crate::error::{Error, Result};
use crate::proto::auth::Key;
use crate::proto::DEFAULT_PORT;
use crate::serve::access::{AllowList, Cidr};
use crate::serve::Config;
use crate::util::cli;

pub const USAGE: &str = "\
Usage: tcpfetch serve [DIR] [OPTIONS]

Serve the regular files under DIR (default: the current directory), read-only.
Prints 'listening on IP:PORT' as its first line on stdout, then one access-log
line per request on stderr.

Options:
  --listen ADDR          address to listen on (default 0.0.0.0:1236; port 0
                         picks a free port)
  --max-clients N        most connections served at once; more get 'ERR busy'
                         (default 1024; lowered, with a note at start, to
                         what the open-file limit leaves room for)
  --idle-timeout SECS    drop a client that sends or reads nothing for this
                         long, or takes longer to send one request (default 30)
  --hidden               also serve dotfiles and dot-directories
  --allow CIDR           accept connections only from these prefixes
                         (repeatable; IPv4 or IPv6, e.g. 10.0.0.0/8)
  --key-file FILE        require clients to prove they hold this shared key
                         (at least 32 bytes, mode 600) and authenticate every
                         digest sent
  --max-rate RATE        cap each connection's send rate, bytes per second
                         with an optional k, M or G suffix
  --precompute           hash every file in the background at start-up
                         (progress on stderr), so first GETs start at once
  --quiet-ping           do not log PING requests (load-balancer health
                         checks), only everything else
  --legacy-listen ADDR   also answer the old Python tcp-server protocol on
                         ADDR (files numbered 1..N in LIST order); prints
                         'legacy listening on IP:PORT' as the second line
  -q, --quiet            no access log
  -h, --help             show this help
";

/// `None` when the arguments asked for `--help` and it has been printed.
pub fn parse(parser: &mut lexopt::Parser) -> Result<Option<Config>> {
    let mut config = Config {
        dir: PathBuf::from("."),
        listen: format!("0.0.0.0:{DEFAULT_PORT}"),
        max_clients: 1024,
        idle_timeout: Duration::from_secs(30),
        hidden: false,
        quiet: false,
        allow: AllowList::default(),
        key: None,
        max_rate: None,
        precompute: false,
        quiet_ping: false,
        legacy_listen: None,
    };
    let mut dir = None;
    while let Some(arg) = parser.next()? {
        if let Some(done) = cli::common_flag(&arg, USAGE) {
            return done.map(|()| None);
        }
        match arg {
            Long("listen") => config.listen = cli::string_value(parser)?,
            Long("max-clients") => {
                config.max_clients = cli::number_value(parser, "--max-clients")?;
                if config.max_clients == 0 {
                    return Err(Error::usage("--max-clients must be at least 1"));
                }
            }
            Long("idle-timeout") => {
                config.idle_timeout = cli::seconds_value(parser, "--idle-timeout")?
            }
            Long("hidden") => config.hidden = true,
            Long("precompute") => config.precompute = true,
            Long("quiet-ping") => config.quiet_ping = true,
            Long("allow") => config
                .allow
                .push(Cidr::parse(&cli::string_value(parser)?).map_err(Error::Usage)?),
            Long("key-file") => config.key = Some(Key::load(&PathBuf::from(parser.value()?))?),
            Long("max-rate") => {
                config.max_rate = Some(
                    crate::util::pace::parse_rate(&cli::string_value(parser)?)
                        .map_err(Error::Usage)?,
                )
            }
            Short('q') | Long("quiet") => config.quiet = true,
            Long("legacy-listen") => config.legacy_listen = Some(cli::string_value(parser)?),
            Value(v) if dir.is_none() => dir = Some(PathBuf::from(v)),
            _ => return Err(arg.unexpected().into()),
        }
    }
    if let Some(dir) = dir {
        config.dir = dir;
    }
    if config.key.is_some() && config.legacy_listen.is_some() {
        // The old protocol has no way to authenticate: a legacy listener
        // would serve every file to anyone, key or not.
        return Err(Error::usage(
            "--legacy-listen cannot be combined with --key-file: the old protocol cannot authenticate",
        ));
    }
    Ok(Some(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_args(args: &[&str]) -> Result<Config> {
        parse(&mut lexopt::Parser::from_args(args.iter().copied())).map(|c| c.unwrap())
    }

    #[test]
    fn defaults_and_flags() {
        let c = parse_args(&[]).unwrap();
        assert_eq!(c.listen, "0.0.0.0:1236");
        assert_eq!(c.max_clients, 1024);
        assert_eq!(c.idle_timeout, Duration::from_secs(30));
        let c = parse_args(&[
            "dir",
            "--listen",
            "127.0.0.1:0",
            "--max-clients",
            "5",
            "--idle-timeout",
            "1.5",
            "-q",
        ])
        .unwrap();
        assert_eq!(c.dir, PathBuf::from("dir"));
        assert_eq!(c.max_clients, 5);
        assert_eq!(c.idle_timeout, Duration::from_millis(1500));
        assert!(c.quiet);
    }

    #[test]
    fn bad_flags_are_usage_errors() {
        for args in [
            &["--max-clients", "0"][..],
            &["--max-clients", "x"],
            &["a", "b"],
            &["--bogus"],
        ] {
            assert_eq!(parse_args(args).unwrap_err().exit_code(), 2, "{args:?}");
        }
    }
}
