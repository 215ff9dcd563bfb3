//! Sending a file's bytes to a peer: the one send path both protocols'
//! servers use. Bodies leave through sendfile(2); a plain read/write loop
//! is the fallback for files the kernel cannot splice from.

use std::fs::File;
use std::io::{self, Write};
use std::net::TcpStream;
use std::os::unix::fs::FileExt;

use crate::sys;
use crate::util::pace::Pacer;

/// Most bytes one sendfile call is asked for. The call blocks until all
/// are queued (or the write timeout passes), so this only sets how many
/// calls a large body takes: 256 per GiB.
const SENDFILE_CHUNK: u64 = 4 << 20;

/// Read size of the fallback loop. Measured on a 1 GiB loopback `get`
/// (median of 3): 8 KiB (what `io::copy` uses) 0.78 s and 0.25 s of server
/// CPU; 32 KiB 0.61 s and 0.12 s; 64–256 KiB no better.
const COPY_CHUNK: u64 = 32 * 1024;

/// Send an answer's header, ahead of a body of `body` bytes; an error
/// means the peer went away (or stopped reading) and ends the connection.
///
/// Ahead of a body the header is queued with `MSG_MORE` ([`sys::send_more`]):
/// with `TCP_NODELAY` it was a segment of its own, and over loopback each
/// segment also costs the server the receiver's TCP processing and wake-up.
/// [`send`] follows at once and pushes both, so a small file goes out in
/// one segment; if the body fails, the connection's close still sends it.
pub fn send_header(stream: &TcpStream, header: &[u8], body: u64) -> io::Result<()> {
    if body == 0 {
        return (&*stream).write_all(header);
    }
    let mut left = header;
    while !left.is_empty() {
        match sys::send_more(stream, left) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => left = &left[n..],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Send `want` bytes of `file` from `start`; how many went. The file's
/// position is neither used nor moved (the digest cache may be reading
/// the same descriptor).
/// Fewer than `want` means the file shrank or the peer went away (or
/// stopped reading past the socket's write timeout): the caller closes.
///
/// Not `io::copy`: std deliberately refuses sendfile(2) from a file into a
/// socket (`kernel_copy.rs`, `safe_kernel_copy`: later writes to the file
/// could show up in bytes already queued) and copies through an 8 KiB
/// buffer instead; `strace` showed 8193 writes for 64 MiB. A file changed
/// while it is sent is caught by the client's SHA-256 either way.
///
/// With `--max-rate` each call is one pacer's chunk and the loop sleeps
/// between them, for sendfile and fallback alike.
pub fn send(file: &File, start: u64, stream: &TcpStream, want: u64, max_rate: Option<u64>) -> u64 {
    let mut pacer = max_rate.map(Pacer::new);
    let chunk = pacer.as_ref().map_or(u64::MAX, Pacer::chunk).max(1);
    let mut sent = 0u64;
    while sent < want {
        let n = (want - sent).min(chunk).min(SENDFILE_CHUNK) as usize;
        let mut at = start + sent;
        match sys::sendfile(stream, file, &mut at, n) {
            Ok(0) => break, // the file shrank: stop rather than pad
            Ok(got) => {
                sent += got as u64;
                if let Some(pacer) = &mut pacer {
                    pacer.pace(got as u64);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if refused(&e) => {
                return sent + copy(file, start + sent, stream, want - sent, pacer)
            }
            Err(_) => break,
        }
    }
    sent
}

/// Whether sendfile said it cannot send this file at all (rather than that
/// this transfer failed): `EINVAL` for a file without splice support,
/// `ENOSYS` for a kernel or sandbox without the call.
fn refused(e: &io::Error) -> bool {
    // std maps EINVAL to InvalidInput and ENOSYS to Unsupported.
    matches!(
        e.kind(),
        io::ErrorKind::InvalidInput | io::ErrorKind::Unsupported
    )
}

/// The fallback: read and write through a buffer of [`COPY_CHUNK`] (or
/// the pacer's chunk, if smaller).
fn copy(file: &File, start: u64, stream: &TcpStream, want: u64, mut pacer: Option<Pacer>) -> u64 {
    let chunk = pacer
        .as_ref()
        .map_or(COPY_CHUNK, |p| p.chunk().min(COPY_CHUNK))
        .max(1);
    let mut buf = vec![0u8; chunk as usize];
    let mut sent = 0u64;
    while sent < want {
        let n = (want - sent).min(chunk) as usize;
        let got = match file.read_at(&mut buf[..n], start + sent) {
            Ok(0) => break,
            Ok(got) => got,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        if (&*stream).write_all(&buf[..got]).is_err() {
            break;
        }
        sent += got as u64;
        if let Some(pacer) = &mut pacer {
            pacer.pace(got as u64);
        }
    }
    sent
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    /// What `send` delivers for `want` bytes of `path`, read by the peer.
    fn delivered(path: &str, want: u64) -> (u64, Vec<u8>) {
        let file = File::open(path).unwrap();
        let (mut client, server) = crate::sys::tcp_pair();
        let sent = send(&file, 0, &server, want, None);
        drop(server);
        let mut got = Vec::new();
        client.read_to_end(&mut got).unwrap();
        (sent, got)
    }

    #[test]
    fn a_regular_file_goes_whole_and_stops_at_its_end() {
        let path = std::env::temp_dir().join(format!("tcpfetch-body-{}", std::process::id()));
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let (sent, got) = delivered(path.to_str().unwrap(), data.len() as u64);
        assert_eq!((sent, &got), (data.len() as u64, &data));
        // Asked for more than there is (the file shrank): no padding.
        let (sent, got) = delivered(path.to_str().unwrap(), data.len() as u64 + 10);
        std::fs::remove_file(&path).unwrap();
        assert_eq!((sent, got), (data.len() as u64, data));
    }

    #[test]
    fn a_file_sendfile_refuses_goes_through_the_copy_loop() {
        // sendfile from /proc/self/status is EINVAL (see sys's tests): the
        // fallback must still deliver exactly the bytes asked for.
        let text = std::fs::read("/proc/self/status").unwrap();
        let (sent, got) = delivered("/proc/self/status", 40);
        assert_eq!(sent, 40);
        // The first line (`Name:\t<program>`) does not change between reads.
        assert_eq!(got, text[..40]);
    }
}
