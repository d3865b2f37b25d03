//! `hash-file`, the signed digest of a sendEdoc body, and the body's framing.
//!
//! Wire facts (reference §2.1): the body is the file's bytes followed by one `\r\n` (the
//! SDK's "multipart" writer writes no framing at all), and `hash-file` is the SHA-256 of
//! the file (without that CRLF) with each byte written by Java's
//! `Integer.toHexString(0xff & b)`: lowercase and **without zero padding**, so 60–64
//! characters.

use ring::digest;

/// `hash-file` of a SHA-256 digest: per-byte lowercase hex without zero padding.
pub fn hash_file_hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:x}")).collect()
}

/// `hash-file` of a file's bytes.
pub fn hash_file_of(bytes: &[u8]) -> String {
    hash_file_hex(digest::digest(&digest::SHA256, bytes).as_ref())
}

/// Whether a signed `hash-file` names `digest`: the SDK's unpadded form, or the usual
/// zero-padded hex (both derive from the same digest, so accepting the second costs
/// nothing and admits clients other than the SDK); letter case is ignored.
pub fn hash_file_matches(signed: &str, digest: &[u8]) -> bool {
    let signed = signed.trim();
    signed.eq_ignore_ascii_case(&hash_file_hex(digest))
        || signed.eq_ignore_ascii_case(&hex::encode(digest))
}

/// The file inside a sendEdoc body: the body without exactly one trailing CRLF (a body
/// without one is returned whole).
pub fn strip_body_crlf(body: &[u8]) -> &[u8] {
    body.strip_suffix(b"\r\n").unwrap_or(body)
}

/// SHA-256 of a sendEdoc body read in chunks, computed both over the body without its
/// trailing CRLF (what the SDK signs) and over the whole body, so that the caller can
/// store the bytes as they arrive and still decide at the end which of the two the
/// signed `hash-file` names.
///
/// [`EdocHasher::update`] returns the part of each chunk that is certainly file content:
/// everything but the last two bytes seen so far, which are held back until the end.
#[derive(Clone)]
pub struct EdocHasher {
    ctx: digest::Context,
    /// The last (at most two) bytes received, not yet hashed.
    held: Vec<u8>,
    /// Bytes hashed into `ctx`.
    len: u64,
}

impl Default for EdocHasher {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for EdocHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EdocHasher")
            .field("len", &self.len)
            .finish()
    }
}

/// Which reading of the body its signed `hash-file` named.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyFraming {
    /// The SDK's: the file is the body without its trailing CRLF.
    TrailingCrlf,
    /// The file is the whole body (a client that adds no CRLF).
    Bare,
}

/// The result of [`EdocHasher::finish`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EdocDigest {
    pub framing: BodyFraming,
    /// The file's SHA-256.
    pub sha256: [u8; 32],
    /// The file's length.
    pub len: u64,
    /// Bytes of the body that were held back and belong to the file (empty for
    /// [`BodyFraming::TrailingCrlf`]): the caller appends them to what it stored.
    pub tail: Vec<u8>,
}

impl EdocHasher {
    pub fn new() -> Self {
        EdocHasher {
            ctx: digest::Context::new(&digest::SHA256),
            held: Vec::with_capacity(4),
            len: 0,
        }
    }

    /// Feeds a chunk of the body; returns the bytes that are file content for certain.
    pub fn update(&mut self, chunk: &[u8]) -> Vec<u8> {
        let mut ready = std::mem::take(&mut self.held);
        ready.extend_from_slice(chunk);
        let ready_len = ready.len() - ready.len().min(2);
        self.held = ready.split_off(ready_len);
        self.ctx.update(&ready);
        self.len += ready.len() as u64;
        ready
    }

    /// Bytes of the body seen so far.
    pub fn body_len(&self) -> u64 {
        self.len + self.held.len() as u64
    }

    /// Decides which reading the signed `hash-file` names, or `Err` with the digest of the
    /// SDK's reading (for the error message) when neither matches.
    pub fn finish(self, signed_hash_file: &str) -> Result<EdocDigest, [u8; 32]> {
        let to_array = |d: digest::Digest| -> [u8; 32] {
            let mut out = [0u8; 32];
            out.copy_from_slice(d.as_ref());
            out
        };
        let stripped_ok = self.held == b"\r\n";
        let mut whole = self.ctx.clone();
        whole.update(&self.held);
        let stripped = to_array(self.ctx.finish());
        if stripped_ok && hash_file_matches(signed_hash_file, &stripped) {
            return Ok(EdocDigest {
                framing: BodyFraming::TrailingCrlf,
                sha256: stripped,
                len: self.len,
                tail: Vec::new(),
            });
        }
        let whole = to_array(whole.finish());
        if hash_file_matches(signed_hash_file, &whole) {
            return Ok(EdocDigest {
                framing: BodyFraming::Bare,
                sha256: whole,
                len: self.len + self.held.len() as u64,
                tail: self.held,
            });
        }
        Err(if stripped_ok { stripped } else { whole })
    }
}
