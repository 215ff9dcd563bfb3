//! The one receive loop: a file body from the network into a [`Sink`],
//! hashed as it goes, paced and watched.
//!
//! Every download (`get` in each of its modes, `get --legacy`, `bench`,
//! `ui`) runs this loop; what differs is the sink (a `.part`, stdout,
//! nothing), the hasher (on a second thread for one big download, inline
//! for `bench`, which must not spawn a thread per client) and who watches.

use std::io::{self, BufRead, Read, Write};

use sha2::{Digest as _, Sha256};

use crate::digest::{PipelinedHasher, CHUNK};
use crate::error::{Error, Phase, Result};
use crate::util::hex::Digest;
use crate::util::io::fill;
use crate::util::pace::Pacer;
use crate::util::progress::Progress;

/// Where received bytes go.
pub trait Sink {
    fn write(&mut self, bytes: &[u8]) -> Result<()>;
}

/// Throws the bytes away (they are still hashed): for `bench`.
pub struct Discard;

impl Sink for Discard {
    fn write(&mut self, _: &[u8]) -> Result<()> {
        Ok(())
    }
}

/// Standard output, and how many bytes went to it.
pub struct Stdout {
    out: io::Stdout,
    pub written: u64,
}

impl Stdout {
    pub fn new() -> Stdout {
        Stdout {
            out: io::stdout(),
            written: 0,
        }
    }

    pub fn flush(&mut self) -> Result<()> {
        self.out
            .flush()
            .map_err(|e| Error::local("cannot write to stdout", e))
    }
}

impl Sink for Stdout {
    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.out
            .write_all(bytes)
            .map_err(|e| Error::local("cannot write to stdout", e))?;
        self.written += bytes.len() as u64;
        Ok(())
    }
}

/// The SHA-256 of a body, computed beside the loop or within it.
pub enum Hasher<'a> {
    /// On its own thread: one core receives and writes, the other hashes.
    Pipelined(PipelinedHasher),
    /// In the loop (a bench client's, which must not start a thread of its
    /// own): into `buf` (one chunk, reused) when given one, else straight
    /// out of the body's own read buffer.
    Inline {
        state: Sha256,
        buf: Option<&'a mut Vec<u8>>,
    },
}

impl<'a> Hasher<'a> {
    /// Hash on a second thread, continuing from `state` (a resumed prefix).
    pub fn pipelined(state: Sha256) -> Result<Hasher<'static>> {
        PipelinedHasher::start(state)
            .map(Hasher::Pipelined)
            .map_err(|e| Error::local("cannot start the hasher", e))
    }

    /// Hash in the loop, reading into `buf` (grown to one chunk), or, with
    /// `None`, hashing the bytes where the body's reader buffered them: no
    /// memory of its own, but a read per reader's buffer (8 KiB).
    pub fn inline(buf: Option<&'a mut Vec<u8>>) -> Hasher<'a> {
        Hasher::Inline {
            state: Sha256::new(),
            buf,
        }
    }

    fn finish(self) -> Result<Digest> {
        match self {
            Hasher::Pipelined(h) => h.finish().map_err(|e| Error::local("hashing failed", e)),
            Hasher::Inline { state, .. } => Ok(state.finalize().into()),
        }
    }
}

/// What goes on beside the bytes: `--limit-rate`, the progress line, and
/// anyone else who hears of each chunk as `(done, size)`, and of the start
/// as `(offset, size)`. An observer's error ends the transfer (the page's
/// Cancel button).
#[derive(Default)]
pub struct Watch<'a> {
    pub pacer: Option<Pacer>,
    pub progress: Option<Progress>,
    pub observe: Option<&'a mut dyn FnMut(u64, u64) -> Result<()>>,
}

/// Receive the rest of a `size`-byte file, whose first `offset` bytes are
/// already hashed into `hasher`: exactly `size - offset` bytes from `body`
/// into `sink`. Returns the digest of the whole file. A body that ends
/// early is an I/O error (transient: a retry can resume).
pub fn receive(
    body: &mut impl BufRead,
    size: u64,
    offset: u64,
    sink: &mut dyn Sink,
    mut hasher: Hasher,
    watch: &mut Watch,
) -> Result<Digest> {
    let mut done = offset;
    if let Some(observe) = &mut watch.observe {
        observe(done, size)?;
    }
    loop {
        let most = watch.pacer.as_ref().map_or(usize::MAX, |p| {
            usize::try_from(p.chunk()).unwrap_or(usize::MAX)
        });
        let n = next_chunk(body, sink, &mut hasher, most)?;
        if n == 0 {
            break;
        }
        done += n as u64;
        if let Some(progress) = &mut watch.progress {
            progress.update(done, offset);
        }
        if let Some(observe) = &mut watch.observe {
            observe(done, size)?;
        }
        if let Some(pacer) = &mut watch.pacer {
            pacer.pace(n as u64);
        }
    }
    if let Some(progress) = &mut watch.progress {
        progress.finish();
    }
    if done < size {
        return Err(Error::closed(format!(
            "the server closed the connection after {done} of {size} bytes"
        )));
    }
    hasher.finish()
}

/// The next at most `most` bytes of `body` into the sink and the hasher;
/// 0 at the end of the body.
fn next_chunk(
    body: &mut impl BufRead,
    sink: &mut dyn Sink,
    hasher: &mut Hasher,
    most: usize,
) -> Result<usize> {
    let net = |e| Error::net(Phase::ReceiveBody, e);
    match hasher {
        Hasher::Pipelined(h) => {
            let mut buf = h.buffer();
            buf.truncate(most.min(buf.len()));
            let n = fill_body(body, &mut buf).map_err(net)?;
            buf.truncate(n);
            if n > 0 {
                sink.write(&buf)?;
            }
            // An empty buffer too goes back, to be reused.
            h.update(buf);
            Ok(n)
        }
        Hasher::Inline {
            state,
            buf: Some(buf),
        } => {
            buf.resize(CHUNK, 0);
            let n = fill_body(body, &mut buf[..most.min(CHUNK)]).map_err(net)?;
            sink.write(&buf[..n])?;
            state.update(&buf[..n]);
            Ok(n)
        }
        Hasher::Inline { state, buf: None } => {
            let bytes = loop {
                match body.fill_buf() {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    got => break got.map_err(net)?,
                }
            };
            let n = bytes.len().min(most);
            sink.write(&bytes[..n])?;
            state.update(&bytes[..n]);
            body.consume(n);
            Ok(n)
        }
    }
}

/// Read until `buf` is full or the body ends: fewer, larger writes and
/// hand-overs than one per socket read. Bytes that arrived before an error
/// are kept (written and hashed) and the error, if the connection is
/// really broken, shows again on the next read: only a read that got
/// nothing fails.
fn fill_body(body: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    match fill(body, buf) {
        (0, Err(e)) => Err(e),
        (filled, _) => Ok(filled),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Collects what it is given.
    struct Collect(Vec<u8>);

    impl Sink for Collect {
        fn write(&mut self, bytes: &[u8]) -> Result<()> {
            self.0.extend_from_slice(bytes);
            Ok(())
        }
    }

    #[test]
    fn both_hashers_give_the_digest_of_the_whole_body() {
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let want: Digest = Sha256::digest(&data).into();
        let mut spare = Vec::new();
        for hasher in [
            Hasher::pipelined(Sha256::new()).unwrap(),
            Hasher::inline(Some(&mut spare)),
            Hasher::inline(None),
        ] {
            let mut sink = Collect(Vec::new());
            let got = receive(
                &mut &data[..],
                data.len() as u64,
                0,
                &mut sink,
                hasher,
                &mut Watch::default(),
            )
            .unwrap();
            assert_eq!(got, want);
            assert_eq!(sink.0, data);
        }
    }

    #[test]
    fn a_short_body_is_a_transient_error() {
        let err = receive(
            &mut &[1u8; 10][..],
            20,
            0,
            &mut Discard,
            Hasher::pipelined(Sha256::new()).unwrap(),
            &mut Watch::default(),
        )
        .unwrap_err();
        assert!(err.is_transient(), "{err}");
        assert!(err.to_string().contains("after 10 of 20 bytes"), "{err}");
    }
}
