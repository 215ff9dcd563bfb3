//! The names a download to PATH is staged under, beside PATH: the bytes in
//! `PATH.part`, the version they belong to in `PATH.part.sha256`, and that
//! record, while it is written, in `PATH.part.sha256.tmp`.
//!
//! Those names are up to 16 bytes longer than PATH's last component, and a
//! directory entry holds at most 255 bytes. A name that fits but would not
//! with the suffixes is staged under a shortened base instead: its first
//! bytes, cut at the start of a UTF-8 character, then `~` and 16 hex
//! digits of the SHA-256 of the whole name (`0123…xyz~1f2e3d4c5b6a7988.part`).
//! The base depends on the name alone, so an interrupted download resumes
//! from the same `.part`, and two long names that share their first bytes
//! differ in the digits. A name that fits with the suffixes is staged as
//! `PATH.part`, as it always was.

use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use crate::util::hex;

/// The longest name of one directory entry on the file systems Linux
/// shares (ext4, xfs, btrfs, tmpfs, NFS): NAME_MAX. Fixed rather than
/// asked of the file system (pathconf), which std cannot do: one with a
/// shorter limit still refuses the name, and `Part` says to use `-o`.
const NAME_MAX: usize = 255;

/// What a staging name adds to its base.
const PART: &str = ".part";
const RECORD: &str = ".part.sha256";
const TEMP: &str = ".part.sha256.tmp";

/// Hex digits of the whole name's SHA-256 in a shortened base: 64 bits, so
/// long names sharing a prefix do not meet by chance.
const NAME_HASH_HEX: usize = 16;

/// Where a download to one PATH is staged.
pub struct Names {
    /// `PATH.part`: the bytes received.
    pub part: PathBuf,
    /// `PATH.part.sha256`: the version they belong to.
    pub record: PathBuf,
    /// `PATH.part.sha256.tmp`: the record while it is written.
    pub temp: PathBuf,
}

impl Names {
    pub fn of(path: &Path) -> Names {
        let base = base(path);
        Names {
            part: suffixed(&base, PART),
            record: suffixed(&base, RECORD),
            temp: suffixed(&base, TEMP),
        }
    }

    pub fn into_paths(self) -> [PathBuf; 3] {
        [self.part, self.record, self.temp]
    }
}

/// PATH, or PATH with its last component shortened as the module doc says
/// when that component fits NAME_MAX but not with the longest suffix. A
/// component past NAME_MAX itself is left whole: the file system refuses
/// it at once, before a byte is downloaded, not at the final rename.
fn base(path: &Path) -> PathBuf {
    let Some(name) = path.file_name() else {
        return path.to_path_buf();
    };
    let name = name.as_bytes();
    if name.len() + TEMP.len() <= NAME_MAX || name.len() > NAME_MAX {
        return path.to_path_buf();
    }
    let keep = NAME_MAX - TEMP.len() - 1 - NAME_HASH_HEX;
    // A UTF-8 character is at most 4 bytes: back up over at most 3
    // continuation bytes to the start of the one cut. A name that is not
    // UTF-8 is cut where it falls.
    let mut cut = keep;
    while cut > keep - 3 && name.get(cut).is_some_and(|b| b & 0xC0 == 0x80) {
        cut -= 1;
    }
    let digest = Sha256::digest(name);
    let mut short = OsString::from_vec(name[..cut].to_vec());
    short.push("~");
    short.push(hex::encode(&digest[..NAME_HASH_HEX / 2]));
    path.with_file_name(short)
}

fn suffixed(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part_name(name: &str) -> String {
        let names = Names::of(&Path::new("dir").join(name));
        assert_eq!(names.part.parent(), Some(Path::new("dir")));
        let part = names
            .part
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        let base = part.strip_suffix(PART).unwrap();
        for (path, suffix) in [(&names.record, RECORD), (&names.temp, TEMP)] {
            let file = path.file_name().unwrap().to_str().unwrap();
            assert_eq!(file, format!("{base}{suffix}"));
            assert!(file.len() <= NAME_MAX || name.len() > NAME_MAX, "{file}");
        }
        part
    }

    fn digits(name: &str) -> String {
        hex::encode(&Sha256::digest(name.as_bytes())[..8])
    }

    #[test]
    fn names_that_fit_are_staged_as_path_part() {
        for name in ["f", "a b.txt", &"m".repeat(239)] {
            assert_eq!(part_name(name), format!("{name}.part"));
        }
        let bare = Names::of(Path::new("x")).into_paths();
        assert_eq!(
            bare,
            ["x.part", "x.part.sha256", "x.part.sha256.tmp"].map(PathBuf::from)
        );
    }

    #[test]
    fn a_name_within_16_bytes_of_the_limit_is_staged_shortened() {
        for len in [240, 250, 255] {
            let name = "m".repeat(len);
            let want = format!("{}~{}.part", "m".repeat(222), digits(&name));
            assert_eq!(part_name(&name), want, "{len}");
            // The same PATH, the same names: a resume finds its .part.
            assert_eq!(part_name(&name), want, "{len}");
        }
    }

    #[test]
    fn long_names_sharing_a_prefix_get_their_own_names() {
        let common = "p".repeat(240);
        let (a, b) = (format!("{common}aaaaaaaaaa"), format!("{common}bbbbbbbbbb"));
        assert_ne!(part_name(&a), part_name(&b));
        assert!(part_name(&a).starts_with(&"p".repeat(222)));
    }

    #[test]
    fn the_cut_falls_at_the_start_of_a_character() {
        // 'ü' is two bytes, '€' three, '𝄞' four: byte 222 falls inside
        // one for each offset tried, and the prefix must stay UTF-8.
        for ch in ['ü', '€', '𝄞'] {
            for lead in 0..4 {
                let wide = ch.to_string().repeat(240 / ch.len_utf8());
                let name = format!("{}{wide}", "a".repeat(lead));
                let part = part_name(&name);
                let prefix = part.split('~').next().unwrap();
                assert!(name.starts_with(prefix), "{ch} {lead}");
                assert!(prefix.len() > 222 - ch.len_utf8(), "{ch} {lead}");
                assert!(part.ends_with(&format!("~{}.part", digits(&name))));
            }
        }
        // Bytes that are not UTF-8 are cut where they fall.
        let name = std::ffi::OsStr::from_bytes(&[0xff; 250]);
        let names = Names::of(Path::new(name));
        assert_eq!(
            names.part.as_os_str().as_bytes()[..223],
            [[0xff; 222].as_slice(), b"~"].concat()
        );
    }

    #[test]
    fn a_name_past_the_limit_is_left_whole() {
        // Refused by the file system at the first open, not after the
        // download at the rename.
        let name = "m".repeat(256);
        assert_eq!(part_name(&name), format!("{name}.part"));
    }
}
