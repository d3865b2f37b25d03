//! Reading a segment frame by frame, as replay and repair do, and finding where frames
//! start again after damage.

use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::{FRAME_HEADER, FrameHeader, Hole, LogPos, SEGMENT_HEADER, segment_path, sync_marker};

/// A segment file, opened for reading.
#[derive(Debug)]
pub(crate) struct Segment {
    pub path: PathBuf,
    file: File,
    /// Its length when opened.
    pub len: u64,
}

impl Segment {
    /// Segment `number` of the log in `dir`, if it exists.
    pub(crate) fn open(dir: &Path, number: u32) -> io::Result<Option<Segment>> {
        let path = segment_path(dir, number);
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let len = file.metadata()?.len();
        Ok(Some(Segment { path, file, len }))
    }

    /// Up to `n` bytes from `at` (fewer at the end of the file).
    pub(crate) fn read_up_to(&self, at: u64, n: usize) -> io::Result<Vec<u8>> {
        let n = n.min(self.len.saturating_sub(at) as usize);
        let mut buf = vec![0; n];
        self.file.read_exact_at(&mut buf, at)?;
        Ok(buf)
    }

    /// The salt and number its header holds, if it has a header.
    pub(crate) fn header(&self) -> io::Result<Option<(u64, u32)>> {
        Ok(super::decode_segment_header(
            &self.read_up_to(0, SEGMENT_HEADER as usize)?,
        ))
    }

    /// The frame header at `at`, if one of any log is there.
    fn header_at(&self, at: u64) -> io::Result<Option<FrameHeader>> {
        Ok(FrameHeader::decode(&self.read_up_to(at, FRAME_HEADER)?))
    }

    /// The header of the whole, valid frame of the log with `salt` at `at`, its payload
    /// read into `payload`; `None` if there is none there.
    fn frame_at(
        &self,
        at: u64,
        salt: u64,
        payload: &mut Vec<u8>,
    ) -> io::Result<Option<FrameHeader>> {
        let Some(h) = self.header_at(at)?.filter(|h| h.salt == salt) else {
            return Ok(None);
        };
        if h.end(at) > self.len {
            return Ok(None);
        }
        payload.resize(h.len as usize, 0);
        self.file.read_exact_at(payload, at + FRAME_HEADER as u64)?;
        Ok((crc32fast::hash(payload) == h.crc).then_some(h))
    }
}

/// What a [`Scanner`] found next.
#[derive(Debug)]
pub(crate) enum Step {
    /// A valid frame of the log at `at`; its payload is in the buffer given.
    Frame { at: u64, header: FrameHeader },
    /// A hole recorded by repair, skipped whole.
    Hole(Hole),
    /// Bytes that are not a valid frame.
    Damage(Damage),
    /// The end of the segment.
    End,
}

/// Bytes of a segment that are not a valid frame where one should start.
#[derive(Debug)]
pub(crate) struct Damage {
    /// Where a frame should have started.
    pub at: u64,
    /// Where frames start again: the next valid frame or recorded hole, or the end of the
    /// segment if there is none.
    pub resume: u64,
    /// The header at `at`, when it is intact (the payload was damaged or cut short): the
    /// frame's number and length are known.
    pub header: Option<FrameHeader>,
    /// What is wrong at `at`.
    pub why: &'static str,
}

impl Damage {
    /// What is wrong, for an error message: the damage, and why it cannot be a torn tail
    /// (a valid frame after it, a later segment, or the synced end after it).
    pub(crate) fn describe(&self, seg: &Segment, newest: bool, synced: LogPos) -> String {
        let after = if self.resume < seg.len {
            format!(
                "; a valid frame follows at byte {}, so this one was synced",
                self.resume
            )
        } else if !newest {
            "; later segments follow, so it was synced".to_string()
        } else {
            format!(
                "; frames up to byte {} were synced before the crash",
                synced.offset
            )
        };
        let frame = match self.header {
            Some(h) => format!("frame {} ({} bytes): ", h.seq, h.end(self.at) - self.at),
            None => String::new(),
        };
        format!("{frame}{}{after}", self.why)
    }
}

/// Reads one segment frame by frame from a position, skipping recorded holes.
pub(crate) struct Scanner<'a> {
    seg: &'a Segment,
    salt: u64,
    /// Holes of this segment not passed yet, in order.
    holes: VecDeque<Hole>,
    pos: u64,
    /// For payloads read while looking for the next frame.
    scratch: Vec<u8>,
}

/// Bytes read at a time while looking for a sync marker.
const CHUNK: usize = 1 << 20;

impl<'a> Scanner<'a> {
    pub(crate) fn new(
        seg: &'a Segment,
        salt: u64,
        holes: impl IntoIterator<Item = Hole>,
        from: u64,
    ) -> Self {
        let mut holes: Vec<Hole> = holes.into_iter().collect();
        holes.sort();
        Scanner {
            seg,
            salt,
            holes: holes.into(),
            pos: from,
            scratch: Vec::new(),
        }
    }

    pub(crate) fn next(&mut self, payload: &mut Vec<u8>) -> io::Result<Step> {
        // Holes already passed are dropped; one that reaches `pos` is skipped whole.
        while let Some(h) = self.holes.front().copied() {
            if h.end < self.pos || (h.end == self.pos && h.start < self.pos) {
                self.holes.pop_front();
                continue;
            }
            if h.start <= self.pos {
                self.holes.pop_front();
                self.pos = self.pos.max(h.end);
                return Ok(Step::Hole(h));
            }
            break;
        }
        let at = self.pos;
        if at >= self.seg.len {
            return Ok(Step::End);
        }
        let header = self.seg.header_at(at)?.filter(|h| h.salt == self.salt);
        let why = match header {
            Some(h) if h.end(at) <= self.seg.len => {
                payload.resize(h.len as usize, 0);
                self.seg
                    .file
                    .read_exact_at(payload, at + FRAME_HEADER as u64)?;
                if crc32fast::hash(payload) == h.crc {
                    self.pos = h.end(at);
                    return Ok(Step::Frame { at, header: h });
                }
                "its contents do not match their checksum"
            }
            Some(_) => "it runs past the end of the segment",
            None if self.seg.len - at < FRAME_HEADER as u64 => "its header is cut short",
            None => "no frame header of this log starts there",
        };
        // The damage ends after the damaged frame if its header is intact and a frame
        // can start after it; else where the next frame of the log is found.
        let resume = match header {
            Some(h) if h.end(at) <= self.seg.len && self.frame_can_start(h.end(at))? => h.end(at),
            _ => self.next_frame(at + 1)?.unwrap_or(self.stop(at + 1)),
        };
        self.pos = resume;
        Ok(Step::Damage(Damage {
            at,
            resume,
            header,
            why,
        }))
    }

    /// Where the search for a frame from `from` stops: a recorded hole, or the end.
    fn stop(&self, from: u64) -> u64 {
        self.holes
            .iter()
            .map(|h| h.start)
            .find(|&s| s >= from)
            .unwrap_or(self.seg.len)
            .min(self.seg.len)
    }

    /// Whether `at` is where a frame can start: the end of the segment, a recorded hole, or
    /// a valid frame.
    fn frame_can_start(&mut self, at: u64) -> io::Result<bool> {
        Ok(at == self.seg.len
            || self.holes.iter().any(|h| h.start == at)
            || self
                .seg
                .frame_at(at, self.salt, &mut self.scratch)?
                .is_some())
    }

    /// Where the next valid frame of the log at or after `from` starts (before the next
    /// recorded hole), found by its sync marker and checked whole; `None` if there is none.
    pub(crate) fn next_frame(&mut self, from: u64) -> io::Result<Option<u64>> {
        let stop = self.stop(from);
        let marker = sync_marker(self.salt);
        let mut base = from;
        let mut buf = Vec::new();
        while base < stop {
            // Chunks overlap by a marker's length less one, so a marker across two is seen.
            let n = (CHUNK + marker.len() - 1).min((stop - base) as usize);
            buf.resize(n, 0);
            self.seg.file.read_exact_at(&mut buf, base)?;
            let mut i = 0;
            while let Some(found) = buf[i..].windows(marker.len()).position(|w| w == marker) {
                let candidate = i + found;
                if candidate >= CHUNK {
                    break;
                }
                let at = base + candidate as u64;
                if let Some(h) = self.seg.frame_at(at, self.salt, &mut self.scratch)?
                    && h.end(at) <= stop
                {
                    return Ok(Some(at));
                }
                i = candidate + 1;
            }
            base += CHUNK as u64;
        }
        Ok(None)
    }
}
