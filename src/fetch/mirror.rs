//! `get --all`: every served file into one directory, each verified and
//! resumable, optionally checked against a manifest carried by hand.
//!
//! The server's names decide the layout under DIR, so each one is checked
//! again before it becomes a path ([`under`]). With a prefix
//! (`get ADDR sub/ --all`) only the files under it are fetched, still at
//! their full relative path under DIR.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::fetch::batch::Tally;
use crate::fetch::manifest::Manifest;
use crate::fetch::part::names::Names;
use crate::fetch::path::under;
use crate::fetch::{fetch_file, Expected, Place, Request};

pub fn run(
    request: &Request,
    dir: &Path,
    allow_unlisted: bool,
    hidden: bool,
    prefix: Option<&str>,
) -> Result<()> {
    let expected = match &request.manifest {
        Some(path) => Some(Manifest::load(path)?),
        None => None,
    };
    let mut entries = request.peer.open()?.list()?.into_files()?;
    let staged = staging_names(entries.iter().map(|e| e.name.as_str()));
    let wanted = |name: &[u8]| prefix.is_none_or(|p| name.starts_with(p.as_bytes()));
    entries.retain(|e| wanted(e.name.as_bytes()));
    if let (Some(prefix), true) = (prefix, entries.is_empty()) {
        return Err(Error::Other(format!(
            "no file under '{}' on the server; see 'tcpfetch list {}'",
            crate::util::format::visible(prefix),
            request.peer.addr
        )));
    }
    fs::create_dir_all(dir)
        .map_err(|e| Error::local(format!("cannot create '{}'", dir.display()), e))?;
    let mut tally = Tally::default();
    for entry in &entries {
        let digest = match &expected {
            None => None,
            Some(m) => match m.get(entry.name.as_bytes()) {
                Some(d) => Some(Expected::from_manifest(m, d)),
                None if allow_unlisted => None,
                None => {
                    let refused = Error::Integrity(
                        "not in the manifest; refused (--allow-unlisted fetches it unchecked)"
                            .into(),
                    );
                    tally.failure(&entry.name, &refused);
                    continue;
                }
            },
        };
        let result = check_not_temporary(&entry.name, &staged)
            .and_then(|()| under(dir, &entry.name, hidden, request.durable))
            .and_then(|path| {
                fetch_file(
                    request,
                    &entry.name,
                    &Place::Exactly(&path),
                    digest.as_ref(),
                )
            });
        tally.record(&entry.name, result);
    }
    if let Some(m) = &expected {
        let served: HashSet<&[u8]> = entries.iter().map(|e| e.name.as_bytes()).collect();
        for name in m.names().filter(|n| wanted(n) && !served.contains(n)) {
            let missing = Error::Other("in the manifest but not on the server".into());
            tally.failure(&String::from_utf8_lossy(name), &missing);
        }
    }
    tally.finish(entries.len(), request.quiet)
}

/// The staging names of every listed name (`NAME.part`, `NAME.part.sha256`
/// and `NAME.part.sha256.tmp`, or their shortened forms for a long NAME),
/// each with the name it stages.
fn staging_names<'a>(listed: impl Iterator<Item = &'a str>) -> HashMap<PathBuf, String> {
    listed
        .flat_map(|name| {
            Names::of(Path::new(name))
                .into_paths()
                .map(|p| (p, name.to_string()))
        })
        .collect()
}

/// `get` keeps a partial download of NAME in `NAME.part` and its version in
/// `NAME.part.sha256` (written through `NAME.part.sha256.tmp`; shortened
/// for a long NAME). A served file with one of those names next to NAME
/// would be taken for that partial (and deleted when it fails to verify),
/// so it is refused instead.
fn check_not_temporary(name: &str, staged: &HashMap<PathBuf, String>) -> Result<()> {
    match staged.get(Path::new(name)) {
        Some(base) => Err(Error::Other(format!(
            "not saved: its name is the temporary file of '{base}', which is served too"
        ))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn served_names_that_look_like_partials_of_served_files_are_refused() {
        let long = "l".repeat(250);
        let long_part = Names::of(Path::new(&long)).part;
        let long_part = long_part.to_str().unwrap();
        let listed = ["a", "a.part", "b.part", "a.part.sha256", "d/c", "d/c.part"];
        let listed = [&listed[..], &[&long, long_part]].concat();
        let staged = staging_names(listed.iter().copied());
        for name in ["a.part", "a.part.sha256", "d/c.part", long_part] {
            assert!(check_not_temporary(name, &staged).is_err(), "{name}");
        }
        for name in ["b.part", "a", "d/c", &long, "c.part"] {
            assert!(check_not_temporary(name, &staged).is_ok(), "{name}");
        }
    }
}
