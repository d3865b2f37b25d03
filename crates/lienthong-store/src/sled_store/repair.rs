//! Repair of a store whose write-ahead log [`Error::DamagedLog`] refused: what
//! `lienthong store repair` runs, with the node stopped.
//!
//! It reads the whole log, not only what an open replays, and finds every range that is
//! not a valid frame where one should be. Nothing is deleted or moved (sled points into
//! the log by offset, and the damaged bytes are evidence): each lost range is recorded in
//! `wal/holes`, which replay skips, and the frames after it are kept and applied. A torn
//! tail (a frame never synced, see [`super::wal`]) is cut as an open would; a segment that
//! ends before the synced end is padded up to it, so that new frames never take the place
//! of lost ones that sled may still point at. Then the store is opened once, which applies
//! the intact frames since the last checkpoint.
//!
//! The report says what was lost: the byte ranges, the numbers of the frames in them when
//! the frames around them tell, and the ids of the messages whose bodies were there — from
//! the database's records that point into the range (exact), and from what can still be
//! read of a damaged frame whose header is intact (as far as it parses). A lost range may
//! also have held acknowledgements, queue removals and events; those are not listed.

use std::fmt;
use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::wal::{self, Entries, Entry, Hole, LogEnd, LogPos, SEGMENT_HEADER, Segment, Step};
use super::{check_format, checkpoint, codec, open_sled};
use crate::{Error, Result};

/// What `repair` found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepairReport {
    /// The store's data directory.
    pub data_dir: PathBuf,
    /// Valid frames in the log, all kept.
    pub frames: u64,
    /// Ranges lost to damage found by this repair.
    pub lost: Vec<LostRange>,
    /// Segments whose header was damaged and is rewritten (nothing is lost with it).
    pub headers_rewritten: Vec<u32>,
    /// A torn tail cut off: segment, offset, bytes. Its frame was never synced, so never
    /// acknowledged.
    pub torn_tail: Option<(u32, u64, u64)>,
    /// Ranges an earlier repair recorded, still skipped.
    pub earlier_holes: usize,
    /// Whether the synced mark was missing or damaged (it is written again).
    pub mark_rewritten: bool,
    /// Whether the log was changed: `false` for a dry run, or when nothing was wrong.
    pub changed: bool,
    /// Whether this was a dry run.
    pub dry_run: bool,
}

/// A byte range of a segment that was synced and is damaged or gone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LostRange {
    pub segment: u32,
    /// The segment file.
    pub path: PathBuf,
    pub start: u64,
    pub end: u64,
    /// Bytes of the range the file no longer has (its end was cut off).
    pub missing: u64,
    /// The numbers of the first and last frame lost, when the frames around the range
    /// tell (the last is unknown for a range at the end of the log).
    pub frames: Option<(u64, Option<u64>)>,
    /// What is wrong at `start`.
    pub why: String,
    /// Ids of the messages whose bodies were in the range.
    pub messages: Vec<String>,
    /// Valid frames after it in the log, kept.
    pub frames_after: u64,
    /// Whether the range runs to the end of its segment (bodies past the end count).
    reaches_end: bool,
}

impl RepairReport {
    /// Whether anything was found wrong.
    pub fn found_damage(&self) -> bool {
        !self.lost.is_empty()
            || !self.headers_rewritten.is_empty()
            || self.torn_tail.is_some()
            || self.mark_rewritten
    }
}

impl fmt::Display for RepairReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let wal_dir = self.data_dir.join("wal");
        writeln!(
            f,
            "write-ahead log {}: {} intact frames{}",
            wal_dir.display(),
            self.frames,
            if self.earlier_holes > 0 {
                format!(
                    ", {} range(s) recorded as lost by an earlier repair",
                    self.earlier_holes
                )
            } else {
                String::new()
            }
        )?;
        if !self.found_damage() {
            return writeln!(f, "nothing damaged: there is nothing to repair");
        }
        for r in &self.lost {
            let frames = match r.frames {
                Some((first, Some(last))) if first == last => format!("frame {first}"),
                Some((first, Some(last))) => format!("frames {first}-{last}"),
                Some((first, None)) => format!("frames from {first} on"),
                None => "frames of unknown number".to_string(),
            };
            writeln!(
                f,
                "LOST: segment {} ({}) bytes {}..{} ({} bytes{}): {frames}: {}",
                r.segment,
                r.path.display(),
                r.start,
                r.end,
                r.end - r.start,
                if r.missing > 0 {
                    format!(", {} of them missing from the file", r.missing)
                } else {
                    String::new()
                },
                r.why
            )?;
            if r.messages.is_empty() {
                writeln!(f, "  messages: none found")?;
            } else {
                writeln!(f, "  messages: {}", r.messages.join(" "))?;
            }
            writeln!(f, "  kept: {} intact frames after it", r.frames_after)?;
        }
        for s in &self.headers_rewritten {
            writeln!(f, "header of segment {s} damaged: rewritten (nothing lost)")?;
        }
        if let Some((s, at, bytes)) = self.torn_tail {
            writeln!(
                f,
                "torn tail: {bytes} bytes at byte {at} of segment {s}, a frame never synced \
                 (never acknowledged): cut"
            )?;
        }
        if self.mark_rewritten {
            writeln!(
                f,
                "the mark of what was synced ({}) was missing or damaged: written again",
                wal_dir.join(wal::MARK_FILE).display()
            )?;
        }
        if self.dry_run {
            writeln!(
                f,
                "dry run: nothing changed; run again without --dry-run to repair"
            )
        } else {
            writeln!(
                f,
                "repaired: {} lost range(s) recorded in {}; the store opens. Ask the senders of \
                 the messages listed to send them again",
                self.lost.len(),
                wal_dir.join(wal::HOLES_FILE).display()
            )
        }
    }
}

/// Repairs the store in `dir` (see the module doc); with `dry_run`, only reports.
pub(crate) fn run(dir: &Path, dry_run: bool) -> Result<RepairReport> {
    let wal_dir = dir.join("wal");
    let db_path = dir.join("db");
    if !wal_dir.is_dir() || !db_path.is_dir() {
        return Err(Error::NotFound(format!(
            "a store in {} (it has no wal/ and db/ directories); give the node's data_dir",
            dir.display()
        )));
    }
    let db = open_sled(&db_path, super::DEFAULT_LOCK_WAIT).map_err(|source| Error::Open {
        path: db_path.display().to_string(),
        source,
    })?;
    let tree = db.open_tree("lienthong")?;
    check_format(&tree, &db_path)?;
    let checkpoint = checkpoint::last(&tree)?;
    let segments = wal::list_segments(&wal_dir)?;
    let mut report = RepairReport {
        data_dir: dir.to_path_buf(),
        frames: 0,
        lost: Vec::new(),
        headers_rewritten: Vec::new(),
        torn_tail: None,
        earlier_holes: 0,
        mark_rewritten: false,
        changed: false,
        dry_run,
    };
    let (Some(&first), Some(&last)) = (segments.first(), segments.last()) else {
        return Ok(report);
    };
    if let Some(s) = (first..=last).find(|s| !segments.contains(s)) {
        return Err(Error::Corrupt(format!(
            "the write-ahead log in {} has no segment {s}: what it held is gone, not \
             damaged; restore the whole data directory from a backup",
            wal_dir.display()
        )));
    }
    let salt = wal::find_salt(&wal_dir, &segments)?.ok_or_else(|| {
        Error::Corrupt(format!(
            "no segment header and no first frame of the write-ahead log in {} can be read, \
             so its frames cannot be told from bytes inside messages; restore the data \
             directory from a backup",
            wal_dir.display()
        ))
    })?;
    // Without a readable mark nothing can be shown to be torn rather than damaged: every
    // bad range is kept as lost, none is cut.
    let mark = match wal::read_mark(&wal_dir)? {
        Ok(Some(mark)) => Some(mark),
        Ok(None) | Err(_) => None,
    };
    report.mark_rewritten = mark.is_none();
    // Damaged ranges are still damaged on disk: a list that cannot be read is rebuilt.
    let holes = wal::read_holes(&wal_dir)?.unwrap_or_default();
    report.earlier_holes = holes.len();
    let synced = mark.map_or(checkpoint.pos, |m| m.pos.max(checkpoint.pos));

    let mut payload = Vec::new();
    // The first frame of a log is number 0; a log that starts later (a future compaction)
    // tells its first number with its first frame.
    let mut expected = (first == 0).then_some(0u64);
    let mut last_seq: Option<u64> = None;
    // The lost range the next valid frame ends, if any: its last frame number comes from it.
    let mut open_loss: Option<usize> = None;
    // Where the previous segment ended, for frames lost whole at its end.
    let mut previous_end: Option<(u32, u64)> = None;
    let mut pad_to: Option<u64> = None;
    for &s in &segments {
        let seg = Segment::open(&wal_dir, s)?
            .ok_or_else(|| Error::Corrupt(format!("segment {s} vanished while being repaired")))?;
        let newest = s == last;
        let holes_here = holes.iter().filter(|h| h.segment == s).copied();
        let mut scan = wal::scan::Scanner::new(&seg, salt, holes_here, SEGMENT_HEADER);
        if seg.header()? != Some((salt, s)) {
            let torn = mark.is_some()
                && newest
                && synced
                    <= LogPos {
                        segment: s,
                        offset: 0,
                    }
                && scan.next_frame(0)?.is_none();
            if torn {
                report.torn_tail = Some((s, 0, seg.len));
                break;
            }
            report.headers_rewritten.push(s);
        }
        loop {
            match scan.next(&mut payload)? {
                Step::Frame { at, header } => {
                    if let Some(i) = open_loss.take() {
                        let r: &mut LostRange = &mut report.lost[i];
                        let first = r
                            .frames
                            .map(|(f, _)| f)
                            .or(expected)
                            .or(last_seq.map(|s| s + 1));
                        r.frames = first
                            .filter(|&f| f < header.seq)
                            .map(|f| (f, Some(header.seq - 1)));
                    } else if let Some(e) = expected
                        && header.seq > e
                    {
                        // Frames gone whole, with no damaged bytes: from the end of the
                        // previous segment (within a segment frames follow each other).
                        let (ps, plen) = previous_end.unwrap_or((s, at));
                        report.lost.push(LostRange {
                            segment: ps,
                            path: wal::segment_path(&wal_dir, ps),
                            start: plen,
                            end: plen,
                            missing: 0,
                            frames: Some((e, Some(header.seq - 1))),
                            why: format!(
                                "frames {e}-{} are missing: the segment ends before them",
                                header.seq - 1
                            ),
                            messages: Vec::new(),
                            frames_after: report.frames,
                            reaches_end: true,
                        });
                    }
                    report.frames += 1;
                    expected = Some(header.seq + 1);
                    last_seq = Some(header.seq);
                }
                Step::Hole(_) => {
                    expected = None;
                }
                Step::Damage(d) => {
                    let torn = mark.is_some()
                        && newest
                        && d.resume == seg.len
                        && LogPos {
                            segment: s,
                            offset: d.at,
                        } >= synced;
                    if torn {
                        report.torn_tail = Some((s, d.at, seg.len - d.at));
                        break;
                    }
                    let mut messages = Vec::new();
                    if let Some(h) = d.header {
                        // What can still be read of the frame, as far as it parses.
                        let body =
                            seg.read_up_to(d.at + wal::FRAME_HEADER as u64, h.len as usize)?;
                        for entry in Entries(&body) {
                            match entry {
                                Ok(Entry::Insert(key, _)) => {
                                    if let Some(id) = codec::message_id(key) {
                                        messages.push(id.to_string());
                                    }
                                }
                                Ok(_) => {}
                                Err(()) => break,
                            }
                        }
                    }
                    let first = d.header.map(|h| h.seq).or(expected);
                    report.lost.push(LostRange {
                        segment: s,
                        path: seg.path.clone(),
                        start: d.at,
                        end: d.resume,
                        missing: 0,
                        frames: first.map(|f| (f, None)),
                        why: d.why.to_string(),
                        messages,
                        frames_after: report.frames,
                        reaches_end: d.resume == seg.len,
                    });
                    open_loss = Some(report.lost.len() - 1);
                    expected = None;
                }
                Step::End => {
                    if s == synced.segment && seg.len < synced.offset {
                        let missing = synced.offset - seg.len;
                        match report.lost.last_mut() {
                            Some(r) if r.segment == s && r.end == seg.len => {
                                r.end = synced.offset;
                                r.missing = missing;
                                r.why = format!(
                                    "{}, and the segment ends {missing} bytes before the end of \
                                     what was synced",
                                    r.why
                                );
                            }
                            _ => {
                                report.lost.push(LostRange {
                                    segment: s,
                                    path: seg.path.clone(),
                                    start: seg.len,
                                    end: synced.offset,
                                    missing,
                                    frames: expected.map(|e| (e, None)),
                                    why: format!(
                                        "the segment ends {missing} bytes before the end of what \
                                         was synced"
                                    ),
                                    messages: Vec::new(),
                                    frames_after: report.frames,
                                    reaches_end: true,
                                });
                                open_loss = Some(report.lost.len() - 1);
                            }
                        }
                        if newest {
                            pad_to = Some(synced.offset);
                        }
                    }
                    break;
                }
            }
        }
        previous_end = Some((s, seg.len));
    }
    // A loss that runs to the synced end: the mark numbers the frame after the last lost.
    if let (Some(i), Some(m)) = (open_loss, mark) {
        let r = &mut report.lost[i];
        if let Some((first, None)) = r.frames
            && r.segment == m.pos.segment
            && r.end >= m.pos.offset
            && m.next_seq > first
        {
            r.frames = Some((first, Some(m.next_seq - 1)));
        }
    }
    for r in &mut report.lost {
        r.frames_after = report.frames - r.frames_after;
    }
    name_lost_messages(&tree, &mut report.lost)?;
    drop(tree);
    drop(db);

    if dry_run || !report.found_damage() {
        return Ok(report);
    }
    report.changed = true;
    for &s in &report.headers_rewritten {
        let f = OpenOptions::new()
            .write(true)
            .open(wal::segment_path(&wal_dir, s))?;
        f.write_all_at(&wal::segment_header(salt, s), 0)?;
        f.sync_data()?;
    }
    let newest = OpenOptions::new()
        .write(true)
        .open(wal::segment_path(&wal_dir, last))?;
    if let Some((s, at, _)) = report.torn_tail {
        debug_assert_eq!(s, last);
        if at == 0 {
            newest.set_len(0)?;
            newest.write_all_at(&wal::segment_header(salt, s), 0)?;
        } else {
            newest.set_len(at)?;
        }
    }
    if let Some(len) = pad_to {
        newest.set_len(len)?;
    }
    newest.sync_data()?;
    let end = newest.metadata()?.len();
    let mut all_holes = holes;
    all_holes.extend(report.lost.iter().map(|r| Hole {
        segment: r.segment,
        start: r.start,
        end: r.end,
    }));
    all_holes.sort();
    all_holes.dedup();
    wal::write_holes(&wal_dir, &all_holes)?;
    let next_seq = last_seq.map_or(checkpoint.next_seq, |s| s + 1);
    wal::write_mark_synced(
        &wal_dir,
        LogEnd {
            pos: LogPos {
                segment: last,
                offset: end,
            },
            next_seq,
        },
    )?;
    // Applies what the last checkpoint left out, skipping the holes, and checkpoints.
    drop(super::SledStore::open(dir)?);
    Ok(report)
}

/// Adds to each range the messages whose records in `tree` point at a body in it.
fn name_lost_messages(tree: &sled::Tree, lost: &mut [LostRange]) -> Result<()> {
    if lost.is_empty() {
        return Ok(());
    }
    for item in tree.scan_prefix(codec::message_prefix()) {
        let (key, value) = item?;
        let (Some(id), Ok(record)) = (codec::message_id(&key), codec::decode_message(&value))
        else {
            continue;
        };
        let b = record.body;
        for r in lost.iter_mut() {
            let inside = b.offset < r.end && b.offset + u64::from(b.len) > r.start;
            let past_end = r.reaches_end && b.offset >= r.start;
            if b.segment == r.segment && (inside || past_end) {
                r.messages.push(id.to_string());
            }
        }
    }
    for r in lost {
        r.messages.sort();
        r.messages.dedup();
    }
    Ok(())
}
