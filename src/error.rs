//! The one error type of tcpfetch.
//!
//! Every failure anywhere in the program ends up as an [`Error`]. Its
//! `Display` is a short lowercase sentence that composes after a prefix
//! (`tcpfetch: cannot connect to 10.0.0.2:1236: connection refused`), and
//! [`Error::exit_code`] is the single place that decides the process exit
//! status: 0 success, 1 failure, 2 usage, 3 integrity.

use std::fmt;
use std::io;

use crate::proto::ErrorCode;

/// Exit status for a usage error (bad flags, missing arguments).
pub const EXIT_USAGE: i32 = 2;
/// Exit status for an integrity failure (a digest did not match).
pub const EXIT_INTEGRITY: i32 = 3;
/// Exit status for every other failure.
pub const EXIT_FAILURE: i32 = 1;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The command line was wrong; the message says how.
    Usage(String),
    /// A host name could not be turned into an address.
    Resolve { host: String, reason: String },
    /// The TCP connection could not be established.
    Connect { addr: String, source: io::Error },
    /// A peer did not answer in time; `phase` says what we were waiting for.
    Timeout { phase: &'static str },
    /// The server answered with `TCPFETCH/1 ERR <code> <message>`.
    Remote { code: ErrorCode, message: String },
    /// The peer sent something that is not protocol v1 (or broke its rules).
    Protocol(String),
    /// Bytes arrived but do not match the digest they must match.
    Integrity(String),
    /// A local or network I/O operation failed; `context` names it.
    Io { context: String, source: io::Error },
    /// Anything else, already phrased for the user.
    Other(String),
    /// The command has already said everything on stderr, line by line as
    /// coreutils tools do (`sum`, `verify`); only the exit status is left.
    Reported { exit: i32 },
}

impl Error {
    pub fn usage(msg: impl Into<String>) -> Error {
        Error::Usage(msg.into())
    }

    pub fn protocol(msg: impl Into<String>) -> Error {
        Error::Protocol(msg.into())
    }

    pub fn io(context: impl Into<String>, source: io::Error) -> Error {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// The process exit status for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage(_) => EXIT_USAGE,
            Error::Integrity(_) => EXIT_INTEGRITY,
            Error::Reported { exit } => *exit,
            _ => EXIT_FAILURE,
        }
    }

    /// A one-word class of failure, as `bench` counts and logs them.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Connect { source, .. } if source.kind() == io::ErrorKind::ConnectionRefused => {
                "refused"
            }
            Error::Remote {
                code: ErrorCode::Busy,
                ..
            } => "busy",
            Error::Timeout { .. } => "timeout",
            Error::Protocol(_) | Error::Remote { .. } => "protocol",
            Error::Integrity(_) => "corrupt",
            Error::Usage(_) => "usage",
            _ => "io",
        }
    }

    /// Whether trying again later could succeed (the server was busy, the
    /// network dropped). Integrity failures and definite answers such as
    /// `not-found` are not transient.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Connect { .. } | Error::Timeout { .. } | Error::Io { .. } => true,
            Error::Remote { code, .. } => matches!(code, ErrorCode::Busy | ErrorCode::Internal),
            _ => false,
        }
    }

    /// A short hint on what to do next, printed after the message.
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            Error::Usage(_) => Some("see 'tcpfetch --help'"),
            Error::Connect { .. } => {
                Some("is 'tcpfetch serve' running there, and is the port right?")
            }
            Error::Remote {
                code: ErrorCode::Busy,
                ..
            } => Some("the server is at its client limit; try again shortly"),
            Error::Remote {
                code: ErrorCode::NotFound,
                ..
            } => Some("run 'tcpfetch list ADDR' to see what the server offers"),
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Usage(msg) => write!(f, "{msg}"),
            Error::Resolve { host, reason } => write!(f, "cannot resolve '{host}': {reason}"),
            Error::Connect { addr, source } => {
                write!(f, "cannot connect to {addr}: {}", describe_io(source))
            }
            Error::Timeout { phase } => write!(f, "timed out while {phase}"),
            Error::Remote { code, message } => write!(f, "server refused: {code}: {message}"),
            Error::Protocol(msg) => write!(f, "{msg}"),
            Error::Integrity(msg) => write!(f, "integrity failure: {msg}"),
            Error::Io { context, source } => write!(f, "{context}: {}", describe_io(source)),
            Error::Other(msg) => write!(f, "{msg}"),
            Error::Reported { .. } => Ok(()),
        }
    }
}

impl std::error::Error for Error {}

impl From<lexopt::Error> for Error {
    fn from(e: lexopt::Error) -> Error {
        Error::Usage(e.to_string())
    }
}

/// `io::Error`'s own text ends with "(os error 111)" and starts with a
/// capital; trim it to the lowercase phrase that reads well after a colon.
pub fn describe_io(e: &io::Error) -> String {
    let phrase = match e.kind() {
        io::ErrorKind::ConnectionRefused => "connection refused",
        io::ErrorKind::ConnectionReset => "connection reset by peer",
        io::ErrorKind::ConnectionAborted => "connection aborted",
        io::ErrorKind::BrokenPipe => "connection closed by peer",
        io::ErrorKind::UnexpectedEof => "connection closed early",
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => "timed out",
        io::ErrorKind::NotFound => "no such file or directory",
        io::ErrorKind::PermissionDenied => "permission denied",
        io::ErrorKind::AlreadyExists => "already exists",
        io::ErrorKind::StorageFull => "no space left on device",
        io::ErrorKind::FileTooLarge => "file too large",
        _ => "",
    };
    if !phrase.is_empty() {
        return phrase.to_string();
    }
    let text = e.to_string();
    let text = match text.find(" (os error") {
        Some(i) => &text[..i],
        None => &text,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => String::from("unknown error"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_documented_table() {
        assert_eq!(Error::usage("x").exit_code(), 2);
        assert_eq!(Error::Integrity("x".into()).exit_code(), 3);
        assert_eq!(Error::protocol("x").exit_code(), 1);
        let remote = Error::Remote {
            code: ErrorCode::NotFound,
            message: "no".into(),
        };
        assert_eq!(remote.exit_code(), 1);
    }

    #[test]
    fn io_errors_read_as_lowercase_phrases() {
        let e = io::Error::from(io::ErrorKind::ConnectionRefused);
        assert_eq!(describe_io(&e), "connection refused");
        let e = io::Error::other("Something Odd");
        assert_eq!(describe_io(&e), "something Odd");
    }

    #[test]
    fn kinds_classify_failures_for_bench() {
        let refused = Error::Connect {
            addr: "x".into(),
            source: io::Error::from(io::ErrorKind::ConnectionRefused),
        };
        assert_eq!(refused.kind(), "refused");
        let busy = Error::Remote {
            code: ErrorCode::Busy,
            message: String::new(),
        };
        assert_eq!(busy.kind(), "busy");
        assert!(busy.is_transient());
        assert_eq!(Error::Timeout { phase: "x" }.kind(), "timeout");
        assert!(!Error::Integrity("x".into()).is_transient());
    }
}
