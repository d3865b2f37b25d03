//! Attachment blobs: one file per blob under `blobs/`, named by the hex SHA-256 of its
//! content, written through `blobs/tmp/` so a file under its final name is always complete.
//!
//! Large blobs arrive in chunks: they grow in a partial file of their writer —
//! `blobs/partial/<hex>` for a neighbour's push, `blobs/partial/<hex>.<agency code>` for an
//! agency's upload — fsynced after every write so that the length of the file is what the
//! writer may resume from (kept across restarts), and are renamed under their final name
//! only once complete and hashed. A partial file untouched for a week is removed when the
//! store opens.
//!
//! These functions block; the store calls them from `spawn_blocking`.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;

use super::private;
use crate::{BlobWriter, Digest, Error, Result};

/// Where blobs live and how to name temporary files uniquely.
#[derive(Debug)]
pub(crate) struct BlobDir {
    dir: PathBuf,
    tmp: PathBuf,
    /// Chunked uploads in progress; kept across restarts so that they resume.
    partial: PathBuf,
    /// Distinguishes concurrent writers of the same blob in this process.
    next_tmp: AtomicU64,
    /// Chunked writes and completions of one digest take turns (striped by digest), so
    /// that no chunk lands in a file while it is being hashed or renamed.
    stripes: [std::sync::Mutex<()>; STRIPES],
}

const STRIPES: usize = 16;
/// A partial upload untouched for this long is removed when the store opens.
const PARTIAL_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);

pub(crate) fn sha256(data: &[u8]) -> Digest {
    let d = ring::digest::digest(&ring::digest::SHA256, data);
    d.as_ref().try_into().expect("SHA-256 is 32 bytes")
}

impl BlobDir {
    /// Creates `dir` and `dir/tmp`, and removes temporary files a crash left behind.
    pub(crate) fn open(dir: PathBuf) -> io::Result<BlobDir> {
        let tmp = dir.join("tmp");
        let partial = dir.join("partial");
        for d in [&dir, &tmp, &partial] {
            private::create_dir(d)?;
        }
        // Uploads abandoned long ago will not resume: give their space back.
        for entry in fs::read_dir(&partial)? {
            let entry = entry?;
            let stale = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > PARTIAL_MAX_AGE);
            if stale && let Err(e) = fs::remove_file(entry.path()) {
                tracing::warn!(path = %entry.path().display(), error = %e, "cannot remove abandoned partial blob");
            }
        }
        for entry in fs::read_dir(&tmp)? {
            let entry = entry?;
            if let Err(e) = fs::remove_file(entry.path()) {
                tracing::warn!(path = %entry.path().display(), error = %e, "cannot remove stale temporary blob");
            }
        }
        Ok(BlobDir {
            dir,
            tmp,
            partial,
            next_tmp: AtomicU64::new(0),
            stripes: Default::default(),
        })
    }

    pub(crate) fn path(&self, digest: &Digest) -> PathBuf {
        self.dir.join(hex::encode(digest))
    }

    pub(crate) fn put(&self, digest: &Digest, data: &[u8]) -> Result<()> {
        if sha256(data) != *digest {
            return Err(Error::DigestMismatch {
                expected: hex::encode(digest),
            });
        }
        let path = self.path(digest);
        if path.exists() {
            return Ok(());
        }
        let n = self.next_tmp.fetch_add(1, Ordering::Relaxed);
        let tmp = self.tmp.join(format!(
            "{}.{}.{n}",
            hex::encode(digest),
            std::process::id()
        ));
        let written = write_synced(&tmp, data).and_then(|()| fs::rename(&tmp, &path));
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(e.into());
        }
        // The rename is durable only once the directory entry is.
        sync_dir(&self.dir)?;
        Ok(())
    }

    pub(crate) fn get(&self, digest: &Digest) -> Result<Bytes> {
        let hex = hex::encode(digest);
        let data = match fs::read(self.path(digest)) {
            Ok(data) => data,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(Error::NotFound(format!("blob {hex}")));
            }
            Err(e) => return Err(e.into()),
        };
        if sha256(&data) != *digest {
            return Err(Error::Corrupt(format!(
                "blob {hex} no longer matches its digest; restore it from the sender or a backup"
            )));
        }
        Ok(Bytes::from(data))
    }
}

fn write_synced(path: &Path, data: &[u8]) -> io::Result<()> {
    let mut f = private::options()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)?;
    f.write_all(data)?;
    f.sync_all()
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

// ---- chunked writes and ranged reads ----------------------------------------------------

/// Size of the blocks a blob is hashed in when a chunked upload completes.
const HASH_BLOCK: usize = 1024 * 1024;

impl BlobDir {
    fn stripe(&self, digest: &Digest) -> std::sync::MutexGuard<'_, ()> {
        self.stripes[digest[0] as usize % STRIPES]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    fn partial_path(&self, digest: &Digest, writer: &BlobWriter) -> PathBuf {
        match writer {
            BlobWriter::Relay => self.partial.join(hex::encode(digest)),
            BlobWriter::Agency(agency) => {
                self.partial
                    .join(format!("{}.{}", hex::encode(digest), agency.as_str()))
            }
        }
    }

    /// The chunked writes of `writer` in progress, with their durable lengths.
    pub(crate) fn partials_of(&self, writer: &BlobWriter) -> Result<Vec<(Digest, u64)>> {
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.partial)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let (hex, owner) = match name.split_once('.') {
                Some((hex, owner)) => (hex, Some(owner)),
                None => (name, None),
            };
            let mine = match writer {
                BlobWriter::Relay => owner.is_none(),
                BlobWriter::Agency(agency) => owner == Some(agency.as_str()),
            };
            let digest = hex::decode(hex).ok().and_then(|d| Digest::try_from(d).ok());
            if let (true, Some(digest)) = (mine, digest) {
                // Taken in turn with writers, like `partial_len`.
                out.push((digest, self.partial_len(&digest, writer)?));
            }
        }
        Ok(out)
    }

    /// Size of the complete blob `digest`, if it is stored.
    pub(crate) fn len(&self, digest: &Digest) -> Result<Option<u64>> {
        match fs::metadata(self.path(digest)) {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Bytes of `writer`'s chunked upload of `digest` held durably so far (0 when none
    /// started). Taken in turn with writers, so a chunk written but not yet fsynced is not
    /// counted.
    pub(crate) fn partial_len(&self, digest: &Digest, writer: &BlobWriter) -> Result<u64> {
        let _turn = self.stripe(digest);
        match fs::metadata(self.partial_path(digest, writer)) {
            Ok(m) => Ok(m.len()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(e.into()),
        }
    }

    /// Writes `data` at `offset` of the partial file of `digest`, fsyncs it, and returns
    /// the durable length. `offset` may not lie beyond the bytes held: a writer resumes at
    /// [`BlobDir::partial_len`] or earlier. Concurrent writers of one digest write the same
    /// bytes at the same offsets, one at a time; a writer that sends other bytes is caught
    /// when the blob completes, since only a file that hashes to its name becomes visible.
    pub(crate) fn write_partial(
        &self,
        digest: &Digest,
        writer: &BlobWriter,
        offset: u64,
        data: &[u8],
    ) -> Result<u64> {
        use std::os::unix::fs::FileExt;
        let _turn = self.stripe(digest);
        let path = self.partial_path(digest, writer);
        // Only a chunk at offset 0 starts a partial file (one that arrives after the blob
        // was completed meanwhile finds no file and reports the gap).
        let f = match private::options()
            .create(offset == 0)
            .truncate(false)
            .write(true)
            .open(&path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(Error::Gap {
                    offset,
                    held: 0,
                    digest: hex::encode(digest),
                });
            }
            Err(e) => return Err(e.into()),
        };
        let held = f.metadata()?.len();
        if offset > held {
            return Err(Error::Gap {
                offset,
                held,
                digest: hex::encode(digest),
            });
        }
        // The length of the file is the durable offset reported: bytes that could not be
        // synced are cut off again.
        if let Err(e) = f.write_all_at(data, offset).and_then(|()| f.sync_data()) {
            let _ = f.set_len(held).and_then(|()| f.sync_data());
            return Err(e.into());
        }
        if held == 0 {
            // A new file's directory entry must be durable too.
            sync_dir(&self.partial)?;
        }
        Ok(f.metadata()?.len())
    }

    /// Turns `writer`'s partial file of `digest` into the blob once it holds `size` bytes
    /// that hash to `digest`. A partial file that is complete but hashes to something else
    /// is removed (the upload starts over) and [`Error::DigestMismatch`] returned. When the
    /// blob is stored already, the writer's partial file is still checked, then removed: an
    /// agency proves it holds the bytes (a neighbour without a partial file has nothing to
    /// prove).
    pub(crate) fn complete_partial(
        &self,
        digest: &Digest,
        writer: &BlobWriter,
        size: u64,
    ) -> Result<()> {
        use std::io::Read;
        let _turn = self.stripe(digest);
        let path = self.partial_path(digest, writer);
        let stored = self.len(digest)?.is_some();
        if stored && *writer == BlobWriter::Relay && !path.exists() {
            return Ok(());
        }
        let mut f = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(Error::NotFound(format!(
                    "partial upload of blob {}",
                    hex::encode(digest)
                )));
            }
            Err(e) => return Err(e.into()),
        };
        let held = f.metadata()?.len();
        if held > size {
            // More bytes than the blob has: damaged; the upload starts over.
            drop(f);
            let _ = fs::remove_file(&path);
            return Err(Error::DigestMismatch {
                expected: hex::encode(digest),
            });
        }
        if held != size {
            return Err(Error::Incomplete {
                digest: hex::encode(digest),
                held,
                size,
            });
        }
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        let mut buf = vec![0u8; HASH_BLOCK];
        loop {
            let n = f.read(&mut buf)?;
            if n == 0 {
                break;
            }
            ctx.update(&buf[..n]);
        }
        if ctx.finish().as_ref() != digest {
            let _ = fs::remove_file(&path);
            return Err(Error::DigestMismatch {
                expected: hex::encode(digest),
            });
        }
        drop(f);
        if stored {
            fs::remove_file(&path)?;
            return Ok(());
        }
        match fs::rename(&path, self.path(digest)) {
            Ok(()) => {}
            // A concurrent writer completed it first.
            Err(e) if e.kind() == io::ErrorKind::NotFound && self.len(digest)?.is_some() => {}
            Err(e) => return Err(e.into()),
        }
        sync_dir(&self.dir)?;
        Ok(())
    }

    /// Up to `max` bytes of the complete blob `digest` from `offset` (empty at or past
    /// its end). Not checked against the digest: whoever reads a blob in ranges checks the
    /// whole at the end.
    pub(crate) fn read_range(&self, digest: &Digest, offset: u64, max: usize) -> Result<Bytes> {
        use std::os::unix::fs::FileExt;
        let f = match File::open(self.path(digest)) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(Error::NotFound(format!("blob {}", hex::encode(digest))));
            }
            Err(e) => return Err(e.into()),
        };
        let len = f.metadata()?.len();
        let n = len.saturating_sub(offset).min(max as u64) as usize;
        let mut buf = vec![0u8; n];
        f.read_exact_at(&mut buf, offset)?;
        Ok(Bytes::from(buf))
    }
}
