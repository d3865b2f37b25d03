//! The write-ahead log: how a group of writes becomes durable with one `fdatasync`, and how
//! an open tells a write torn by a crash from damage to what was acknowledged.
//!
//! The applier ([`super::writer`]) records every change of a group in one frame: the sled
//! inserts and removes, and the bodies of the messages it accepts. It appends the frame to
//! the current segment under `wal/`, syncs it, and only then applies the same changes to
//! sled, one by one in the order they were staged, and answers the writers. sled itself is
//! flushed only now and then, in the background ([`super::checkpoint`]); when the store
//! opens, the frames after the last checkpoint are applied again. Changes are blind (set a
//! key, remove a key), so a frame applied twice, or over a sled that already holds some of
//! what followed it, ends in the same state.
//!
//! The frame, not sled, makes a group atomic across a crash, so no sled batch is used: a
//! sled 0.34 batch rolls sled's log buffer twice (two writes, each with its own
//! `sync_file_range`) and from then on puts every read of the process behind one global
//! lock. A reader may see a group half applied; the applier stages changes in an order
//! where that is harmless (a message record before the queue entries that name it).
//!
//! Message bodies (receipt and encoded message) stay in the log for good, and the sled
//! record holds a [`BodyRef`] to them: sled clones a leaf on every insert and rewrites whole
//! leaves when it consolidates a page, so kilobyte values would cost it many times their
//! size. Nothing is ever deleted: message records are kept for ever (deduplication), and so
//! are their bodies. The log keeps every other change too (queue entries, events), so it
//! grows with the writes, not only with the messages; compacting it (copying live bodies
//! out, dropping old segments) is left for later.
//!
//! # Files
//! - `NNNNNNNN.log`, the segments: a header (`LTs2`, the log's salt, the segment's number,
//!   CRC-32), then frames. The appender moves to the next segment after the frame that
//!   takes it past [`SEGMENT_BYTES`].
//! - A frame: a 32-byte header — `LTf2`, the salt (u64), the frame's number (u64, one more
//!   than the frame before it, across segments), the payload's length and CRC-32, and the
//!   CRC-32 of these 28 bytes — then the payload: entries, each a tag and length-prefixed
//!   parts: `1 key value` (insert), `2 key` (remove), `3 body` (read through a [`BodyRef`],
//!   never applied). The magic and the salt are the frame's sync marker: after damage, a
//!   scanner finds the next frame by looking for them, and the header's own checksum and
//!   the payload's tell a real frame from bytes that merely look like one. The salt is
//!   random per log, so a frame embedded in a document's bytes (which the log holds) can
//!   never pass for one of the log's own.
//! - `synced`: where the last synced frame ends (and the next frame's number), rewritten
//!   after every group's `fdatasync`, never synced by itself (see below).
//! - `holes`: byte ranges that `lienthong store repair` recorded as lost; replay skips them.
//!
//! # Torn or damaged
//! Group commit writes a frame, syncs it, and only then writes the next, so every frame
//! but the newest was synced before anything followed it, and a frame was acknowledged
//! only after its sync. A crash can therefore leave only one incomplete frame, at the very
//! end of the newest segment, and only one that was never synced. Opening the store cuts
//! such a *torn tail*, and refuses with [`Error::DamagedLog`] to open over anything else
//! that is not a valid frame: damage followed by a valid frame, damage in a segment that is
//! not the newest, a frame numbered out of turn, or damage before the synced end.
//!
//! The synced end is the position in `synced` (or the last checkpoint, whichever is
//! later). The file is rewritten after each sync with a plain `pwrite`, without a sync of
//! its own, so a group still costs exactly one `fdatasync`. That is enough: after a
//! process crash (SIGKILL, panic, OOM) the page cache keeps the file, so the mark names
//! every acknowledged frame and a shortened or damaged one is refused, not cut. After a
//! power loss the mark may lag, but it is written only after the sync it records, so it
//! never claims a frame that was not synced: a frame after it that is torn was not
//! acknowledged, and one that was synced survived the power loss intact. (What stays
//! possible is a frame that was synced and then damaged *and* lies after a lagging mark
//! after a power loss: two faults at once.) Opening syncs the log and rewrites the mark, so
//! a lag never outlives one open.
//!
//! Damage before the last checkpoint is not read by an open (sled already holds those
//! changes); a body read there fails its checksum ([`Error::Corrupt`]), and
//! `lienthong store repair --dry-run` reads the whole log.

pub(crate) mod scan;

use std::collections::{BTreeSet, HashMap};
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

pub(crate) use scan::{Segment, Step};

use super::private;
use crate::{Error, Result};

/// A segment takes frames until it holds this many bytes.
const SEGMENT_BYTES: u64 = 256 * 1024 * 1024;
/// Capacity of the staging buffer kept from one group to the next.
const KEPT_CAPACITY: usize = 8 * 1024 * 1024;
/// A group stops taking writes once its frame holds this many bytes (one write may go
/// past it; a frame's length field bounds it at 4 GiB).
pub(crate) const GROUP_BYTES: usize = 64 * 1024 * 1024;

/// First bytes of a segment.
const SEGMENT_MAGIC: [u8; 4] = *b"LTs2";
/// First bytes of a segment of an older lienthong (frames without salt or number).
const OLD_FRAME_MAGIC: [u8; 4] = *b"LTw1";
/// Bytes of a segment before its first frame.
pub(crate) const SEGMENT_HEADER: u64 = 24;
/// First bytes of every frame.
const FRAME_MAGIC: [u8; 4] = *b"LTf2";
pub(crate) const FRAME_HEADER: usize = 32;
const MARK_MAGIC: [u8; 4] = *b"LTm2";
const MARK_LEN: usize = 4 + LogEnd::ENCODED_LEN + 4;
pub(crate) const MARK_FILE: &str = "synced";
pub(crate) const HOLES_FILE: &str = "holes";

const INSERT: u8 = 1;
const REMOVE: u8 = 2;
const BODY: u8 = 3;

/// A place in the log: the end of a frame, or where replay starts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct LogPos {
    pub segment: u32,
    pub offset: u64,
}

/// Where the log ends: after its last frame, and the number the next frame takes. What a
/// checkpoint and the synced mark record.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct LogEnd {
    pub pos: LogPos,
    pub next_seq: u64,
}

impl LogEnd {
    pub(crate) const ENCODED_LEN: usize = 20;

    pub(crate) fn encode(&self) -> [u8; Self::ENCODED_LEN] {
        let mut b = [0; Self::ENCODED_LEN];
        b[..4].copy_from_slice(&self.pos.segment.to_be_bytes());
        b[4..12].copy_from_slice(&self.pos.offset.to_be_bytes());
        b[12..].copy_from_slice(&self.next_seq.to_be_bytes());
        b
    }

    pub(crate) fn decode(b: &[u8]) -> Result<LogEnd> {
        if b.len() == 12 {
            // A position without a frame number: written by a lienthong before frames were
            // numbered, whose log this one cannot read.
            return Err(older_log());
        }
        let b: &[u8; Self::ENCODED_LEN] = b
            .try_into()
            .map_err(|_| Error::Corrupt(format!("log position of {} bytes", b.len())))?;
        Ok(LogEnd {
            pos: LogPos {
                segment: u32::from_be_bytes(b[..4].try_into().expect("4 bytes")),
                offset: u64::from_be_bytes(b[4..12].try_into().expect("8 bytes")),
            },
            next_seq: u64::from_be_bytes(b[12..].try_into().expect("8 bytes")),
        })
    }
}

fn older_log() -> Error {
    Error::Corrupt(
        "the write-ahead log was written by an older lienthong, in a format this one does not \
         read; drain the node's queues with that version, or start this node on a new data \
         directory"
            .into(),
    )
}

/// Where a body is: segment, offset, length, and the CRC-32 of its bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BodyRef {
    pub segment: u32,
    pub offset: u64,
    pub len: u32,
    pub crc: u32,
}

impl BodyRef {
    pub(crate) const ENCODED_LEN: usize = 20;

    pub(crate) fn encode_into(&self, buf: &mut Vec<u8>) {
        buf.extend_from_slice(&self.segment.to_be_bytes());
        buf.extend_from_slice(&self.offset.to_be_bytes());
        buf.extend_from_slice(&self.len.to_be_bytes());
        buf.extend_from_slice(&self.crc.to_be_bytes());
    }

    pub(crate) fn decode(b: &[u8]) -> Result<BodyRef> {
        let b: &[u8; Self::ENCODED_LEN] = b.try_into().map_err(|_| {
            Error::Corrupt(format!(
                "body reference of {} bytes, expected {}",
                b.len(),
                Self::ENCODED_LEN
            ))
        })?;
        let u32_at = |i: usize| u32::from_be_bytes(b[i..i + 4].try_into().expect("4 bytes"));
        Ok(BodyRef {
            segment: u32_at(0),
            offset: u64::from_be_bytes(b[4..12].try_into().expect("8 bytes")),
            len: u32_at(12),
            crc: u32_at(16),
        })
    }
}

/// A frame's header (see the module doc for its bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FrameHeader {
    /// The log's salt: a header with another one is not a frame of this log.
    pub salt: u64,
    pub seq: u64,
    pub len: u32,
    pub crc: u32,
}

impl FrameHeader {
    fn encode(&self) -> [u8; FRAME_HEADER] {
        let mut b = [0; FRAME_HEADER];
        b[..4].copy_from_slice(&FRAME_MAGIC);
        b[4..12].copy_from_slice(&self.salt.to_be_bytes());
        b[12..20].copy_from_slice(&self.seq.to_be_bytes());
        b[20..24].copy_from_slice(&self.len.to_be_bytes());
        b[24..28].copy_from_slice(&self.crc.to_be_bytes());
        let own = crc32fast::hash(&b[..28]);
        b[28..].copy_from_slice(&own.to_be_bytes());
        b
    }

    /// The header `b` starts with, if it is one (magic and its own checksum), whatever
    /// its salt.
    pub(crate) fn decode(b: &[u8]) -> Option<FrameHeader> {
        let b = b.get(..FRAME_HEADER)?;
        let u32_at = |i: usize| u32::from_be_bytes(b[i..i + 4].try_into().expect("4 bytes"));
        let u64_at = |i: usize| u64::from_be_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        if b[..4] != FRAME_MAGIC || crc32fast::hash(&b[..28]) != u32_at(28) {
            return None;
        }
        Some(FrameHeader {
            salt: u64_at(4),
            seq: u64_at(12),
            len: u32_at(20),
            crc: u32_at(24),
        })
    }

    /// Where the frame ends if it starts at `at`.
    pub(crate) fn end(&self, at: u64) -> u64 {
        at + FRAME_HEADER as u64 + u64::from(self.len)
    }
}

/// The sync marker of the log with `salt`: what every frame starts with.
fn sync_marker(salt: u64) -> [u8; 12] {
    let mut m = [0; 12];
    m[..4].copy_from_slice(&FRAME_MAGIC);
    m[4..].copy_from_slice(&salt.to_be_bytes());
    m
}

pub(crate) fn segment_header(salt: u64, segment: u32) -> [u8; SEGMENT_HEADER as usize] {
    let mut b = [0; SEGMENT_HEADER as usize];
    b[..4].copy_from_slice(&SEGMENT_MAGIC);
    b[4..12].copy_from_slice(&salt.to_be_bytes());
    b[12..16].copy_from_slice(&segment.to_be_bytes());
    // b[16..20]: reserved, zero.
    let crc = crc32fast::hash(&b[..20]);
    b[20..].copy_from_slice(&crc.to_be_bytes());
    b
}

/// The salt and number a segment header holds, if `b` is one.
fn decode_segment_header(b: &[u8]) -> Option<(u64, u32)> {
    let b = b.get(..SEGMENT_HEADER as usize)?;
    if b[..4] != SEGMENT_MAGIC
        || crc32fast::hash(&b[..20]) != u32::from_be_bytes(b[20..24].try_into().expect("4"))
    {
        return None;
    }
    Some((
        u64::from_be_bytes(b[4..12].try_into().expect("8 bytes")),
        u32::from_be_bytes(b[12..16].try_into().expect("4 bytes")),
    ))
}

fn encode_mark(end: LogEnd) -> [u8; MARK_LEN] {
    let mut b = [0; MARK_LEN];
    b[..4].copy_from_slice(&MARK_MAGIC);
    b[4..4 + LogEnd::ENCODED_LEN].copy_from_slice(&end.encode());
    let crc = crc32fast::hash(&b[..MARK_LEN - 4]);
    b[MARK_LEN - 4..].copy_from_slice(&crc.to_be_bytes());
    b
}

/// The synced mark in `dir`: `Ok(None)` if there is none, `Err` with what is wrong if it
/// cannot be read.
pub(crate) fn read_mark(dir: &Path) -> io::Result<std::result::Result<Option<LogEnd>, String>> {
    let b = match fs::read(dir.join(MARK_FILE)) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Ok(None)),
        Err(e) => return Err(e),
    };
    let crc_ok = b.len() == MARK_LEN
        && b[..4] == MARK_MAGIC
        && crc32fast::hash(&b[..MARK_LEN - 4])
            == u32::from_be_bytes(b[MARK_LEN - 4..].try_into().expect("4 bytes"));
    if !crc_ok {
        return Ok(Err(format!(
            "its mark of what was synced ({}) is damaged",
            dir.join(MARK_FILE).display()
        )));
    }
    Ok(Ok(Some(
        LogEnd::decode(&b[4..4 + LogEnd::ENCODED_LEN]).expect("20 bytes"),
    )))
}

/// Opens (creating it if needed) the synced mark of the log in `dir`.
fn open_mark(dir: &Path) -> io::Result<File> {
    private::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(dir.join(MARK_FILE))
}

/// Writes `end` into the mark and syncs it (when a log is opened or repaired).
pub(crate) fn write_mark_synced(dir: &Path, end: LogEnd) -> io::Result<()> {
    let mark = open_mark(dir)?;
    mark.write_all_at(&encode_mark(end), 0)?;
    mark.set_len(MARK_LEN as u64)?;
    mark.sync_all()?;
    sync_dir(dir)
}

/// A byte range of a segment that `lienthong store repair` found damaged and recorded as
/// lost; `end` may be the start, for frames lost at the end of a segment with their bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Hole {
    pub segment: u32,
    pub start: u64,
    pub end: u64,
}

impl Hole {
    fn line_body(&self) -> String {
        format!("{} {} {}", self.segment, self.start, self.end)
    }
}

/// The holes recorded in `dir` (none if there is no list); `Err` with what is wrong if
/// the list cannot be read.
pub(crate) fn read_holes(dir: &Path) -> io::Result<std::result::Result<Vec<Hole>, String>> {
    let text = match fs::read_to_string(dir.join(HOLES_FILE)) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Ok(Vec::new())),
        Err(e) if e.kind() == io::ErrorKind::InvalidData => {
            return Ok(Err(format!("its list of repaired ranges is not text: {e}")));
        }
        Err(e) => return Err(e),
    };
    let mut holes = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let parsed = line.strip_prefix("hole ").and_then(|rest| {
            let (body, crc) = rest.rsplit_once(' ')?;
            let crc = u32::from_str_radix(crc, 16).ok()?;
            let mut numbers = body.split(' ');
            let hole = Hole {
                segment: numbers.next()?.parse().ok()?,
                start: numbers.next()?.parse().ok()?,
                end: numbers.next()?.parse().ok()?,
            };
            let whole = numbers.next().is_none() && hole.start <= hole.end;
            (whole && crc32fast::hash(body.as_bytes()) == crc && hole.line_body() == body)
                .then_some(hole)
        });
        match parsed {
            Some(h) => holes.push(h),
            None => {
                return Ok(Err(format!(
                    "line {} of its list of repaired ranges ({}) is damaged",
                    n + 1,
                    dir.join(HOLES_FILE).display()
                )));
            }
        }
    }
    holes.sort();
    Ok(Ok(holes))
}

/// Replaces the list of holes in `dir`, durably (a new file renamed over the old one).
pub(crate) fn write_holes(dir: &Path, holes: &[Hole]) -> io::Result<()> {
    let mut text = String::from(
        "# Byte ranges of the write-ahead log lost to damage, recorded by `lienthong store \
         repair`;\n# replay skips them. One line each: hole SEGMENT START END CRC32\n",
    );
    for h in holes {
        let body = h.line_body();
        text.push_str(&format!(
            "hole {body} {:08x}\n",
            crc32fast::hash(body.as_bytes())
        ));
    }
    let tmp = dir.join(format!("{HOLES_FILE}.tmp"));
    {
        let mut f = private::options()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
    }
    fs::rename(&tmp, dir.join(HOLES_FILE))?;
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

pub(crate) fn segment_path(dir: &Path, segment: u32) -> PathBuf {
    dir.join(format!("{segment:08}.log"))
}

/// The numbers of the segments in `dir`.
pub(crate) fn list_segments(dir: &Path) -> io::Result<BTreeSet<u32>> {
    let mut segments = BTreeSet::new();
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name();
        if let Some(n) = name
            .to_str()
            .and_then(|n| n.strip_suffix(".log"))
            .filter(|n| n.len() == 8)
            .and_then(|n| n.parse::<u32>().ok())
        {
            segments.insert(n);
        }
    }
    Ok(segments)
}

/// The log's salt: from the first segment header that can be read, else from the first
/// frame header of a segment (which the store wrote there, right after the header).
/// `None` if neither can be read anywhere. A log written by an older lienthong is refused.
pub(crate) fn find_salt(dir: &Path, segments: &BTreeSet<u32>) -> Result<Option<u64>> {
    let mut from_frame = None;
    for &s in segments {
        let Some(seg) = Segment::open(dir, s)? else {
            continue;
        };
        let start = seg.read_up_to(0, SEGMENT_HEADER as usize + FRAME_HEADER)?;
        if start.starts_with(&OLD_FRAME_MAGIC) {
            return Err(older_log());
        }
        if let Some((salt, _)) = decode_segment_header(&start) {
            return Ok(Some(salt));
        }
        if from_frame.is_none() {
            from_frame = start
                .get(SEGMENT_HEADER as usize..)
                .and_then(FrameHeader::decode)
                .map(|h| h.salt);
        }
    }
    Ok(from_frame)
}

/// A new random salt for a new log.
fn new_salt() -> Result<u64> {
    use ring::rand::SecureRandom;
    let mut b = [0; 8];
    ring::rand::SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| Error::Io(io::Error::other("no randomness for the log's salt")))?;
    Ok(u64::from_be_bytes(b))
}

/// [`Error::DamagedLog`] for byte `offset` of `segment` of the log in `dir`.
pub(crate) fn damaged(dir: &Path, segment: u32, offset: u64, what: impl Into<String>) -> Error {
    Error::DamagedLog {
        segment,
        offset,
        path: segment_path(dir, segment).display().to_string(),
        what: what.into(),
        data_dir: dir.parent().unwrap_or(dir).display().to_string(),
    }
}

/// The segment files, for reading bodies; shared by the store's readers and the appender.
#[derive(Debug)]
pub(crate) struct Wal {
    dir: PathBuf,
    /// Segments opened so far; a reader opens one it has not seen yet.
    files: RwLock<HashMap<u32, Arc<File>>>,
}

impl Wal {
    /// Opens the log in `dir` (created if needed), applies to `tree` every frame from
    /// `checkpoint` on, cuts a torn tail, and returns the log with the appender that
    /// continues it, and the number of frames applied. Anything else that is not a valid
    /// frame is [`Error::DamagedLog`] (see the module doc); a log that lost a segment is
    /// [`Error::Corrupt`].
    pub(crate) fn open(
        dir: PathBuf,
        checkpoint: LogEnd,
        tree: &sled::Tree,
    ) -> Result<(Arc<Wal>, Appender, usize)> {
        if !dir.exists() {
            private::create_dir(&dir)?;
            // The log's directory must survive a crash along with what is synced into it.
            if let Some(parent) = dir.parent() {
                sync_dir(parent)?;
            }
        }
        private::create_dir(&dir)?;
        let mut segments = list_segments(&dir)?;
        let wal = Arc::new(Wal {
            dir,
            files: RwLock::new(HashMap::new()),
        });
        let dir = &wal.dir;
        let lost = |what: String| {
            Error::Corrupt(format!(
                "the store's write-ahead log in {} {what}; the sled database in the same \
                 store points into it. Restore the whole data directory together",
                dir.display()
            ))
        };
        // Refuses a log of an older lienthong before anything else is said about it.
        let salt = find_salt(dir, &segments)?;
        let mark = if segments.is_empty() {
            if checkpoint.pos != LogPos::default() {
                return Err(lost(format!("has no segment {}", checkpoint.pos.segment)));
            }
            // A new log: the mark first, so that a log with a segment always has one.
            write_mark_synced(dir, LogEnd::default())?;
            wal.create(0)?;
            segments.insert(0);
            LogEnd::default()
        } else {
            match read_mark(dir)? {
                Ok(Some(mark)) => mark,
                Ok(None) => {
                    let last = *segments.last().expect("not empty");
                    return Err(damaged(
                        dir,
                        last,
                        0,
                        format!("its mark of what was synced ({MARK_FILE}) is missing"),
                    ));
                }
                Err(what) => {
                    let last = *segments.last().expect("not empty");
                    return Err(damaged(dir, last, 0, what));
                }
            }
        };
        let holes = match read_holes(dir)? {
            Ok(holes) => holes,
            Err(what) => return Err(damaged(dir, checkpoint.pos.segment, 0, what)),
        };
        // Everything up to here was synced: a torn frame can only come after it.
        let synced = mark.pos.max(checkpoint.pos);
        let last = *segments.last().expect("not empty");
        if let Some(s) =
            (checkpoint.pos.segment..=last.max(synced.segment)).find(|s| !segments.contains(s))
        {
            return Err(lost(format!("has no segment {s}")));
        }
        let salt = match salt {
            Some(salt) => salt,
            // Nothing of a log can be read: a new one whose header was torn (it is
            // rewritten below), or one damaged from its start (refused below).
            None => new_salt()?,
        };

        let mut replayed = 0;
        let mut payload = Vec::new();
        // The number the next frame must have; unknown after a hole.
        let mut expected = Some(checkpoint.next_seq);
        let mut last_seq = None;
        let mut end = checkpoint.pos;
        for s in checkpoint.pos.segment..=last {
            let seg = Segment::open(dir, s)?.ok_or_else(|| lost(format!("has no segment {s}")))?;
            let newest = s == last;
            let from = if s == checkpoint.pos.segment {
                checkpoint.pos.offset.max(SEGMENT_HEADER)
            } else {
                SEGMENT_HEADER
            };
            let holes_here = holes.iter().filter(|h| h.segment == s).copied();
            let mut scan = scan::Scanner::new(&seg, salt, holes_here, from);
            if seg.header()? != Some((salt, s)) {
                // Torn only if nothing synced could be in it: the newest segment, past the
                // synced end, with no frame of the log in it.
                let torn = newest
                    && synced
                        <= LogPos {
                            segment: s,
                            offset: 0,
                        }
                    && scan.next_frame(0)?.is_none();
                if !torn {
                    let what = match seg.header()? {
                        Some((_, n)) if n != s => format!("its header names segment {n}"),
                        Some(_) => "its header belongs to another log".to_string(),
                        None => "its header is damaged".to_string(),
                    };
                    return Err(damaged(dir, s, 0, what));
                }
                tracing::warn!(
                    segment = s,
                    bytes = seg.len,
                    "write-ahead log: rewriting a segment header that a crash cut short"
                );
                let file = wal.create(s)?;
                file.set_len(0)?;
                file.write_all_at(&segment_header(salt, s), 0)?;
                file.sync_data()?;
                end = LogPos {
                    segment: s,
                    offset: SEGMENT_HEADER,
                };
                break;
            }
            end = LogPos {
                segment: s,
                offset: from,
            };
            loop {
                match scan.next(&mut payload)? {
                    Step::Frame { at, header } => {
                        if let Some(e) = expected
                            && header.seq != e
                        {
                            return Err(damaged(
                                dir,
                                s,
                                at,
                                format!(
                                    "frame {} is where frame {e} should be: frames are missing \
                                     before it",
                                    header.seq
                                ),
                            ));
                        }
                        apply(tree, &payload)?.ok_or_else(|| {
                            damaged(
                                dir,
                                s,
                                at,
                                "a frame that passed its checksum does not parse",
                            )
                        })?;
                        replayed += 1;
                        expected = Some(header.seq + 1);
                        last_seq = Some(header.seq);
                        end.offset = header.end(at);
                    }
                    Step::Hole(h) => {
                        expected = None;
                        end.offset = end.offset.max(h.end);
                    }
                    Step::Damage(d) => {
                        let torn = newest
                            && d.resume == seg.len
                            && LogPos {
                                segment: s,
                                offset: d.at,
                            } >= synced;
                        if !torn {
                            return Err(damaged(dir, s, d.at, d.describe(&seg, newest, synced)));
                        }
                        // A frame whose write or sync did not finish, so it was never
                        // acknowledged: cut it so that nothing stale can follow a later frame.
                        tracing::warn!(
                            segment = s,
                            at = d.at,
                            bytes = seg.len - d.at,
                            "write-ahead log: cutting an incomplete frame that was never acknowledged"
                        );
                        let file = wal.create(s)?;
                        file.set_len(d.at)?;
                        file.sync_data()?;
                        end.offset = d.at;
                        break;
                    }
                    Step::End => {
                        if s == synced.segment && seg.len < synced.offset {
                            return Err(damaged(
                                dir,
                                s,
                                seg.len,
                                format!(
                                    "the segment ends there, but frames up to byte {} were \
                                     synced before: its end was cut off",
                                    synced.offset
                                ),
                            ));
                        }
                        end.offset = end.offset.max(seg.len);
                        break;
                    }
                }
            }
        }
        let end = LogEnd {
            pos: end,
            next_seq: expected
                .or(last_seq.map(|s| s + 1))
                .unwrap_or(checkpoint.next_seq),
        };
        // What is in the newest segment now is synced (a frame written but not synced
        // before a crash may have reached the disk whole, and was just replayed), and the
        // mark says so.
        let file = wal.create(end.pos.segment)?;
        file.sync_data()?;
        write_mark_synced(dir, end)?;
        let appender = Appender::new(wal.clone(), salt, file, end)?;
        Ok((wal, appender, replayed))
    }

    /// Opens (creating it if needed) segment `segment` for appending and reading.
    fn create(&self, segment: u32) -> io::Result<Arc<File>> {
        let path = segment_path(&self.dir, segment);
        let existed = path.exists();
        let file = Arc::new(
            private::options()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)?,
        );
        if !existed {
            // The new name must survive a crash along with the frames synced into it.
            sync_dir(&self.dir)?;
        }
        self.files
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(segment, file.clone());
        Ok(file)
    }

    fn file(&self, segment: u32) -> Result<Arc<File>> {
        if let Some(f) = self
            .files
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&segment)
        {
            return Ok(f.clone());
        }
        let path = segment_path(&self.dir, segment);
        let file = Arc::new(File::open(&path).map_err(|e| {
            Error::Corrupt(format!(
                "write-ahead log segment {} cannot be opened: {e}",
                path.display()
            ))
        })?);
        self.files
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(segment, file.clone());
        Ok(file)
    }

    /// The body `r` points at, checked against its CRC.
    pub(crate) fn read(&self, r: &BodyRef) -> Result<Vec<u8>> {
        let file = self.file(r.segment)?;
        let mut buf = vec![0; r.len as usize];
        file.read_exact_at(&mut buf, r.offset).map_err(|e| {
            Error::Corrupt(format!(
                "body of {} bytes at {}:{} cannot be read (the log no longer matches its \
                 record): {e}",
                r.len, r.segment, r.offset
            ))
        })?;
        if crc32fast::hash(&buf) != r.crc {
            return Err(Error::Corrupt(format!(
                "body of {} bytes at {}:{} no longer matches its checksum",
                r.len, r.segment, r.offset
            )));
        }
        Ok(buf)
    }
}

/// One change of a frame's payload.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Entry<'a> {
    Insert(&'a [u8], &'a [u8]),
    Remove(&'a [u8]),
    Body(&'a [u8]),
}

/// The entries of a payload in order; an `Err(())` where one does not parse, and nothing
/// after it.
pub(crate) struct Entries<'a>(pub &'a [u8]);

impl<'a> Iterator for Entries<'a> {
    type Item = std::result::Result<Entry<'a>, ()>;

    fn next(&mut self) -> Option<Self::Item> {
        fn part<'a>(p: &mut &'a [u8]) -> Option<&'a [u8]> {
            let len = u32::from_be_bytes(p.get(..4)?.try_into().ok()?) as usize;
            let part = p.get(4..4usize.checked_add(len)?)?;
            *p = &p[4 + len..];
            Some(part)
        }
        let (&tag, mut rest) = self.0.split_first()?;
        let entry = match tag {
            INSERT => part(&mut rest).and_then(|k| Some(Entry::Insert(k, part(&mut rest)?))),
            REMOVE => part(&mut rest).map(Entry::Remove),
            BODY => part(&mut rest).map(Entry::Body),
            _ => None,
        };
        self.0 = if entry.is_some() { rest } else { &[] };
        Some(entry.ok_or(()))
    }
}

/// Applies the changes of a frame's payload to `tree`, in order; `Ok(None)` if it does not
/// parse (the changes before the fault are applied).
fn apply(tree: &sled::Tree, payload: &[u8]) -> sled::Result<Option<()>> {
    for entry in Entries(payload) {
        match entry {
            Ok(Entry::Insert(key, value)) => {
                tree.insert(key, value)?;
            }
            Ok(Entry::Remove(key)) => {
                tree.remove(key)?;
            }
            Ok(Entry::Body(_)) => {}
            Err(()) => return Ok(None),
        }
    }
    Ok(Some(()))
}

/// Why a group did not commit; each of its writes that had succeeded fails with it.
#[derive(Debug)]
pub(crate) enum CommitError {
    Log(io::Error),
    Sled(sled::Error),
    /// An earlier failure left the log unable to take frames until the store reopens.
    Broken(String),
}

impl CommitError {
    pub(crate) fn error(&self) -> Error {
        match self {
            CommitError::Log(e) => Error::Io(io::Error::new(
                e.kind(),
                format!("writing the write-ahead log: {e}"),
            )),
            CommitError::Sled(e) => Error::Sled(e.clone()),
            CommitError::Broken(why) => Error::Io(io::Error::other(format!(
                "the store takes no more writes until the node restarts: {why}"
            ))),
        }
    }
}

/// The applier's end of the log: a group's changes are staged as they are prepared, then
/// committed in one go — the frame written and synced, then its changes applied to sled.
#[derive(Debug)]
pub(crate) struct Appender {
    wal: Arc<Wal>,
    salt: u64,
    segment: u32,
    file: Arc<File>,
    /// Bytes in the segment (its header included): where the staged frame goes, unless
    /// the segment is full.
    len: u64,
    /// Whether the segment is full, so that the staged frame starts the next one (with
    /// that segment's header, written and synced with it).
    full: bool,
    /// The number of the staged frame.
    next_seq: u64,
    /// The synced mark: rewritten after every sync, never synced itself (module doc).
    mark: File,
    /// A segment is full past this many bytes ([`SEGMENT_BYTES`]; tests lower it).
    segment_limit: u64,
    /// The frame being built: header placeholder, then entries.
    staged: Vec<u8>,
    /// Why the log takes no more frames until the store is opened again: a failed write
    /// that could not be cut off, or a frame sled did not take wholly.
    broken: Option<String>,
}

impl Appender {
    fn new(wal: Arc<Wal>, salt: u64, file: Arc<File>, end: LogEnd) -> io::Result<Self> {
        let mark = open_mark(&wal.dir)?;
        Ok(Appender {
            wal,
            salt,
            segment: end.pos.segment,
            file,
            len: end.pos.offset,
            full: end.pos.offset >= SEGMENT_BYTES,
            next_seq: end.next_seq,
            mark,
            segment_limit: SEGMENT_BYTES,
            staged: vec![0; FRAME_HEADER],
            broken: None,
        })
    }

    /// Segment and offset where the staged frame will be written. A full segment is left
    /// by the frame after the one that filled it, and bodies are staged knowing it, so
    /// that they point where their frame will be.
    fn frame_at(&self) -> (u32, u64) {
        if self.full {
            (self.segment + 1, SEGMENT_HEADER)
        } else {
            (self.segment, self.len)
        }
    }

    fn push_part(&mut self, part: &[u8]) {
        self.staged
            .extend_from_slice(&(part.len() as u32).to_be_bytes());
        self.staged.extend_from_slice(part);
    }

    pub(crate) fn insert(&mut self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) {
        let (key, value) = (key.as_ref(), value.as_ref());
        self.staged.push(INSERT);
        self.push_part(key);
        self.push_part(value);
    }

    pub(crate) fn remove(&mut self, key: impl AsRef<[u8]>) {
        let key = key.as_ref();
        self.staged.push(REMOVE);
        self.push_part(key);
    }

    /// Stages `parts` as one body (their concatenation) and says where it will be.
    pub(crate) fn body(&mut self, parts: &[&[u8]]) -> BodyRef {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        self.staged.push(BODY);
        self.staged.extend_from_slice(&(len as u32).to_be_bytes());
        let start = self.staged.len();
        for p in parts {
            self.staged.extend_from_slice(p);
        }
        let (segment, at) = self.frame_at();
        BodyRef {
            segment,
            offset: at + start as u64,
            len: len as u32,
            crc: crc32fast::hash(&self.staged[start..]),
        }
    }

    /// Bytes staged for the next frame.
    pub(crate) fn staged_bytes(&self) -> usize {
        self.staged.len()
    }

    /// Takes back what was staged after `mark` (a [`Appender::staged_bytes`]).
    pub(crate) fn unstage(&mut self, mark: usize) {
        self.staged.truncate(mark.max(FRAME_HEADER));
    }

    /// Whether nothing is staged.
    pub(crate) fn is_empty(&self) -> bool {
        self.staged.len() == FRAME_HEADER
    }

    /// Makes the staged changes durable, then applies them to `tree`; returns where the
    /// log ends after them. Staged bodies are readable once this returns `Ok`. The staged
    /// changes are gone afterwards, whatever the outcome:
    /// - a failed write or sync is cut off the file, so it is never replayed (if cutting
    ///   fails too, the log takes no more frames until the store is opened again);
    /// - after a sled error (or a failed write of the synced mark) the frame is durable
    ///   and is applied again when the store next opens, and the log takes no more frames
    ///   until then: later groups would be prepared against a sled that holds only part
    ///   of it.
    pub(crate) fn commit(&mut self, tree: &sled::Tree) -> std::result::Result<LogEnd, CommitError> {
        let committed = self.commit_staged(tree);
        // The buffer is kept for the next frame (its capacity saves reallocations), unless
        // an unusually large group grew it.
        self.staged.truncate(FRAME_HEADER);
        if self.staged.capacity() > KEPT_CAPACITY {
            self.staged.shrink_to(KEPT_CAPACITY);
        }
        committed
    }

    fn commit_staged(&mut self, tree: &sled::Tree) -> std::result::Result<LogEnd, CommitError> {
        if let Some(why) = &self.broken {
            return Err(CommitError::Broken(why.clone()));
        }
        if self.is_empty() {
            return Ok(self.position());
        }
        let frame = &mut self.staged;
        let len = u32::try_from(frame.len() - FRAME_HEADER).map_err(|_| {
            CommitError::Log(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("a group of {} bytes does not fit in one frame", frame.len()),
            ))
        })?;
        let header = FrameHeader {
            salt: self.salt,
            seq: self.next_seq,
            len,
            crc: crc32fast::hash(&frame[FRAME_HEADER..]),
        };
        frame[..FRAME_HEADER].copy_from_slice(&header.encode());
        let (segment, at) = if self.full {
            (self.segment + 1, SEGMENT_HEADER)
        } else {
            (self.segment, self.len)
        };
        // A new segment gets its header with its first frame: one sync for both.
        let (file, start) = if self.full {
            let file = self.wal.create(segment).map_err(CommitError::Log)?;
            (file, 0)
        } else {
            (self.file.clone(), at)
        };
        let written = if self.full {
            file.write_all_at(&segment_header(self.salt, segment), 0)
        } else {
            Ok(())
        }
        .and_then(|()| file.write_all_at(frame, at))
        .and_then(|()| file.sync_data());
        if let Err(e) = written {
            // Its writers hear that it failed: it must not come back in a replay.
            if let Err(cut) = file.set_len(start).and_then(|()| file.sync_data()) {
                self.broken = Some(format!(
                    "a failed write ({e}) could not be cut off the log: {cut}"
                ));
            }
            return Err(CommitError::Log(e));
        }
        self.segment = segment;
        self.file = file;
        self.len = at + frame.len() as u64;
        self.full = self.len >= self.segment_limit;
        self.next_seq += 1;
        let end = self.position();
        // The frame is synced: say so before anyone hears of it. Not synced itself: the
        // page cache keeps it across a process crash, and a power loss keeps the synced
        // frames it would vouch for (module doc).
        if let Err(e) = self.mark.write_all_at(&encode_mark(end), 0) {
            self.broken = Some(format!("the log's synced mark cannot be written: {e}"));
            return Err(CommitError::Log(e));
        }
        match apply(tree, &self.staged[FRAME_HEADER..]) {
            Ok(parsed) => {
                debug_assert!(parsed.is_some(), "a staged frame parses");
                Ok(end)
            }
            Err(e) => {
                self.broken = Some(format!("sled did not take a whole group: {e}"));
                Err(CommitError::Sled(e))
            }
        }
    }

    /// Where the log ends.
    pub(crate) fn position(&self) -> LogEnd {
        LogEnd {
            pos: LogPos {
                segment: self.segment,
                offset: self.len,
            },
            next_seq: self.next_seq,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::fs::OpenOptions;

    use super::*;

    /// A log in `dir/wal`, opened from `from` over a sled of its own in `dir/<name>` (a
    /// fresh name is a sled that lost everything).
    struct Opened {
        _db: sled::Db,
        tree: sled::Tree,
        wal: Arc<Wal>,
        app: Appender,
        replayed: usize,
    }

    fn open(dir: &Path, name: &str, from: LogEnd) -> Result<Opened> {
        let db = sled::Config::new()
            .path(dir.join(name))
            .flush_every_ms(None)
            .open()
            .unwrap();
        let tree = db.open_tree("t").unwrap();
        let (wal, app, replayed) = Wal::open(dir.join("wal"), from, &tree)?;
        Ok(Opened {
            _db: db,
            tree,
            wal,
            app,
            replayed,
        })
    }

    /// Replay from the start of the log.
    fn start() -> LogEnd {
        LogEnd::default()
    }

    fn get(tree: &sled::Tree, key: &[u8]) -> Option<Vec<u8>> {
        tree.get(key).unwrap().map(|v| v.to_vec())
    }

    fn segment(dir: &Path, n: u32) -> File {
        OpenOptions::new()
            .read(true)
            .write(true)
            .open(segment_path(&dir.join("wal"), n))
            .unwrap()
    }

    fn segment_len(dir: &Path, n: u32) -> u64 {
        fs::metadata(segment_path(&dir.join("wal"), n))
            .unwrap()
            .len()
    }

    fn flip(dir: &Path, n: u32, at: u64) {
        let f = segment(dir, n);
        let mut b = [0];
        f.read_exact_at(&mut b, at).unwrap();
        f.write_all_at(&[b[0] ^ 0x20], at).unwrap();
    }

    /// Commits one frame inserting `key`; returns where it starts and ends.
    fn commit_one(o: &mut Opened, key: &str) -> (LogPos, LogEnd) {
        let start = o.app.position().pos;
        o.app.insert(key, b"v");
        o.app.body(&[key.as_bytes(), b" body"]);
        (start, o.app.commit(&o.tree).unwrap())
    }

    fn damaged_at(r: Result<Opened>) -> (u32, u64, String) {
        match r {
            Err(Error::DamagedLog {
                segment,
                offset,
                what,
                ..
            }) => (segment, offset, what),
            Err(e) => panic!("expected a damaged log, got {e}"),
            Ok(_) => panic!("expected a damaged log, the log opened"),
        }
    }

    #[test]
    fn frames_replay_onto_a_sled_that_lost_them_and_bodies_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let (body, second) = {
            let Opened {
                tree: t,
                wal,
                mut app,
                replayed,
                ..
            } = open(dir.path(), "a", start()).unwrap();
            assert_eq!(replayed, 0);
            app.insert(b"k1", b"v1");
            let body = app.body(&[b"receipt", b"message"]);
            app.insert(b"k2", b"v2");
            let first = app.commit(&t).unwrap();
            assert_eq!(wal.read(&body).unwrap(), b"receiptmessage");
            app.remove(b"k1");
            app.insert(b"k3", b"v3");
            let second = app.commit(&t).unwrap();
            assert!(second.pos > first.pos);
            assert_eq!(second.next_seq, 2);
            assert_eq!(get(&t, b"k1"), None);
            (body, second)
        };
        // A fresh sled (as if none of it had been flushed) gets every frame back, in order.
        let b = open(dir.path(), "b", start()).unwrap();
        assert_eq!(b.replayed, 2);
        assert_eq!(b.app.position(), second);
        assert_eq!(get(&b.tree, b"k1"), None);
        assert_eq!(get(&b.tree, b"k2").as_deref(), Some(&b"v2"[..]));
        assert_eq!(get(&b.tree, b"k3").as_deref(), Some(&b"v3"[..]));
        assert_eq!(b.wal.read(&body).unwrap(), b"receiptmessage");
        drop(b);
        // From the end, nothing is replayed, and frames go on being numbered.
        let mut c = open(dir.path(), "c", second).unwrap();
        assert_eq!(c.replayed, 0);
        assert!(c.tree.is_empty());
        assert_eq!(c.app.position(), second);
        commit_one(&mut c, "k4");
        drop(c);
        assert_eq!(open(dir.path(), "d", start()).unwrap().replayed, 3);
    }

    #[test]
    fn a_torn_tail_is_cut_and_later_frames_follow_the_last_whole_one() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = open(dir.path(), "a", start()).unwrap();
        let (_, whole) = commit_one(&mut a, "whole");
        let (_, torn) = commit_one(&mut a, "torn");
        drop(a);
        // The second frame loses its last byte, as a crash during its write would leave
        // it; the crash came before its sync, so the synced mark still ends at the first.
        segment(dir.path(), 0).set_len(torn.pos.offset - 1).unwrap();
        write_mark_synced(&dir.path().join("wal"), whole).unwrap();

        let mut b = open(dir.path(), "b", start()).unwrap();
        assert_eq!(b.replayed, 1);
        assert_eq!(get(&b.tree, b"torn"), None);
        assert_eq!(b.app.position(), whole);
        assert_eq!(segment_len(dir.path(), 0), whole.pos.offset);
        commit_one(&mut b, "after");
        drop(b);
        let c = open(dir.path(), "c", start()).unwrap();
        assert_eq!(c.replayed, 2);
        assert_eq!(get(&c.tree, b"after").as_deref(), Some(&b"v"[..]));
    }

    /// The case: the last frame was synced (and acknowledged), then lost its last
    /// bytes. Cutting it would drop acknowledged writes without a word.
    #[test]
    fn refuses_a_synced_last_frame_cut_short_and_leaves_it_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = open(dir.path(), "a", start()).unwrap();
        commit_one(&mut a, "first");
        let (last_start, last) = commit_one(&mut a, "last");
        drop(a);
        segment(dir.path(), 0)
            .set_len(last.pos.offset - 20)
            .unwrap();

        let (seg, offset, what) = damaged_at(open(dir.path(), "b", start()));
        assert_eq!((seg, offset), (0, last_start.offset));
        assert!(what.contains("runs past the end"), "{what}");
        assert_eq!(segment_len(dir.path(), 0), last.pos.offset - 20);
        // Also when the checkpoint had passed it: sled points into the lost bytes.
        let (_, offset, what) = damaged_at(open(dir.path(), "c", last));
        assert_eq!(offset, last.pos.offset - 20);
        assert!(what.contains("its end was cut off"), "{what}");
    }

    #[test]
    fn refuses_a_damaged_frame_followed_by_valid_ones_and_truncates_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = open(dir.path(), "a", start()).unwrap();
        let frames: Vec<_> = (0..4)
            .map(|i| commit_one(&mut a, &format!("k{i}")))
            .collect();
        drop(a);
        let len = segment_len(dir.path(), 0);
        // One byte of the first frame's payload.
        flip(dir.path(), 0, frames[0].0.offset + FRAME_HEADER as u64 + 3);
        let (_, offset, what) = damaged_at(open(dir.path(), "b", start()));
        assert_eq!(offset, frames[0].0.offset);
        assert!(what.contains("frame 0"), "{what}");
        assert!(
            what.contains(&format!(
                "a valid frame follows at byte {}",
                frames[1].0.offset
            )),
            "{what}"
        );
        assert_eq!(segment_len(dir.path(), 0), len);
    }

    #[test]
    fn after_a_damaged_header_the_scanner_finds_the_next_frame_by_its_sync_marker() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = open(dir.path(), "a", start()).unwrap();
        let frames: Vec<_> = (0..3)
            .map(|i| commit_one(&mut a, &format!("k{i}")))
            .collect();
        let salt = a.app.salt;
        drop(a);
        // The length field of the first frame's header: its extent is unknown now.
        flip(dir.path(), 0, frames[0].0.offset + 21);
        let (_, offset, what) = damaged_at(open(dir.path(), "b", start()));
        assert_eq!(offset, frames[0].0.offset);
        assert!(what.contains("no frame header"), "{what}");

        let seg = Segment::open(&dir.path().join("wal"), 0).unwrap().unwrap();
        let mut scan = scan::Scanner::new(&seg, salt, [], SEGMENT_HEADER);
        let mut payload = Vec::new();
        let Step::Damage(d) = scan.next(&mut payload).unwrap() else {
            panic!("damage first");
        };
        assert_eq!((d.at, d.resume), (frames[0].0.offset, frames[1].0.offset));
        assert!(
            matches!(scan.next(&mut payload).unwrap(), Step::Frame { header, .. } if header.seq == 1)
        );
    }

    /// A body may hold bytes that look like a frame (a document about this log, or one
    /// crafted to): after damage, only frames with the log's own random salt are taken.
    #[test]
    fn a_frame_inside_a_body_is_not_taken_for_one_of_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = open(dir.path(), "a", start()).unwrap();
        let salt = a.app.salt;
        let crafted_payload = [INSERT, 0, 0, 0, 4, b'e', b'v', b'i', b'l', 0, 0, 0, 1, b'x'];
        let crafted = |salt| {
            let mut f = FrameHeader {
                salt,
                seq: 1,
                len: crafted_payload.len() as u32,
                crc: crc32fast::hash(&crafted_payload),
            }
            .encode()
            .to_vec();
            f.extend_from_slice(&crafted_payload);
            f
        };
        let first = a.app.position().pos;
        a.app.body(&[&crafted(salt ^ 1)]);
        a.app.commit(&a.tree).unwrap();
        let (second, _) = commit_one(&mut a, "k");
        drop(a);
        flip(dir.path(), 0, first.offset + 21);
        let seg = Segment::open(&dir.path().join("wal"), 0).unwrap().unwrap();
        let mut scan = scan::Scanner::new(&seg, salt, [], SEGMENT_HEADER);
        let Step::Damage(d) = scan.next(&mut Vec::new()).unwrap() else {
            panic!("damage first");
        };
        assert_eq!(d.resume, second.offset, "the crafted frame was skipped");
        // The same bytes with the log's salt would be found: the salt is what protects.
        let found = scan::Scanner::new(&seg, salt ^ 1, [], SEGMENT_HEADER)
            .next_frame(first.offset + 1)
            .unwrap();
        assert_eq!(
            found,
            Some(first.offset + FRAME_HEADER as u64 + 5),
            "the crafted frame is a frame of a log with that salt"
        );
    }

    #[test]
    fn a_header_that_claims_more_than_the_file_holds_is_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = open(dir.path(), "a", start()).unwrap();
        let (_, end) = commit_one(&mut a, "k");
        let salt = a.app.salt;
        drop(a);
        // A torn header after the synced end: a length of almost 4 GiB.
        let header = FrameHeader {
            salt,
            seq: 1,
            len: 0xffff_fff0,
            crc: 0,
        }
        .encode();
        segment(dir.path(), 0)
            .write_all_at(&header, end.pos.offset)
            .unwrap();
        let b = open(dir.path(), "b", start()).unwrap();
        assert_eq!((b.replayed, b.app.position()), (1, end));
        assert_eq!(get(&b.tree, b"k").as_deref(), Some(&b"v"[..]));
        assert_eq!(segment_len(dir.path(), 0), end.pos.offset);
    }

    #[test]
    fn segments_roll_over_and_replay_across_them() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = open(dir.path(), "a", start()).unwrap();
        let body_a = a.app.body(&[b"a"]);
        let first = a.app.commit(&a.tree).unwrap();
        // As if the segment were full: the next frame opens segment 1.
        a.app.segment_limit = 1;
        a.app.insert(b"k", b"v");
        a.app.commit(&a.tree).unwrap();
        a.app.segment_limit = SEGMENT_BYTES;
        let body_b = a.app.body(&[b"b"]);
        let third = a.app.commit(&a.tree).unwrap();
        assert_eq!(third.pos.segment, 1);
        assert_eq!(body_b.segment, 1);
        assert_eq!(a.wal.read(&body_a).unwrap(), b"a");
        assert_eq!(a.wal.read(&body_b).unwrap(), b"b");
        drop(a);
        // From a checkpoint in segment 0, replay goes on into segment 1.
        let b = open(dir.path(), "b", first).unwrap();
        assert_eq!(b.replayed, 2);
        assert_eq!(b.app.position(), third);
        assert_eq!(get(&b.tree, b"k").as_deref(), Some(&b"v"[..]));
        assert_eq!(b.wal.read(&body_b).unwrap(), b"b");
    }

    /// Found while rewriting the appender: a body staged in the group that follows a full
    /// segment pointed into the old segment, while its frame went to the new one.
    #[test]
    fn a_body_staged_when_the_segment_is_full_reads_back_from_the_next_one() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = open(dir.path(), "a", start()).unwrap();
        a.app.segment_limit = 1;
        commit_one(&mut a, "fills segment 0");
        let body = a.app.body(&[b"first body of segment 1"]);
        a.app.commit(&a.tree).unwrap();
        assert_eq!(body.segment, 1);
        assert_eq!(a.wal.read(&body).unwrap(), b"first body of segment 1");
    }

    #[test]
    fn refuses_an_older_segment_cut_at_a_frame_boundary() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = open(dir.path(), "a", start()).unwrap();
        let (_, kept) = commit_one(&mut a, "kept");
        a.app.segment_limit = 1;
        commit_one(&mut a, "lost with the end of segment 0");
        a.app.segment_limit = SEGMENT_BYTES;
        let (_, in_one) = commit_one(&mut a, "in segment 1");
        assert_eq!(in_one.pos.segment, 1);
        drop(a);
        // Whole frames gone from the end of segment 0: no damaged bytes, a gap in numbers.
        segment(dir.path(), 0).set_len(kept.pos.offset).unwrap();
        let (seg, offset, what) = damaged_at(open(dir.path(), "b", start()));
        assert_eq!((seg, offset), (1, SEGMENT_HEADER));
        assert!(what.contains("frames are missing"), "{what}");
    }

    #[test]
    fn a_new_segment_whose_header_was_torn_is_started_again() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = open(dir.path(), "a", start()).unwrap();
        let (_, end) = commit_one(&mut a, "k");
        drop(a);
        // A crash while segment 1 got its header and first frame, before their sync.
        fs::write(
            segment_path(&dir.path().join("wal"), 1),
            &SEGMENT_MAGIC[..3],
        )
        .unwrap();
        let mut b = open(dir.path(), "b", start()).unwrap();
        assert_eq!(b.replayed, 1);
        assert_eq!(segment_len(dir.path(), 1), SEGMENT_HEADER);
        let (at, _) = commit_one(&mut b, "next");
        assert_eq!(at.segment, 1);
        drop(b);
        let c = open(dir.path(), "c", end).unwrap();
        assert_eq!(c.replayed, 1);
        assert_eq!(get(&c.tree, b"next").as_deref(), Some(&b"v"[..]));
    }

    #[test]
    fn replay_skips_a_recorded_hole_and_applies_the_frames_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = open(dir.path(), "a", start()).unwrap();
        let frames: Vec<_> = (0..3)
            .map(|i| commit_one(&mut a, &format!("k{i}")))
            .collect();
        drop(a);
        flip(dir.path(), 0, frames[1].0.offset + 40);
        let wal_dir = dir.path().join("wal");
        let hole = Hole {
            segment: 0,
            start: frames[1].0.offset,
            end: frames[2].0.offset,
        };
        write_holes(&wal_dir, &[hole]).unwrap();
        assert_eq!(read_holes(&wal_dir).unwrap().unwrap(), vec![hole]);
        let b = open(dir.path(), "b", start()).unwrap();
        assert_eq!(b.replayed, 2);
        assert_eq!(get(&b.tree, b"k1"), None);
        assert_eq!(get(&b.tree, b"k2").as_deref(), Some(&b"v"[..]));
        drop(b);
        // A damaged list of holes is refused, not half read.
        let text = fs::read_to_string(wal_dir.join(HOLES_FILE)).unwrap();
        fs::write(wal_dir.join(HOLES_FILE), text.replace(" 0 ", " 1 ")).unwrap();
        let (_, _, what) = damaged_at(open(dir.path(), "c", start()));
        assert!(what.contains("list of repaired ranges"), "{what}");
    }

    #[test]
    fn refuses_a_log_whose_synced_mark_is_missing_or_damaged() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = open(dir.path(), "a", start()).unwrap();
        commit_one(&mut a, "k");
        drop(a);
        let mark = dir.path().join("wal").join(MARK_FILE);
        let bytes = fs::read(&mark).unwrap();
        let mut bad = bytes.clone();
        bad[7] ^= 1;
        fs::write(&mark, &bad).unwrap();
        let (_, _, what) = damaged_at(open(dir.path(), "b", start()));
        assert!(what.contains("is damaged"), "{what}");
        fs::remove_file(&mark).unwrap();
        let (_, _, what) = damaged_at(open(dir.path(), "c", start()));
        assert!(what.contains("is missing"), "{what}");
        fs::write(&mark, &bytes).unwrap();
        assert_eq!(open(dir.path(), "d", start()).unwrap().replayed, 1);
    }

    #[test]
    fn a_log_lost_behind_the_checkpoint_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = open(dir.path(), "a", start()).unwrap();
        let (_, end) = commit_one(&mut a, "k");
        drop(a);
        fs::remove_file(segment_path(&dir.path().join("wal"), 0)).unwrap();
        assert!(matches!(open(dir.path(), "b", end), Err(Error::Corrupt(_))));
    }

    #[test]
    fn a_log_of_an_older_lienthong_is_refused_clearly() {
        let dir = tempfile::tempdir().unwrap();
        let wal_dir = dir.path().join("wal");
        fs::create_dir_all(&wal_dir).unwrap();
        fs::write(segment_path(&wal_dir, 0), b"LTw1\0\0\0\0\0\0\0\x01x").unwrap();
        let err = open(dir.path(), "a", start()).err().unwrap();
        assert!(err.to_string().contains("older lienthong"), "{err}");
        // The checkpoint of such a store has no frame number.
        let err = LogEnd::decode(&[0; 12]).unwrap_err();
        assert!(err.to_string().contains("older lienthong"), "{err}");
    }

    #[test]
    fn a_damaged_or_missing_body_is_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = open(dir.path(), "a", start()).unwrap();
        let r = a.app.body(&[b"the body"]);
        a.app.commit(&a.tree).unwrap();
        segment(dir.path(), 0)
            .write_all_at(b"X", r.offset + 2)
            .unwrap();
        assert!(matches!(a.wal.read(&r), Err(Error::Corrupt(_))));
        let beyond = BodyRef { offset: 1000, ..r };
        assert!(matches!(a.wal.read(&beyond), Err(Error::Corrupt(_))));
        let elsewhere = BodyRef { segment: 7, ..r };
        assert!(matches!(a.wal.read(&elsewhere), Err(Error::Corrupt(_))));
        let mut encoded = Vec::new();
        r.encode_into(&mut encoded);
        assert_eq!(BodyRef::decode(&encoded).unwrap(), r);
        assert!(matches!(
            BodyRef::decode(&encoded[1..]),
            Err(Error::Corrupt(_))
        ));
        let end = LogEnd {
            pos: LogPos {
                segment: 2,
                offset: 99,
            },
            next_seq: 7,
        };
        assert_eq!(LogEnd::decode(&end.encode()).unwrap(), end);
    }

    #[test]
    fn entries_stop_at_the_first_that_does_not_parse() {
        let mut payload = vec![
            INSERT, 0, 0, 0, 1, b'k', 0, 0, 0, 1, b'v', REMOVE, 0, 0, 0, 1,
        ];
        payload.push(b'x');
        let all: Vec<_> = Entries(&payload).collect();
        assert_eq!(
            all,
            vec![Ok(Entry::Insert(b"k", b"v")), Ok(Entry::Remove(b"x"))]
        );
        payload.truncate(payload.len() - 1);
        let cut: Vec<_> = Entries(&payload).collect();
        assert_eq!(cut, vec![Ok(Entry::Insert(b"k", b"v")), Err(())]);
        assert_eq!(Entries(&[9, 0]).collect::<Vec<_>>(), vec![Err(())]);
    }
}
