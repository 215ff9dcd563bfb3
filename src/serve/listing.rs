//! What `LIST` shows: one snapshot of the served tree's names, shared by
//! every connection and rebuilt only when the tree changed.
//!
//! Each `LIST` used to walk and sort the whole tree into a vector of its
//! own, with a full `Metadata` per file, and keep it while a client that
//! never reads held the answer: 100 000 files × 100 such clients took
//! 3.6 GB. Now:
//! - The snapshot holds names only (and, for a symlink, where it leads):
//!   about 50 bytes a file, 5 MB for 100 000, shared through an `Arc`.
//! - It is reused while every directory it walked still has the device,
//!   inode and modification time it saw. A change inside a directory
//!   (a file added, removed or renamed) changes that directory's mtime.
//!   Timestamps are coarse (a kernel tick), so a snapshot whose directories
//!   changed less than [`SETTLE`] before it was built is not trusted for
//!   reuse: a change in the same tick would not show.
//! - One snapshot is built at a time; connections that asked while it was
//!   being built take it as it is (it is as fresh as their request).
//! - Sizes and digests are not in the snapshot: they are read per file as
//!   the answer is written (one `stat` each, as before), so an appended
//!   file shows its new size even when the snapshot is reused.
//! - At most [`MAX_LIVE`] snapshots exist at once (old ones stay alive
//!   while slow clients still send them): past that, a changed tree is
//!   listed from the newest snapshot until the old ones are let go, so
//!   clients that never read cannot make the server hold one copy each.

use std::fs::{self, Metadata};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::proto;
use crate::serve::files::Root;
use crate::util::lock;

/// Deepest directory nesting that `LIST` descends into.
const MAX_DEPTH: usize = 64;
/// How long a directory must have been unchanged for its mtime to prove
/// it unchanged since (file timestamps advance by a kernel tick, ≤ 10 ms;
/// a second leaves room for clocks set by NTP).
const SETTLE: Duration = Duration::from_secs(1);
/// Snapshots alive at once, the current one included.
const MAX_LIVE: usize = 4;

/// One servable file.
pub struct Entry {
    /// The name a client requests it by.
    pub name: Box<str>,
    /// Where it is, for a symlink; `None` when it is `root/name` itself.
    target: Option<Box<Path>>,
}

impl AsRef<str> for Entry {
    fn as_ref(&self) -> &str {
        &self.name
    }
}

impl Entry {
    /// The file's canonical path and what `lstat` says of it now; `None`
    /// if it is gone or no longer a regular file. Not `stat`: a file
    /// replaced by a symlink since the walk is not followed, so `LIST`
    /// never shows the size of a file outside the root.
    pub fn stat(&self, root: &Root) -> Option<(PathBuf, Metadata)> {
        let path = match &self.target {
            Some(target) => target.to_path_buf(),
            None => root.canonical().join(&*self.name),
        };
        let meta = fs::symlink_metadata(&path).ok().filter(Metadata::is_file)?;
        Some((path, meta))
    }
}

/// The servable files, sorted by name, as they were when it was built.
pub struct Snapshot {
    entries: Vec<Entry>,
    /// Every directory walked, as it was before it was read.
    dirs: Vec<Stamp>,
    started: Instant,
    /// Whether every directory had been unchanged for [`SETTLE`] when the
    /// walk started, so that unchanged stamps later prove an unchanged tree.
    settled: bool,
    _live: Live,
}

impl Snapshot {
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Whether every directory walked is still as it was.
    fn unchanged(&self) -> bool {
        self.dirs
            .iter()
            .all(|d| fs::metadata(&d.path).is_ok_and(|m| Stamp::of(&d.path, &m) == *d))
    }
}

/// A directory's identity and modification time.
#[derive(PartialEq, Eq)]
struct Stamp {
    path: Box<Path>,
    dev: u64,
    ino: u64,
    mtime_ns: i128,
}

impl Stamp {
    fn of(path: &Path, meta: &Metadata) -> Stamp {
        Stamp {
            path: path.into(),
            dev: meta.dev(),
            ino: meta.ino(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
        }
    }
}

/// Counts a snapshot among the live ones while it exists.
struct Live(Arc<AtomicUsize>);

impl Live {
    fn new(count: &Arc<AtomicUsize>) -> Live {
        count.fetch_add(1, Ordering::AcqRel);
        Live(Arc::clone(count))
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The current snapshot of one root; its lock is held while one is built.
#[derive(Default)]
pub struct Listings {
    current: Mutex<Option<Arc<Snapshot>>>,
    live: Arc<AtomicUsize>,
}

impl Listings {
    /// A snapshot as fresh as this call: the current one if the tree has
    /// not changed (or one built while this call waited), else a new one.
    pub fn get(&self, root: &Root) -> Arc<Snapshot> {
        let asked = Instant::now();
        let mut current = lock(&self.current);
        if let Some(snapshot) = current.as_ref() {
            let reuse = snapshot.started >= asked
                || self.live.load(Ordering::Acquire) >= MAX_LIVE
                || (snapshot.settled && snapshot.unchanged());
            if reuse {
                return Arc::clone(snapshot);
            }
        }
        // The old snapshot goes before the new one is built, so a tree
        // listed by nobody else is never held twice.
        *current = None;
        let fresh = Arc::new(build(root, Live::new(&self.live)));
        *current = Some(Arc::clone(&fresh));
        fresh
    }
}

fn build(root: &Root, live: Live) -> Snapshot {
    let started = Instant::now();
    let wall = SystemTime::now();
    let mut walk = Walk {
        root,
        entries: Vec::new(),
        dirs: Vec::new(),
    };
    walk.dir(root.canonical(), "", 0);
    let Walk {
        mut entries, dirs, ..
    } = walk;
    entries.sort_unstable_by(|a, b| a.name.cmp(&b.name));
    entries.shrink_to_fit();
    let settle_ns = i128::try_from(SETTLE.as_nanos()).unwrap_or(i128::MAX);
    let now_ns = wall
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i128::try_from(d.as_nanos()).unwrap_or(i128::MAX));
    let settled = dirs.iter().all(|d| d.mtime_ns + settle_ns <= now_ns);
    Snapshot {
        entries,
        dirs,
        started,
        settled,
        _live: live,
    }
}

/// One walk of the tree. Symlinks count when they resolve to a regular
/// file inside the root; symlinked directories are not followed (no
/// loops). Names a request could not carry (not UTF-8, control
/// characters, backslashes) are left out, and so are dotfiles unless
/// `--hidden`.
struct Walk<'a> {
    root: &'a Root,
    entries: Vec<Entry>,
    dirs: Vec<Stamp>,
}

impl Walk<'_> {
    fn dir(&mut self, dir: &Path, prefix: &str, depth: usize) {
        // Stamped before it is read: a change during the read shows later.
        let Ok(meta) = fs::metadata(dir) else {
            return;
        };
        self.dirs.push(Stamp::of(dir, &meta));
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let Ok(file_name) = entry.file_name().into_string() else {
                continue;
            };
            if file_name.starts_with('.') && !self.root.hidden() {
                continue;
            }
            let name = format!("{prefix}{file_name}");
            if proto::check_name(&name).is_err() || name.contains('\\') {
                continue;
            }
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                if depth < MAX_DEPTH {
                    self.dir(&entry.path(), &format!("{name}/"), depth + 1);
                }
            } else if kind.is_file() {
                // The walk starts at the canonical root and only descends
                // real directories, so `root/name` is already canonical.
                self.entries.push(Entry {
                    name: name.into(),
                    target: None,
                });
            } else if kind.is_symlink() {
                self.symlink(name);
            }
        }
    }

    fn symlink(&mut self, name: String) {
        let Ok(path) = self.root.resolve(&name) else {
            return;
        };
        if fs::metadata(&path).is_ok_and(|m| m.is_file()) {
            self.entries.push(Entry {
                name: name.into(),
                target: Some(path.into()),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(tag: &str) -> PathBuf {
        let dir = crate::util::scratch_dir(&format!("listing-{tag}"));
        fs::create_dir_all(dir.join("sub")).unwrap();
        dir
    }

    fn names(s: &Snapshot) -> Vec<&str> {
        s.entries().iter().map(|e| &*e.name).collect()
    }

    #[test]
    fn listing_shows_servable_files_sorted() {
        use std::os::unix::fs::symlink;
        let base = scratch("sorted");
        let dir = base.join("root");
        fs::create_dir_all(dir.join("sub/deeper")).unwrap();
        fs::create_dir_all(dir.join(".git")).unwrap();
        for f in [
            "a.txt",
            "sub/b c.txt",
            "sub/deeper/ü.bin",
            ".env",
            ".git/config",
        ] {
            fs::write(dir.join(f), b"x").unwrap();
        }
        fs::write(base.join("outside.txt"), b"out").unwrap();
        for (target, link) in [
            ("a.txt", "link-in"),
            ("../outside.txt", "link-out"),
            ("loop", "loop"),
            (".env", "to-hidden"),
            ("sub", "dirlink"),
        ] {
            symlink(target, dir.join(link)).unwrap();
        }
        let root = Root::new(&dir, false).unwrap();
        let listing = Listings::default().get(&root);
        assert_eq!(
            names(&listing),
            ["a.txt", "link-in", "sub/b c.txt", "sub/deeper/ü.bin"]
        );
        let hidden = Root::new(&dir, true).unwrap();
        let listing = Listings::default().get(&hidden);
        assert!(names(&listing).contains(&".git/config"));
        fs::remove_dir_all(base).unwrap();
    }

    #[test]
    fn a_snapshot_is_shared_until_the_tree_changes() {
        let dir = scratch("shared");
        fs::write(dir.join("a"), b"a").unwrap();
        fs::write(dir.join("sub/b"), b"b").unwrap();
        let root = Root::new(&dir, false).unwrap();
        let listings = Listings::default();
        let first = listings.get(&root);
        assert_eq!(names(&first), ["a", "sub/b"]);
        // Just built, the directories are not settled: a new call walks
        // again, and sees a file added in the same tick.
        fs::write(dir.join("sub/c"), b"c").unwrap();
        let second = listings.get(&root);
        assert!(!Arc::ptr_eq(&first, &second));
        assert_eq!(names(&second), ["a", "sub/b", "sub/c"]);
        // Settled directories (mtimes set back by two seconds) and an
        // unchanged tree: the same snapshot.
        let old = SystemTime::now() - Duration::from_secs(2);
        for d in [dir.clone(), dir.join("sub")] {
            fs::File::open(&d).unwrap().set_modified(old).unwrap();
        }
        let third = listings.get(&root);
        assert!(Arc::ptr_eq(&third, &listings.get(&root)));
        // A file removed changes its directory: a new snapshot.
        fs::remove_file(dir.join("sub/b")).unwrap();
        assert_eq!(names(&listings.get(&root)), ["a", "sub/c"]);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_file_swapped_for_a_symlink_after_the_walk_is_not_followed() {
        let base = scratch("swap");
        let dir = base.join("root");
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("a"), b"a").unwrap();
        fs::write(base.join("outside"), b"secret size").unwrap();
        let root = Root::new(&dir, false).unwrap();
        let listing = Listings::default().get(&root);
        assert_eq!(listing.entries()[0].stat(&root).unwrap().1.len(), 1);
        fs::remove_file(dir.join("a")).unwrap();
        std::os::unix::fs::symlink(base.join("outside"), dir.join("a")).unwrap();
        assert!(listing.entries()[0].stat(&root).is_none());
        fs::remove_dir_all(base).unwrap();
    }

    #[test]
    fn live_snapshots_are_bounded() {
        let dir = scratch("live");
        let root = Root::new(&dir, false).unwrap();
        let listings = Listings::default();
        let mut held = Vec::new();
        for i in 0..3 * MAX_LIVE {
            fs::write(dir.join(format!("f{i}")), b"").unwrap();
            held.push(listings.get(&root));
        }
        let distinct = held
            .iter()
            .enumerate()
            .filter(|(i, s)| *i == 0 || !Arc::ptr_eq(s, &held[i - 1]))
            .count();
        assert_eq!(distinct, MAX_LIVE);
        drop(held);
        fs::write(dir.join("last"), b"").unwrap();
        assert!(names(&listings.get(&root)).contains(&"last"));
        fs::remove_dir_all(dir).unwrap();
    }
}
