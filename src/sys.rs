//! The only place tcpfetch calls the C library or writes `unsafe`: what the
//! standard library cannot do. Each call is wrapped in a small safe
//! function with a unit test; the crate root denies `unsafe_code`
//! everywhere else.
//!
//! Add a wrapper here only for a measured reason, and say it in its doc.

#![allow(unsafe_code)]

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// `open(2)` flag for `OpenOptionsExt::custom_flags`, which std has no
/// name for: fail (ELOOP) when the last component is a symlink, so a
/// staging file planted as a link to someone else's file is never opened.
pub const O_NOFOLLOW: i32 = libc::O_NOFOLLOW;

/// `open(2)` flag: opening a FIFO planted where a file was expected fails
/// (ENXIO) or returns at once instead of waiting for a peer; it changes
/// nothing for a regular file.
pub const O_NONBLOCK: i32 = libc::O_NONBLOCK;

/// `open(2)` flag: a terminal opened with it never becomes the process's
/// controlling terminal (which a session leader without one would get, and
/// with it the terminal's signals). `serve` opens every requested path
/// with it and `O_NONBLOCK`, so a tty or device swapped in for a checked
/// file neither hangs a thread nor takes the server over.
pub const O_NOCTTY: i32 = libc::O_NOCTTY;

/// Ignore `SIGXFSZ`. Under a file-size limit (`ulimit -f`, `RLIMIT_FSIZE`)
/// the kernel's default for a write past the limit is to kill the process
/// with no message; ignored, the write fails with `EFBIG` instead, and
/// `get` reports it like a full disk: a clear local-write error.
pub fn ignore_file_size_signal() -> io::Result<()> {
    // SAFETY: `signal` with `SIG_IGN` installs no handler code, so nothing
    // can run in signal context; SIGXFSZ is a valid signal number.
    let previous = unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
    if previous == libc::SIG_ERR {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The effective user id, to refuse a staging file someone else owns: it
/// could be read or changed by them after it is renamed into place.
pub fn effective_uid() -> u32 {
    // SAFETY: `geteuid` takes no arguments, touches no memory of ours and
    // cannot fail.
    unsafe { libc::geteuid() }
}

/// Start writing `len` bytes of `file` from `offset` to disk, without
/// waiting for them (`sync_file_range(SYNC_FILE_RANGE_WRITE)`). A durable
/// download calls it every few MiB as the bytes arrive, so the flush before
/// the rename finds little left to write: without it the kernel holds back
/// up to its dirty limit (GiBs here) and the final `fdatasync` writes it
/// all while the download waits. Measured in tests/README.md. It is a
/// hint: it guarantees nothing, and the caller still flushes.
pub fn start_writeback(file: &File, offset: u64, len: u64) -> io::Result<()> {
    let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    };
    // SAFETY: the descriptor is open for as long as `file` is borrowed;
    // `sync_file_range` reads no memory of ours and only schedules I/O.
    let rc = unsafe {
        libc::sync_file_range(file.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE)
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Listen on an already bound socket with a backlog of `backlog`
/// connections. `TcpListener::bind` always asks for 128 and std cannot
/// change it; on Linux a second `listen` on a listening socket just sets
/// the new backlog (the kernel caps it at `net.core.somaxconn`). With 128,
/// 1000 clients connecting at once lost SYNs and waited for the kernel's
/// 1 s retransmit: p50 1.06 s instead of tens of milliseconds.
pub fn set_listen_backlog(socket: &TcpListener, backlog: u32) -> io::Result<()> {
    let backlog = i32::try_from(backlog).unwrap_or(i32::MAX);
    // SAFETY: the descriptor is owned by `socket`, which outlives the call;
    // `listen` takes no pointers.
    let rc = unsafe { libc::listen(socket.as_raw_fd(), backlog) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The open-file limit after [`raise_open_files_limit`]: `soft` is what
/// this process may use, `hard` the most it could ever be raised to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileLimit {
    pub soft: u64,
    pub hard: u64,
}

/// Raise the soft `RLIMIT_NOFILE` to the hard limit, as Go's runtime does
/// at start: the soft default (1024 under systemd) exists for programs
/// that use `select(2)`, which tcpfetch does not, and 1000 clients need
/// more than 1024 descriptors. Returns the limit now in force; when it
/// cannot be raised, the old one.
pub fn raise_open_files_limit() -> io::Result<FileLimit> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid, writable `rlimit` for the call's duration.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: `raised` is a valid `rlimit` that outlives the call.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            limit.rlim_cur = limit.rlim_max;
        }
    }
    Ok(FileLimit {
        soft: limit.rlim_cur,
        hard: limit.rlim_max,
    })
}

/// Send up to `count` bytes of `file`, starting at `*offset` (which
/// advances by what went; the file's own position is left alone), into
/// `socket` without copying them through user space. How many went; 0 at
/// the end of the file. `EINVAL` or `ENOSYS` mean the file (or the
/// kernel) cannot do it: the caller falls back to read/write.
///
/// std's `io::copy` never does this for a file into a socket (it refuses
/// on purpose: see `serve::body`), so a plain loop cost the server 0.32 s
/// of CPU per GiB against nginx's 0.16 s with sendfile.
pub fn sendfile(
    socket: &TcpStream,
    file: &File,
    offset: &mut u64,
    count: usize,
) -> io::Result<usize> {
    let mut off =
        libc::off_t::try_from(*offset).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: both descriptors are owned by borrowed objects that outlive
    // the call; `off` is a valid, writable off_t for its duration.
    let n = unsafe { libc::sendfile(socket.as_raw_fd(), file.as_raw_fd(), &mut off, count) };
    let sent = usize::try_from(n).map_err(|_| io::Error::last_os_error())?;
    *offset += sent as u64;
    Ok(sent)
}

/// The argument of `openat2(2)`, as `linux/openat2.h` lays it out (libc's
/// `open_how` is `non_exhaustive`, so it cannot be built outside libc).
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// Open the file at `path` for reading with the extra `flags`, failing
/// (`ELOOP`) if any component of the path is a symlink, the last one
/// included (`openat2` with `RESOLVE_NO_SYMLINKS`). So the file opened is
/// the one the path names letter for letter: under a canonical directory,
/// a name without `.`, `..` or empty components cannot leave it.
///
/// One call where `serve` otherwise canonicalises (a `readlink` for each
/// component), opens, and asks `/proc/self/fd` where the descriptor
/// landed: measured in tests/README.md (#14, new connection per request).
/// Linux 5.6 and later; see [`openat2_unavailable`] for older ones.
pub fn open_without_symlinks(path: &Path, flags: i32) -> io::Result<File> {
    let path = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let flags = libc::O_RDONLY | libc::O_CLOEXEC | flags;
    let how = OpenHow {
        flags: u64::try_from(flags).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?,
        mode: 0,
        resolve: libc::RESOLVE_NO_SYMLINKS,
    };
    // SAFETY: `path` is a NUL-terminated string and `how` a valid
    // `open_how` of the size passed; both outlive the call, which reads
    // them only during it.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            libc::AT_FDCWD,
            path.as_ptr(),
            &how as *const OpenHow,
            std::mem::size_of::<OpenHow>(),
        )
    };
    let fd = i32::try_from(fd).map_err(|_| io::Error::last_os_error())?;
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by the kernel, open, and owned by
    // nothing else; the `File` takes it over and closes it.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// Whether an error of [`open_without_symlinks`] says the call itself is
/// not available, for this file or any other: `ENOSYS` on kernels before
/// 5.6, `EPERM` from seccomp filters (older container runtimes) that do
/// not know it. Callers then stop trying it.
pub fn openat2_unavailable(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSYS | libc::EPERM))
}

/// Queue `bytes` on `socket` as `send(2)` with `MSG_MORE`: more data
/// follows at once, so the kernel holds them for it instead of sending a
/// segment of their own (`TCP_NODELAY` notwithstanding). How many bytes
/// were taken. The caller must send more, or close, right after: the
/// bytes wait for that.
///
/// `serve` sends a file's header this way before its sendfile, so a
/// small file's header and body leave in one segment instead of two;
/// over loopback each segment also runs the receiver's TCP stack and wakes
/// it on the server's CPU. Measured in tests/README.md (#14).
pub fn send_more(socket: &TcpStream, bytes: &[u8]) -> io::Result<usize> {
    // SAFETY: the descriptor is owned by `socket`, which outlives the
    // call; `bytes` is valid for reads of its length during it.
    let n = unsafe {
        libc::send(
            socket.as_raw_fd(),
            bytes.as_ptr().cast(),
            bytes.len(),
            libc::MSG_MORE | libc::MSG_NOSIGNAL,
        )
    };
    usize::try_from(n).map_err(|_| io::Error::last_os_error())
}

/// A connected loopback pair (client, server) for the socket tests here
/// and in `serve`.
#[cfg(test)]
pub fn tcp_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let client = TcpStream::connect(listener.local_addr().expect("address")).expect("connect");
    let (server, _) = listener.accept().expect("accept");
    (client, server)
}

/// Ask the CPU to start loading each 64-byte line of `bytes` into its
/// cache, without waiting for them (`prefetcht0`). The hasher of one big
/// file (`digest`) asks for each line 4 KiB before it hashes it: the bytes were just written by the reader on the other core, and
/// SHA-256 would stall on each line in turn. Safe Rust can only load a byte
/// of each line, which waits for them all before the hash after it can
/// finish; measured on 1 GiB from the page cache (tests/README.md, "Verify
/// and sum speed"), the hasher's CPU time went from 0.74 s with such loads
/// to 0.67 s with this (the hash alone: 0.62 s). A hint only: elsewhere
/// than x86_64, one load per line.
pub fn prefetch(bytes: &[u8]) {
    for line in bytes.chunks(64) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: a prefetch never faults and changes no memory or register
        // the program can see, whatever the address (this one is inside
        // `bytes`); SSE, the target feature it needs, is part of every
        // x86_64 CPU.
        unsafe {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            _mm_prefetch::<_MM_HINT_T0>(line.as_ptr().cast());
        }
        #[cfg(not(target_arch = "x86_64"))]
        std::hint::black_box(line[0]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::{self, OpenOptions};
    use std::io::Write;
    use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};

    #[test]
    fn no_follow_refuses_a_symlink_and_opens_a_file() {
        let dir = crate::util::scratch_dir("sys-nofollow");
        fs::write(dir.join("victim"), b"keep").unwrap();
        std::os::unix::fs::symlink(dir.join("victim"), dir.join("link")).unwrap();
        let open = |name: &str| {
            OpenOptions::new()
                .append(true)
                .create(true)
                .custom_flags(O_NOFOLLOW | O_NONBLOCK)
                .open(dir.join(name))
        };
        assert!(open("link").is_err());
        open("plain").unwrap().write_all(b"x").unwrap();
        assert_eq!(fs::read(dir.join("victim")).unwrap(), b"keep");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_fifo_opens_at_once_without_a_writer() {
        let dir = crate::util::scratch_dir("sys-fifo");
        let fifo = dir.join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(made.unwrap().success(), "mkfifo failed");
        // Without O_NONBLOCK this open would wait for a writer forever.
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(O_NONBLOCK | O_NOCTTY)
            .open(&fifo)
            .unwrap();
        assert!(file.metadata().unwrap().file_type().is_fifo());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_effective_uid_owns_what_we_create() {
        let dir = crate::util::scratch_dir("sys-uid");
        fs::write(dir.join("mine"), b"").unwrap();
        let owner = fs::metadata(dir.join("mine")).unwrap().uid();
        assert_eq!(effective_uid(), owner);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn writeback_can_be_started_on_a_written_range() {
        let dir = crate::util::scratch_dir("sys-writeback");
        let mut file = File::create(dir.join("f")).unwrap();
        file.write_all(&[1; 8192]).unwrap();
        start_writeback(&file, 0, 8192).unwrap();
        assert!(start_writeback(&file, u64::MAX, 1).is_err());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_file_size_signal_can_be_ignored() {
        ignore_file_size_signal().unwrap();
        // Idempotent: asking again sees our own disposition.
        ignore_file_size_signal().unwrap();
    }

    #[test]
    fn a_second_listen_sets_the_backlog() {
        let socket = TcpListener::bind("127.0.0.1:0").unwrap();
        set_listen_backlog(&socket, 1000).unwrap();
        // Still listening: a client gets in.
        let addr = socket.local_addr().unwrap();
        let _client = TcpStream::connect(addr).unwrap();
        socket.accept().unwrap();
    }

    #[test]
    fn the_open_files_limit_is_raised_to_the_hard_one() {
        let limit = raise_open_files_limit().unwrap();
        assert_eq!(limit.soft, limit.hard);
        assert_eq!(raise_open_files_limit().unwrap(), limit);
    }

    #[test]
    fn open_without_symlinks_opens_a_plain_path_and_refuses_any_link() {
        let dir = crate::util::scratch_dir("sys-openat2");
        fs::create_dir_all(dir.join("sub")).unwrap();
        fs::write(dir.join("sub/file"), b"data").unwrap();
        std::os::unix::fs::symlink("file", dir.join("sub/link")).unwrap();
        std::os::unix::fs::symlink("sub", dir.join("dirlink")).unwrap();
        let open = |name: &str| open_without_symlinks(&dir.join(name), O_NONBLOCK | O_NOCTTY);
        let mut got = String::new();
        let mut file = open("sub/file").unwrap();
        std::io::Read::read_to_string(&mut file, &mut got).unwrap();
        assert_eq!(got, "data");
        // Read-only: writing through it fails.
        assert!(file.write_all(b"x").is_err());
        for link in ["sub/link", "dirlink/file"] {
            let err = open(link).unwrap_err();
            assert_eq!(err.raw_os_error(), Some(libc::ELOOP), "{link}");
            assert!(!openat2_unavailable(&err));
        }
        assert_eq!(
            open("sub/missing").unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        assert_eq!(
            open("a\0b").unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn only_enosys_and_eperm_mean_openat2_is_unavailable() {
        let errno = io::Error::from_raw_os_error;
        assert!(openat2_unavailable(&errno(libc::ENOSYS)));
        assert!(openat2_unavailable(&errno(libc::EPERM)));
        for other in [libc::EACCES, libc::ENOENT, libc::ELOOP, libc::EXDEV] {
            assert!(!openat2_unavailable(&errno(other)), "{other}");
        }
    }

    #[test]
    fn bytes_sent_with_more_arrive_with_what_follows() {
        use std::io::Read;
        let (mut client, server) = tcp_pair();
        assert_eq!(send_more(&server, b"head ").unwrap(), 5);
        (&server).write_all(b"body").unwrap();
        drop(server);
        let mut got = Vec::new();
        client.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"head body");
    }

    #[test]
    fn sendfile_sends_from_an_offset_and_advances_it() {
        use std::io::{Read, Write};
        let path = std::env::temp_dir().join(format!("tcpfetch-sys-{}", std::process::id()));
        File::create(&path)
            .unwrap()
            .write_all(b"0123456789")
            .unwrap();
        let file = File::open(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        let (mut client, server) = tcp_pair();
        let mut offset = 3;
        assert_eq!(sendfile(&server, &file, &mut offset, 4).unwrap(), 4);
        assert_eq!(offset, 7);
        assert_eq!(sendfile(&server, &file, &mut offset, 100).unwrap(), 3);
        assert_eq!(sendfile(&server, &file, &mut offset, 100).unwrap(), 0);
        assert_eq!(offset, 10);
        drop(server);
        let mut got = Vec::new();
        client.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"3456789");
    }

    #[test]
    fn sendfile_is_refused_for_a_file_without_splice_support() {
        // /proc/self/status has no splice_read: the kernel says EINVAL,
        // which is the error `serve::body` falls back on.
        let file = File::open("/proc/self/status").unwrap();
        let (_client, server) = tcp_pair();
        let err = sendfile(&server, &file, &mut 0, 100).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EINVAL));
    }

    #[test]
    fn prefetch_takes_any_slice_and_changes_nothing() {
        let data: Vec<u8> = (0..10_000).map(|i| (i % 251) as u8).collect();
        for (from, to) in [(0, 0), (0, 1), (3, 67), (1, 9_999), (0, 10_000)] {
            prefetch(&data[from..to]);
        }
        assert!(data.iter().enumerate().all(|(i, &b)| b == (i % 251) as u8));
    }
}
