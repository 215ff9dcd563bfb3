//! One bench client: wait at the gate, then request, receive, hash and
//! verify until the plan says stop, tallying into its own [`Stats`].

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use sha2::{Digest as _, Sha256};

use super::{Args, Finished, Outcome, Run, Stats};
use crate::client::legacy;
use crate::client::Connection;
use crate::digest::CHUNK;
use crate::error::{Error, Phase, Result};
use crate::util::hex;

/// One client: wait for the start, then request until the plan says stop.
pub(super) fn client(run: &Run, id: usize) -> Stats {
    let _finished = Finished(&run.finished);
    let mut stats = Stats::default();
    let Some(start) = run.gate.wait() else {
        return stats;
    };
    let args = run.args;
    let mut buf = vec![0u8; CHUNK];
    let mut conn = None;
    let mut own = 0u64;
    while let Some(started) = run.next_start(start.0, own) {
        own += 1;
        let name = &args.names[(id - 1 + own as usize - 1) % args.names.len()];
        let save = args
            .save
            .as_ref()
            .and_then(|dir| save_path(dir, id, own, name));
        let mut outcome = Outcome {
            client: id,
            request: own,
            name,
            started,
            connect: None,
            ttfb: None,
            total: Duration::ZERO,
            bytes: 0,
            attempts: 0,
            result: Ok(()),
        };
        loop {
            outcome.attempts += 1;
            outcome.connect = None;
            outcome.ttfb = None;
            outcome.result = fetch(&mut conn, args, &mut outcome, &mut buf, save.as_deref());
            if outcome.result.is_err() || !args.keep_alive {
                conn = None;
            }
            match &outcome.result {
                Err(e) if e.is_transient() && outcome.attempts <= args.retries => {
                    thread::sleep(backoff(outcome.attempts, id, own));
                }
                _ => break,
            }
        }
        outcome.total = started.elapsed();
        stats.add(&outcome);
        run.record(&outcome, start);
    }
    stats
}

/// One attempt at one request: connect if needed, `GET`, receive and hash
/// the body, compare with the header's digest (as `get` does).
fn fetch(
    conn: &mut Option<Connection>,
    args: &Args,
    outcome: &mut Outcome,
    buf: &mut [u8],
    save: Option<&Path>,
) -> Result<()> {
    if args.legacy {
        return fetch_legacy(args, outcome, save);
    }
    let conn = match conn {
        Some(c) => c,
        None => {
            let t = Instant::now();
            let opened = conn.insert(Connection::open_with_key(
                &args.addr,
                args.timeouts,
                args.key.as_ref(),
            )?);
            outcome.connect = Some(t.elapsed());
            opened
        }
    };
    let answer = conn.request_file(outcome.name, 0);
    if matches!(answer, Ok(_) | Err(Error::Remote { .. })) {
        outcome.ttfb = Some(outcome.started.elapsed());
    }
    let header = answer?;
    let mut file = match save {
        Some(path) => Some(
            File::create(path)
                .map_err(|e| Error::local(format!("cannot write '{}'", path.display()), e))?,
        ),
        None => None,
    };
    let received = receive(conn, header.size, buf, file.as_mut(), save, outcome);
    let verified = received.and_then(|digest| {
        if digest == header.digest {
            Ok(())
        } else {
            Err(Error::Integrity(format!(
                "received bytes hash to {} but the server announced {}",
                hex::encode(&digest),
                hex::encode(&header.digest)
            )))
        }
    });
    if let (Err(_), Some(path)) = (&verified, save) {
        let _ = fs::remove_file(path);
    }
    verified
}

/// One old-protocol session (`--legacy`): the whole HELLO … DIGEST dance,
/// verified the same way.
fn fetch_legacy(args: &Args, outcome: &mut Outcome, save: Option<&Path>) -> Result<()> {
    let wanted = legacy::Wanted::parse(outcome.name);
    let fetched = match save {
        Some(path) => {
            let mut sink = SaveSink { path, file: None };
            let fetched = legacy::fetch(&args.addr, &wanted, args.timeouts, &mut sink);
            if !matches!(&fetched, Ok(f) if f.check().is_ok()) {
                let _ = fs::remove_file(path);
            }
            fetched?
        }
        None => legacy::fetch(&args.addr, &wanted, args.timeouts, &mut legacy::Discard)?,
    };
    let t = &fetched.timings;
    outcome.connect = Some(t.connect);
    outcome.ttfb = Some(t.connect + t.handshake + t.first_byte);
    outcome.bytes = fetched.size;
    fetched.check()
}

/// Writes a legacy download to its `--save` path.
struct SaveSink<'a> {
    path: &'a Path,
    file: Option<File>,
}

impl legacy::Sink for SaveSink<'_> {
    fn start(&mut self, _: u64, _: Option<&str>, _: u64) -> Result<()> {
        let file = File::create(self.path)
            .map_err(|e| Error::local(format!("cannot write '{}'", self.path.display()), e))?;
        self.file = Some(file);
        Ok(())
    }

    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        match self.file.as_mut() {
            Some(f) => f
                .write_all(bytes)
                .map_err(|e| Error::local(format!("cannot write '{}'", self.path.display()), e)),
            None => Ok(()),
        }
    }
}

/// Read exactly `size` body bytes into the one reusable buffer, hashing
/// them (and writing them to `file` under `--save`).
fn receive(
    conn: &mut Connection,
    size: u64,
    buf: &mut [u8],
    mut file: Option<&mut File>,
    path: Option<&Path>,
    outcome: &mut Outcome,
) -> Result<hex::Digest> {
    let mut hasher = Sha256::new();
    let mut body = conn.body(size);
    let mut got = 0u64;
    loop {
        let n = match body.read(buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::net(Phase::ReceiveBody, e)),
        };
        hasher.update(&buf[..n]);
        got += n as u64;
        outcome.bytes += n as u64;
        if let (Some(f), Some(p)) = (file.as_mut(), path) {
            f.write_all(&buf[..n])
                .map_err(|e| Error::local(format!("cannot write '{}'", p.display()), e))?;
        }
    }
    if got < size {
        return Err(Error::closed(format!(
            "the server closed the connection after {got} of {size} bytes"
        )));
    }
    Ok(hasher.finalize().into())
}

/// `DIR/CLIENT-REQUEST-BASENAME`; names were checked when parsing.
fn save_path(dir: &Path, client: usize, request: u64, name: &str) -> Option<PathBuf> {
    let base = crate::cmd::get::local_path(name, None).ok()?;
    Some(dir.join(format!("{client}-{request}-{}", base.display())))
}

/// The pause before retry `attempt`: 50 ms doubling up to 2 s, spread by a
/// factor in [0.5, 1.5) that differs per client and request, so clients
/// turned away together do not all come back in the same instant.
fn backoff(attempt: u32, client: usize, request: u64) -> Duration {
    let base =
        Duration::from_millis(50 << attempt.min(6).saturating_sub(1)).min(Duration::from_secs(2));
    let seed = (client as u64) << 32 ^ request << 8 ^ u64::from(attempt);
    let mixed = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 40;
    base.mul_f64(0.5 + mixed as f64 / (1u64 << 24) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saved_files_are_named_by_client_request_and_base_name() {
        assert_eq!(
            save_path(Path::new("out"), 3, 7, "sub/dir/a.bin"),
            Some(PathBuf::from("out/3-7-a.bin"))
        );
        assert_eq!(save_path(Path::new("out"), 1, 1, "sub/.."), None);
    }

    #[test]
    fn backoff_grows_and_stays_bounded() {
        for attempt in 1..20 {
            let b = backoff(attempt, 17, 3);
            assert!(
                b >= Duration::from_millis(25) && b < Duration::from_secs(3),
                "{b:?}"
            );
        }
        assert!(backoff(1, 1, 1) < Duration::from_millis(75));
    }
}
