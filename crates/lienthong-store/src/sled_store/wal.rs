//! The write-ahead log: how a group of writes becomes durable with one `fdatasync`.
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
//! A frame is `magic crc32(payload) payload_len payload` (u32s, big-endian); its payload is
//! a sequence of entries, each a tag and length-prefixed parts: `1 key value` (insert),
//! `2 key` (remove), `3 body` (read through a [`BodyRef`], never applied). Opening replays
//! frames from the checkpoint on; the first that is short or fails its checksum ends the log
//! (a crash tore it while it was being written, so its writers never heard `Ok`; a write
//! that failed is cut off at once), and the segment is cut there, so that later appends
//! cannot leave stale bytes behind a valid frame. A log missing a segment, or shorter than
//! the last checkpoint, is refused: sled points into it. Segments are numbered
//! (`00000000.log`, …); the appender moves to the next past [`SEGMENT_BYTES`].

use std::collections::{BTreeSet, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use crate::{Error, Result};

/// A segment takes frames until it holds this many bytes.
const SEGMENT_BYTES: u64 = 256 * 1024 * 1024;
/// Capacity of the staging buffer kept from one group to the next.
const KEPT_CAPACITY: usize = 8 * 1024 * 1024;
/// First bytes of every frame.
const MAGIC: [u8; 4] = *b"LTw1";
const HEADER: usize = 12;
/// A group stops taking writes once its frame holds this many bytes (one write may go
/// past it; a frame's length field bounds it at 4 GiB).
pub(crate) const GROUP_BYTES: usize = 64 * 1024 * 1024;

const INSERT: u8 = 1;
const REMOVE: u8 = 2;
const BODY: u8 = 3;

/// A place in the log: the end of a frame, or where replay starts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct LogPos {
    pub segment: u32,
    pub offset: u64,
}

impl LogPos {
    pub(crate) fn encode(&self) -> [u8; 12] {
        let mut b = [0; 12];
        b[..4].copy_from_slice(&self.segment.to_be_bytes());
        b[4..].copy_from_slice(&self.offset.to_be_bytes());
        b
    }

    pub(crate) fn decode(b: &[u8]) -> Result<LogPos> {
        let b: &[u8; 12] = b
            .try_into()
            .map_err(|_| Error::Corrupt(format!("log position of {} bytes", b.len())))?;
        Ok(LogPos {
            segment: u32::from_be_bytes(b[..4].try_into().expect("4 bytes")),
            offset: u64::from_be_bytes(b[4..].try_into().expect("8 bytes")),
        })
    }
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

/// The segment files, for reading bodies; shared by the store's readers and the appender.
#[derive(Debug)]
pub(crate) struct Wal {
    dir: PathBuf,
    /// Segments opened so far; a reader opens one it has not seen yet.
    files: RwLock<HashMap<u32, Arc<File>>>,
}

fn segment_path(dir: &Path, segment: u32) -> PathBuf {
    dir.join(format!("{segment:08}.log"))
}

fn corrupt_at(path: &Path, offset: u64, what: &str) -> Error {
    Error::Corrupt(format!(
        "write-ahead log {} at byte {offset}: {what}",
        path.display()
    ))
}

impl Wal {
    /// Opens the log in `dir` (created if needed), applies to `tree` every frame from
    /// `checkpoint` on, and returns the log with the appender that continues it, and the
    /// number of frames applied.
    pub(crate) fn open(
        dir: PathBuf,
        checkpoint: LogPos,
        tree: &sled::Tree,
    ) -> Result<(Arc<Wal>, Appender, usize)> {
        if !dir.exists() {
            fs::create_dir_all(&dir)?;
            // The log's directory must survive a crash along with what is synced into it.
            if let Some(parent) = dir.parent() {
                File::open(parent)?.sync_all()?;
            }
        }
        let mut segments = BTreeSet::new();
        for entry in fs::read_dir(&dir)? {
            let name = entry?.file_name();
            if let Some(n) = name
                .to_str()
                .and_then(|n| n.strip_suffix(".log"))
                .and_then(|n| n.parse::<u32>().ok())
            {
                segments.insert(n);
            }
        }
        let wal = Arc::new(Wal {
            dir,
            files: RwLock::new(HashMap::new()),
        });
        // The log must hold everything from the checkpoint on: a segment that is missing
        // or shorter than the checkpoint means the log was lost or cut, and the bodies
        // that sled points at with it.
        let last = segments.last().copied().unwrap_or(checkpoint.segment);
        let missing = (checkpoint.segment..=last).find(|s| !segments.contains(s));
        let lost = |what: String| {
            Error::Corrupt(format!(
                "the store's write-ahead log in {} {what}; the sled database in the same \
                 store points into it. Restore the whole data directory together",
                wal.dir.display()
            ))
        };
        if checkpoint != LogPos::default() || !segments.is_empty() {
            if let Some(s) = missing {
                return Err(lost(format!("has no segment {s}")));
            }
            let held = fs::metadata(segment_path(&wal.dir, checkpoint.segment))?.len();
            if held < checkpoint.offset {
                return Err(lost(format!(
                    "holds {held} bytes of segment {} but the last checkpoint was at byte {}",
                    checkpoint.segment, checkpoint.offset
                )));
            }
        }
        let mut replayed = 0;
        let mut end = checkpoint;
        for segment in checkpoint.segment..=last {
            let start = if segment == checkpoint.segment {
                checkpoint.offset
            } else {
                0
            };
            let (valid_end, frames) = wal.replay_segment(segment, start, tree)?;
            replayed += frames;
            end = LogPos {
                segment,
                offset: valid_end,
            };
            let file = wal.create(segment)?;
            let len = file.metadata()?.len();
            if valid_end < len {
                if segment != last {
                    return Err(corrupt_at(
                        &segment_path(&wal.dir, segment),
                        valid_end,
                        "a damaged frame before the last segment",
                    ));
                }
                // A torn tail (a frame whose write or sync did not finish, so it was never
                // acknowledged): cut it so that nothing stale can follow a later frame.
                tracing::warn!(
                    segment,
                    at = valid_end,
                    bytes = len - valid_end,
                    "write-ahead log: cutting an incomplete frame at the end"
                );
                file.set_len(valid_end)?;
                file.sync_all()?;
            }
        }
        let file = wal.create(end.segment)?;
        let appender = Appender {
            wal: wal.clone(),
            segment: end.segment,
            file,
            len: end.offset,
            staged: vec![0; HEADER],
            broken: None,
        };
        Ok((wal, appender, replayed))
    }

    /// Applies the frames of `segment` from `start` to `tree`; returns where the valid
    /// frames end and how many there were.
    fn replay_segment(&self, segment: u32, start: u64, tree: &sled::Tree) -> Result<(u64, usize)> {
        let path = segment_path(&self.dir, segment);
        let mut file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((start, 0)),
            Err(e) => return Err(e.into()),
        };
        let size = file.metadata()?.len();
        file.seek(SeekFrom::Start(start))?;
        let mut reader = BufReader::with_capacity(1 << 20, file);
        let mut at = start;
        let mut frames = 0;
        let mut payload = Vec::new();
        loop {
            let mut header = [0; HEADER];
            if !read_full(&mut reader, &mut header)? || header[..4] != MAGIC {
                break;
            }
            let crc = u32::from_be_bytes(header[4..8].try_into().expect("4 bytes"));
            let len = u32::from_be_bytes(header[8..12].try_into().expect("4 bytes"));
            // A length past the end of the file is a torn header, not a frame to read.
            if at + (HEADER as u64) + u64::from(len) > size {
                break;
            }
            payload.resize(len as usize, 0);
            if !read_full(&mut reader, &mut payload)? || crc32fast::hash(&payload) != crc {
                break;
            }
            apply(tree, &payload)?.ok_or_else(|| {
                corrupt_at(&path, at, "a frame that passed its checksum does not parse")
            })?;
            at += (HEADER + payload.len()) as u64;
            frames += 1;
        }
        Ok((at, frames))
    }

    /// Opens (creating it if needed) segment `segment` for appending and reading.
    fn create(&self, segment: u32) -> io::Result<Arc<File>> {
        let path = segment_path(&self.dir, segment);
        let existed = path.exists();
        let file = Arc::new(
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)?,
        );
        if !existed {
            // The new name must survive a crash along with the frames synced into it.
            File::open(&self.dir)?.sync_all()?;
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

/// Fills `buf`; `false` if the reader ends first.
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<bool> {
    match reader.read_exact(buf) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(e),
    }
}

/// Applies the changes of a frame's payload to `tree`, in order; `Ok(None)` if it does not
/// parse (the changes before the fault are applied).
fn apply(tree: &sled::Tree, mut payload: &[u8]) -> sled::Result<Option<()>> {
    fn part<'a>(p: &mut &'a [u8]) -> Option<&'a [u8]> {
        let len = u32::from_be_bytes(p.get(..4)?.try_into().ok()?) as usize;
        let part = p.get(4..4 + len)?;
        *p = &p[4 + len..];
        Some(part)
    }
    while let Some((&tag, rest)) = payload.split_first() {
        payload = rest;
        match tag {
            INSERT => {
                let (Some(key), Some(value)) = (part(&mut payload), part(&mut payload)) else {
                    return Ok(None);
                };
                tree.insert(key, value)?;
            }
            REMOVE => {
                let Some(key) = part(&mut payload) else {
                    return Ok(None);
                };
                tree.remove(key)?;
            }
            BODY => {
                if part(&mut payload).is_none() {
                    return Ok(None);
                }
            }
            _ => return Ok(None),
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
    segment: u32,
    file: Arc<File>,
    /// Bytes in the segment before the staged frame.
    len: u64,
    /// The frame being built: header placeholder, then entries.
    staged: Vec<u8>,
    /// Why the log takes no more frames until the store is opened again: a failed write
    /// that could not be cut off, or a frame sled did not take wholly.
    broken: Option<String>,
}

impl Appender {
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
        BodyRef {
            segment: self.segment,
            offset: self.len + start as u64,
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
        self.staged.truncate(mark.max(HEADER));
    }

    /// Whether nothing is staged.
    pub(crate) fn is_empty(&self) -> bool {
        self.staged.len() == HEADER
    }

    /// Makes the staged changes durable, then applies them to `tree`; returns where the
    /// log ends after them. Staged bodies are readable once this returns `Ok`. The staged
    /// changes are gone afterwards, whatever the outcome:
    /// - a failed write or sync is cut off the file, so it is never replayed (if cutting
    ///   fails too, the log takes no more frames until the store is opened again);
    /// - after a sled error the frame is durable and is applied again when the store next
    ///   opens, and the log takes no more frames until then: later groups would be
    ///   prepared against a sled that holds only part of it.
    pub(crate) fn commit(&mut self, tree: &sled::Tree) -> std::result::Result<LogPos, CommitError> {
        let committed = self.commit_staged(tree);
        // The buffer is kept for the next frame (its capacity saves reallocations), unless
        // an unusually large group grew it.
        self.staged.truncate(HEADER);
        if self.staged.capacity() > KEPT_CAPACITY {
            self.staged.shrink_to(KEPT_CAPACITY);
        }
        committed
    }

    fn commit_staged(&mut self, tree: &sled::Tree) -> std::result::Result<LogPos, CommitError> {
        if let Some(why) = &self.broken {
            return Err(CommitError::Broken(why.clone()));
        }
        if self.is_empty() {
            return Ok(self.position());
        }
        // A full segment is left before writing, so that a failure here writes nothing.
        if self.len >= SEGMENT_BYTES {
            let next = self.segment + 1;
            self.file = self.wal.create(next).map_err(CommitError::Log)?;
            self.segment = next;
            self.len = 0;
        }
        let frame = &mut self.staged;
        let payload_len = u32::try_from(frame.len() - HEADER).map_err(|_| {
            CommitError::Log(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("a group of {} bytes does not fit in one frame", frame.len()),
            ))
        })?;
        let crc = crc32fast::hash(&frame[HEADER..]);
        frame[..4].copy_from_slice(&MAGIC);
        frame[4..8].copy_from_slice(&crc.to_be_bytes());
        frame[8..12].copy_from_slice(&payload_len.to_be_bytes());
        let written = self
            .file
            .write_all_at(frame, self.len)
            .and_then(|()| self.file.sync_data());
        if let Err(e) = written {
            // Its writers hear that it failed: it must not come back in a replay.
            if let Err(cut) = self
                .file
                .set_len(self.len)
                .and_then(|()| self.file.sync_data())
            {
                self.broken = Some(format!(
                    "a failed write ({e}) could not be cut off the log: {cut}"
                ));
            }
            return Err(CommitError::Log(e));
        }
        self.len += frame.len() as u64;
        match apply(tree, &frame[HEADER..]) {
            Ok(parsed) => {
                debug_assert!(parsed.is_some(), "a staged frame parses");
                Ok(self.position())
            }
            Err(e) => {
                self.broken = Some(format!("sled did not take a whole group: {e}"));
                Err(CommitError::Sled(e))
            }
        }
    }

    /// Where the log ends.
    pub(crate) fn position(&self) -> LogPos {
        LogPos {
            segment: self.segment,
            offset: self.len,
        }
    }
}

#[cfg(test)]
mod tests {
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

    fn open(dir: &Path, name: &str, from: LogPos) -> Result<Opened> {
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

    fn get(tree: &sled::Tree, key: &[u8]) -> Option<Vec<u8>> {
        tree.get(key).unwrap().map(|v| v.to_vec())
    }

    fn segment(dir: &Path, n: u32) -> File {
        OpenOptions::new()
            .write(true)
            .open(segment_path(&dir.join("wal"), n))
            .unwrap()
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
            } = open(dir.path(), "a", LogPos::default()).unwrap();
            assert_eq!(replayed, 0);
            app.insert(b"k1", b"v1");
            let body = app.body(&[b"receipt", b"message"]);
            app.insert(b"k2", b"v2");
            let first = app.commit(&t).unwrap();
            assert_eq!(wal.read(&body).unwrap(), b"receiptmessage");
            app.remove(b"k1");
            app.insert(b"k3", b"v3");
            let second = app.commit(&t).unwrap();
            assert!(second > first);
            assert_eq!(get(&t, b"k1"), None);
            (body, second)
        };
        // A fresh sled (as if none of it had been flushed) gets every frame back, in order.
        let b = open(dir.path(), "b", LogPos::default()).unwrap();
        assert_eq!(b.replayed, 2);
        assert_eq!(b.app.position(), second);
        assert_eq!(get(&b.tree, b"k1"), None);
        assert_eq!(get(&b.tree, b"k2").as_deref(), Some(&b"v2"[..]));
        assert_eq!(get(&b.tree, b"k3").as_deref(), Some(&b"v3"[..]));
        assert_eq!(b.wal.read(&body).unwrap(), b"receiptmessage");
        drop(b);
        // From the end, nothing is replayed.
        let c = open(dir.path(), "c", second).unwrap();
        assert_eq!(c.replayed, 0);
        assert!(c.tree.is_empty());
    }

    #[test]
    fn a_torn_tail_is_cut_and_later_frames_follow_the_last_whole_one() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = open(dir.path(), "a", LogPos::default()).unwrap();
        a.app.insert(b"whole", b"1");
        let whole = a.app.commit(&a.tree).unwrap();
        a.app.insert(b"torn", b"2");
        let torn = a.app.commit(&a.tree).unwrap();
        drop(a);
        // The second frame loses its last byte, as a crash during its write would leave it.
        segment(dir.path(), 0).set_len(torn.offset - 1).unwrap();

        let mut b = open(dir.path(), "b", LogPos::default()).unwrap();
        assert_eq!(b.replayed, 1);
        assert_eq!(get(&b.tree, b"torn"), None);
        assert_eq!(b.app.position(), whole);
        let path = segment_path(&dir.path().join("wal"), 0);
        assert_eq!(fs::metadata(&path).unwrap().len(), whole.offset);
        b.app.insert(b"after", b"3");
        b.app.commit(&b.tree).unwrap();
        drop(b);
        let c = open(dir.path(), "c", LogPos::default()).unwrap();
        assert_eq!(c.replayed, 2);
        assert_eq!(get(&c.tree, b"after").as_deref(), Some(&b"3"[..]));
    }

    #[test]
    fn a_header_that_claims_more_than_the_file_holds_ends_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = open(dir.path(), "a", LogPos::default()).unwrap();
        a.app.insert(b"k", b"v");
        let end = a.app.commit(&a.tree).unwrap();
        drop(a);
        // A torn header: the magic, any checksum, and a length of almost 4 GiB.
        let mut header = MAGIC.to_vec();
        header.extend_from_slice(&[0, 0, 0, 0, 0xff, 0xff, 0xff, 0xf0]);
        segment(dir.path(), 0)
            .write_all_at(&header, end.offset)
            .unwrap();
        let b = open(dir.path(), "b", LogPos::default()).unwrap();
        assert_eq!((b.replayed, b.app.position()), (1, end));
        assert_eq!(get(&b.tree, b"k").as_deref(), Some(&b"v"[..]));
    }

    #[test]
    fn segments_roll_over_and_replay_across_them() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = open(dir.path(), "a", LogPos::default()).unwrap();
        let body_a = a.app.body(&[b"a"]);
        let first = a.app.commit(&a.tree).unwrap();
        // As if the segment were full: the next frame opens segment 1.
        a.app.len = SEGMENT_BYTES;
        a.app.insert(b"k", b"v");
        let second = a.app.commit(&a.tree).unwrap();
        assert_eq!(second.segment, 1);
        let body_b = a.app.body(&[b"b"]);
        a.app.commit(&a.tree).unwrap();
        assert_eq!(body_b.segment, 1);
        assert_eq!(a.wal.read(&body_a).unwrap(), b"a");
        drop(a);
        // From a checkpoint in segment 0, replay goes on into segment 1.
        let b = open(dir.path(), "b", first).unwrap();
        assert_eq!(b.replayed, 2);
        assert_eq!(b.app.position().segment, 1);
        assert_eq!(get(&b.tree, b"k").as_deref(), Some(&b"v"[..]));
        assert_eq!(b.wal.read(&body_b).unwrap(), b"b");
    }

    #[test]
    fn a_log_lost_or_cut_behind_the_checkpoint_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = open(dir.path(), "a", LogPos::default()).unwrap();
        a.app.insert(b"k", b"v");
        let end = a.app.commit(&a.tree).unwrap();
        drop(a);
        segment(dir.path(), 0).set_len(end.offset - 1).unwrap();
        assert!(matches!(open(dir.path(), "b", end), Err(Error::Corrupt(_))));
        fs::remove_file(segment_path(&dir.path().join("wal"), 0)).unwrap();
        assert!(matches!(open(dir.path(), "c", end), Err(Error::Corrupt(_))));
    }

    #[test]
    fn a_damaged_or_missing_body_is_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = open(dir.path(), "a", LogPos::default()).unwrap();
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
        let pos = LogPos {
            segment: 2,
            offset: 99,
        };
        assert_eq!(LogPos::decode(&pos.encode()).unwrap(), pos);
    }
}
