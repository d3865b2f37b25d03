//! [`ReaderBody`]: an HTTP body read from an `AsyncRead` a buffer at a time, with fixed
//! bytes before and after, raw or base64-encoded on the way. It carries getEdoc and
//! downloadEdoc answers out of the gateway and sendEdoc files out of the client, so that
//! neither holds a message in memory.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use tokio::io::{AsyncRead, ReadBuf};

use crate::get_edoc::Base64Chunker;

/// Bytes read per poll: 48 KiB, a multiple of 3 so that base64 chunks need no carry.
const READ_BUF: usize = 48 * 1024;

/// A boxed reader of a message's bytes.
pub type EdocReader = Pin<Box<dyn AsyncRead + Send>>;

/// A body made of `head`, the reader's bytes (raw or as base64) and `tail`.
///
/// When the reader's length is given, a reader that ends early or runs long fails the
/// body with an I/O error, which breaks the connection: the peer sees a truncated
/// transfer, never a complete-looking wrong one.
pub struct ReaderBody {
    head: Option<Bytes>,
    reader: Option<EdocReader>,
    base64: Option<Base64Chunker>,
    tail: Option<Bytes>,
    expected_len: Option<u64>,
    read: u64,
    buf: Vec<u8>,
}

impl std::fmt::Debug for ReaderBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReaderBody")
            .field("expected_len", &self.expected_len)
            .field("read", &self.read)
            .field("base64", &self.base64.is_some())
            .finish()
    }
}

impl ReaderBody {
    /// `head`, the reader's bytes as they are, `tail`.
    pub fn raw(
        head: impl Into<Bytes>,
        reader: EdocReader,
        len: Option<u64>,
        tail: impl Into<Bytes>,
    ) -> Self {
        Self::new(head.into(), reader, len, tail.into(), None)
    }

    /// `head`, the base64 of the reader's bytes (standard alphabet, padded, one line),
    /// `tail`.
    pub fn base64(
        head: impl Into<Bytes>,
        reader: EdocReader,
        len: Option<u64>,
        tail: impl Into<Bytes>,
    ) -> Self {
        Self::new(
            head.into(),
            reader,
            len,
            tail.into(),
            Some(Base64Chunker::default()),
        )
    }

    fn new(
        head: Bytes,
        reader: EdocReader,
        len: Option<u64>,
        tail: Bytes,
        base64: Option<Base64Chunker>,
    ) -> Self {
        ReaderBody {
            head: (!head.is_empty()).then_some(head),
            reader: Some(reader),
            base64,
            tail: (!tail.is_empty()).then_some(tail),
            expected_len: len,
            read: 0,
            buf: vec![0; READ_BUF],
        }
    }

    fn encoded_len(&self, n: u64) -> u64 {
        if self.base64.is_some() {
            n.div_ceil(3) * 4
        } else {
            n
        }
    }
}

fn io_error(kind: std::io::ErrorKind, msg: String) -> std::io::Error {
    std::io::Error::new(kind, msg)
}

impl http_body::Body for ReaderBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let this = &mut *self;
        if let Some(head) = this.head.take() {
            return Poll::Ready(Some(Ok(Frame::data(head))));
        }
        while let Some(reader) = this.reader.as_mut() {
            let mut rb = ReadBuf::new(&mut this.buf);
            ready!(reader.as_mut().poll_read(cx, &mut rb))?;
            let n = rb.filled().len();
            if n == 0 {
                this.reader = None;
                if let Some(expected) = this.expected_len
                    && expected != this.read
                {
                    return Poll::Ready(Some(Err(io_error(
                        std::io::ErrorKind::UnexpectedEof,
                        format!(
                            "the message ended after {} of its {expected} bytes",
                            this.read
                        ),
                    ))));
                }
                if let Some(chunker) = this.base64.take() {
                    let rest = chunker.finish();
                    if !rest.is_empty() {
                        return Poll::Ready(Some(Ok(Frame::data(Bytes::from(rest)))));
                    }
                }
                break;
            }
            this.read += n as u64;
            if let Some(expected) = this.expected_len
                && this.read > expected
            {
                return Poll::Ready(Some(Err(io_error(
                    std::io::ErrorKind::InvalidData,
                    format!("the message is longer than its {expected} bytes"),
                ))));
            }
            let chunk = match this.base64.as_mut() {
                Some(chunker) => Bytes::from(chunker.encode(&this.buf[..n])),
                None => Bytes::copy_from_slice(&this.buf[..n]),
            };
            if !chunk.is_empty() {
                return Poll::Ready(Some(Ok(Frame::data(chunk))));
            }
        }
        Poll::Ready(this.tail.take().map(|t| Ok(Frame::data(t))))
    }

    fn is_end_stream(&self) -> bool {
        self.head.is_none() && self.reader.is_none() && self.tail.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        let fixed = |b: &Option<Bytes>| b.as_ref().map_or(0, |b| b.len() as u64);
        match (self.expected_len, self.read) {
            // Exact only before reading starts (hyper asks once, for Content-Length).
            (Some(len), 0) if self.reader.is_some() => {
                SizeHint::with_exact(fixed(&self.head) + self.encoded_len(len) + fixed(&self.tail))
            }
            _ => SizeHint::default(),
        }
    }
}
