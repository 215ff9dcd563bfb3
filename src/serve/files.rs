//! The served directory: turning a requested name into an open file without
//! ever leaving the directory (what `LIST` shows is in `listing`).
//!
//! The rules, in the order they are checked:
//! 1. The name is split on `/`. An absolute path, an empty component (`a//b`),
//!    `.` or `..` anywhere, or a backslash is `forbidden`: there is no
//!    legitimate reason to send one.
//! 2. A component starting with `.` (dotfiles, `.git/`) is `not-found` unless
//!    the server runs with `--hidden`: the answer must not confirm it exists.
//! 3. The joined path is canonicalised (symlinks resolved) and compared with
//!    the canonical root *component by component*; outside is `forbidden`.
//! 4. Only regular files are served. The path is checked first (so nothing
//!    else is ever opened knowingly: opening some devices has effects), then
//!    opened with `O_NONBLOCK` and `O_NOCTTY`, so that a FIFO, a tty or a
//!    device swapped in after the check can neither hang the thread nor
//!    become the server's controlling terminal, and the check is repeated
//!    on the open descriptor.
//!
//! Most names have no symlink on their way, and for those rules 3 and 4
//! take three system calls instead of a dozen: the root joined with the
//! name is checked with `lstat` (a regular file, not a link) and opened
//! with `openat2(RESOLVE_NO_SYMLINKS)`, which refuses any symlink on the
//! path, so the file opened is the joined path itself: inside the root,
//! and not hidden by rule 2. A name with a symlink on it, or anything
//! else this cannot vouch for, goes the full way above, which also gives
//! every refusal. Kernels without `openat2` (before 5.6, or a seccomp
//! filter that refuses it) always go the full way.

use std::fs::{self, File, Metadata};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::digest::{DigestCache, FileKey};
use crate::proto::{self, ErrorCode};
use crate::sys;
use crate::util::hex::Digest;

/// Why a name is not served; becomes a `TCPFETCH/1 ERR` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: ErrorCode,
    pub message: String,
}

impl Refusal {
    fn new(code: ErrorCode, message: impl Into<String>) -> Refusal {
        Refusal {
            code,
            message: message.into(),
        }
    }

    fn not_found() -> Refusal {
        Refusal::new(ErrorCode::NotFound, "no such file")
    }
}

/// A file ready to be sent: the open descriptor and what `fstat` said.
pub struct OpenFile {
    pub path: PathBuf,
    pub file: File,
    pub meta: Metadata,
}

impl OpenFile {
    /// The digest of the file's first `meta.len()` bytes (the ones served),
    /// from the cache while this version is unchanged, else hashed once.
    pub fn digest(&self, cache: &DigestCache) -> io::Result<Digest> {
        cache.get(&self.path, &self.file, &FileKey::of(&self.meta))
    }
}

/// The directory being served.
pub struct Root {
    canonical: PathBuf,
    hidden: bool,
    /// Whether `openat2` may be tried: cleared for good the first time
    /// the kernel says it has no such call.
    openat2: AtomicBool,
}

impl Root {
    /// `dir` must exist and be a directory. `hidden` serves dotfiles too.
    pub fn new(dir: &Path, hidden: bool) -> io::Result<Root> {
        let canonical = fs::canonicalize(dir)?;
        if !fs::metadata(&canonical)?.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a directory",
            ));
        }
        Ok(Root {
            canonical,
            hidden,
            openat2: AtomicBool::new(true),
        })
    }

    /// Open the regular file that `name` denotes, or say why not.
    pub fn open(&self, name: &str) -> Result<OpenFile, Refusal> {
        let joined = self.join(name)?;
        if let Some(open) = self.open_direct(&joined) {
            return Ok(open);
        }
        let path = self.canonical_inside(&joined)?;
        let meta = fs::metadata(&path).map_err(|e| refusal_for(&e))?;
        if !meta.is_file() {
            return Err(not_regular(&meta));
        }
        let file = fs::OpenOptions::new()
            .read(true)
            .custom_flags(sys::O_NONBLOCK | sys::O_NOCTTY)
            .open(&path)
            .map_err(|e| refusal_for(&e))?;
        // Checked again on the descriptor: the path may have been swapped
        // for something else between the two calls.
        let meta = file.metadata().map_err(|e| refusal_for(&e))?;
        if !meta.is_file() {
            return Err(not_regular(&meta));
        }
        // And where the descriptor really points: someone who can write
        // inside the root could have swapped a directory on the way for a
        // symlink after `resolve` looked. Without /proc, `resolve` stands.
        let fd_path = format!("/proc/self/fd/{}", file.as_raw_fd());
        if let Ok(real) = fs::read_link(fd_path) {
            if real != path && !self.inside(&real) {
                return Err(Refusal::new(
                    ErrorCode::Forbidden,
                    "path leaves the served directory",
                ));
            }
        }
        Ok(OpenFile { path, file, meta })
    }

    /// The file at `joined` (the root and a name that passed rules 1 and
    /// 2) if no symlink is on its way and it is a regular file; `None`
    /// when that cannot be said, and the full way decides.
    fn open_direct(&self, joined: &Path) -> Option<OpenFile> {
        if !self.openat2.load(Ordering::Relaxed) {
            return None;
        }
        // Looked at before it is opened, as on the full way; a symlink as
        // the last component is not followed here but goes the full way.
        if !fs::symlink_metadata(joined).ok()?.is_file() {
            return None;
        }
        let file = match sys::open_without_symlinks(joined, sys::O_NONBLOCK | sys::O_NOCTTY) {
            Ok(file) => file,
            Err(e) => {
                if sys::openat2_unavailable(&e) {
                    self.openat2.store(false, Ordering::Relaxed);
                }
                return None;
            }
        };
        // The path may have been swapped since the `lstat`.
        let meta = file.metadata().ok().filter(Metadata::is_file)?;
        Some(OpenFile {
            path: joined.to_path_buf(),
            file,
            meta,
        })
    }

    /// Whether a canonical path lies inside the root (and is not hidden,
    /// unless `--hidden`).
    fn inside(&self, canonical: &Path) -> bool {
        canonical
            .strip_prefix(&self.canonical)
            .is_ok_and(|rest| self.hidden || !rest.components().any(is_hidden))
    }

    /// The canonical path of `name`, checked against rules 1–3.
    pub fn resolve(&self, name: &str) -> Result<PathBuf, Refusal> {
        self.canonical_inside(&self.join(name)?)
    }

    /// The root joined with `name`, checked against rules 1 and 2.
    fn join(&self, name: &str) -> Result<PathBuf, Refusal> {
        proto::check_name(name).map_err(|m| Refusal::new(ErrorCode::BadRequest, m))?;
        if name.starts_with('/') {
            return Err(Refusal::new(
                ErrorCode::Forbidden,
                "absolute paths are not served",
            ));
        }
        if name.contains('\\') {
            return Err(Refusal::new(
                ErrorCode::Forbidden,
                "backslashes are not allowed in names",
            ));
        }
        let mut joined = self.canonical.clone();
        for part in name.split('/') {
            match part {
                "" | "." | ".." => {
                    return Err(Refusal::new(
                        ErrorCode::Forbidden,
                        "empty, '.' and '..' path components are not allowed",
                    ))
                }
                p if p.starts_with('.') && !self.hidden => return Err(Refusal::not_found()),
                p => joined.push(p),
            }
        }
        Ok(joined)
    }

    /// The canonical path of `joined` (from [`Root::join`]), checked
    /// against rule 3 and against rule 2 for where symlinks led.
    fn canonical_inside(&self, joined: &Path) -> Result<PathBuf, Refusal> {
        let canonical = fs::canonicalize(joined).map_err(|e| refusal_for(&e))?;
        let Ok(inside) = canonical.strip_prefix(&self.canonical) else {
            return Err(Refusal::new(
                ErrorCode::Forbidden,
                "path leaves the served directory",
            ));
        };
        if !self.hidden && inside.components().any(is_hidden) {
            return Err(Refusal::not_found());
        }
        Ok(canonical)
    }

    /// The canonical path of the served directory.
    pub fn canonical(&self) -> &Path {
        &self.canonical
    }

    /// Whether dotfiles are served (`--hidden`).
    pub fn hidden(&self) -> bool {
        self.hidden
    }
}

fn is_hidden(c: Component<'_>) -> bool {
    matches!(c, Component::Normal(s) if s.as_encoded_bytes().starts_with(b"."))
}

fn not_regular(meta: &Metadata) -> Refusal {
    let what = if meta.is_dir() {
        "a directory"
    } else {
        "not a regular file"
    };
    Refusal::new(
        ErrorCode::Forbidden,
        format!("{what}; only regular files are served"),
    )
}

fn refusal_for(e: &io::Error) -> Refusal {
    match e.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory => Refusal::not_found(),
        io::ErrorKind::PermissionDenied => Refusal::new(ErrorCode::Forbidden, "permission denied"),
        // ELOOP (symlink loop) and friends.
        _ if e.raw_os_error() == Some(40) => {
            Refusal::new(ErrorCode::Forbidden, "too many levels of symbolic links")
        }
        // ENAMETOOLONG: a name longer than the file system allows cannot
        // name a file; it is a client's mistake, not the server's.
        _ if e.raw_os_error() == Some(36) => Refusal::not_found(),
        _ => Refusal::new(ErrorCode::Internal, crate::error::describe_io(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn tree(tag: &str) -> (PathBuf, Root) {
        let base = crate::util::scratch_dir(&format!("files-{tag}"));
        let root = base.join("root");
        fs::create_dir_all(root.join("sub/deeper")).unwrap();
        fs::create_dir_all(root.join(".git")).unwrap();
        fs::write(root.join("a.txt"), b"a").unwrap();
        fs::write(root.join("sub/b c.txt"), b"bc").unwrap();
        fs::write(root.join("sub/deeper/ü.bin"), b"u").unwrap();
        fs::write(root.join(".env"), b"secret").unwrap();
        fs::write(root.join(".git/config"), b"x").unwrap();
        fs::write(base.join("outside.txt"), b"out").unwrap();
        symlink("a.txt", root.join("link-in")).unwrap();
        symlink("../outside.txt", root.join("link-out")).unwrap();
        symlink("loop", root.join("loop")).unwrap();
        symlink(".env", root.join("to-hidden")).unwrap();
        symlink("sub", root.join("dirlink")).unwrap();
        let r = Root::new(&root, false).unwrap();
        (base, r)
    }

    #[test]
    fn names_are_refused_by_rule() {
        let (base, root) = tree("rules");
        let cases: &[(&str, Option<ErrorCode>)] = &[
            ("a.txt", None),
            ("sub/b c.txt", None),
            ("sub/deeper/ü.bin", None),
            ("link-in", None),
            ("dirlink/b c.txt", None),
            ("../outside.txt", Some(ErrorCode::Forbidden)),
            ("sub/../a.txt", Some(ErrorCode::Forbidden)),
            ("sub/..", Some(ErrorCode::Forbidden)),
            ("./a.txt", Some(ErrorCode::Forbidden)),
            ("sub//b c.txt", Some(ErrorCode::Forbidden)),
            ("sub/", Some(ErrorCode::Forbidden)),
            ("/etc/passwd", Some(ErrorCode::Forbidden)),
            ("sub\\b c.txt", Some(ErrorCode::Forbidden)),
            ("..\\outside.txt", Some(ErrorCode::Forbidden)),
            ("link-out", Some(ErrorCode::Forbidden)),
            ("loop", Some(ErrorCode::Forbidden)),
            ("sub", Some(ErrorCode::Forbidden)),
            (".env", Some(ErrorCode::NotFound)),
            (".git/config", Some(ErrorCode::NotFound)),
            ("to-hidden", Some(ErrorCode::NotFound)),
            ("%2e%2e/outside.txt", Some(ErrorCode::NotFound)),
            ("missing", Some(ErrorCode::NotFound)),
            ("a.txt/x", Some(ErrorCode::NotFound)),
            ("a\u{0}b", Some(ErrorCode::BadRequest)),
            ("", Some(ErrorCode::BadRequest)),
        ];
        // Both ways: with `openat2` where it helps, and the full way alone,
        // as on a kernel without it.
        let full_way = Root::new(root.canonical(), false).unwrap();
        full_way.openat2.store(false, Ordering::Relaxed);
        for root in [&root, &full_way] {
            for (name, want) in cases {
                let got = root.open(name).err().map(|r| r.code);
                assert_eq!(got, *want, "{name:?}");
            }
        }
        fs::remove_dir_all(base).unwrap();
    }

    #[test]
    fn only_plain_paths_to_regular_files_are_opened_directly() {
        let (base, root) = tree("direct");
        let made = std::process::Command::new("mkfifo")
            .arg(root.canonical().join("fifo"))
            .status();
        assert!(made.unwrap().success(), "mkfifo failed");
        for name in ["a.txt", "sub/b c.txt", "sub/deeper/ü.bin"] {
            let joined = root.join(name).unwrap();
            let open = root.open_direct(&joined).expect(name);
            assert_eq!(open.path, fs::canonicalize(&joined).unwrap());
            assert_eq!(open.path, root.open(name).unwrap().path);
        }
        // Links (even to a file inside), what is not a regular file, and
        // what is not there all go the full way.
        let others = [
            "link-in",
            "dirlink/b c.txt",
            "to-hidden",
            "link-out",
            "loop",
        ];
        for name in others
            .into_iter()
            .chain(["sub", "fifo", "missing", "a.txt/x"])
        {
            let joined = root.join(name).unwrap();
            assert!(root.open_direct(&joined).is_none(), "{name}");
        }
        // None of these refusals turned `openat2` off for later names.
        assert!(root.openat2.load(Ordering::Relaxed));
        fs::remove_dir_all(base).unwrap();
    }
}
