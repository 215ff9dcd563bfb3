//! `get --all`: every served file into one directory, each verified and
//! resumable, optionally checked against a manifest carried by hand.
//!
//! The server's names decide the layout under DIR, so each one is checked
//! again before it becomes a path ([`under`]).

use std::collections::HashSet;
use std::fs;
use std::path::Path;

use crate::error::{Error, ExitKind, Result};
use crate::fetch::manifest::Manifest;
use crate::fetch::path::under;
use crate::fetch::{fetch_file, Place, Request};
use crate::util::format::visible;

/// How the files of one `get --all` fared.
#[derive(Debug, Default, PartialEq, Eq)]
struct Tally {
    fetched: usize,
    identical: usize,
    failed: usize,
    corrupt: usize,
}

pub fn run(request: &Request, dir: &Path, allow_unlisted: bool, hidden: bool) -> Result<()> {
    let expected = match &request.manifest {
        Some(path) => Some(Manifest::load(path)?),
        None => None,
    };
    let entries = request.peer.open()?.list()?.into_files()?;
    fs::create_dir_all(dir)
        .map_err(|e| Error::local(format!("cannot create '{}'", dir.display()), e))?;
    let listed: HashSet<&str> = entries.iter().map(|e| e.name.as_str()).collect();
    let mut tally = Tally::default();
    for (i, entry) in entries.iter().enumerate() {
        let shown = visible(&entry.name);
        if !request.quiet {
            eprintln!("tcpfetch: [{}/{}] {}", i + 1, entries.len(), shown);
        }
        let digest = match &expected {
            None => None,
            Some(m) => match m.get(entry.name.as_bytes()) {
                Some(d) => Some(d),
                None if allow_unlisted => None,
                None => {
                    eprintln!(
                        "tcpfetch: {shown}: not in the manifest; refused (--allow-unlisted fetches it unchecked)"
                    );
                    tally.corrupt += 1;
                    continue;
                }
            },
        };
        let result = check_not_temporary(&entry.name, &listed)
            .and_then(|()| under(dir, &entry.name, hidden, request.durable))
            .and_then(|path| fetch_file(request, &entry.name, &Place::Exactly(&path), digest));
        match result {
            Ok(saved) if saved.already => tally.identical += 1,
            Ok(_) => tally.fetched += 1,
            Err(e) => {
                eprintln!("tcpfetch: {shown}: {e}");
                if e.exit_kind() == ExitKind::Integrity {
                    tally.corrupt += 1;
                } else {
                    tally.failed += 1;
                }
            }
        }
    }
    if let Some(m) = &expected {
        let served: HashSet<&[u8]> = entries.iter().map(|e| e.name.as_bytes()).collect();
        for name in m.names().filter(|n| !served.contains(n)) {
            eprintln!(
                "tcpfetch: {}: in the manifest but not on the server",
                visible(&String::from_utf8_lossy(name))
            );
            tally.failed += 1;
        }
    }
    finish(&tally, entries.len())
}

/// `get` keeps a partial download of NAME in `NAME.part` and its version in
/// `NAME.part.sha256` (written through `NAME.part.sha256.tmp`). A served file with one of those names next to NAME
/// would be taken for that partial (and deleted when it fails to verify), so
/// it is refused instead.
fn check_not_temporary(name: &str, listed: &HashSet<&str>) -> Result<()> {
    for suffix in [".part", ".part.sha256", ".part.sha256.tmp"] {
        if let Some(base) = name.strip_suffix(suffix) {
            if listed.contains(base) {
                return Err(Error::Other(format!(
                    "not saved: its name is the temporary file of '{base}', which is served too"
                )));
            }
        }
    }
    Ok(())
}

/// The summary line, and the exit status: 3 when any file failed its
/// check (or was refused as unlisted), 1 for any other failure.
fn finish(tally: &Tally, listed: usize) -> Result<()> {
    eprintln!(
        "tcpfetch: {listed} files: {} fetched, {} already identical, {} failed verification, {} failed otherwise",
        tally.fetched, tally.identical, tally.corrupt, tally.failed
    );
    if tally.corrupt > 0 {
        return Err(Error::Reported(ExitKind::Integrity));
    }
    if tally.failed > 0 {
        return Err(Error::Reported(ExitKind::Failure));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn served_names_that_look_like_partials_of_served_files_are_refused() {
        let listed: HashSet<&str> = ["a", "a.part", "b.part", "a.part.sha256"]
            .into_iter()
            .collect();
        assert!(check_not_temporary("a.part", &listed).is_err());
        assert!(check_not_temporary("a.part.sha256", &listed).is_err());
        assert!(check_not_temporary("b.part", &listed).is_ok());
        assert!(check_not_temporary("a", &listed).is_ok());
    }

    #[test]
    fn exit_status_prefers_integrity_failures() {
        let ok = Tally {
            fetched: 2,
            identical: 1,
            ..Tally::default()
        };
        assert!(finish(&ok, 3).is_ok());
        let failed = Tally {
            failed: 1,
            ..Tally::default()
        };
        assert_eq!(finish(&failed, 1).unwrap_err().exit_code(), 1);
        let both = Tally {
            failed: 1,
            corrupt: 1,
            ..Tally::default()
        };
        assert_eq!(finish(&both, 2).unwrap_err().exit_code(), 3);
    }
}
