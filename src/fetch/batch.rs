//! Several files in one run (`get ADDR NAME...`, `get --all`): one line per
//! file as it ends, a summary at the end, and the exit status of the worst.
//!
//! `tcpfetch:` starts only error lines: a file fetched or already here is
//! told by its own line (`PATH: … sha256 verified …`, `PATH: already here
//! and identical …`), and the summary has no prefix either.

use crate::error::{Error, ExitKind, Result};
use crate::fetch::{local_path, one_file, Request, Saved};
use crate::util::format::visible;

/// How the files of one run fared.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Tally {
    pub fetched: usize,
    pub identical: usize,
    /// Failed verification, or refused by the manifest (exit 3).
    pub corrupt: usize,
    /// Failed any other way (exit 1).
    pub failed: usize,
}

impl Tally {
    /// Count how one file ended; a failure is told on stderr.
    pub fn record(&mut self, name: &str, result: Result<Saved>) {
        match result {
            Ok(saved) if saved.already => self.identical += 1,
            Ok(_) => self.fetched += 1,
            Err(e) => self.failure(name, &e),
        }
    }

    /// One file failed with `e`.
    pub fn failure(&mut self, name: &str, e: &Error) {
        eprintln!("tcpfetch: {}: {e}", visible(name));
        if e.exit_kind() == ExitKind::Integrity {
            self.corrupt += 1;
        } else {
            self.failed += 1;
        }
    }

    /// The summary line (unless `quiet`), and the exit status: 3 when any
    /// file failed its check, else 1 when any failed otherwise, else 0.
    pub fn finish(&self, files: usize, quiet: bool) -> Result<()> {
        if !quiet {
            eprintln!("{}", self.summary(files));
        }
        if self.corrupt > 0 {
            return Err(Error::Reported(ExitKind::Integrity));
        }
        if self.failed > 0 {
            return Err(Error::Reported(ExitKind::Failure));
        }
        Ok(())
    }

    fn summary(&self, files: usize) -> String {
        let noun = if files == 1 { "file" } else { "files" };
        format!(
            "{files} {noun}: {} identical, {} fetched, {} failed verification, {} failed otherwise",
            self.identical, self.fetched, self.corrupt, self.failed
        )
    }
}

/// `get ADDR NAME...`: each NAME as `get ADDR NAME` fetches it (inside
/// `-o DIR` when given), one after another; a failure does not stop the
/// rest.
pub fn several(request: &Request, names: &[String], output: Option<&str>) -> Result<()> {
    let mut tally = Tally::default();
    // The manifest is read once for all of them; unreadable, it fails each.
    match request.load_manifest() {
        Ok(manifest) => {
            for name in names {
                let saved = local_path(name, output)
                    .and_then(|_| one_file(request, manifest.as_ref(), name, output));
                tally.record(name, saved);
            }
        }
        Err(e) => names.iter().for_each(|name| tally.failure(name, &e)),
    }
    tally.finish(names.len(), request.quiet)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_status_prefers_integrity_failures() {
        let ok = Tally {
            fetched: 2,
            identical: 1,
            ..Tally::default()
        };
        assert!(ok.finish(3, true).is_ok());
        assert_eq!(
            ok.summary(3),
            "3 files: 1 identical, 2 fetched, 0 failed verification, 0 failed otherwise"
        );
        let failed = Tally {
            failed: 1,
            ..Tally::default()
        };
        assert_eq!(failed.finish(1, true).unwrap_err().exit_code(), 1);
        let both = Tally {
            failed: 1,
            corrupt: 1,
            ..Tally::default()
        };
        assert_eq!(both.finish(2, true).unwrap_err().exit_code(), 3);
    }
}
