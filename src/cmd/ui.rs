//! `tcpfetch ui`: the command line of the browser page; the page and its
//! server are `crate::ui`.

use std::path::PathBuf;

use lexopt::prelude::*;

use crate::client;
use crate::error::{Error, Result};
use crate::util::cli;

pub const USAGE: &str = "\
Usage: tcpfetch ui [--server ADDR] [--listen ADDR] [--dir DOWNLOADS]

Serve a page to test a tcpfetch server, pick and download its files
(verified, into DOWNLOADS) and run load tests, from any browser. The first
line printed is the page's address.

Options:
  --server ADDR      the tcpfetch server the page starts with
  --listen ADDR      where the page is served (default 127.0.0.1:8080; port 0
                     picks a free one). Anyone who can reach it can make this
                     machine download files: keep it on loopback
  --dir DOWNLOADS    where downloads are saved (default: the current
                     directory)
  -h, --help         show this help
";

#[derive(Debug)]
pub struct Args {
    pub server: Option<String>,
    pub listen: String,
    pub dir: PathBuf,
}

pub fn parse(parser: &mut lexopt::Parser) -> Result<Option<Args>> {
    let mut args = Args {
        server: None,
        listen: "127.0.0.1:8080".to_string(),
        dir: PathBuf::from("."),
    };
    while let Some(arg) = parser.next()? {
        if let Some(done) = cli::common_flag(&arg, USAGE) {
            return done.map(|()| None);
        }
        match arg {
            Long("server") => args.server = Some(cli::string_value(parser)?),
            Long("listen") => args.listen = cli::string_value(parser)?,
            Long("dir") => args.dir = PathBuf::from(parser.value()?),
            _ => return Err(arg.unexpected().into()),
        }
    }
    if let Some(server) = &args.server {
        client::split_addr(server)?;
    }
    Ok(Some(args))
}

/// Check the downloads directory and start the page. A directory that is
/// missing or is a file fails as `get -o DIR/` does (exit 1, see
/// [`cli::existing_dir`]).
pub fn run(args: Args) -> Result<()> {
    cli::existing_dir("--dir", &args.dir)?;
    let dir = std::fs::canonicalize(&args.dir)
        .map_err(|e| Error::local(format!("--dir {}", args.dir.display()), e))?;
    crate::ui::run(crate::ui::Config {
        server: args.server.unwrap_or_default(),
        listen: args.listen,
        dir,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_args(args: &[&str]) -> Result<Args> {
        parse(&mut lexopt::Parser::from_args(args.iter().copied())).map(|a| a.unwrap())
    }

    #[test]
    fn flags_parse_and_default() {
        let a = parse_args(&[]).unwrap();
        assert_eq!(a.listen, "127.0.0.1:8080");
        assert_eq!(a.dir, PathBuf::from("."));
        let a = parse_args(&["--server", "h:1", "--listen", "0.0.0.0:0", "--dir", "d"]).unwrap();
        assert_eq!(a.server.as_deref(), Some("h:1"));
        assert_eq!(a.listen, "0.0.0.0:0");
        for bad in [&["x"][..], &["--server", "h:x"], &["--bogus"]] {
            assert_eq!(parse_args(bad).unwrap_err().exit_code(), 2, "{bad:?}");
        }
    }
}
