//! Attachment bytes: base64 decoded and encoded as streams with their size and SHA-256
//! computed on the way, and the names of the files inside a ZIP, read from its central
//! directory only.

use std::io::{self, Write};

use base64::Engine;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

/// Standard alphabet; padding optional and stray trailing bits tolerated, as DMSs send.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// Base64 characters decoded per step: a multiple of 4, so that only the last step can
/// hold padding.
const STEP: usize = 64 * 1024;

/// Decodes base64 text arriving in `chunks` into `out`, skipping whitespace; returns the
/// number of bytes written. Never holds more than one step of text or bytes.
pub(crate) fn decode_base64<'c>(
    chunks: impl Iterator<Item = &'c str>,
    out: &mut dyn Write,
) -> Result<u64, String> {
    let mut decoder = Base64Decoder::new();
    for chunk in chunks {
        decoder.push(chunk.as_bytes(), out)?;
    }
    decoder.finish(out)
}

/// Why content that starts with `${` is refused: a template of a test tool (JMeter's
/// `${__StringFromFile(…)}` in the national platform's SDK samples) left where the
/// attachment's base64 should be, so the message has no attachment content to carry.
fn template_left_in_place(text: &[u8]) -> String {
    let end = text
        .iter()
        .position(|&b| b == b'}')
        .map_or(text.len(), |e| e + 1)
        .min(120);
    format!(
        "ContentTransferEncoded is not base64: it holds the template {:?} where the attachment's base64 content \
         should be: the software or test plan that wrote the message did not fill it in; put \
         the attachment's bytes there, base64-encoded",
        String::from_utf8_lossy(&text[..end])
    )
}

/// Base64 text decoded as it arrives, in pieces of any size: whitespace skipped, at most
/// one step of text and of bytes held.
pub(crate) struct Base64Decoder {
    text: Vec<u8>,
    bytes: Vec<u8>,
    written: u64,
    /// Characters of encoded text seen, whitespace included (for error messages).
    offset: usize,
    padding: bool,
}

impl Base64Decoder {
    pub(crate) fn new() -> Self {
        Base64Decoder {
            text: Vec::with_capacity(STEP),
            bytes: vec![0; STEP / 4 * 3 + 3],
            written: 0,
            offset: 0,
            padding: false,
        }
    }

    /// Decodes the next piece of text into `out`.
    pub(crate) fn push(&mut self, piece: &[u8], out: &mut dyn Write) -> Result<(), String> {
        for (i, &c) in piece.iter().enumerate() {
            self.offset += 1;
            match c {
                b' ' | b'\t' | b'\r' | b'\n' => continue,
                b'=' => self.padding = true,
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'+' | b'/' if !self.padding => {}
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'+' | b'/' => {
                    return Err(format!(
                        "ContentTransferEncoded is not valid base64: data after the '=' padding at character {}",
                        self.offset
                    ));
                }
                b'$' if piece[i..].starts_with(b"${") => {
                    return Err(template_left_in_place(&piece[i..]));
                }
                _ => {
                    return Err(format!(
                        "ContentTransferEncoded is not base64: unexpected character {:?} at character {} of the encoded text",
                        c as char, self.offset
                    ));
                }
            }
            self.text.push(c);
            if self.text.len() == STEP && !self.padding {
                self.flush(out)?;
            }
        }
        Ok(())
    }

    /// Decodes what is left; returns the number of bytes written altogether.
    pub(crate) fn finish(mut self, out: &mut dyn Write) -> Result<u64, String> {
        if self.text.iter().filter(|&&c| c != b'=').count() % 4 == 1 {
            return Err(
                "ContentTransferEncoded is truncated: its base64 text ends in the middle of a byte"
                    .into(),
            );
        }
        if !self.text.is_empty() {
            self.flush(out)?;
        }
        Ok(self.written)
    }

    fn flush(&mut self, out: &mut dyn Write) -> Result<(), String> {
        let n = LENIENT
            .decode_slice(&self.text[..], &mut self.bytes[..])
            .map_err(|e| format!("ContentTransferEncoded is not valid base64: {e}"))?;
        out.write_all(&self.bytes[..n])
            .map_err(|e| format!("cannot store the decoded content: {e}"))?;
        self.text.clear();
        self.written += n as u64;
        Ok(())
    }
}

/// Writes `content` as base64 (standard alphabet, padded, one line) into `out`.
pub(crate) fn encode_base64(content: &mut dyn io::Read, out: &mut dyn Write) -> io::Result<u64> {
    let mut enc =
        base64::write::EncoderWriter::new(out, &base64::engine::general_purpose::STANDARD);
    let n = io::copy(content, &mut enc)?;
    enc.finish()?;
    Ok(n)
}

/// A writer that counts and hashes what passes through it.
pub(crate) struct DigestWriter<W: Write> {
    inner: W,
    size: u64,
    digest: ring::digest::Context,
}

impl<W: Write> DigestWriter<W> {
    pub(crate) fn new(inner: W) -> Self {
        DigestWriter {
            inner,
            size: 0,
            digest: ring::digest::Context::new(&ring::digest::SHA256),
        }
    }

    /// The size, the SHA-256 and the inner writer.
    pub(crate) fn finish(self) -> (u64, [u8; 32], W) {
        let mut sha = [0; 32];
        sha.copy_from_slice(self.digest.finish().as_ref());
        (self.size, sha, self.inner)
    }
}

impl<W: Write> Write for DigestWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.digest.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A file inside a ZIP attachment, from the central directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZipEntry {
    pub name: String,
    /// Uncompressed size in bytes.
    pub size: u64,
}

/// The files a ZIP holds, read from its central directory alone (no decompression);
/// `None` when `data` is not a ZIP this reader understands.
pub fn zip_entries(data: &[u8]) -> Option<Vec<ZipEntry>> {
    const EOCD: &[u8] = b"PK\x05\x06";
    const CDH: &[u8] = b"PK\x01\x02";
    if data.len() < 22 {
        return None;
    }
    let u16_at = |b: &[u8], i: usize| -> Option<u16> {
        Some(u16::from_le_bytes(b.get(i..i + 2)?.try_into().ok()?))
    };
    let u32_at = |b: &[u8], i: usize| -> Option<u32> {
        Some(u32::from_le_bytes(b.get(i..i + 4)?.try_into().ok()?))
    };
    // The end record is within the last 22 + 65535 bytes (its comment is at most 64 KiB).
    let lowest = data.len().saturating_sub(22 + 65_535);
    let eocd = (lowest..=data.len() - 22)
        .rev()
        .find(|&i| &data[i..i + 4] == EOCD)?;
    let count = u16_at(data, eocd + 10)? as usize;
    let cd_offset = u32_at(data, eocd + 16)? as usize;
    let mut entries = Vec::with_capacity(count.min(4096));
    let mut at = cd_offset;
    for _ in 0..count {
        if data.get(at..at + 4)? != CDH {
            return None;
        }
        let size = u32_at(data, at + 24)? as u64;
        let name_len = u16_at(data, at + 28)? as usize;
        let extra_len = u16_at(data, at + 30)? as usize;
        let comment_len = u16_at(data, at + 32)? as usize;
        let name = data.get(at + 46..at + 46 + name_len)?;
        entries.push(ZipEntry {
            name: String::from_utf8_lossy(name).into_owned(),
            size,
        });
        at += 46 + name_len + extra_len + comment_len;
    }
    Some(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_across_chunks_with_whitespace_and_missing_padding() {
        let mut out = Vec::new();
        let n = decode_base64(["aGVs", "bG8g\r\n d29y", "bGQ"].into_iter(), &mut out).unwrap();
        assert_eq!(out, b"hello world");
        assert_eq!(n, 11);
    }

    #[test]
    fn decodes_more_than_one_step() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let text = base64::engine::general_purpose::STANDARD.encode(&data);
        let mut out = Vec::new();
        decode_base64(
            text.as_bytes()
                .chunks(1000)
                .map(|c| std::str::from_utf8(c).unwrap()),
            &mut out,
        )
        .unwrap();
        assert_eq!(out, data);
    }

    #[test]
    fn rejects_a_template_left_in_place_of_the_content_saying_so() {
        let err = decode_base64(
            ["  ${__StringFromFile(test.txt,,,)}  "].into_iter(),
            &mut Vec::new(),
        )
        .unwrap_err();
        assert!(
            err.starts_with(
                "ContentTransferEncoded is not base64: it holds the template \"${__StringFromFile(test.txt,,,)}\" \
                 where the attachment's base64 content should be"
            ),
            "{err}"
        );
    }

    #[test]
    fn rejects_non_base64_with_the_character() {
        let err = decode_base64(["aGVs$bG8="].into_iter(), &mut Vec::new()).unwrap_err();
        assert!(
            err.contains("unexpected character '$' at character 5"),
            "{err}"
        );
        let err = decode_base64(["aGVsbA=x"].into_iter(), &mut Vec::new()).unwrap_err();
        assert!(err.contains("after the '=' padding"), "{err}");
    }
}
