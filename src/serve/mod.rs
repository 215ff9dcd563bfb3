//! `tcpfetch serve`: many clients at once, one thread each, every one of
//! them bounded in time and in what it can make the server buffer.
//!
//! `run` binds the listeners and hands each to [`listener::Listener`], the
//! one accept loop (slots, `--allow`, refusals, deadlines, graceful close).
//! What differs per protocol is the handler: [`v1`] for tcpfetch's own
//! protocol, [`legacy`] for the old Python one. Both serve the same
//! [`files::Root`] through one digest cache and send bodies with
//! [`body::send`]; [`log`] writes the access log for both.

pub mod access;
pub mod body;
pub mod files;
pub mod legacy;
pub mod listener;
pub mod listing;
pub mod log;
pub mod pool;
pub mod v1;

use std::io::{self, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::digest::DigestCache;
use crate::error::{Error, Result};
use crate::proto::auth::Key;
use crate::serve::access::AllowList;
use crate::serve::files::Root;
use crate::serve::listener::Listener;
use crate::serve::listing::{Listings, Snapshot};
use crate::serve::log::Log;

/// How a `serve` was asked to run.
#[derive(Debug, Clone)]
pub struct Config {
    pub dir: PathBuf,
    pub listen: String,
    pub max_clients: usize,
    pub idle_timeout: Duration,
    pub hidden: bool,
    pub quiet: bool,
    pub allow: AllowList,
    pub key: Option<Key>,
    pub max_rate: Option<u64>,
    pub precompute: bool,
    pub quiet_ping: bool,
    /// `--legacy-listen ADDR`: also speak the old Python protocol there.
    pub legacy_listen: Option<String>,
}

/// What the connection threads of one listener share.
pub struct Shared {
    /// Both listeners serve the same files from the same digest cache.
    pub root: Arc<Root>,
    pub cache: Arc<DigestCache>,
    /// The snapshot of `root` every `LIST` shares.
    pub listings: Arc<Listings>,
    pub config: Config,
    pub log: Log,
}

pub fn run(mut config: Config) -> Result<()> {
    let listeners = 1 + u64::from(config.legacy_listen.is_some());
    let budget = fit_descriptors(config.max_clients, listeners);
    config.max_clients = budget.clients;
    note_accept_queue(config.max_clients);
    let root = Root::new(&config.dir, config.hidden)
        .map_err(|e| Error::local(format!("cannot serve '{}'", config.dir.display()), e))?;
    let (root, cache) = (Arc::new(root), Arc::new(DigestCache::default()));
    let listings = Arc::new(Listings::default());
    let main = open(&config.listen, "client", "", &config, budget)?;
    // --- legacy hook: the old protocol on a second listener.
    if let Some(addr) = &config.legacy_listen {
        let listener = open(addr, "legacy", "legacy ", &config, budget)?;
        let server = Arc::new(legacy::Legacy(Shared {
            root: Arc::clone(&root),
            cache: Arc::clone(&cache),
            listings: Arc::clone(&listings),
            config: config.clone(),
            log: listener.log,
        }));
        thread::Builder::new()
            .name("legacy accept".into())
            .spawn(move || listener.run(&server))
            .map_err(|e| Error::local("cannot start the legacy listener", e))?;
    }
    // --- end legacy hook
    if config.precompute {
        let (root, cache, log) = (Arc::clone(&root), Arc::clone(&cache), main.log);
        let listing = listings.get(&root);
        // Hashing is best effort: without the thread, GETs hash on demand.
        let _ = thread::Builder::new()
            .name("precompute".into())
            .spawn(move || precompute(&root, &listing, &cache, log));
    }
    let server = Arc::new(v1::V1(Shared {
        root,
        cache,
        listings,
        log: main.log,
        config,
    }));
    main.run(&server);
    Ok(())
}

/// Open files one connection can hold: its socket and the file it is
/// sending (a `LIST` holds one directory at a time per level it walks).
const FILES_PER_CLIENT: u64 = 2;
/// Open files kept for everything else: stdio, the listeners, the digest
/// cache's and `--precompute`'s reads, `LIST`'s deeper directories.
const FILES_RESERVED: u64 = 16;

/// How many connections each listener can serve, and how many refused
/// ones it can keep draining, within the open-file limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    pub clients: usize,
    pub lingering: usize,
}

/// Raise the open-file limit to the hard one and fit `--max-clients` into
/// it, saying so on stderr when it does not fit. Past the limit `accept`
/// fails (EMFILE): the clients beyond would hang in the backlog, without
/// even an `ERR busy`, and a served one could not open its file. Clamped,
/// every client beyond `--max-clients` is accepted and told `busy`.
fn fit_descriptors(wanted: usize, listeners: u64) -> Budget {
    let limit = match crate::sys::raise_open_files_limit() {
        Ok(limit) => limit,
        // Without getrlimit there is nothing to fit to: trust the flag.
        Err(_) => return Budget::within(u64::MAX, listeners, wanted),
    };
    let budget = Budget::within(limit.soft, listeners, wanted);
    if budget.clients < wanted {
        // Written whole and at once (before serving starts, so nothing
        // queues behind it); a closed stderr is ignored, not a panic.
        let note = format!(
            "tcpfetch: serve: the open-file limit is {} (hard limit {}), enough for {} clients at once, \
             not --max-clients {wanted}: serving {} at a time, the rest get 'ERR busy'. \
             To serve more, raise the hard limit (ulimit -Hn as root; LimitNOFILE= for a systemd service) \
             to about {}.\n",
            limit.soft,
            limit.hard,
            budget.clients,
            budget.clients,
            Budget::files_needed(wanted, listeners),
        );
        let _ = io::stderr().write_all(note.as_bytes());
    }
    budget
}

/// Where the kernel's queue of connections not yet accepted is shallower
/// than the clients served (`listen` is capped at net.core.somaxconn: 4096
/// on recent kernels, 128 before Linux 5.4), say so on stderr with what to
/// do: a crowd arriving at once has SYNs dropped past it, and those clients
/// wait a second or more for the kernel to retry (p99 of 10 000 clients
/// 2.2 s against 1.3 s with the queue raised, tests/README.md).
fn note_accept_queue(clients: usize) {
    let Some(queue) = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|text| text.trim().parse::<usize>().ok())
    else {
        return;
    };
    if clients <= queue {
        return;
    }
    let note = format!(
        "tcpfetch: serve: the kernel queues at most {queue} connections waiting to be accepted \
         (net.core.somaxconn), fewer than --max-clients {clients}: when more arrive at once, the rest \
         wait a second or more for their connection to be retried. To queue them all, as root: \
         sysctl -w net.core.somaxconn={clients} net.ipv4.tcp_max_syn_backlog={clients}\n"
    );
    let _ = io::stderr().write_all(note.as_bytes());
}

impl Budget {
    /// The budget of a process allowed `limit` open files: a quarter of
    /// each listener's share (at most 4096) for refused connections being
    /// drained, two files for each client served.
    pub fn within(limit: u64, listeners: u64, wanted: usize) -> Budget {
        let share = limit.saturating_sub(FILES_RESERVED) / listeners.max(1);
        let lingering = (share / 4).min(listener::MAX_LINGERING as u64);
        let fit = (share - lingering) / FILES_PER_CLIENT;
        Budget {
            clients: usize::try_from(fit)
                .unwrap_or(usize::MAX)
                .clamp(1, wanted.max(1)),
            lingering: lingering as usize,
        }
    }

    /// The smallest open-file limit that fits `wanted` clients on each
    /// listener: either the refusals' quarter fits under its cap, or the
    /// cap is reached.
    pub fn files_needed(wanted: usize, listeners: u64) -> u64 {
        let clients = wanted as u64 * FILES_PER_CLIENT;
        let per_listener = (clients * 4)
            .div_ceil(3)
            .min(clients + listener::MAX_LINGERING as u64);
        per_listener * listeners + FILES_RESERVED
    }
}

/// Bind `listen`, announce it on stdout (`listening on IP:PORT`, with the
/// tag first for the old protocol), and set the rules every connection on
/// it is accepted by.
fn open(
    listen: &str,
    name: &'static str,
    tag: &'static str,
    config: &Config,
    budget: Budget,
) -> Result<Listener> {
    let socket = bind(listen)?;
    // A backlog as deep as the clients we serve, so that a crowd arriving
    // at once waits in the kernel's queue instead of having SYNs dropped
    // (and retried a second later). The kernel caps it at
    // net.core.somaxconn, which makes it min(--max-clients, somaxconn).
    let backlog = u32::try_from(config.max_clients).unwrap_or(u32::MAX);
    crate::sys::set_listen_backlog(&socket, backlog)
        .map_err(|e| Error::local(format!("cannot listen on {listen}"), e))?;
    let local = socket
        .local_addr()
        .map_err(|e| Error::local("cannot read the listening address", e))?;
    announce(&format!("{tag}listening on {local}"))?;
    if local.ip().is_unspecified() && !config.quiet {
        // Said on stderr: scripts parse the first stdout line as it is.
        let flag = if tag.is_empty() {
            "--listen"
        } else {
            "--legacy-listen"
        };
        let lo = if local.is_ipv4() {
            "127.0.0.1"
        } else {
            "[::1]"
        };
        log::note(&format!(
            "{tag}listening on {local} (all interfaces; {flag} {lo}:{} to keep it local)",
            local.port()
        ));
    }
    Ok(Listener {
        socket,
        name,
        log: Log::new(config.quiet, tag),
        max_clients: config.max_clients,
        max_lingering: budget.lingering,
        write_timeout: config.idle_timeout,
        allow: config.allow.clone(),
    })
}

fn bind(listen: &str) -> Result<TcpListener> {
    let addrs = crate::client::resolve(listen)?;
    TcpListener::bind(&addrs[..]).map_err(|e| Error::local(format!("cannot listen on {listen}"), e))
}

/// Print one line on stdout and flush it at once: scripts and tests wait
/// for it before they connect.
fn announce(line: &str) -> Result<()> {
    let mut out = io::stdout().lock();
    writeln!(out, "{line}")
        .and_then(|()| out.flush())
        .map_err(|e| Error::local("cannot write to stdout", e))
}

/// `--precompute`: hash every listed file through the cache, in the
/// background, reporting progress on stderr. Clients asking for a file in
/// the meantime wait for the same single hash instead of starting another.
fn precompute(root: &Root, listing: &Snapshot, cache: &DigestCache, log: Log) {
    let started = Instant::now();
    let files = listing.entries();
    let total: u64 = files
        .iter()
        .filter_map(|f| f.stat(root))
        .map(|(_, meta)| meta.len())
        .sum();
    let mut done = 0u64;
    let mut last_report = Instant::now();
    for (i, item) in files.iter().enumerate() {
        if let Ok(open) = root.open(&item.name) {
            if let Err(e) = open.digest(cache) {
                log.line(&format!(
                    "- precompute: {}: {}",
                    item.name,
                    crate::error::describe_io(&e)
                ));
            }
            done += open.meta.len();
        }
        if last_report.elapsed() < Duration::from_secs(1) {
            continue;
        }
        last_report = Instant::now();
        log::note(&format!(
            "precompute: {}/{} files, {} of {} hashed",
            i + 1,
            files.len(),
            crate::util::format::bytes(done),
            crate::util::format::bytes(total)
        ));
    }
    log::note(&format!(
        "precompute: done, {} files ({}) in {}",
        files.len(),
        crate::util::format::bytes(total),
        crate::util::format::seconds(started.elapsed())
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_fit_into_the_open_file_limit() {
        // prlimit --nofile=64: 48 files, 12 for refusals, 2 per client.
        assert_eq!(
            Budget::within(64, 1, 1024),
            Budget {
                clients: 18,
                lingering: 12
            }
        );
        // Two listeners share the limit.
        assert_eq!(Budget::within(64, 2, 1024).clients, 9);
        // Enough room: the flag stands.
        assert_eq!(Budget::within(1 << 20, 1, 1024).clients, 1024);
        assert_eq!(Budget::within(1 << 20, 1, 1024).lingering, 4096);
        // Never below one client, even with no room at all.
        assert_eq!(Budget::within(3, 1, 10).clients, 1);
        // The limit the message asks for is enough.
        for (wanted, listeners) in [(2, 1), (1024, 1), (1024, 2), (6000, 1), (10_000, 2)] {
            let need = Budget::files_needed(wanted, listeners);
            assert_eq!(Budget::within(need, listeners, wanted).clients, wanted);
        }
        assert_eq!(Budget::files_needed(1024, 1), 2747);
    }
}
