//! `tcpfetch ui`: a page, served by the binary itself, to test a server,
//! pick and download a file, and run a load test, from any browser.
//!
//! The HTTP side is deliberately small (see `http`): one request per
//! connection, under the same accept loop as `serve`
//! ([`crate::serve::listener`]): a thread per connection up to
//! [`MAX_CONNECTIONS`], every read and write timed out. The actions are in
//! `api`; downloads and load tests run as background jobs (`jobs`) on their
//! own threads, and the page polls `GET /api/jobs/<id>`, so a long load
//! test never holds up anything else; `POST /api/jobs/<id>/cancel` stops
//! one.
//!
//! The page can make this machine connect out and write files, so two checks
//! guard it. The `Host` header must name the address we listen on (a DNS
//! rebinding page carries its own host name), and every `POST` must carry the
//! per-process token embedded in the page (`X-Tcpfetch-Token`, which a
//! cross-site form cannot send and a cross-site script cannot read), with an
//! `Origin`, when present, of our own.

mod api;
mod http;
mod jobs;

use std::io::BufReader;
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::client;
use crate::error::{Error, Result};
use crate::serve::access::AllowList;
use crate::serve::listener::{close_gently, DeadlineReader, Handler, Listener, Refusal};
use crate::serve::log::Log;
use crate::util::cli;
use crate::util::format::html as html_escape;
use crate::util::hex;
use crate::util::svg;
use http::{Request, Response};
use jobs::Jobs;

const PAGE: &str = include_str!("page.html");

/// Connections served at once; one more is answered 503 and closed.
const MAX_CONNECTIONS: usize = 64;
/// Silence allowed on one read or write, and in all for reading a request.
const IO_TIMEOUT: Duration = Duration::from_secs(10);
const REQUEST_DEADLINE: Duration = Duration::from_secs(20);
/// What `ui` was asked to do.
#[derive(Debug)]
pub struct Config {
    /// The server the page starts with (may be empty).
    pub server: String,
    pub listen: String,
    /// Where downloads go: an existing directory, canonical.
    pub dir: PathBuf,
}

pub fn run(config: Config) -> Result<()> {
    let target = *client::resolve(&config.listen)?
        .first()
        .ok_or_else(|| Error::usage(format!("bad address '{}'", config.listen)))?;
    let listener = TcpListener::bind(target)
        .map_err(|e| Error::local(format!("cannot listen on {target}"), e))?;
    let local = listener
        .local_addr()
        .map_err(|e| Error::local("cannot read the listening address", e))?;
    let shared = Arc::new(Shared {
        token: hex::encode(&crate::secret::nonce()?),
        local,
        server: config.server,
        dir: config.dir,
        jobs: Jobs::new(),
    });
    cli::print_text(&format!("ui on http://{local}/\n"))?;
    if !local.ip().is_loopback() {
        eprintln!(
            "tcpfetch: warning: the page is reachable beyond this machine at {local}; anyone who can open it can make this machine download files"
        );
    }
    let listener = Listener {
        socket: listener,
        name: "ui",
        log: Log::off(),
        max_clients: MAX_CONNECTIONS,
        max_lingering: crate::serve::listener::MAX_LINGERING,
        write_timeout: IO_TIMEOUT,
        allow: AllowList::default(),
    };
    listener.run(&shared);
    Ok(())
}

impl Handler for Shared {
    fn handle(&self, stream: TcpStream, _peer: SocketAddr) {
        serve_connection(self, &stream);
    }

    fn refusal(&self, why: Refusal) -> Vec<u8> {
        let response = match why {
            Refusal::Busy => Response::error(503, "too many connections; try again"),
            Refusal::Forbidden => Response::error(403, "your address is not allowed here"),
        };
        let mut bytes = Vec::new();
        let _ = response.write_to(&mut bytes);
        bytes
    }
}

/// What every connection thread shares.
pub struct Shared {
    token: String,
    local: SocketAddr,
    /// `--server`, prefilled in the page.
    server: String,
    dir: PathBuf,
    jobs: Jobs,
}

fn serve_connection(shared: &Shared, stream: &TcpStream) {
    let mut deadline = DeadlineReader::new(stream, REQUEST_DEADLINE);
    deadline.silence = IO_TIMEOUT;
    let mut reader = BufReader::with_capacity(16 * 1024, deadline);
    let response = match http::read_request(&mut reader) {
        Ok(request) => respond(shared, &request),
        Err(e) => match e.status() {
            Some((status, message)) => Response::error(status, message),
            None => return,
        },
    };
    // A peer whose request we did not read to the end (a 413) would
    // otherwise get a reset instead of our answer.
    if response.write_to(&mut &*stream).is_ok() {
        close_gently(stream);
    }
}

/// The one place a request is checked and routed.
fn respond(shared: &Shared, request: &Request) -> Response {
    if let Err(refusal) = check_host(shared, request) {
        return refusal;
    }
    let path = request.path.as_str();
    let (allowed, is_action) = match path {
        "/" => ("GET", false),
        "/api/ping" | "/api/list" | "/api/download" | "/api/bench" => ("POST", true),
        p if cancel_target(p).is_some() => ("POST", true),
        p if p.starts_with("/api/jobs/") => ("GET", false),
        _ => return Response::error(404, "no such page"),
    };
    if request.method != allowed {
        return Response::error(405, &format!("use {allowed} here")).with("Allow", allowed);
    }
    if is_action {
        if let Err(refusal) = check_action(shared, request) {
            return refusal;
        }
        let Some(form) = http::form_fields(&request.body) else {
            return Response::error(400, "the body must be a URL-encoded form");
        };
        let form = api::Form(form);
        return match path {
            "/api/ping" => api::ping(&form),
            "/api/list" => api::list(&form),
            "/api/download" => api::start_download(shared, &form),
            "/api/bench" => api::start_bench(shared, &form),
            p => shared.jobs.cancel(cancel_target(p).unwrap_or_default()),
        };
    }
    match path {
        "/" => page(shared),
        _ => jobs::resource(&shared.jobs, &path["/api/jobs/".len()..]),
    }
}

/// The job id in `/api/jobs/<id>/cancel`.
fn cancel_target(path: &str) -> Option<&str> {
    path.strip_prefix("/api/jobs/")?.strip_suffix("/cancel")
}

/// The `Host` header must name the address we listen on (or `localhost`
/// on loopback); bound to every interface, any IP address with our port
/// is fine, since DNS rebinding needs a host name.
fn check_host(shared: &Shared, request: &Request) -> Result<(), Response> {
    let Some(host) = request.header("host") else {
        return Err(Response::error(400, "a single Host header is needed"));
    };
    if accepted_host(shared.local, host) {
        Ok(())
    } else {
        Err(Response::error(
            403,
            &format!("this page answers only to http://{}/", shared.local),
        ))
    }
}

fn accepted_host(local: SocketAddr, host: &str) -> bool {
    if host == local.to_string() {
        return true;
    }
    let Ok((name, port)) = client::split_addr(host) else {
        return false;
    };
    if port != local.port() || !host.ends_with(&format!(":{port}")) {
        return false;
    }
    if local.ip().is_loopback() && name.eq_ignore_ascii_case("localhost") {
        return true;
    }
    local.ip().is_unspecified() && name.parse::<IpAddr>().is_ok()
}

/// An action needs the page's token, and an `Origin` (browsers send one on
/// every cross-site `POST`) naming this page.
fn check_action(shared: &Shared, request: &Request) -> Result<(), Response> {
    if let Some(origin) = request.header("origin") {
        let ours = origin
            .strip_prefix("http://")
            .is_some_and(|host| accepted_host(shared.local, host));
        if !ours {
            return Err(Response::error(403, "cross-site request refused"));
        }
    } else if request.header_count("origin") > 0 {
        return Err(Response::error(403, "cross-site request refused"));
    }
    let token = request.header("x-tcpfetch-token").unwrap_or("");
    if !crate::proto::auth::same_bytes(token.as_bytes(), shared.token.as_bytes()) {
        return Err(Response::error(
            403,
            "missing or wrong X-Tcpfetch-Token; reload the page",
        ));
    }
    Ok(())
}

fn page(shared: &Shared) -> Response {
    let html = PAGE
        .replace("{{THEME}}", svg::THEME)
        .replace("{{TOKEN}}", &shared.token)
        .replace("{{SERVER}}", &html_escape(&shared.server))
        .replace("{{DIR}}", &html_escape(&shared.dir.display().to_string()))
        .replace("{{VERSION}}", cli::VERSION);
    Response::new(200, "text/html; charset=utf-8", html).with(
        "Content-Security-Policy",
        "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_our_own_host_is_accepted() {
        let lo: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let any: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        let v6: SocketAddr = "[::1]:8080".parse().unwrap();
        let cases = [
            (lo, "127.0.0.1:8080", true),
            (lo, "localhost:8080", true),
            (lo, "LOCALHOST:8080", true),
            (lo, "localhost:8081", false),
            (lo, "localhost", false),
            (lo, "127.0.0.1", false),
            (lo, "evil.example:8080", false),
            (lo, "127.0.0.2:8080", false),
            (lo, "127.0.0.1:08080", false),
            (any, "10.1.2.3:8080", true),
            (any, "evil.example:8080", false),
            (any, "localhost:8080", false),
            (v6, "[::1]:8080", true),
            (v6, "localhost:8080", true),
            (v6, "::1", false),
        ];
        for (local, host, want) in cases {
            assert_eq!(accepted_host(local, host), want, "{local} {host}");
        }
    }

    #[test]
    fn html_is_escaped_in_the_page() {
        assert_eq!(
            html_escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
