//! One bench client: wait at the gate, warm up, then request, receive, hash
//! and verify until the plan says stop, each request counted by the run.
//!
//! A request is the download pipeline's pieces run by hand: the source
//! (either protocol), the receive loop with an inline hasher (no thread per
//! client), and under `--save` a [`Part`] committed once verified.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::thread;
use std::time::{Duration, Instant};

use super::{Finished, Outcome, Plan, Run};
use crate::client::Source;
use crate::error::{Error, Result};
use crate::fetch::backoff::Backoff;
use crate::fetch::part::Part;
use crate::fetch::receive::{receive, Discard, Hasher, Sink, Watch};

/// The pause before a retry: 50 ms doubling up to 2 s, spread per client
/// and request.
const RETRY: Backoff = Backoff {
    first: Duration::from_millis(50),
    cap: Duration::from_secs(2),
};

/// Bodies from this size on are read into the client's own buffer of one
/// chunk (128 KiB), a read per chunk. Smaller ones are hashed where the
/// connection's 8 KiB read buffer holds them, so a client costs about
/// 20 KiB (that buffer, its stack's touched pages): 10 000 clients of a
/// 64 KiB file peaked at 0.8-1.2 GiB with a chunk each, whose pages they
/// all touched and faulted in while being timed.
const OWN_BUFFER_FROM: u64 = 1 << 20;

/// One client: wait for the start, warm up, then request until the plan
/// says stop, each finished request counted by the run; then wait for the
/// run's end before the thread exits.
pub(super) fn client(run: &Run, id: usize) {
    requests(run, id);
    // An exiting thread unmaps its stack and signal stack: TLB shootdowns
    // that interrupt every core, the server's and those of clients still
    // being timed (6 % of a 1000-client crowd's CPU in `perf`).
    run.ended.wait();
}

/// The client's part of the run, counted finished however it ends.
fn requests(run: &Run, id: usize) {
    let _finished = Finished(run);
    if run.gate.wait().is_none() {
        return;
    }
    let plan = run.plan;
    // Grown to one chunk by the first large body, if any.
    let mut buf = Vec::new();
    let mut source = None;
    for n in 0..plan.warmup {
        if run.go_on().is_err() {
            break;
        }
        let name = pick(plan, id, n + 1);
        request(
            run,
            id,
            n + 1,
            name,
            Instant::now(),
            &mut source,
            &mut buf,
            None,
        );
    }
    run.warmed.fetch_add(1, Ordering::Release);
    let Some(start) = run.measured.wait() else {
        return;
    };
    let mut own = 0u64;
    while let Some(started) = run.next_start(start.0, own) {
        own += 1;
        let name = pick(plan, id, own);
        let save = plan
            .save
            .as_ref()
            .and_then(|dir| save_path(dir, id, own, name));
        let outcome = request(
            run,
            id,
            own,
            name,
            started,
            &mut source,
            &mut buf,
            save.as_deref(),
        );
        // A request the cancel cut short did not fail: it is not counted.
        if outcome.result.is_err() && run.go_on().is_err() {
            break;
        }
        run.record(&outcome, start);
    }
}

/// The file of a client's `nth` request: each client cycles through the
/// names, starting at its own place.
fn pick(plan: &Plan, id: usize, nth: u64) -> &str {
    let turn = (id as u64 - 1).wrapping_add(nth - 1) % plan.names.len() as u64;
    &plan.names[turn as usize]
}

/// One request with its retries, on the client's connection (`source`,
/// opened or reopened as needed).
#[allow(clippy::too_many_arguments)]
fn request<'a>(
    run: &Run,
    id: usize,
    own: u64,
    name: &'a str,
    started: Instant,
    source: &mut Option<Box<dyn Source>>,
    buf: &mut Vec<u8>,
    save: Option<&Path>,
) -> Outcome<'a> {
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
    let plan = run.plan;
    loop {
        outcome.attempts += 1;
        outcome.connect = None;
        outcome.ttfb = None;
        outcome.result = fetch(source, run, &mut outcome, buf, save);
        let reusable = source.as_ref().is_some_and(|s| s.keeps_connection());
        if outcome.result.is_err() || !plan.keep_alive || !reusable {
            *source = None;
        }
        match &outcome.result {
            Err(e) if e.is_transient() && outcome.attempts <= plan.retries => {
                let seed = (id as u64) << 32 ^ own << 8 ^ u64::from(outcome.attempts);
                thread::sleep(RETRY.pause(outcome.attempts, seed));
            }
            _ => break,
        }
    }
    outcome.total = started.elapsed();
    outcome
}

/// One attempt at one request: connect if needed, ask for the file,
/// receive and hash the body, compare with the server's digest (as `get`
/// does).
fn fetch(
    source: &mut Option<Box<dyn Source>>,
    run: &Run,
    outcome: &mut Outcome,
    buf: &mut Vec<u8>,
    save: Option<&Path>,
) -> Result<()> {
    let source = match source {
        Some(s) => s,
        None => {
            let t = Instant::now();
            let opened = source.insert(run.plan.peer.open()?);
            outcome.connect = Some(t.elapsed());
            opened
        }
    };
    let answer = source.request(outcome.name, 0);
    if matches!(answer, Ok(_) | Err(Error::Remote { .. })) {
        outcome.ttfb = Some(outcome.started.elapsed());
    }
    let header = answer?;
    let mut part = match save {
        Some(path) => {
            let mut part = Part::open(path, true)?;
            part.restart()?;
            Some(part)
        }
        None => None,
    };
    let sink: &mut dyn Sink = match &mut part {
        Some(part) => part,
        None => &mut Discard,
    };
    // Bytes count across attempts: a retried request moved them all.
    let before = outcome.bytes;
    let mut count = |done: u64, _| {
        outcome.bytes = before + done;
        run.go_on()
    };
    let mut watch = Watch {
        observe: Some(&mut count),
        ..Watch::default()
    };
    let body = &mut source.body(header.size);
    let hasher = Hasher::inline((header.size >= OWN_BUFFER_FROM).then_some(buf));
    let verified = receive(body, header.size, 0, sink, hasher, &mut watch).and_then(|got| {
        let vouched = source.vouched_digest(&header)?;
        crate::fetch::verify(&vouched, None, &got)
    });
    match (part, &verified) {
        // bench measures transfers; a file's time is no part of that.
        (Some(part), Ok(())) => part.commit(None)?,
        (Some(part), Err(_)) => part.discard(),
        (None, _) => {}
    }
    verified
}

/// `DIR/CLIENT-REQUEST-BASENAME`; names were checked when parsing.
fn save_path(dir: &Path, client: usize, request: u64, name: &str) -> Option<PathBuf> {
    let base = crate::fetch::local_path(name, None).ok()?;
    Some(dir.join(format!("{client}-{request}-{}", base.display())))
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
}
