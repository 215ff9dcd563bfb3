//! Where a download goes on this machine: `-o PATH`, inside `-o DIR`, or
//! named after the file. Names come from the user or from a server, so only
//! their last component is ever used, and one that could point elsewhere is
//! refused.

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::fetch::part::{parent, sync_dir};
use crate::proto;

/// Where a download of `name` goes: `-o PATH`, inside `-o DIR`, or the last
/// component of `name` in the current directory. The name came from the
/// user (or the server's list): only its last component is ever used, and
/// one that could point elsewhere is refused.
pub fn local_path(name: &str, output: Option<&str>) -> Result<PathBuf> {
    let base = || -> Result<&str> {
        let last = name.rsplit('/').next().unwrap_or("");
        if last.is_empty() || last == "." || last == ".." || last.chars().any(char::is_control) {
            return Err(Error::usage(format!(
                "cannot derive a file name from '{name}'; give one with -o PATH"
            )));
        }
        Ok(last)
    };
    match output {
        Some(out) if Path::new(out).is_dir() => Ok(Path::new(out).join(base()?)),
        // `-o DIR/` promises a directory; without one the `.part` would be
        // a hidden file inside a directory that does not exist.
        Some(out) if out.ends_with('/') => {
            Err(Error::Other(format!("-o {out}: no such directory")))
        }
        // A missing directory is told as `-o DIR/` is, before anything is
        // asked of the server, rather than as a failure to write
        // `PATH.part`, a name the user never gave.
        Some(out) => {
            let dir = parent(Path::new(out));
            let why = match fs::metadata(dir) {
                Ok(meta) if meta.is_dir() => return Ok(PathBuf::from(out)),
                Ok(_) => "is not a directory",
                Err(_) => "does not exist",
            };
            Err(Error::Other(format!("-o {out}: '{}' {why}", dir.display())))
        }
        None => Ok(PathBuf::from(base()?)),
    }
}

/// The local path for the first of `names` (best first, from the source)
/// that can name a file; the first one's error when none can.
pub fn path_for(names: &[String], output: Option<&str>) -> Result<PathBuf> {
    let mut first_error = None;
    for name in names {
        match local_path(name, output) {
            Ok(path) => return Ok(path),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    Err(first_error.unwrap_or_else(|| Error::usage("no name to save the file under")))
}

/// `DIR/NAME` for a name from the server (`get --all`), with the
/// directories on the way created (and, `durable`, flushed into their
/// parents). The server's names decide the layout under DIR, so every
/// component must be a plain name (no `.`, `..`, empty component, control
/// character or backslash; no leading `.` unless `hidden`), and every
/// directory on the way must be a real directory, not a symlink that could
/// lead elsewhere.
pub fn under(dir: &Path, name: &str, hidden: bool, durable: bool) -> Result<PathBuf> {
    let parts: Vec<&str> = name.split('/').collect();
    let bad = parts.iter().any(|p| {
        p.is_empty()
            || *p == "."
            || *p == ".."
            || p.contains('\\')
            || p.chars().any(char::is_control)
    });
    if bad || name.starts_with('/') {
        return Err(Error::protocol(format!(
            "the server listed an unsafe name '{}'; not saved",
            proto::printable(name.as_bytes())
        )));
    }
    if !hidden && proto::has_dot_component(name) {
        return Err(Error::Other(
            "not saved: a component of the name starts with '.' (--hidden saves it)".into(),
        ));
    }
    let mut path = dir.to_path_buf();
    for (i, part) in parts.iter().enumerate() {
        if i + 1 < parts.len() {
            path.push(part);
            ensure_real_dir(&path, durable)?;
        } else {
            path.push(part);
        }
    }
    Ok(path)
}

fn ensure_real_dir(path: &Path, durable: bool) -> Result<()> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => Err(Error::Other(format!(
            "'{}' is in the way: not a directory (or a symlink, which is not followed)",
            path.display()
        ))),
        Err(_) => {
            fs::create_dir(path)
                .map_err(|e| Error::local(format!("cannot create '{}'", path.display()), e))?;
            if durable {
                sync_dir(parent(path))?;
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_paths_use_only_the_last_component() {
        assert_eq!(
            local_path("a/b/c.txt", None).unwrap(),
            PathBuf::from("c.txt")
        );
        let tmp = std::env::temp_dir();
        // -o PATH is taken as given, in a directory that exists.
        let out = tmp.join("y.bin");
        assert_eq!(local_path("c.txt", out.to_str()).unwrap(), out);
        assert_eq!(
            local_path("c.txt", Some("no-such-dir/y.bin"))
                .unwrap_err()
                .exit_code(),
            1
        );
        assert_eq!(
            local_path("d/c.txt", tmp.to_str()).unwrap(),
            tmp.join("c.txt")
        );
        for bad in ["a/", "a/..", ".", "..", "x/\u{1b}[2J"] {
            assert_eq!(local_path(bad, None).unwrap_err().exit_code(), 2, "{bad}");
        }
        let names = ["..".to_string(), "file-3".to_string()];
        assert_eq!(path_for(&names, None).unwrap(), PathBuf::from("file-3"));
    }

    #[test]
    fn server_names_cannot_escape_the_directory() {
        let base = crate::util::scratch_dir("mirror");
        assert_eq!(
            under(&base, "a/b c/d.txt", false, true).unwrap(),
            base.join("a/b c/d.txt")
        );
        assert!(base.join("a/b c").is_dir());
        for bad in [
            "../x",
            "a/../../x",
            "/etc/passwd",
            "a//b",
            "./a",
            "a/.",
            "a\\b",
            "a/\u{1b}x",
        ] {
            assert!(under(&base, bad, true, false).is_err(), "{bad}");
        }
        for dotted in [".bashrc", ".ssh/authorized_keys", "a/.b/c", "a/.x"] {
            assert!(proto::has_dot_component(dotted), "{dotted}");
            assert!(under(&base, dotted, false, false).is_err(), "{dotted}");
        }
        assert_eq!(
            under(&base, ".ssh/keys", true, false).unwrap(),
            base.join(".ssh/keys")
        );
        assert!(!proto::has_dot_component("a.b/c.d"));
        std::os::unix::fs::symlink("/tmp", base.join("link")).unwrap();
        assert!(under(&base, "link/x", true, false).is_err());
        fs::remove_dir_all(&base).unwrap();
    }
}
