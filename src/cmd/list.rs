//! `tcpfetch list ADDR`: what a server offers, as a table or JSON lines.

use lexopt::prelude::*;

use crate::client::source::NumberedEntry as Entry;
use crate::client::{Listing, Peer, Protocol, ProtocolFlags, Source, Timeouts};
use crate::error::{Error, ExitKind, Result};
use crate::proto::ListEntry;
use crate::util::cli;
use crate::util::format::{json_string, visible};
use crate::util::hex;

pub const USAGE: &str = "\
Usage: tcpfetch list ADDR [--json | --sha256sums] [--bytes] [--key-file FILE] [--legacy]

List the files a tcpfetch server offers: size and name, sorted by name.
Sizes are human-readable (1.5 MiB) on a terminal and exact byte counts
otherwise, so scripts read what they always have.

Options:
  --bytes           exact sizes in bytes, on a terminal too
  --json            one JSON object per line: {\"name\", \"size\", \"sha256\"}
                    (sha256 only when the server has hashed the file)
  --sha256sums      a SHA256SUMS manifest of every file, as sha256sum
                    prints it (the server hashes what it has not hashed
                    yet), to carry to another site and check with
                    'verify -c' or 'get --manifest'
  --key-file FILE   authenticate with the server's shared key
  --legacy          ask an old Python tcp-server for its numbered list
  -h, --help        show this help
";

#[derive(Debug)]
pub struct Args {
    /// ADDR, `--key-file` and `--legacy`.
    pub peer: Peer,
    pub json: bool,
    pub sha256sums: bool,
    /// Sizes as people read them (on a terminal, without `--bytes`).
    pub human: bool,
}

pub fn parse(parser: &mut lexopt::Parser) -> Result<Option<Args>> {
    let mut addr = None;
    let mut json = false;
    let mut sha256sums = false;
    let mut exact = false;
    let mut flags = ProtocolFlags::default();
    while let Some(arg) = parser.next()? {
        if let Some(done) = cli::common_flag(&arg, USAGE) {
            return done.map(|()| None);
        }
        match arg {
            Long("json") => json = true,
            Long("sha256sums") => sha256sums = true,
            Long("bytes") => exact = true,
            Long("key-file") => flags.key_file(parser)?,
            Long("legacy") => flags.legacy = true,
            Value(v) if addr.is_none() => addr = Some(v.string()?),
            _ => return Err(arg.unexpected().into()),
        }
    }
    if sha256sums && (json || flags.legacy) {
        return Err(Error::usage(
            "--sha256sums goes with neither --json nor --legacy",
        ));
    }
    Ok(Some(Args {
        peer: Peer {
            addr: cli::required(addr, "ADDR", USAGE)?,
            timeouts: Timeouts::default(),
            protocol: flags.protocol(),
        },
        json,
        sha256sums,
        human: !exact && std::io::IsTerminal::is_terminal(&std::io::stdout()),
    }))
}

pub fn run(args: Args) -> Result<()> {
    let mut source = args.peer.open()?;
    let text = match source.list()? {
        Listing::Files(entries) if args.sha256sums => {
            // With a key only MACed answers count: LIST lines carry no
            // MAC, so every digest is asked for again with GET (no bytes
            // follow).
            let authenticated = matches!(args.peer.protocol, Protocol::V1 { key: Some(_), .. });
            let (manifest, refused) = sha256sums(&mut *source, &entries, authenticated)?;
            cli::print_bytes(&manifest)?;
            if refused > 0 {
                return Err(Error::Reported(ExitKind::Failure));
            }
            return Ok(());
        }
        Listing::Files(entries) if args.json => json_lines(&entries),
        Listing::Files(entries) => table(&entries, args.human),
        Listing::Numbered { entries, .. } if args.json => numbered_json_lines(&entries),
        Listing::Numbered { entries, raw } if entries.is_empty() => {
            format!("{}\n", crate::proto::printable(raw.as_bytes()))
        }
        Listing::Numbered { entries, .. } => numbered_table(&entries),
    };
    cli::print_text(&text)
}

/// Every entry as a manifest line, and how many files the server refused.
/// A digest the server has not computed yet is asked for with
/// `GET <size> NAME`: the answer carries it and no bytes follow, so the
/// server hashes each file once, through its cache. A file refused that
/// way (unreadable, gone since LIST) is named on stderr and left out, and
/// the rest still listed, as `sha256sum` goes on past a file it cannot read.
fn sha256sums(
    source: &mut dyn Source,
    entries: &[ListEntry],
    authenticated: bool,
) -> Result<(Vec<u8>, u64)> {
    let mut out = Vec::new();
    let mut refused = 0;
    for entry in entries {
        let digest = match entry.digest {
            Some(d) if !authenticated => d,
            _ => {
                let header = match source.request(&entry.name, entry.size) {
                    Ok(header) => header,
                    // The server answered ERR and keeps the connection.
                    Err(e @ Error::Remote { .. }) => {
                        eprintln!("tcpfetch: {}: {e}", visible(&entry.name));
                        refused += 1;
                        continue;
                    }
                    Err(e) => return Err(e),
                };
                let digest = header.digest.filter(|_| header.size == entry.size);
                let Some(digest) = digest else {
                    // The file changed since LIST; its digest is for another
                    // version and bytes may be on their way: stop here.
                    return Err(Error::Other(format!(
                        "'{}' changed on the server while listing; run again",
                        visible(&entry.name)
                    )));
                };
                digest
            }
        };
        out.extend(crate::digest::manifest::format_line(
            &digest,
            entry.name.as_bytes(),
            false,
        ));
    }
    Ok((out, refused))
}

/// Sizes right-aligned in one column (exact, or `human` as 1.5 MiB),
/// names after them.
pub fn table(entries: &[ListEntry], human: bool) -> String {
    let size = |n: u64| match human {
        true => crate::util::format::bytes(n),
        false => n.to_string(),
    };
    let width = entries
        .iter()
        .map(|e| size(e.size).len())
        .max()
        .unwrap_or(0);
    entries
        .iter()
        .map(|e| {
            format!(
                "{:>width$}  {}
",
                size(e.size),
                visible(&e.name)
            )
        })
        .collect()
}

pub fn json_lines(entries: &[ListEntry]) -> String {
    entries
        .iter()
        .map(|e| match e.digest {
            Some(d) => format!(
                "{{\"name\":{},\"size\":{},\"sha256\":\"{}\"}}\n",
                json_string(&e.name),
                e.size,
                hex::encode(&d)
            ),
            None => format!(
                "{{\"name\":{},\"size\":{}}}\n",
                json_string(&e.name),
                e.size
            ),
        })
        .collect()
}

/// The old protocol's list: numbers right-aligned, names after them.
fn numbered_table(entries: &[Entry]) -> String {
    let width = entries
        .iter()
        .map(|e| e.number.to_string().len())
        .max()
        .unwrap_or(1);
    entries
        .iter()
        .map(|e| format!("{:>width$}  {}\n", e.number, visible(&e.name)))
        .collect()
}

fn numbered_json_lines(entries: &[Entry]) -> String {
    entries
        .iter()
        .map(|e| {
            format!(
                "{{\"number\":{},\"name\":{}}}\n",
                e.number,
                json_string(&e.name)
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries() -> Vec<ListEntry> {
        vec![
            ListEntry {
                size: 5,
                digest: None,
                name: "a \"q\".txt".into(),
            },
            ListEntry {
                size: 12345,
                digest: Some([0; 32]),
                name: "b".into(),
            },
        ]
    }

    #[test]
    fn table_aligns_sizes() {
        assert_eq!(table(&entries(), false), "    5  a \"q\".txt\n12345  b\n");
        assert_eq!(
            table(&entries(), true),
            "     5 B  a \"q\".txt\n12.1 KiB  b\n"
        );
    }

    #[test]
    fn json_escapes_names_and_omits_unknown_digests() {
        let text = json_lines(&entries());
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], r#"{"name":"a \"q\".txt","size":5}"#);
        assert_eq!(
            lines[1],
            format!(
                r#"{{"name":"b","size":12345,"sha256":"{}"}}"#,
                "0".repeat(64)
            )
        );
    }
}
