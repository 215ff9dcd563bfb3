//! The sliver of Python's pickle format that the old protocol needs: a dict
//! whose keys are strings and whose values are strings or integers.
//!
//! The decoder is an allow-list. It runs a tiny stack machine over the
//! opcodes CPython emits for such a dict (protocols 2 to 5) and stops at the
//! first opcode outside that list, naming it. Nothing it accepts can name a
//! Python object, call anything, or build anything but strings, integers and
//! one flat dict, so decoding a hostile pickle can only fail. See the module
//! documentation of [`crate::proto::legacy`] for the full argument.
//!
//! The encoder writes exactly what CPython 3.8+ writes for
//! `pickle.dumps({"messageSize": n, "message": s})` (protocol 4, one frame),
//! which every Python from 3.4 on loads.

use std::collections::HashMap;
use std::fmt;

/// A value in a decoded dict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Str(String),
    Int(i64),
}

/// A decoded dict, in insertion order (a repeated key keeps its first
/// position and takes the last value, as in Python).
pub type Dict = Vec<(String, Value)>;

/// Why a pickle was refused. `Display` is a short lowercase phrase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PickleError {
    /// Byte offset of the opcode that failed.
    pub at: usize,
    pub reason: String,
}

impl fmt::Display for PickleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad pickle at byte {}: {}", self.at, self.reason)
    }
}

/// The most string bytes one decode may materialise. A memo fetch copies a
/// string, so without this a small pickle could expand into a large one.
const MAX_EXPANSION: usize = 256 * 1024;
/// The deepest the stack may grow (each push is one opcode, so this is also
/// bounded by the input; the cap just keeps the number small).
const MAX_STACK: usize = 4096;

/// Decode a pickle of a dict of str → str | int.
pub fn decode(data: &[u8]) -> Result<Dict, PickleError> {
    Machine::new(data).run()
}

/// One item on the decoder's stack.
#[derive(Debug, Clone)]
enum Item {
    Mark,
    Dict(Dict),
    Value(Value),
}

/// What the memo may hold. The dict itself is memoised by CPython but never
/// fetched in these messages; fetching it would need shared, mutable
/// objects, so it is remembered only as "not fetchable".
#[derive(Debug, Clone)]
enum Memo {
    Value(Value),
    Dict,
}

struct Machine<'a> {
    data: &'a [u8],
    pos: usize,
    /// Offset of the opcode being run, for errors.
    op_at: usize,
    stack: Vec<Item>,
    memo: HashMap<u32, Memo>,
    expanded: usize,
}

impl<'a> Machine<'a> {
    fn new(data: &'a [u8]) -> Machine<'a> {
        Machine {
            data,
            pos: 0,
            op_at: 0,
            stack: Vec::new(),
            memo: HashMap::new(),
            expanded: 0,
        }
    }

    fn fail<T>(&self, reason: impl Into<String>) -> Result<T, PickleError> {
        Err(PickleError {
            at: self.op_at,
            reason: reason.into(),
        })
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], PickleError> {
        let data: &'a [u8] = self.data;
        match self.pos.checked_add(n) {
            Some(end) if end <= data.len() => {
                let out = &data[self.pos..end];
                self.pos = end;
                Ok(out)
            }
            _ => self.fail("truncated (the data ends inside an opcode)"),
        }
    }

    fn byte(&mut self) -> Result<u8, PickleError> {
        Ok(self.take(1)?[0])
    }

    fn le(&mut self, n: usize) -> Result<u64, PickleError> {
        let bytes = self.take(n)?;
        Ok(bytes
            .iter()
            .rev()
            .fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
    }

    /// A length from the data, checked against what is left of it before
    /// anything is allocated.
    fn length(&mut self, width: usize) -> Result<usize, PickleError> {
        let n = self.le(width)?;
        let left = (self.data.len() - self.pos) as u64;
        if n > left {
            return self.fail(format!(
                "a length of {n} bytes runs past the end of the data"
            ));
        }
        Ok(n as usize)
    }

    fn push(&mut self, item: Item) -> Result<(), PickleError> {
        if self.stack.len() >= MAX_STACK {
            return self.fail("too deeply nested");
        }
        self.stack.push(item);
        Ok(())
    }

    fn push_str(&mut self, width: usize) -> Result<(), PickleError> {
        let n = self.length(width)?;
        let bytes = self.take(n)?;
        let Ok(text) = std::str::from_utf8(bytes) else {
            return self.fail("a string is not valid UTF-8");
        };
        self.expand(n)?;
        self.push(Item::Value(Value::Str(text.to_string())))
    }

    fn expand(&mut self, n: usize) -> Result<(), PickleError> {
        self.expanded += n;
        if self.expanded > MAX_EXPANSION {
            return self.fail("the strings add up to too much data");
        }
        Ok(())
    }

    fn push_int(&mut self, v: i64) -> Result<(), PickleError> {
        self.push(Item::Value(Value::Int(v)))
    }

    /// LONG1 / LONG4: a little-endian two's-complement integer of `n` bytes.
    fn push_long(&mut self, width: usize) -> Result<(), PickleError> {
        let n = self.length(width)?;
        if n > 8 {
            return self.fail("an integer wider than 64 bits");
        }
        let bytes = self.take(n)?;
        let mut raw = [0u8; 8];
        raw[..n].copy_from_slice(bytes);
        if n > 0 && n < 8 && bytes[n - 1] & 0x80 != 0 {
            raw[n..].fill(0xff);
        }
        self.push_int(i64::from_le_bytes(raw))
    }

    fn remember(&mut self, index: u32) -> Result<(), PickleError> {
        let memo = match self.stack.last() {
            Some(Item::Value(v)) => Memo::Value(v.clone()),
            Some(Item::Dict(_)) => Memo::Dict,
            Some(Item::Mark) | None => return self.fail("memoising with nothing on the stack"),
        };
        if self.memo.len() >= MAX_STACK && !self.memo.contains_key(&index) {
            return self.fail("too many memo entries");
        }
        self.memo.insert(index, memo);
        Ok(())
    }

    fn recall(&mut self, index: u32) -> Result<(), PickleError> {
        match self.memo.get(&index).cloned() {
            Some(Memo::Value(v)) => {
                if let Value::Str(s) = &v {
                    self.expand(s.len())?;
                }
                self.push(Item::Value(v))
            }
            Some(Memo::Dict) => self.fail("a reference back to the dict (not in a message)"),
            None => self.fail(format!("memo entry {index} was never stored")),
        }
    }

    fn pop_value(&mut self) -> Result<Value, PickleError> {
        match self.stack.pop() {
            Some(Item::Value(v)) => Ok(v),
            Some(Item::Dict(_)) => self.fail("a dict inside a dict (not in a message)"),
            Some(Item::Mark) | None => self.fail("a key or value is missing"),
        }
    }

    /// Add `pairs` (key, value, key, value, …) to the dict just below them.
    fn set_items(&mut self, pairs: Vec<Value>) -> Result<(), PickleError> {
        if !pairs.len().is_multiple_of(2) {
            return self.fail("a key without a value");
        }
        let mut items = Vec::with_capacity(pairs.len() / 2);
        let mut it = pairs.into_iter();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            let Value::Str(key) = k else {
                return self.fail("a dict key that is not a string");
            };
            items.push((key, v));
        }
        let Some(Item::Dict(dict)) = self.stack.last_mut() else {
            return self.fail("items set on something that is not a dict");
        };
        for (key, value) in items {
            match dict.iter_mut().find(|(k, _)| *k == key) {
                Some(slot) => slot.1 = value,
                None => dict.push((key, value)),
            }
        }
        Ok(())
    }

    fn run(mut self) -> Result<Dict, PickleError> {
        // A protocol 2+ pickle starts with PROTO; 0 and 1 have none.
        if self.data.first() != Some(&PROTO) {
            return self.fail("not a protocol 2-5 pickle (it does not start with PROTO)");
        }
        loop {
            self.op_at = self.pos;
            let op = self.byte()?;
            if op == STOP {
                return self.stop();
            }
            self.step(op)?;
        }
    }

    /// Run one opcode other than STOP: the allow-list itself.
    fn step(&mut self, op: u8) -> Result<(), PickleError> {
        match op {
            PROTO => self.proto(),
            // A frame only groups the opcodes after it for buffered
            // reading; its contents are decoded like any others.
            FRAME => self.length(8).map(drop),
            EMPTY_DICT => self.push(Item::Dict(Vec::new())),
            MARK => self.push(Item::Mark),
            SHORT_BINUNICODE => self.push_str(1),
            BINUNICODE => self.push_str(4),
            BINUNICODE8 => self.push_str(8),
            BININT1 => {
                let v = self.le(1)?;
                self.push_int(v as i64)
            }
            BININT2 => {
                let v = self.le(2)?;
                self.push_int(v as i64)
            }
            BININT => {
                let v = self.le(4)? as u32 as i32;
                self.push_int(i64::from(v))
            }
            LONG1 => self.push_long(1),
            LONG4 => self.push_long(4),
            MEMOIZE => self.remember(self.memo.len() as u32),
            BINPUT => {
                let index = self.le(1)? as u32;
                self.remember(index)
            }
            LONG_BINPUT => {
                let index = self.le(4)? as u32;
                self.remember(index)
            }
            BINGET => {
                let index = self.le(1)? as u32;
                self.recall(index)
            }
            LONG_BINGET => {
                let index = self.le(4)? as u32;
                self.recall(index)
            }
            SETITEM => self.set_item(),
            SETITEMS => self.set_marked_items(),
            other => self.fail(format!(
                "opcode {} is not allowed (only a dict of strings and integers is accepted)",
                opcode_name(other)
            )),
        }
    }

    /// PROTO: only as the very first opcode, and only protocols 2 to 5.
    fn proto(&mut self) -> Result<(), PickleError> {
        let version = self.byte()?;
        if self.op_at != 0 {
            return self.fail("PROTO in the middle of the data");
        }
        if !(2..=5).contains(&version) {
            return self.fail(format!("pickle protocol {version} (2 to 5 accepted)"));
        }
        Ok(())
    }

    /// SETITEM: one key and value into the dict below them.
    fn set_item(&mut self) -> Result<(), PickleError> {
        if self.stack.len() < 3 {
            return self.fail("a key or value is missing");
        }
        let value = self.pop_value()?;
        let key = self.pop_value()?;
        self.set_items(vec![key, value])
    }

    /// SETITEMS: every key and value above the last MARK.
    fn set_marked_items(&mut self) -> Result<(), PickleError> {
        let Some(mark) = self.stack.iter().rposition(|i| matches!(i, Item::Mark)) else {
            return self.fail("SETITEMS without a MARK");
        };
        let mut pairs = Vec::with_capacity(self.stack.len() - mark - 1);
        for item in self.stack.drain(mark + 1..) {
            match item {
                Item::Value(v) => pairs.push(v),
                _ => {
                    return Err(PickleError {
                        at: self.op_at,
                        reason: "a dict inside a dict (not in a message)".into(),
                    })
                }
            }
        }
        self.stack.pop(); // the mark
        self.set_items(pairs)
    }

    /// STOP: the one dict, alone on the stack, is the message.
    fn stop(&mut self) -> Result<Dict, PickleError> {
        match (self.stack.pop(), self.stack.is_empty()) {
            (Some(Item::Dict(dict)), true) => Ok(dict),
            (Some(Item::Dict(_)), false) => self.fail("left-over items under the dict at STOP"),
            _ => self.fail("the pickle does not hold a dict"),
        }
    }
}

/// Encode `{"messageSize": <chars in message>, "message": message}` the way
/// CPython 3.8+ does with its default protocol (4).
pub fn encode_message(message: &str) -> Vec<u8> {
    let size = message.chars().count() as i64;
    encode(&[
        ("messageSize", &Value::Int(size)),
        ("message", &Value::Str(message.to_string())),
    ])
}

/// Encode a flat dict as CPython's C pickler does with protocol 4, for
/// bodies under 64 KiB (larger strings would be written outside the frame;
/// those are still valid, but never produced here).
pub fn encode(items: &[(&str, &Value)]) -> Vec<u8> {
    let mut body = vec![EMPTY_DICT, MEMOIZE];
    let put_str = |out: &mut Vec<u8>, s: &str| {
        let bytes = s.as_bytes();
        if bytes.len() < 256 {
            out.extend_from_slice(&[SHORT_BINUNICODE, bytes.len() as u8]);
        } else {
            out.push(BINUNICODE);
            out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        }
        out.extend_from_slice(bytes);
        out.push(MEMOIZE);
    };
    let put_value = |out: &mut Vec<u8>, v: &Value| match v {
        Value::Str(s) => put_str(out, s),
        Value::Int(i) => put_int(out, *i),
    };
    match items {
        [] => {}
        [(k, v)] => {
            put_str(&mut body, k);
            put_value(&mut body, v);
            body.push(SETITEM);
        }
        _ => {
            // CPython batches SETITEMS by 1000 pairs.
            for batch in items.chunks(1000) {
                body.push(MARK);
                for (k, v) in batch {
                    put_str(&mut body, k);
                    put_value(&mut body, v);
                }
                body.push(SETITEMS);
            }
        }
    }
    body.push(STOP);
    let mut out = Vec::with_capacity(body.len() + 11);
    out.extend_from_slice(&[PROTO, 4, FRAME]);
    out.extend_from_slice(&(body.len() as u64).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

fn put_int(out: &mut Vec<u8>, i: i64) {
    if (0..256).contains(&i) {
        out.extend_from_slice(&[BININT1, i as u8]);
    } else if (0..65536).contains(&i) {
        out.push(BININT2);
        out.extend_from_slice(&(i as u16).to_le_bytes());
    } else if let Ok(small) = i32::try_from(i) {
        out.push(BININT);
        out.extend_from_slice(&small.to_le_bytes());
    } else {
        // LONG1: the shortest two's-complement little-endian form.
        let bytes = i.to_le_bytes();
        let mut n = 8;
        while n > 1 {
            let top = bytes[n - 1];
            let below_sign = bytes[n - 2] & 0x80;
            if (top == 0 && below_sign == 0) || (top == 0xff && below_sign != 0) {
                n -= 1;
            } else {
                break;
            }
        }
        out.extend_from_slice(&[LONG1, n as u8]);
        out.extend_from_slice(&bytes[..n]);
    }
}

// The opcodes the decoder accepts.
const PROTO: u8 = 0x80;
const FRAME: u8 = 0x95;
const EMPTY_DICT: u8 = b'}';
const MARK: u8 = b'(';
const SHORT_BINUNICODE: u8 = 0x8c;
const BINUNICODE: u8 = b'X';
const BINUNICODE8: u8 = 0x8d;
const BININT: u8 = b'J';
const BININT1: u8 = b'K';
const BININT2: u8 = b'M';
const LONG1: u8 = 0x8a;
const LONG4: u8 = 0x8b;
const MEMOIZE: u8 = 0x94;
const BINPUT: u8 = b'q';
const LONG_BINPUT: u8 = b'r';
const BINGET: u8 = b'h';
const LONG_BINGET: u8 = b'j';
const SETITEM: u8 = b's';
const SETITEMS: u8 = b'u';
const STOP: u8 = b'.';

/// The name of a pickle opcode, for error messages (every opcode of
/// protocols 0 to 5, so a refusal names what was attempted).
fn opcode_name(op: u8) -> String {
    let name = match op {
        b'(' => "MARK",
        b'.' => "STOP",
        b'0' => "POP",
        b'1' => "POP_MARK",
        b'2' => "DUP",
        b'F' => "FLOAT",
        b'I' => "INT",
        b'J' => "BININT",
        b'K' => "BININT1",
        b'L' => "LONG",
        b'M' => "BININT2",
        b'N' => "NONE",
        b'P' => "PERSID",
        b'Q' => "BINPERSID",
        b'R' => "REDUCE",
        b'S' => "STRING",
        b'T' => "BINSTRING",
        b'U' => "SHORT_BINSTRING",
        b'V' => "UNICODE",
        b'X' => "BINUNICODE",
        b'a' => "APPEND",
        b'b' => "BUILD",
        b'c' => "GLOBAL",
        b'd' => "DICT",
        b'}' => "EMPTY_DICT",
        b'e' => "APPENDS",
        b'g' => "GET",
        b'h' => "BINGET",
        b'i' => "INST",
        b'j' => "LONG_BINGET",
        b'l' => "LIST",
        b']' => "EMPTY_LIST",
        b'o' => "OBJ",
        b'p' => "PUT",
        b'q' => "BINPUT",
        b'r' => "LONG_BINPUT",
        b's' => "SETITEM",
        b't' => "TUPLE",
        b')' => "EMPTY_TUPLE",
        b'u' => "SETITEMS",
        b'G' => "BINFLOAT",
        b'B' => "BINBYTES",
        b'C' => "SHORT_BINBYTES",
        0x80 => "PROTO",
        0x81 => "NEWOBJ",
        0x82 => "EXT1",
        0x83 => "EXT2",
        0x84 => "EXT4",
        0x85 => "TUPLE1",
        0x86 => "TUPLE2",
        0x87 => "TUPLE3",
        0x88 => "NEWTRUE",
        0x89 => "NEWFALSE",
        0x8a => "LONG1",
        0x8b => "LONG4",
        0x8c => "SHORT_BINUNICODE",
        0x8d => "BINUNICODE8",
        0x8e => "BINBYTES8",
        0x8f => "EMPTY_SET",
        0x90 => "ADDITEMS",
        0x91 => "FROZENSET",
        0x92 => "NEWOBJ_EX",
        0x93 => "STACK_GLOBAL",
        0x94 => "MEMOIZE",
        0x95 => "FRAME",
        0x96 => "BYTEARRAY8",
        0x97 => "NEXT_BUFFER",
        0x98 => "READONLY_BUFFER",
        _ => return format!("0x{op:02x} (unknown)"),
    };
    format!("{name} (0x{op:02x})")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::path::PathBuf;
    use std::process::{Command, Stdio};

    /// Run `python3 -c script` with `input` on stdin; its stdout.
    fn python(script: &str, input: &[u8]) -> Vec<u8> {
        let mut child = Command::new("python3")
            .args(["-c", script])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("python3 is needed as the pickle oracle");
        child.stdin.take().unwrap().write_all(input).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "python3 failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    fn s(v: &str) -> Value {
        Value::Str(v.to_string())
    }

    /// The dicts CPython is asked to pickle, as Python literals and as what
    /// the decoder must return.
    fn cases() -> Vec<(&'static str, Dict)> {
        let long = "x".repeat(300);
        vec![
            (
                "{'messageSize': 5, 'message': 'HELLO'}",
                vec![("messageSize".into(), Value::Int(5)), ("message".into(), s("HELLO"))],
            ),
            (
                "{'message': 'ARCHIVOS: 1. A.TXT\\n2. ÜBER ✓.BIN', 'messageSize': 70000}",
                vec![
                    ("message".into(), s("ARCHIVOS: 1. A.TXT\n2. ÜBER ✓.BIN")),
                    ("messageSize".into(), Value::Int(70000)),
                ],
            ),
            ("{}", vec![]),
            ("{'a': 'a'}", vec![("a".into(), s("a"))]),
            (
                "{'k': -5, 'big': 2**40, 'neg': -2**40, 'min': -2**63, 'max': 2**63-1, 'b': 255, 'c': 256, 'd': 65536, 'e': -1, 'empty': ''}",
                vec![
                    ("k".into(), Value::Int(-5)),
                    ("big".into(), Value::Int(1 << 40)),
                    ("neg".into(), Value::Int(-(1 << 40))),
                    ("min".into(), Value::Int(i64::MIN)),
                    ("max".into(), Value::Int(i64::MAX)),
                    ("b".into(), Value::Int(255)),
                    ("c".into(), Value::Int(256)),
                    ("d".into(), Value::Int(65536)),
                    ("e".into(), Value::Int(-1)),
                    ("empty".into(), s("")),
                ],
            ),
            (
                "(lambda v: {'x': v, 'y': v, 'long': 'x' * 300})(''.join(['sa', 'me']))",
                vec![("x".into(), s("same")), ("y".into(), s("same")), ("long".into(), s(&long))],
            ),
        ]
    }

    #[test]
    fn decodes_what_cpython_pickles_with_protocols_2_to_5() {
        for (literal, want) in cases() {
            for proto in 2..=5 {
                let script = format!(
                    "import pickle, sys; sys.stdout.buffer.write(pickle.dumps({literal}, protocol={proto}))"
                );
                let bytes = python(&script, b"");
                assert_eq!(
                    decode(&bytes),
                    Ok(want.clone()),
                    "protocol {proto}: {literal}"
                );
            }
        }
    }

    #[test]
    fn decodes_a_dict_of_many_items_in_several_batches() {
        let script = "import pickle, sys; sys.stdout.buffer.write(pickle.dumps({str(i): i for i in range(2500)}, protocol=2))";
        let dict = decode(&python(script, b"")).unwrap();
        assert_eq!(dict.len(), 2500);
        assert_eq!(dict[2499], ("2499".to_string(), Value::Int(2499)));
    }

    #[test]
    fn encoded_messages_load_in_cpython_and_match_its_own_bytes() {
        let messages = [
            "HELLO".to_string(),
            String::new(),
            "ARCHIVOS: 1. a.txt\n2. sub/ü ✓.bin".to_string(),
            "y".repeat(1000),
        ];
        for m in &messages {
            let mine = encode_message(m);
            // Loads, and gives the same dict; then CPython's own pickle of
            // that dict is byte for byte ours.
            let script = "import pickle, sys\n\
                d = pickle.loads(sys.stdin.buffer.read())\n\
                assert type(d) is dict and list(d) == ['messageSize', 'message'], d\n\
                assert d['messageSize'] == len(d['message'])\n\
                sys.stdout.buffer.write(pickle.dumps({'messageSize': d['messageSize'], 'message': d['message']}, protocol=4))";
            assert_eq!(python(script, &mine), mine, "{m:?}");
        }
    }

    #[test]
    fn encoded_integers_load_in_cpython() {
        let values = [
            0,
            1,
            255,
            256,
            65535,
            65536,
            -1,
            -129,
            i64::from(i32::MIN),
            1 << 31,
            -(1 << 31) - 1,
            1 << 40,
            -(1 << 40),
            i64::MAX,
            i64::MIN,
            128,
            32768,
            -32769,
            1 << 55,
        ];
        let items: Vec<(String, Value)> = values
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("k{i}"), Value::Int(*v)))
            .collect();
        let refs: Vec<(&str, &Value)> = items.iter().map(|(k, v)| (k.as_str(), v)).collect();
        let bytes = encode(&refs);
        let out = python(
            "import pickle, sys; d = pickle.loads(sys.stdin.buffer.read()); print(' '.join(str(v) for v in d.values()))",
            &bytes,
        );
        let want: Vec<String> = values.iter().map(i64::to_string).collect();
        assert_eq!(String::from_utf8(out).unwrap().trim(), want.join(" "));
        assert_eq!(decode(&bytes).unwrap(), items);
    }

    /// A pickle that, loaded by CPython, runs `touch MARKER`.
    fn hostile(marker: &std::path::Path, proto: u8) -> Vec<u8> {
        let script = format!(
            "import os, pickle, sys\n\
             class Evil:\n    def __reduce__(self):\n        return (os.system, ('touch {}',))\n\
             sys.stdout.buffer.write(pickle.dumps({{'messageSize': 5, 'message': Evil()}}, protocol={proto}))",
            marker.display()
        );
        python(&script, b"")
    }

    #[test]
    fn a_pickle_that_would_call_os_system_is_rejected_and_nothing_runs() {
        let dir = std::env::temp_dir().join(format!("tcpfetch-pickle-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let marker: PathBuf = dir.join("pwned");
        for proto in 2..=5 {
            let bytes = hostile(&marker, proto);
            let err = decode(&bytes).unwrap_err();
            assert!(
                err.reason.contains("GLOBAL") && err.reason.contains("not allowed"),
                "protocol {proto}: {err}"
            );
            assert!(!marker.exists());
        }
        // The oracle: CPython itself does run it, so the test pickle is real.
        let bytes = hostile(&marker, 2);
        python(
            "import pickle, sys; pickle.loads(sys.stdin.buffer.read())",
            &bytes,
        );
        assert!(marker.exists(), "the hostile pickle should work on CPython");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn every_opcode_outside_the_subset_is_refused_by_name() {
        let rows: &[(&[u8], &str)] = &[
            (b"\x80\x02cos\nsystem\n.", "GLOBAL"),
            (
                b"\x80\x04\x8c\x02os\x94\x8c\x06system\x94\x93.",
                "STACK_GLOBAL",
            ),
            (b"\x80\x02}K\x01R.", "REDUCE"),
            (b"\x80\x02}}b.", "BUILD"),
            (b"\x80\x02(ios\nsystem\n.", "INST"),
            (b"\x80\x02(o.", "OBJ"),
            (b"\x80\x02}\x81.", "NEWOBJ"),
            (b"\x80\x02})\x81.", "EMPTY_TUPLE"),
            (b"\x80\x02Pfoo\n.", "PERSID"),
            (b"\x80\x02}\x88.", "NEWTRUE"),
            (b"\x80\x02}N.", "NONE"),
            (b"\x80\x02]a.", "EMPTY_LIST"),
            (b"\x80\x02\x82\x01.", "EXT1"),
            (b"\x80\x02G\x00\x00\x00\x00\x00\x00\x00\x00.", "BINFLOAT"),
            (b"\x80\x02C\x01x.", "SHORT_BINBYTES"),
            (b"\x80\x05\x97.", "NEXT_BUFFER"),
            (b"\x80\x02\xff.", "0xff"),
        ];
        for (bytes, name) in rows {
            let err = decode(bytes).unwrap_err();
            assert!(err.reason.contains(name), "{name}: {err}");
        }
    }

    #[test]
    fn malformed_dicts_are_refused() {
        let rows: &[(&[u8], &str)] = &[
            (b"", "PROTO"),
            (b"(dp0\n.", "PROTO"),
            (b"\x80\x01}.", "protocol 1"),
            (b"\x80\x06}.", "protocol 6"),
            (b"\x80\x02}\x80\x02.", "middle"),
            (b"\x80\x02K\x01.", "does not hold a dict"),
            (b"\x80\x02}}.", "left-over"),
            (b"\x80\x02}K\x01K\x02s.", "not a string"),
            (b"\x80\x02}X\x01\x00\x00\x00a}s.", "dict inside"),
            (b"\x80\x02}X\x01\x00\x00\x00as.", "missing"),
            (b"\x80\x02}(X\x01\x00\x00\x00au.", "without a value"),
            (b"\x80\x02}u.", "without a MARK"),
            (b"\x80\x02}h\x00.", "never stored"),
            (
                b"\x80\x02}q\x00X\x01\x00\x00\x00ah\x00s.",
                "back to the dict",
            ),
            (b"\x80\x02}X\xff\xff\xff\xff.", "past the end"),
            (b"\x80\x02}X\x01\x00\x00\x00\xff.", "UTF-8"),
            (
                b"\x80\x02}\x8a\x09\x01\x01\x01\x01\x01\x01\x01\x01\x01.",
                "wider than 64",
            ),
            (b"\x80\x02}(q\x00.", "nothing on the stack"),
            (
                b"\x80\x04\x95\xff\x00\x00\x00\x00\x00\x00\x00}.",
                "past the end",
            ),
            (b"\x80\x02}", "truncated"),
        ];
        for (bytes, want) in rows {
            let err = decode(bytes).unwrap_err();
            assert!(err.reason.contains(want), "{bytes:?}: {err}");
        }
    }

    #[test]
    fn the_stack_and_memo_bounds_and_misplaced_items_are_refused() {
        // One more push than the stack holds.
        let mut deep = b"\x80\x02".to_vec();
        deep.resize(2 + MAX_STACK + 1, MARK);
        let err = decode(&deep).unwrap_err();
        assert_eq!(
            (err.at, err.reason.as_str()),
            (2 + MAX_STACK, "too deeply nested")
        );
        // One more memo entry than the memo holds (a slot stored again
        // is no new entry).
        let mut memo = b"\x80\x02}K\x01".to_vec();
        for i in 0..=MAX_STACK as u32 {
            memo.push(LONG_BINPUT);
            memo.extend_from_slice(&(i % 5000).to_le_bytes());
        }
        let err = decode(&memo).unwrap_err();
        assert!(err.reason.contains("too many memo entries"), "{err}");
        let mut again = b"\x80\x02}K\x01".to_vec();
        again.extend(std::iter::repeat_n(*b"q\x00", 2 * MAX_STACK).flatten());
        again.extend_from_slice(b"0.");
        assert!(decode(&again).unwrap_err().reason.contains("POP"));
        let rows: &[(&[u8], &str)] = &[
            // SETITEM onto something that is not a dict.
            (b"\x80\x02K\x01X\x01\x00\x00\x00aK\x02s.", "not a dict"),
            // SETITEM whose key is a MARK.
            (b"\x80\x02}(K\x01s.", "missing"),
            // SETITEMS with a dict among its items.
            (b"\x80\x02}(X\x01\x00\x00\x00a}u.", "dict inside"),
            // LONG4 wider than 64 bits.
            (
                b"\x80\x02}\x8b\x09\x00\x00\x00\x01\x01\x01\x01\x01\x01\x01\x01\x01.",
                "wider than 64",
            ),
            // BINUNICODE8 past the end.
            (
                b"\x80\x02}\x8d\xff\x00\x00\x00\x00\x00\x00\x00.",
                "past the end",
            ),
        ];
        for (bytes, want) in rows {
            let err = decode(bytes).unwrap_err();
            assert!(err.reason.contains(want), "{bytes:?}: {err}");
        }
    }

    #[test]
    fn memo_fetches_cannot_blow_up_memory() {
        let mut bytes = b"\x80\x02}(X\x00\x10\x00\x00".to_vec();
        bytes.extend(std::iter::repeat_n(b'a', 4096));
        bytes.extend_from_slice(b"q\x00");
        for _ in 0..200 {
            bytes.extend_from_slice(b"h\x00");
        }
        let err = decode(&bytes).unwrap_err();
        assert!(err.reason.contains("too much"), "{err}");
    }

    #[test]
    fn random_and_truncated_pickles_never_panic() {
        let mut rng = crate::proto::tests::Rng::new(0x5eed_1e9a_c1ed);
        let seeds: Vec<Vec<u8>> = vec![
            encode_message("HELLO"),
            encode_message("ARCHIVOS: 1. a.txt\n2. b.txt"),
            b"\x80\x02}q\x00(X\x0b\x00\x00\x00messageSizeq\x01K\x05X\x07\x00\x00\x00messageq\x02X\x05\x00\x00\x00HELLOq\x03u.".to_vec(),
            b"\x80\x04\x95\n\x00\x00\x00\x00\x00\x00\x00}\x94\x8c\x01a\x94h\x01s.".to_vec(),
        ];
        // Bytes a mutation is likely to need: every accepted opcode.
        let ops = b"\x80\x95}(\x8cX\x8dJKM\x8a\x8b\x94qrhjsu.";
        let mut decoded = 0;
        for case in 0..50_000 {
            let mut bytes = match case % 4 {
                // Pure noise, sometimes behind a valid PROTO.
                0 => {
                    let len = rng.below(64);
                    let mut v: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
                    if rng.below(2) == 0 {
                        v.splice(0..0, [0x80, 2 + rng.below(4) as u8]);
                    }
                    v
                }
                // Random sequences of allowed opcodes and small arguments.
                1 => {
                    let mut v = vec![0x80, 4];
                    for _ in 0..rng.below(40) {
                        v.push(if rng.below(3) == 0 {
                            rng.next() as u8 % 8
                        } else {
                            ops[rng.below(ops.len())]
                        });
                    }
                    v
                }
                // A valid message, truncated.
                2 => {
                    let s = &seeds[rng.below(seeds.len())];
                    s[..rng.below(s.len())].to_vec()
                }
                // A valid message with a few bytes changed.
                _ => {
                    let mut v = seeds[rng.below(seeds.len())].clone();
                    for _ in 0..1 + rng.below(3) {
                        let i = rng.below(v.len());
                        v[i] = if rng.below(2) == 0 {
                            rng.next() as u8
                        } else {
                            ops[rng.below(ops.len())]
                        };
                    }
                    v
                }
            };
            if rng.below(50) == 0 {
                bytes.clear();
            }
            if decode(&bytes).is_ok() {
                decoded += 1;
            }
        }
        // Some mutations stay valid; most must not.
        assert!(decoded > 0 && decoded < 25_000, "{decoded}");
    }
}
