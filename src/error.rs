//! The one error type of tcpfetch.
//!
//! Every failure anywhere in the program ends up as an [`Error`]. Its
//! `Display` is a short lowercase sentence that composes after a prefix
//! (`tcpfetch: cannot connect to 10.0.0.2:1236: connection refused`), and
//! [`ExitKind::code`] is the single place that turns how a command failed
//! into the process exit status: 0 success, 1 failure, 2 usage, 3 integrity.
//! Whether a failure is worth retrying follows from its variant: a
//! [`Error::Network`] failure may pass, a [`Error::Local`] one will not.

use std::fmt;
use std::io;

use crate::proto::legacy::wire::WireError;
use crate::proto::{ErrorCode, ProtoError};

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How a command ended when it failed; only [`ExitKind::code`] turns it
/// into the number the shell sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitKind {
    /// Any failure that is not one of the two below (exit 1).
    Failure,
    /// The command line was wrong (exit 2).
    Usage,
    /// A digest did not match (exit 3).
    Integrity,
}

impl ExitKind {
    /// The process exit status: 1 failure, 2 usage, 3 integrity.
    pub fn code(self) -> u8 {
        match self {
            ExitKind::Failure => 1,
            ExitKind::Usage => 2,
            ExitKind::Integrity => 3,
        }
    }
}

/// What a connection was doing when it failed, for "timed out while ...".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Opening the TCP connection.
    Connect,
    /// Writing a request line (v1).
    SendRequest,
    /// Waiting for a status line (v1).
    ReceiveHeader,
    /// Reading the entries of a `LIST` answer (v1).
    ReceiveList,
    /// Reading a file's bytes (either protocol).
    ReceiveBody,
    /// One step of the old protocol's exchange.
    Legacy(LegacyStep),
}

/// The steps of the old protocol, named after the message they move; the
/// first group is the client's, the second the server's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegacyStep {
    SendHello,
    AwaitHelloBack,
    SendPrepared,
    AwaitList,
    AskFile,
    AwaitSize,
    AskDigest,
    AwaitDigest,
    SendTest,
    AwaitOk,
    AwaitMessage,
    AnswerTest,
    AnswerHello,
    SendList,
    SendSize,
    SendDigest,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::Connect => "connecting",
            Phase::SendRequest => "sending the request",
            Phase::ReceiveHeader => "waiting for the server's answer",
            Phase::ReceiveList => "receiving the file list",
            Phase::ReceiveBody => "receiving the file",
            Phase::Legacy(step) => step.as_str(),
        })
    }
}

impl LegacyStep {
    fn as_str(self) -> &'static str {
        match self {
            LegacyStep::SendHello => "sending HELLO",
            LegacyStep::AwaitHelloBack => "waiting for HELLO BACK",
            LegacyStep::SendPrepared => "sending PREPARED",
            LegacyStep::AwaitList => "waiting for the file list",
            LegacyStep::AskFile => "asking for the file",
            LegacyStep::AwaitSize => "waiting for the file size",
            LegacyStep::AskDigest => "asking for the digest",
            LegacyStep::AwaitDigest => "waiting for the digest",
            LegacyStep::SendTest => "sending TEST",
            LegacyStep::AwaitOk => "waiting for OK",
            LegacyStep::AwaitMessage => "waiting for a message",
            LegacyStep::AnswerTest => "answering TEST",
            LegacyStep::AnswerHello => "answering HELLO",
            LegacyStep::SendList => "sending the file list",
            LegacyStep::SendSize => "sending the file size",
            LegacyStep::SendDigest => "sending the digest",
        }
    }
}

#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The command line was wrong; the message says how.
    Usage(String),
    /// The command line of one command was wrong: the hint points at that
    /// command's help rather than the top-level one.
    CommandUsage {
        command: &'static str,
        message: String,
    },
    /// A host name could not be turned into an address.
    Resolve { host: String, reason: String },
    /// The TCP connection could not be established.
    Connect { addr: String, source: io::Error },
    /// A peer did not answer in time; `phase` says what we were waiting for.
    Timeout { phase: Phase },
    /// The server answered with `TCPFETCH/1 ERR <code> <message>`.
    Remote { code: ErrorCode, message: String },
    /// The peer sent something that is not protocol v1 (or broke its rules).
    Protocol(String),
    /// The file asked for is not in the old server's list: the old
    /// protocol has no answer for a missing file (`not-found` for `bench`).
    NotListed(String),
    /// Bytes arrived but do not match the digest they must match.
    Integrity(String),
    /// A connection failed after it was established (reset, closed early);
    /// `context` names what was going on. Trying again may succeed.
    Network { context: String, source: io::Error },
    /// A failure on this machine: disk full, permission denied, a thread
    /// that would not start. Trying again cannot help.
    Local { context: String, source: io::Error },
    /// Anything else, already phrased for the user.
    Other(String),
    /// The command has already said everything on stderr, line by line as
    /// coreutils tools do (`sum`, `verify`); only how it ended is left.
    Reported(ExitKind),
}

impl Error {
    pub fn usage(msg: impl Into<String>) -> Error {
        Error::Usage(msg.into())
    }

    pub fn protocol(msg: impl Into<String>) -> Error {
        Error::Protocol(msg.into())
    }

    /// A failure of local I/O (files, stdout, threads): not retryable.
    pub fn local(context: impl Into<String>, source: io::Error) -> Error {
        Error::Local {
            context: context.into(),
            source,
        }
    }

    /// A failure of an established connection, phrased by the caller.
    pub fn network(context: impl Into<String>, source: io::Error) -> Error {
        Error::Network {
            context: context.into(),
            source,
        }
    }

    /// A read or write on a connection failed during `phase`; a timeout is
    /// told apart from the rest.
    pub fn net(phase: Phase, source: io::Error) -> Error {
        match source.kind() {
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => Error::Timeout { phase },
            _ => Error::network(format!("connection failed while {phase}"), source),
        }
    }

    /// An old-protocol frame failed during `phase`.
    pub fn wire(phase: Phase, e: WireError) -> Error {
        match e {
            WireError::Io(source) => Error::net(phase, source),
            WireError::Closed => {
                Error::closed(format!("the peer closed the connection while {phase}"))
            }
            WireError::Malformed(why) => Error::Protocol(why),
        }
    }

    /// The peer closed the connection where it should have sent more.
    pub fn closed(context: impl Into<String>) -> Error {
        Error::network(context, io::ErrorKind::UnexpectedEof.into())
    }

    /// How the process ends for this error.
    pub fn exit_kind(&self) -> ExitKind {
        match self {
            Error::Usage(_) | Error::CommandUsage { .. } => ExitKind::Usage,
            Error::Integrity(_) => ExitKind::Integrity,
            Error::Reported(kind) => *kind,
            _ => ExitKind::Failure,
        }
    }

    /// The process exit status for this error.
    pub fn exit_code(&self) -> u8 {
        self.exit_kind().code()
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
            Error::Remote {
                code: ErrorCode::NotFound,
                ..
            }
            | Error::NotListed(_) => "not-found",
            Error::Timeout { .. } => "timeout",
            Error::Protocol(_) | Error::Remote { .. } => "protocol",
            Error::Integrity(_) => "corrupt",
            Error::Usage(_) | Error::CommandUsage { .. } => "usage",
            // `bench` reports a local failure (its --save disk) with the
            // network's under one word, as it always has.
            _ => "io",
        }
    }

    /// Whether trying again later could succeed (the server was busy, the
    /// network dropped). Integrity failures, definite answers such as
    /// `not-found` and failures on this machine are not transient.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Connect { .. } | Error::Timeout { .. } | Error::Network { .. } => true,
            Error::Remote { code, .. } => matches!(code, ErrorCode::Busy | ErrorCode::Internal),
            _ => false,
        }
    }

    /// A short hint on what to do next, printed after the message.
    pub fn hint(&self) -> Option<String> {
        let hint = match self {
            Error::Usage(_) => "see 'tcpfetch --help'",
            Error::CommandUsage { command, .. } => {
                return Some(format!("see 'tcpfetch {command} --help'"))
            }
            Error::Connect { .. } => "is 'tcpfetch serve' running there, and is the port right?",
            Error::Remote {
                code: ErrorCode::Busy,
                ..
            } => "the server is at its client limit; try again shortly",
            Error::Remote {
                code: ErrorCode::NotFound,
                ..
            } => "run 'tcpfetch list ADDR' to see what the server offers",
            _ => return None,
        };
        Some(hint.to_string())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Usage(msg) | Error::CommandUsage { message: msg, .. } => write!(f, "{msg}"),
            Error::Resolve { host, reason } => write!(f, "cannot resolve '{host}': {reason}"),
            Error::Connect { addr, source } => {
                write!(f, "cannot connect to {addr}: {}", describe_io(source))
            }
            Error::Timeout { phase } => write!(f, "timed out while {phase}"),
            Error::Remote { code, message } => write!(f, "server refused: {code}: {message}"),
            Error::Protocol(msg) | Error::NotListed(msg) => write!(f, "{msg}"),
            Error::Integrity(msg) => write!(f, "integrity failure: {msg}"),
            Error::Network { context, source } | Error::Local { context, source } => {
                write!(f, "{context}: {}", describe_io(source))
            }
            Error::Other(msg) => write!(f, "{msg}"),
            Error::Reported(_) => Ok(()),
        }
    }
}

impl std::error::Error for Error {}

impl From<ProtoError> for Error {
    fn from(e: ProtoError) -> Error {
        match e {
            ProtoError::Remote { code, message } => Error::Remote { code, message },
            other => Error::Protocol(other.to_string()),
        }
    }
}

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
        assert_eq!(
            Error::Timeout {
                phase: Phase::Connect
            }
            .kind(),
            "timeout"
        );
        assert!(!Error::Integrity("x".into()).is_transient());
        let unlisted = Error::NotListed("x".into());
        assert_eq!(unlisted.kind(), "not-found");
        assert!(!unlisted.is_transient());
        assert_eq!(unlisted.exit_code(), 1);
    }

    #[test]
    fn local_failures_are_not_retried_and_network_ones_are() {
        let full = Error::local("cannot write 'f'", io::ErrorKind::StorageFull.into());
        assert!(!full.is_transient());
        assert_eq!(
            full.to_string(),
            "cannot write 'f': no space left on device"
        );
        let reset = Error::net(Phase::ReceiveBody, io::ErrorKind::ConnectionReset.into());
        assert!(reset.is_transient());
        assert_eq!(
            reset.to_string(),
            "connection failed while receiving the file: connection reset by peer"
        );
        let late = Error::net(Phase::ReceiveHeader, io::ErrorKind::WouldBlock.into());
        assert_eq!(
            late.to_string(),
            "timed out while waiting for the server's answer"
        );
        assert!(Error::closed("gone").is_transient());
    }

    #[test]
    fn phases_read_as_they_always_have() {
        let cases = [
            (Phase::Connect, "connecting"),
            (Phase::SendRequest, "sending the request"),
            (Phase::ReceiveList, "receiving the file list"),
            (
                Phase::Legacy(LegacyStep::AwaitHelloBack),
                "waiting for HELLO BACK",
            ),
            (Phase::Legacy(LegacyStep::SendDigest), "sending the digest"),
        ];
        for (phase, text) in cases {
            assert_eq!(phase.to_string(), text);
        }
    }

    #[test]
    fn reported_failures_keep_their_kind_and_say_nothing() {
        let e = Error::Reported(ExitKind::Integrity);
        assert_eq!(e.exit_code(), 3);
        assert_eq!(e.to_string(), "");
        assert_eq!(Error::Reported(ExitKind::Failure).exit_code(), 1);
    }
}
