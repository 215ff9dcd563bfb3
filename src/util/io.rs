//! Reading until a buffer is full: the one loop for every reader that
//! wants whole buffers (the receive loop, the hashers, the old protocol's
//! fixed-size header) rather than whatever one `read` returns.

use std::io::{self, Read};

/// Read into `buf` until it is full or the input ends, retrying
/// interrupted reads. Returns how many bytes were read and whether the
/// reading ended without an error.
///
/// The bytes read before an error are in `buf` either way, so each caller
/// says what they are worth: the receive loop keeps them (a socket's error
/// shows again on the next read), a hash of a whole input has no use for
/// them and returns the error alone.
pub fn fill(reader: &mut impl Read, buf: &mut [u8]) -> (usize, io::Result<()>) {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return (filled, Err(e)),
        }
    }
    (filled, Ok(()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_reads_until_full_or_end() {
        let data = vec![7u8; 300];
        let mut reader = io::BufReader::with_capacity(16, &data[..]);
        let mut buf = vec![0u8; 256];
        assert_eq!(fill(&mut reader, &mut buf).0, 256);
        assert_eq!(fill(&mut reader, &mut buf).0, 44);
        assert_eq!(fill(&mut reader, &mut buf).0, 0);
    }

    /// Yields `data` in reads of at most 3 bytes, one interrupted read
    /// first, then fails.
    struct Failing {
        data: Vec<u8>,
        interrupted: bool,
    }

    impl Read for Failing {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if !self.interrupted {
                self.interrupted = true;
                return Err(io::ErrorKind::Interrupted.into());
            }
            if self.data.is_empty() {
                return Err(io::ErrorKind::ConnectionReset.into());
            }
            let n = buf.len().min(3).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data.drain(..n);
            Ok(n)
        }
    }

    #[test]
    fn an_error_comes_with_the_bytes_read_before_it() {
        let mut reader = Failing {
            data: b"abcdefg".to_vec(),
            interrupted: false,
        };
        let mut buf = [0u8; 16];
        let (n, result) = fill(&mut reader, &mut buf);
        assert_eq!(&buf[..n], b"abcdefg");
        assert_eq!(result.unwrap_err().kind(), io::ErrorKind::ConnectionReset);
        let (n, result) = fill(&mut reader, &mut buf);
        assert_eq!(n, 0);
        assert!(result.is_err());
    }
}
