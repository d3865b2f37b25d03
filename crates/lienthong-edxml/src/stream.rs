//! Reading a message from a stream (a file) rather than from memory, with the attachments'
//! contents decoded as they pass: the base64 text of each `AttachmentEncoded/Attachment/
//! ContentTransferEncoded` goes straight from the input, in pieces, through the decoder
//! and SHA-256 into a spool the caller makes (a temporary file), and never into the tree.
//! Memory holds the message without its attachments, plus a few buffers of [`BUFFER`]
//! bytes, whatever the size of the file.
//!
//! The tree is the one [`crate::dom`] builds, with the same limits, leniency and errors at
//! the same lines and columns: stray bytes before the markup are skipped the same way,
//! and the input is checked to be UTF-8 as it is read.

use std::collections::HashMap;
use std::io::{self, BufRead, Read, Write};

use quick_xml::events::Event;
use quick_xml::reader::Reader;

use crate::attachment::{Base64Decoder, DigestWriter};
use crate::dom::{self, Builder, Element, LineCounter};
use crate::error::ParseError;
use crate::limits::Limits;

/// Bytes read from the input at a time.
pub(crate) const BUFFER: usize = 64 * 1024;
/// Bytes of the event being read kept to give an error's exact column (beyond, the
/// error gets the position where the event started).
const EVENT_KEPT: usize = 1024 * 1024;

/// The decoded content of one attachment: the spool with its size and SHA-256, or why it
/// could not be decoded or stored.
pub(crate) type Spooled<S> = Result<(S, u64, [u8; 32]), String>;

/// What [`read`] gives: the tree, and the spooled contents by the line and column of
/// their `ContentTransferEncoded` element.
pub(crate) struct StreamedTree<S> {
    pub root: Element<'static>,
    pub contents: HashMap<(u32, u32), Spooled<S>>,
}

/// Reads a message from `input` within `limits`, spooling attachment contents into
/// writers `spool` makes.
pub(crate) fn read<R: Read, S: Write>(
    input: R,
    limits: Limits,
    spool: &mut dyn FnMut() -> io::Result<S>,
) -> Result<StreamedTree<S>, ParseError> {
    let mut counted = Counted::new(input);
    counted.skip_to_markup().map_err(|e| counted.error(e))?;
    let empty = match counted.fill_buf() {
        Ok(available) => available.is_empty(),
        Err(e) => return Err(counted.error(e)),
    };
    if empty {
        let (line, column) = counted.counter.position();
        return Err(ParseError::new(
            line,
            column,
            "the input holds no XML: an edXML message starts with <?xml or <edXML",
        ));
    }
    // quick-xml counts from where the markup starts.
    let skipped = counted.counter.fed();
    let mut reader = Reader::from_reader(counted);
    reader.config_mut().check_end_names = true;
    let mut tree = Builder::new(limits);
    let mut place = Place::default();
    let mut current: Option<Content<S>> = None;
    let mut contents = HashMap::new();
    let mut buf = Vec::new();
    loop {
        if let Some(c) = current.as_mut().filter(|c| c.depth == tree.open().len()) {
            stream_text(&mut reader, c)?;
        }
        reader.get_mut().mark();
        let here = reader.get_ref().counter.position();
        buf.clear();
        let event = match reader.read_event_into(&mut buf) {
            Ok(e) => e.into_owned(),
            Err(e) => {
                let at = skipped + reader.error_position();
                return Err(reader.get_ref().error_at(at, e));
            }
        };
        // The content's own text goes to its spool, not into the tree.
        if let Some(c) = current.as_mut().filter(|c| c.depth == tree.open().len()) {
            match &event {
                Event::Text(t) => {
                    c.feed(t.as_bytes());
                    continue;
                }
                Event::CData(t) => {
                    c.feed(t.as_bytes());
                    continue;
                }
                Event::GeneralRef(r) => {
                    let text = dom::resolve_reference(r)
                        .map_err(|reason| ParseError::new(here.0, here.1, reason))?;
                    c.feed(text.as_bytes());
                    continue;
                }
                Event::End(_) => {
                    let done = current.take().expect("checked above");
                    contents.insert(done.key, done.finish());
                }
                _ => {}
            }
        }
        let started = match &event {
            Event::Start(_) => Some(false),
            Event::Empty(_) => Some(true),
            _ => None,
        };
        if tree.push(event, &mut || here)? {
            break;
        }
        if let Some(empty) = started
            && place.enter(&tree, empty)
            && !empty
        {
            let el = tree.last_started(false).expect("just started");
            current = Some(Content::new(tree.open().len(), (el.line, el.column), spool));
        }
    }
    let end = reader.get_ref().counter.position();
    let root = tree.finish(&mut || end)?;
    Ok(StreamedTree { root, contents })
}

/// Where the reader is relative to the attachments' contents, which [`crate::parse`]
/// reads from the first `ContentTransferEncoded` of each `Attachment` of the first
/// `AttachmentEncoded` of the root (every name in the edXML namespace).
#[derive(Default)]
struct Place {
    /// An `AttachmentEncoded` was met among the root's children.
    seen_encoded: bool,
    /// The `AttachmentEncoded` open (or last met) is the first one.
    in_first_encoded: bool,
    /// The `Attachment` open (or last met) has had its `ContentTransferEncoded`.
    content_seen: bool,
}

impl Place {
    /// Notes the element just started; true when it is an attachment's content.
    fn enter(&mut self, tree: &Builder<'_>, empty: bool) -> bool {
        let Some(el) = tree.last_started(empty) else {
            return false;
        };
        let open = tree.open();
        // The depth of `el`, the root being 1.
        let depth = if empty { open.len() + 1 } else { open.len() };
        match depth {
            2 if el.is_edxml("AttachmentEncoded") => {
                self.in_first_encoded = !self.seen_encoded;
                self.seen_encoded = true;
                false
            }
            3 => {
                self.content_seen = false;
                false
            }
            4 if el.is_edxml("ContentTransferEncoded")
                && self.in_first_encoded
                && open[1].is_edxml("AttachmentEncoded")
                && open[2].is_edxml("Attachment")
                && !self.content_seen =>
            {
                self.content_seen = true;
                true
            }
            _ => false,
        }
    }
}

/// One attachment's content being decoded into its spool.
struct Content<S: Write> {
    /// The depth of its `ContentTransferEncoded` element.
    depth: usize,
    /// Line and column of that element.
    key: (u32, u32),
    sink: Result<(Base64Decoder, DigestWriter<S>), String>,
}

impl<S: Write> Content<S> {
    fn new(depth: usize, key: (u32, u32), spool: &mut dyn FnMut() -> io::Result<S>) -> Self {
        let sink = spool()
            .map(|s| (Base64Decoder::new(), DigestWriter::new(s)))
            .map_err(|e| format!("cannot store it: {e}"));
        Content { depth, key, sink }
    }

    fn feed(&mut self, text: &[u8]) {
        if let Ok((decoder, out)) = &mut self.sink
            && let Err(e) = decoder.push(text, out)
        {
            self.sink = Err(e);
        }
    }

    fn finish(self) -> Spooled<S> {
        let (decoder, mut out) = self.sink?;
        decoder.finish(&mut out)?;
        out.flush().map_err(|e| format!("cannot store it: {e}"))?;
        let (size, sha256, spool) = out.finish();
        Ok((spool, size, sha256))
    }
}

/// Hands the text from here to the next markup or reference to `content`, in the pieces
/// the input arrives in.
fn stream_text<R: Read, S: Write>(
    reader: &mut Reader<Counted<R>>,
    content: &mut Content<S>,
) -> Result<(), ParseError> {
    loop {
        let mut stream = reader.stream();
        let available = match stream.fill_buf() {
            Ok(a) => a,
            Err(e) => {
                drop(stream);
                return Err(reader.get_ref().error(e));
            }
        };
        if available.is_empty() {
            // The end of the input inside the element: the reader says it is truncated.
            return Ok(());
        }
        let text = available
            .iter()
            .position(|&b| b == b'<' || b == b'&')
            .unwrap_or(available.len());
        let more = text == available.len();
        content.feed(&available[..text]);
        stream.consume(text);
        if !more {
            return Ok(());
        }
    }
}

/// The input, buffered, with the line and column of what was consumed counted as it
/// goes, and checked to be UTF-8 from where the markup starts.
struct Counted<R> {
    inner: R,
    buf: Box<[u8]>,
    /// Consumed up to here.
    pos: usize,
    /// Checked to be UTF-8 up to here (the bytes after it, up to `filled`, are the start
    /// of a character not read whole yet, or not UTF-8).
    valid: usize,
    filled: usize,
    /// Whether the bytes at `valid` are not UTF-8.
    invalid: bool,
    /// Whether bytes are checked (not while the stray bytes before the markup are
    /// skipped).
    checking: bool,
    counter: LineCounter,
    /// The counter where the event being read started, and the bytes consumed since
    /// (up to [`EVENT_KEPT`]).
    mark: LineCounter,
    since_mark: Vec<u8>,
}

impl<R: Read> Counted<R> {
    fn new(inner: R) -> Self {
        Counted {
            inner,
            buf: vec![0; BUFFER].into_boxed_slice(),
            pos: 0,
            valid: 0,
            filled: 0,
            invalid: false,
            checking: false,
            counter: LineCounter::new(),
            mark: LineCounter::new(),
            since_mark: Vec::new(),
        }
    }

    /// Reads more after the bytes not consumed yet; false at the end of the input.
    fn read_more(&mut self) -> io::Result<bool> {
        if self.pos > 0 {
            self.buf.copy_within(self.pos..self.filled, 0);
            self.filled -= self.pos;
            self.valid -= self.pos;
            self.pos = 0;
        }
        loop {
            match self.inner.read(&mut self.buf[self.filled..]) {
                Ok(0) => return Ok(false),
                Ok(n) => {
                    self.filled += n;
                    self.check();
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    fn check(&mut self) {
        if !self.checking {
            self.valid = self.filled;
            return;
        }
        if self.invalid {
            return;
        }
        match std::str::from_utf8(&self.buf[self.valid..self.filled]) {
            Ok(_) => self.valid = self.filled,
            Err(e) => {
                self.valid += e.valid_up_to();
                self.invalid = e.error_len().is_some();
            }
        }
    }

    /// Skips what comes before the markup as [`dom::markup_start`] does: up to `<?xml`
    /// if it appears in the first 4 KiB, else up to the first `<`.
    fn skip_to_markup(&mut self) -> io::Result<()> {
        while self.filled < 4096 && self.read_more()? {}
        let head = &self.buf[..self.filled.min(4096)];
        let mut skip = match head.windows(5).position(|w| w == b"<?xml") {
            Some(i) => i,
            None => loop {
                if let Some(i) = self.buf[self.pos..self.filled]
                    .iter()
                    .position(|&b| b == b'<')
                {
                    break self.pos + i;
                }
                self.consume_counted(self.filled - self.pos);
                if !self.read_more()? {
                    break self.pos;
                }
            },
        };
        skip -= self.pos;
        self.consume_counted(skip);
        self.checking = true;
        self.valid = self.pos;
        self.check();
        Ok(())
    }

    fn consume_counted(&mut self, amt: usize) {
        let bytes = &self.buf[self.pos..self.pos + amt];
        self.counter.feed(bytes);
        if self.since_mark.len() < EVENT_KEPT {
            let room = EVENT_KEPT - self.since_mark.len();
            self.since_mark
                .extend_from_slice(&bytes[..bytes.len().min(room)]);
        }
        self.pos += amt;
    }

    /// Notes that an event starts here.
    fn mark(&mut self) {
        self.mark = self.counter;
        self.since_mark.clear();
    }

    /// The error for a failed read: the input is not UTF-8 at the current position, or
    /// could not be read.
    fn error(&self, e: io::Error) -> ParseError {
        let (line, column) = self.counter.position();
        if self.invalid && self.pos == self.valid {
            ParseError::new(
                line,
                column,
                "the message is not valid UTF-8 (edXML must be UTF-8 encoded)",
            )
        } else {
            ParseError::new(line, column, format!("cannot read the message: {e}"))
        }
    }

    /// The error quick-xml reported at byte `at` of the input.
    fn error_at(&self, at: u64, e: quick_xml::Error) -> ParseError {
        if let quick_xml::Error::Io(io) = &e {
            return self.error(io::Error::new(io.kind(), io.to_string()));
        }
        let mut counter = self.mark;
        let into_event = at.saturating_sub(self.mark.fed()) as usize;
        counter.feed(&self.since_mark[..into_event.min(self.since_mark.len())]);
        let (line, column) = counter.position();
        ParseError::new(line, column, format!("malformed XML: {e}"))
    }
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let available = self.fill_buf()?;
        let n = available.len().min(out.len());
        out[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl<R: Read> BufRead for Counted<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        while self.pos == self.valid {
            if self.invalid {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "the message is not valid UTF-8",
                ));
            }
            if !self.read_more()? {
                if self.valid < self.filled {
                    // The input ends in the middle of a character.
                    self.invalid = true;
                    continue;
                }
                break;
            }
        }
        Ok(&self.buf[self.pos..self.valid])
    }

    fn consume(&mut self, amt: usize) {
        self.consume_counted(amt.min(self.valid - self.pos));
    }
}
