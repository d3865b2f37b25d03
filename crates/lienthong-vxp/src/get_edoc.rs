//! getEdoc's answer, `{"status":…,"ErrorCode":…,"ErrorDesc":…,"data":"<base64 of the
//! edXML>"}`, written and read as a stream: an edXML of hundreds of MiB (attachments are
//! inline base64) is never held whole, neither by the gateway nor by the client.
//!
//! - [`success_head`], [`Base64Chunker`] and [`TAIL`] write it: the head with the outcome,
//!   the base64 text chunk by chunk, the closing `"}`.
//! - [`GetEdocDecoder`] reads any such object (fields in any order, `data` decoded as it
//!   arrives, as leniently as the SDK's commons-codec: line breaks and URL-safe letters
//!   are fine, other characters are skipped).

use base64::Engine;

use crate::error::{Result, VxpError};
use crate::response::{Outcome, to_ascii_json};

/// What closes the answer after the base64 text.
pub const TAIL: &[u8] = b"\"}";

/// The answer up to the opening quote of `data`: the outcome's fields, then `"data":"`.
pub fn success_head() -> String {
    let mut head = to_ascii_json(&Outcome::success());
    head.pop(); // the closing brace
    head.push_str(",\"data\":\"");
    head
}

/// Base64 (standard alphabet, padded, no line breaks) of a byte stream given in chunks of
/// any size: whole 3-byte groups are encoded as they arrive, the rest waits for the next
/// chunk or [`Base64Chunker::finish`].
#[derive(Debug, Default)]
pub struct Base64Chunker {
    carry: Vec<u8>,
}

impl Base64Chunker {
    pub fn encode(&mut self, chunk: &[u8]) -> String {
        self.carry.extend_from_slice(chunk);
        let whole = self.carry.len() / 3 * 3;
        let text = base64::engine::general_purpose::STANDARD.encode(&self.carry[..whole]);
        self.carry.drain(..whole);
        text
    }

    pub fn finish(self) -> String {
        base64::engine::general_purpose::STANDARD.encode(&self.carry)
    }
}

/// The longest value other than `data` the decoder keeps (an `ErrorDesc`, a number …).
const MAX_FIELD: usize = 64 * 1024;

#[derive(Debug)]
enum State {
    BeforeObject,
    BeforeKey {
        first: bool,
    },
    Key {
        raw: Vec<u8>,
        escaped: bool,
    },
    AfterKey,
    BeforeValue,
    /// A string value other than `data`, raw (escapes undecoded).
    Text {
        raw: Vec<u8>,
        escaped: bool,
    },
    /// `data`'s text, decoded as it comes; `escape` holds a pending escape sequence.
    Data {
        escape: Option<Vec<u8>>,
    },
    /// A number, literal, object or array, skipped (kept when short).
    Other {
        raw: Vec<u8>,
        depth: u32,
        in_string: bool,
        escaped: bool,
    },
    AfterValue,
    Done,
}

/// Reads a getEdoc answer pushed in pieces; `data` goes to the output as decoded bytes.
#[derive(Debug)]
pub struct GetEdocDecoder {
    state: State,
    key: String,
    status: Option<String>,
    error_code: Option<String>,
    error_desc: Option<String>,
    data_seen: bool,
    quad: [u8; 4],
    quad_len: usize,
    data_ended: bool,
    offset: u64,
}

impl Default for GetEdocDecoder {
    fn default() -> Self {
        Self::new()
    }
}

/// What [`GetEdocDecoder::finish`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GetEdocAnswer {
    pub outcome: Outcome,
    /// Whether the answer had a `data` string.
    pub had_data: bool,
}

fn sextet(c: u8) -> Option<u8> {
    match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' | b'-' => Some(62),
        b'/' | b'_' => Some(63),
        _ => None,
    }
}

impl GetEdocDecoder {
    pub fn new() -> Self {
        GetEdocDecoder {
            state: State::BeforeObject,
            key: String::new(),
            status: None,
            error_code: None,
            error_desc: None,
            data_seen: false,
            quad: [0; 4],
            quad_len: 0,
            data_ended: false,
            offset: 0,
        }
    }

    fn bad(&self, reason: impl std::fmt::Display) -> VxpError {
        VxpError::BadResponse {
            op: "getEdoc",
            reason: format!("{reason} (at byte {})", self.offset),
        }
    }

    /// One base64 character of `data`; a `=` ends the data, anything not in either
    /// alphabet is skipped.
    fn data_char(&mut self, c: u8, out: &mut Vec<u8>) {
        if self.data_ended {
            return;
        }
        if c == b'=' {
            self.flush_quad(out);
            self.data_ended = true;
            return;
        }
        if let Some(v) = sextet(c) {
            self.quad[self.quad_len] = v;
            self.quad_len += 1;
            if self.quad_len == 4 {
                self.flush_quad(out);
            }
        }
    }

    fn flush_quad(&mut self, out: &mut Vec<u8>) {
        let q = self.quad;
        let n = self.quad_len;
        if n >= 2 {
            out.push((q[0] << 2) | (q[1] >> 4));
        }
        if n >= 3 {
            out.push((q[1] << 4) | (q[2] >> 2));
        }
        if n == 4 {
            out.push((q[2] << 6) | q[3]);
        }
        self.quad_len = 0;
    }

    fn store(&mut self, value: Option<String>) {
        let slot = match self.key.as_str() {
            "status" => &mut self.status,
            "ErrorCode" => &mut self.error_code,
            "ErrorDesc" => &mut self.error_desc,
            _ => return,
        };
        *slot = value;
    }

    /// Feeds the next bytes of the answer; decoded `data` bytes are appended to `out`.
    pub fn push(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<()> {
        for &b in input {
            self.step(b, out)?;
            self.offset += 1;
        }
        Ok(())
    }

    fn step(&mut self, b: u8, out: &mut Vec<u8>) -> Result<()> {
        let ws = matches!(b, b' ' | b'\t' | b'\n' | b'\r');
        match &mut self.state {
            State::BeforeObject if ws => {}
            State::BeforeObject if b == b'{' => self.state = State::BeforeKey { first: true },
            State::BeforeKey { .. } if ws => {}
            State::BeforeKey { .. } if b == b'"' => {
                self.state = State::Key {
                    raw: Vec::new(),
                    escaped: false,
                }
            }
            State::BeforeKey { first: true } if b == b'}' => self.state = State::Done,
            State::Key { raw, escaped } => {
                if *escaped {
                    *escaped = false;
                } else if b == b'\\' {
                    *escaped = true;
                } else if b == b'"' {
                    let raw = std::mem::take(raw);
                    self.key = decode_json_string(&raw).map_err(|e| self.bad(e))?;
                    self.state = State::AfterKey;
                    return Ok(());
                }
                if raw.len() >= MAX_FIELD {
                    return Err(self.bad("a key is too long"));
                }
                raw.push(b);
            }
            State::AfterKey if ws => {}
            State::AfterKey if b == b':' => self.state = State::BeforeValue,
            State::BeforeValue if ws => {}
            State::BeforeValue if b == b'"' && self.key == "data" => {
                self.data_seen = true;
                self.state = State::Data { escape: None };
            }
            State::BeforeValue if b == b'"' => {
                self.state = State::Text {
                    raw: Vec::new(),
                    escaped: false,
                }
            }
            State::BeforeValue => {
                let depth = u32::from(b == b'{' || b == b'[');
                self.state = State::Other {
                    raw: vec![b],
                    depth,
                    in_string: false,
                    escaped: false,
                };
            }
            State::Text { raw, escaped } => {
                if *escaped {
                    *escaped = false;
                } else if b == b'\\' {
                    *escaped = true;
                } else if b == b'"' {
                    let raw = std::mem::take(raw);
                    let text = decode_json_string(&raw).map_err(|e| self.bad(e))?;
                    self.store(Some(text));
                    self.state = State::AfterValue;
                    return Ok(());
                }
                if raw.len() < MAX_FIELD {
                    raw.push(b);
                }
            }
            State::Data { escape } => match escape {
                None if b == b'"' => {
                    self.flush_quad(out);
                    self.state = State::AfterValue;
                }
                None if b == b'\\' => *escape = Some(Vec::new()),
                None => self.data_char(b, out),
                Some(seq) => {
                    seq.push(b);
                    let c = match seq[0] {
                        b'u' if seq.len() < 5 => return Ok(()),
                        b'u' => std::str::from_utf8(&seq[1..])
                            .ok()
                            .and_then(|h| u32::from_str_radix(h, 16).ok())
                            .and_then(|v| u8::try_from(v).ok()),
                        b'/' => Some(b'/'),
                        // \n, \r, \t, \", \\ … carry nothing base64 reads.
                        _ => None,
                    };
                    self.state = State::Data { escape: None };
                    if let Some(c) = c {
                        self.data_char(c, out);
                    }
                }
            },
            State::Other {
                raw,
                depth,
                in_string,
                escaped,
            } => {
                if *in_string {
                    if *escaped {
                        *escaped = false;
                    } else if b == b'\\' {
                        *escaped = true;
                    } else if b == b'"' {
                        *in_string = false;
                    }
                } else if b == b'"' {
                    *in_string = true;
                } else if b == b'{' || b == b'[' {
                    *depth += 1;
                } else if (b == b'}' || b == b']') && *depth > 0 {
                    *depth -= 1;
                } else if *depth == 0 && (ws || b == b',' || b == b'}') {
                    // The end of a number or literal at the top level.
                    let raw = std::mem::take(raw);
                    let value: Option<serde_json::Value> = serde_json::from_slice(&raw).ok();
                    let text = match value {
                        Some(serde_json::Value::Null) | None => None,
                        Some(serde_json::Value::String(s)) => Some(s),
                        Some(v) => Some(v.to_string()),
                    };
                    self.store(text);
                    self.state = State::AfterValue;
                    return self.step(b, out);
                }
                if raw.len() < MAX_FIELD {
                    raw.push(b);
                }
            }
            State::AfterValue if ws => {}
            State::AfterValue if b == b',' => self.state = State::BeforeKey { first: false },
            State::AfterValue if b == b'}' => self.state = State::Done,
            State::Done if ws => {}
            _ => return Err(self.bad(format!("unexpected {:?}", b as char))),
        }
        Ok(())
    }

    /// The outcome, once the whole answer was pushed.
    pub fn finish(self) -> Result<GetEdocAnswer> {
        if !matches!(self.state, State::Done) {
            return Err(self.bad("the answer ends before its closing brace"));
        }
        let missing = |name: &str| VxpError::BadResponse {
            op: "getEdoc",
            reason: format!("it has no {name}"),
        };
        Ok(GetEdocAnswer {
            outcome: Outcome {
                status: self.status.ok_or_else(|| missing("status"))?,
                error_code: self.error_code.ok_or_else(|| missing("ErrorCode"))?,
                error_desc: self.error_desc.ok_or_else(|| missing("ErrorDesc"))?,
            },
            had_data: self.data_seen,
        })
    }
}

fn decode_json_string(raw: &[u8]) -> std::result::Result<String, String> {
    let mut quoted = Vec::with_capacity(raw.len() + 2);
    quoted.push(b'"');
    quoted.extend_from_slice(raw);
    quoted.push(b'"');
    serde_json::from_slice(&quoted).map_err(|e| format!("a string is not valid JSON: {e}"))
}
