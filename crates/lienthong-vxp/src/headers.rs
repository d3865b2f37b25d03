//! The HMAC-signed `XroadVnpt-*` headers of every VXP request, in both directions: built
//! exactly as the SDK builds them ([`SignedHeaders::to_http_headers`]) and verified as a
//! server must verify them ([`verify`]).
//!
//! Wire facts (reference `vxp-rest.md` §1):
//! - every signed entry `k = v` goes out as header `XroadVnpt-<k>: v`, in the order of the
//!   SDK's Java `HashMap`, which is never re-sorted ([`java_hash_map_order`]);
//! - `XroadVnpt-sign-header-key` joins the unprefixed keys with `;` in that order;
//! - `XroadVnpt-sign-header` is Gson's compact `JsonObject.toString()` of
//!   `{"XroadVnpt-<k>": v, …}` without HTML escaping ([`gson_object`]);
//! - `XroadVnpt-hash-header` is the lowercase hex HMAC-SHA256 of the sign-header's UTF-8
//!   bytes under the secret's UTF-8 bytes (the secret is never base64-decoded);
//! - the body is not signed (sendEdoc signs its digest as `hash-file`).
//!
//! A server MACs the sign-header bytes it *received*, compares in constant time, checks
//! each signed value against the header actually sent, and then takes every input from
//! the signed set ([`VerifiedRequest::signed`]), never from unsigned headers.

use std::collections::HashSet;
use std::fmt;

use http::HeaderMap;
use ring::hmac;

use crate::error::{Result, VxpError};

/// The prefix of every signed header.
pub const PREFIX: &str = "XroadVnpt-";
/// The signed keys, unprefixed, joined with `;`.
pub const SIGN_HEADER_KEY: &str = "XroadVnpt-sign-header-key";
/// The signed JSON object.
pub const SIGN_HEADER: &str = "XroadVnpt-sign-header";
/// The HMAC of the sign-header.
pub const HASH_HEADER: &str = "XroadVnpt-hash-header";
/// The header naming the calling system.
pub const SYSTEM_ID_HEADER: &str = "XroadVnpt-systemid";
/// The protocol version header the SDK sends (unsigned).
pub const VERSION_HEADER: &str = "XroadVnpt-version";
/// The protocol version SDKVXP 2.0.1 sends.
pub const VERSION: &str = "3.0.201608";
/// The SDK's `User-Agent`.
pub const USER_AGENT: &str = "JAVASDKAgent/1.0.0 XRoad/VPCP";

/// A system's shared secret: the literal string configured in the DMS, used as its UTF-8
/// bytes. Its `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(secret: impl Into<String>) -> Self {
        Secret(secret.into())
    }

    /// The HMAC key: the secret's UTF-8 bytes, not base64-decoded even when the secret
    /// looks like base64 (as real ones do).
    fn hmac_key(&self) -> hmac::Key {
        hmac::Key::new(hmac::HMAC_SHA256, self.0.as_bytes())
    }

    /// `XroadVnpt-hash-header` for a sign-header: lowercase hex HMAC-SHA256.
    pub fn hash_header(&self, sign_header: &[u8]) -> String {
        hex::encode(hmac::sign(&self.hmac_key(), sign_header).as_ref())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(…)")
    }
}

/// Where the verifier finds a system's secret.
pub trait SecretStore {
    /// The secret of `system_id`, or `None` when the system is unknown.
    fn secret(&self, system_id: &str) -> Option<Secret>;
}

impl<F: Fn(&str) -> Option<Secret>> SecretStore for F {
    fn secret(&self, system_id: &str) -> Option<Secret> {
        self(system_id)
    }
}

/// The signed key/value set of a request, unprefixed keys in wire order (`systemid`,
/// `servicetype`, …, `Content-Type`).
///
/// Keys keep the caller's case; [`SignedHeaders::get`] matches them case-insensitively,
/// as HTTP header names are (the SDK's own ServiceTest once writes `docid`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SignedHeaders {
    entries: Vec<(String, String)>,
}

impl SignedHeaders {
    /// The entries in the order given; the caller decides the order (see
    /// [`java_hash_map_order`] for the SDK's).
    pub fn new(entries: Vec<(String, String)>) -> Self {
        SignedHeaders { entries }
    }

    pub fn entries(&self) -> &[(String, String)] {
        &self.entries
    }

    /// The value of `key`, matched case-insensitively. Two signed keys that differ only in
    /// case (a long-lived SDK object re-sending a stale `docid` beside a fresh `docId`) are
    /// accepted when they agree and refused when they do not: which one the DMS meant
    /// cannot be known.
    pub fn get(&self, key: &'static str) -> Result<Option<&str>> {
        let mut found: Option<&str> = None;
        for (k, v) in &self.entries {
            if k.eq_ignore_ascii_case(key) {
                match found {
                    Some(prev) if prev != v => {
                        return Err(VxpError::InvalidInput {
                            key,
                            value: format!("{prev} and {v}"),
                            expected: "signed once, or with one value in every letter case",
                        });
                    }
                    _ => found = Some(v),
                }
            }
        }
        Ok(found)
    }

    /// `XroadVnpt-sign-header-key`: the unprefixed keys joined with `;`.
    pub fn sign_header_key(&self) -> String {
        let keys: Vec<&str> = self.entries.iter().map(|(k, _)| k.as_str()).collect();
        keys.join(";")
    }

    /// `XroadVnpt-sign-header`: Gson's compact JSON of the prefixed entries.
    pub fn sign_header(&self) -> String {
        gson_object(
            self.entries
                .iter()
                .map(|(k, v)| (format!("{PREFIX}{k}"), v.as_str())),
        )
    }

    /// Every header of the request as the SDK emits them, in its order: `XroadVnpt-<k>`
    /// for each entry, `Content-Type` (the value of the `Content-Type` entry, when there is
    /// one), `XroadVnpt-sign-header-key`, `XroadVnpt-sign-header`,
    /// `XroadVnpt-hash-header`, `User-Agent`, `XroadVnpt-version`.
    pub fn to_http_headers(&self, secret: &Secret) -> Vec<(String, String)> {
        let sign_header = self.sign_header();
        let mut out: Vec<(String, String)> = self
            .entries
            .iter()
            .map(|(k, v)| (format!("{PREFIX}{k}"), v.clone()))
            .collect();
        if let Some((_, ct)) = self.entries.iter().find(|(k, _)| k == "Content-Type") {
            out.push(("Content-Type".into(), ct.clone()));
        }
        let hash_header = secret.hash_header(sign_header.as_bytes());
        out.push((SIGN_HEADER_KEY.into(), self.sign_header_key()));
        out.push((SIGN_HEADER.into(), sign_header));
        out.push((HASH_HEADER.into(), hash_header));
        out.push(("User-Agent".into(), USER_AGENT.into()));
        out.push((VERSION_HEADER.into(), VERSION.into()));
        out
    }
}

/// A request whose headers verified: the calling system and what it signed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedRequest {
    /// `XroadVnpt-systemid`, which is also in the signed set.
    pub system_id: String,
    /// Every input the server acts on comes from here.
    pub signed: SignedHeaders,
}

/// The one header named `name` (case-insensitively), as bytes.
fn single<'h>(headers: &'h HeaderMap, name: &str) -> Result<&'h [u8]> {
    let mut values = headers.get_all(name).iter();
    let first = values.next().ok_or_else(|| VxpError::MissingHeader {
        name: name.to_string(),
    })?;
    if values.next().is_some() {
        return Err(VxpError::DuplicateHeader {
            name: name.to_string(),
        });
    }
    Ok(first.as_bytes())
}

fn malformed(reason: impl Into<String>) -> VxpError {
    VxpError::MalformedSignHeader {
        reason: reason.into(),
    }
}

/// Verifies the signed headers of a request (reference §1, "How a server verifies"):
///
/// 1. the secret is looked up by `XroadVnpt-systemid` ([`VxpError::UnknownSystem`]);
/// 2. the received bytes of `XroadVnpt-sign-header` are MACed and compared with
///    `XroadVnpt-hash-header` in constant time, hex in either case ([`VxpError::BadMac`]);
/// 3. the sign-header must be a flat JSON object of strings whose keys all start with
///    `XroadVnpt-`, that signs `systemid`, and whose keys are those of
///    `XroadVnpt-sign-header-key` when that header is sent
///    ([`VxpError::MalformedSignHeader`]);
/// 4. every signed `XroadVnpt-<k>` must be sent as a header (case-insensitive name) with
///    exactly the signed value ([`VxpError::MissingHeader`], [`VxpError::TamperedHeader`]).
///
/// The key order is kept as received. Keys the operation does not use are kept too and
/// ignored later: a long-lived SDK object re-sends stale ones.
pub fn verify(headers: &HeaderMap, secrets: &impl SecretStore) -> Result<VerifiedRequest> {
    let system_id = single(headers, SYSTEM_ID_HEADER)?;
    let sign_header = single(headers, SIGN_HEADER)?;
    let hash_header = single(headers, HASH_HEADER)?;
    let system_id = String::from_utf8_lossy(system_id).into_owned();
    let secret = secrets
        .secret(&system_id)
        .ok_or_else(|| VxpError::UnknownSystem {
            system_id: system_id.clone(),
        })?;
    let bad_mac = || VxpError::BadMac {
        system_id: system_id.clone(),
    };
    let tag = hex::decode(hash_header.trim_ascii()).map_err(|_| bad_mac())?;
    hmac::verify(&secret.hmac_key(), sign_header, &tag).map_err(|_| bad_mac())?;

    let text = std::str::from_utf8(sign_header).map_err(|_| malformed("it is not UTF-8"))?;
    let mut entries = Vec::new();
    let mut seen = HashSet::new();
    for (key, value) in parse_flat_object(text)? {
        let Some(unprefixed) = key.strip_prefix(PREFIX) else {
            return Err(malformed(format!(
                "key {key:?} does not start with {PREFIX}"
            )));
        };
        if !seen.insert(key.clone()) {
            return Err(malformed(format!("key {key:?} appears twice")));
        }
        entries.push((unprefixed.to_string(), value));
    }
    let signed = SignedHeaders::new(entries);
    if signed.get("systemid")?.is_none() {
        return Err(malformed("it does not sign systemid"));
    }
    if let Some(listed) = headers.get(SIGN_HEADER_KEY) {
        let ours = signed.sign_header_key();
        if listed.as_bytes() != ours.as_bytes() {
            return Err(malformed(format!(
                "XroadVnpt-sign-header-key lists {:?} but the sign-header signs {ours:?}",
                String::from_utf8_lossy(listed.as_bytes())
            )));
        }
    }
    for (key, value) in signed.entries() {
        let name = format!("{PREFIX}{key}");
        let mut sent = headers.get_all(name.as_str()).iter().peekable();
        let Some(first) = sent.peek().map(|v| v.as_bytes()) else {
            return Err(VxpError::MissingHeader { name });
        };
        // Several keys differing only in case are several headers with one
        // case-insensitive name: the signed value must be one of them.
        if !sent.any(|v| v.as_bytes() == value.as_bytes()) {
            return Err(VxpError::TamperedHeader {
                key: key.clone(),
                signed: value.clone(),
                actual: String::from_utf8_lossy(first).into_owned(),
            });
        }
    }
    Ok(VerifiedRequest { system_id, signed })
}

/// Java `HashMap` iteration order of `keys` inserted in the given order (default capacity
/// 16, load factor 0.75, doubling as it fills; no tree bins, which need 9 keys in one
/// bucket): by bucket `(h ^ (h >>> 16)) & (capacity - 1)` of `String.hashCode`, then by
/// insertion order within a bucket. The SDK's map is filled with `timestamp`,
/// `systemid`, `Content-Type`, then the caller's keys; this reproduces the recorded
/// orders, e.g. `systemid;servicetype;messagetype;hash-file;from;timestamp;Content-Type`.
///
/// Returns the indexes of `keys` in iteration order.
pub fn java_hash_map_order<S: AsRef<str>>(keys: &[S]) -> Vec<usize> {
    let mut capacity = 16usize;
    while keys.len() * 4 > capacity * 3 {
        capacity *= 2;
    }
    let bucket = |key: &str| {
        let h = key.encode_utf16().fold(0u32, |h, unit| {
            h.wrapping_mul(31).wrapping_add(u32::from(unit))
        });
        ((h ^ (h >> 16)) as usize) & (capacity - 1)
    };
    let mut order: Vec<usize> = (0..keys.len()).collect();
    // A stable sort keeps insertion order within a bucket.
    order.sort_by_key(|&i| bucket(keys[i].as_ref()));
    order
}

/// Gson's compact serialization of a JSON object of strings, without HTML escaping:
/// `"` and `\` escaped, `\t \b \n \r \f` in short form, other control characters as
/// `\u00xx` (lowercase hex), U+2028 and U+2029 as `\u2028` / `\u2029`, everything else
/// (non-ASCII included) as is.
pub fn gson_object<K: AsRef<str>, V: AsRef<str>>(
    entries: impl IntoIterator<Item = (K, V)>,
) -> String {
    let mut out = String::from("{");
    for (i, (k, v)) in entries.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        gson_string(&mut out, k.as_ref());
        out.push(':');
        gson_string(&mut out, v.as_ref());
    }
    out.push('}');
    out
}

fn gson_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Reads a flat JSON object whose values are all strings, keeping the order of its keys
/// (serde_json's map would sort them, and the order is part of what is signed).
/// Whitespace between tokens is allowed; anything else is malformed.
pub fn parse_flat_object(text: &str) -> Result<Vec<(String, String)>> {
    let mut p = FlatParser {
        s: text.as_bytes(),
        i: 0,
    };
    p.ws();
    p.expect(b'{')?;
    let mut out = Vec::new();
    p.ws();
    if p.peek() == Some(b'}') {
        p.i += 1;
    } else {
        loop {
            p.ws();
            let key = p.string()?;
            p.ws();
            p.expect(b':')?;
            p.ws();
            if p.peek() != Some(b'"') {
                return Err(malformed(format!("the value of {key:?} is not a string")));
            }
            let value = p.string()?;
            out.push((key, value));
            p.ws();
            match p.next() {
                Some(b',') => continue,
                Some(b'}') => break,
                _ => return Err(malformed(format!("expected , or }} at byte {}", p.i))),
            }
        }
    }
    p.ws();
    if p.i != p.s.len() {
        return Err(malformed(format!(
            "unexpected text after the object at byte {}",
            p.i
        )));
    }
    Ok(out)
}

struct FlatParser<'a> {
    s: &'a [u8],
    i: usize,
}

impl FlatParser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let b = self.peek();
        self.i += 1;
        b
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn expect(&mut self, b: u8) -> Result<()> {
        if self.next() == Some(b) {
            Ok(())
        } else {
            Err(malformed(format!(
                "expected {:?} at byte {}",
                b as char,
                self.i - 1
            )))
        }
    }

    fn hex4(&mut self) -> Result<u32> {
        let digits = self
            .s
            .get(self.i..self.i + 4)
            .and_then(|d| std::str::from_utf8(d).ok())
            .and_then(|d| u32::from_str_radix(d, 16).ok())
            .ok_or_else(|| malformed(format!("bad \\u escape at byte {}", self.i)))?;
        self.i += 4;
        Ok(digits)
    }

    fn string(&mut self) -> Result<String> {
        self.expect(b'"')?;
        let mut out = String::new();
        loop {
            let start = self.i;
            while matches!(self.peek(), Some(b) if b != b'"' && b != b'\\' && b >= 0x20) {
                self.i += 1;
            }
            // The input is a &str and the run stops only at ASCII bytes, so this slice is
            // on character boundaries.
            out.push_str(
                std::str::from_utf8(&self.s[start..self.i]).map_err(|_| malformed("not UTF-8"))?,
            );
            match self.next() {
                Some(b'"') => return Ok(out),
                Some(b'\\') => {
                    let c = match self.next() {
                        Some(b'"') => '"',
                        Some(b'\\') => '\\',
                        Some(b'/') => '/',
                        Some(b'b') => '\u{8}',
                        Some(b'f') => '\u{c}',
                        Some(b'n') => '\n',
                        Some(b'r') => '\r',
                        Some(b't') => '\t',
                        Some(b'u') => {
                            let hi = self.hex4()?;
                            let code = if (0xD800..0xDC00).contains(&hi) {
                                if self.s.get(self.i..self.i + 2) != Some(b"\\u") {
                                    return Err(malformed("a lone surrogate in a \\u escape"));
                                }
                                self.i += 2;
                                let lo = self.hex4()?;
                                if !(0xDC00..0xE000).contains(&lo) {
                                    return Err(malformed("a lone surrogate in a \\u escape"));
                                }
                                0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                            } else {
                                hi
                            };
                            char::from_u32(code)
                                .ok_or_else(|| malformed("a lone surrogate in a \\u escape"))?
                        }
                        _ => return Err(malformed(format!("bad escape at byte {}", self.i - 1))),
                    };
                    out.push(c);
                }
                Some(_) => {
                    return Err(malformed(format!(
                        "a control character at byte {}",
                        self.i - 1
                    )));
                }
                None => return Err(malformed("a string is not closed")),
            }
        }
    }
}
