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
pub mod log;
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
use crate::serve::files::{FileKey, Root};
use crate::serve::listener::Listener;
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
    pub config: Config,
    pub log: Log,
}

pub fn run(config: Config) -> Result<()> {
    let root = Root::new(&config.dir, config.hidden)
        .map_err(|e| Error::local(format!("cannot serve '{}'", config.dir.display()), e))?;
    let (root, cache) = (Arc::new(root), Arc::new(DigestCache::default()));
    let main = open(&config.listen, "client", "", &config)?;
    // --- legacy hook: the old protocol on a second listener.
    if let Some(addr) = &config.legacy_listen {
        let listener = open(addr, "legacy", "legacy ", &config)?;
        let server = Arc::new(legacy::Legacy(Shared {
            root: Arc::clone(&root),
            cache: Arc::clone(&cache),
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
        // Hashing is best effort: without the thread, GETs hash on demand.
        let _ = thread::Builder::new()
            .name("precompute".into())
            .spawn(move || precompute(&root, &cache, log));
    }
    let server = Arc::new(v1::V1(Shared {
        root,
        cache,
        log: main.log,
        config,
    }));
    main.run(&server);
    Ok(())
}

/// Bind `listen`, announce it on stdout (`listening on IP:PORT`, with the
/// tag first for the old protocol), and set the rules every connection on
/// it is accepted by.
fn open(listen: &str, name: &'static str, tag: &'static str, config: &Config) -> Result<Listener> {
    let socket = bind(listen)?;
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
        eprintln!(
            "{tag}listening on {local} (all interfaces; {flag} {lo}:{} to keep it local)",
            local.port()
        );
    }
    Ok(Listener {
        socket,
        name,
        log: Log::new(config.quiet, tag),
        max_clients: config.max_clients,
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
fn precompute(root: &Root, cache: &DigestCache, log: Log) {
    let started = Instant::now();
    let files = root.list();
    let total: u64 = files.iter().map(|f| f.meta.len()).sum();
    let mut done = 0u64;
    let mut last_report = Instant::now();
    for (i, item) in files.iter().enumerate() {
        if let Ok(open) = root.open(&item.name) {
            let key = FileKey::of(&open.meta);
            if let Err(e) = cache.get(&open.path, &open.file, &key) {
                log.line(&format!(
                    "- precompute: {}: {}",
                    item.name,
                    crate::error::describe_io(&e)
                ));
            }
        }
        done += item.meta.len();
        if last_report.elapsed() < Duration::from_secs(1) {
            continue;
        }
        last_report = Instant::now();
        eprintln!(
            "precompute: {}/{} files, {} of {} hashed",
            i + 1,
            files.len(),
            crate::util::format::bytes(done),
            crate::util::format::bytes(total)
        );
    }
    eprintln!(
        "precompute: done, {} files ({}) in {}",
        files.len(),
        crate::util::format::bytes(total),
        crate::util::format::seconds(started.elapsed())
    );
}
