//! The original Python tcp-server / tcp-client protocol, spoken both ways
//! and without its remote-code-execution hole.
//!
//! # The old protocol, as facts
//!
//! - Every control message, both ways, is a 10-byte header holding the
//!   payload length in ASCII decimal, left-justified and padded with spaces
//!   (Python `f"{n:<10}"`), then a pickle of the dict
//!   `{"messageSize": <int>, "message": <str>}`. Senders upper-case the
//!   message. Python 3.7 pickles with protocol 3, Python 3.8 and later with
//!   protocol 4 (which adds FRAME and MEMOIZE).
//! - A session:
//!
//!   ```text
//!   client HELLO       → server HELLO BACK
//!   client PREPARED    → server ARCHIVOS: 1. <name>
//!   client 1           → server "<size>" (10-byte header), then <size> raw bytes
//!   client DIGEST1     → server "32" (10-byte header), then the 32 raw bytes
//!                        of the file's SHA-256; the server closes
//!   client TEST        → server OK, and closes
//!   ```
//!
//!   The old server lists one name but serves `1` and `2`.
//! - The old client hashes what it received, compares it with the digest and
//!   logs `Correcto` or `Corrupto`.
//! - The old code reads with single `recv` calls and no bounds, and crashes
//!   when a client connects and leaves without a message.
//!
//! # What tcpfetch does with it
//!
//! - [`wire`] reads exactly: a header is 10 bytes, a control message is
//!   refused when its header says more than [`wire::MAX_REQUEST`] (server)
//!   or [`wire::MAX_REPLY`] (client, which receives the file list) bytes,
//!   and a file's size is checked against the bytes that actually arrive.
//! - [`crate::client::legacy`]: a session is a `Source` like a v1
//!   connection, so `get --legacy ADDR N`, `list --legacy`, `ping --legacy`
//!   (`TEST`) and `bench --legacy` run the same code as v1; a download is
//!   kept only when the digest asked for after the body matches (the old
//!   client's `Correcto`). A session that did not end with `DIGEST<n>` ends
//!   with `TEST`, as the old client's do.
//! - [`server`]: `serve DIR --legacy-listen ADDR` answers the old protocol on
//!   a second address. Files are numbered 1..N in `LIST` order. With one
//!   file the list reads exactly `ARCHIVOS: 1. <name>`; more files follow on
//!   lines of their own (`\n2. <name>`). Names are sent as they are, not
//!   upper-cased: an old client only displays them, and `get --legacy` finds
//!   names in either case.
//! - Messages tcpfetch sends are byte for byte what CPython 3.8+ pickles for
//!   the same dict, with `messageSize` the number of characters of
//!   `message`.
//!
//! # Why the pickle subset is safe
//!
//! The old server calls `pickle.loads` on bytes from the network, and a
//! pickle is a program: `GLOBAL`/`STACK_GLOBAL` push any importable Python
//! object (such as `os.system`), and `REDUCE`, `BUILD`, `INST`, `OBJ`,
//! `NEWOBJ` call them. Anyone who can connect can run code on it.
//!
//! [`pickle::decode`] is not an unpickler with some opcodes removed; it is a
//! small stack machine that only knows these: `PROTO` (2 to 5), `FRAME`,
//! `EMPTY_DICT`, `MARK`, `SHORT_BINUNICODE`/`BINUNICODE`/`BINUNICODE8`,
//! `BININT1`/`BININT2`/`BININT`/`LONG1`/`LONG4` (up to 64 bits),
//! `MEMOIZE`/`BINPUT`/`LONG_BINPUT`, `BINGET`/`LONG_BINGET`,
//! `SETITEM`/`SETITEMS` and `STOP`. Every other byte in opcode position —
//! `GLOBAL`, `STACK_GLOBAL`, `REDUCE`, `BUILD`, `INST`, `OBJ`, `NEWOBJ`,
//! `PERSID`, `EXT*`, and all the rest — is an error naming the opcode; the
//! connection is logged and closed.
//!
//! With only those opcodes the values that can exist are strings, 64-bit
//! integers and one flat dict of them: there is no opcode that names a
//! type, a function or a module, and none that calls anything, so there is
//! nothing to exploit beyond the decoder's own bounds. Those are checked:
//! every length is compared with the bytes left before anything is
//! allocated, the input itself is capped by the message limit, memo fetches
//! cannot copy more than 256 KiB of strings in total, the stack is bounded,
//! strings must be valid UTF-8, and a dict cannot be placed inside a dict or
//! fetched back from the memo. The decoder is safe Rust and is run against
//! 50 000 random and truncated inputs in its tests.

pub mod pickle;
pub mod wire;
