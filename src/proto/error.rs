//! What can be wrong with a line the peer sent: the protocol's own error
//! type, so that this module needs nothing from the rest of the program.
//! `crate::error` turns it into the program's `Error`.

use std::fmt;

use super::ErrorCode;

/// Why a peer's line was not what the protocol allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProtoError {
    /// The server answered `TCPFETCH/1 ERR <code> <message>`.
    Remote { code: ErrorCode, message: String },
    /// The line is not a tcpfetch status line at all; it holds the peer's
    /// words, made printable.
    NotTcpfetch(String),
    /// The peer speaks another version of the protocol (the version text).
    Version(String),
    /// A line of the expected kind that breaks its grammar; `text` is the
    /// offending line or details, as quoted to the user.
    Malformed { what: Message, text: String },
}

/// The kinds of line a side can find malformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message {
    StatusLine,
    PingAnswer,
    GetAnswer,
    ListAnswer,
    ListEntry,
    AuthRequest,
    AuthAnswer,
    ProveRequest,
}

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Message::StatusLine => "status line from server",
            Message::PingAnswer => "PING answer from server",
            Message::GetAnswer => "GET answer from server",
            Message::ListAnswer => "LIST answer from server",
            Message::ListEntry => "LIST entry",
            Message::AuthRequest => "AUTH request",
            Message::AuthAnswer => "AUTH answer from server",
            Message::ProveRequest => "PROVE request",
        })
    }
}

impl ProtoError {
    /// `text` is the peer's, so it is made printable here, once for every
    /// caller: its control bytes reach the user's terminal otherwise.
    pub(crate) fn malformed(what: Message, text: impl AsRef<[u8]>) -> ProtoError {
        ProtoError::Malformed {
            what,
            text: super::printable(text.as_ref()),
        }
    }
}

impl fmt::Display for ProtoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtoError::Remote { code, message } => {
                write!(f, "server refused: {code}: {message}")
            }
            ProtoError::NotTcpfetch(answer) => write!(
                f,
                "the peer is not a tcpfetch server (it answered '{answer}')"
            ),
            ProtoError::Version(version) => write!(
                f,
                "the server speaks tcpfetch protocol version {version}; this client speaks version 1"
            ),
            ProtoError::Malformed { what, text } => write!(f, "malformed {what}: '{text}'"),
        }
    }
}

impl std::error::Error for ProtoError {}
