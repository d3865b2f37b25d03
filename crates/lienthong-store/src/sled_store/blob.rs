//! Attachment blobs: one file per blob under `blobs/`, named by the hex SHA-256 of its
//! content, written through `blobs/tmp/` so a file under its final name is always complete.
//!
//! These functions block; the store calls them from `spawn_blocking`.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;

use crate::{Digest, Error, Result};

/// Where blobs live and how to name temporary files uniquely.
#[derive(Debug)]
pub(crate) struct BlobDir {
    dir: PathBuf,
    tmp: PathBuf,
    /// Distinguishes concurrent writers of the same blob in this process.
    next_tmp: AtomicU64,
}

pub(crate) fn sha256(data: &[u8]) -> Digest {
    let d = ring::digest::digest(&ring::digest::SHA256, data);
    d.as_ref().try_into().expect("SHA-256 is 32 bytes")
}

impl BlobDir {
    /// Creates `dir` and `dir/tmp`, and removes temporary files a crash left behind.
    pub(crate) fn open(dir: PathBuf) -> io::Result<BlobDir> {
        let tmp = dir.join("tmp");
        fs::create_dir_all(&tmp)?;
        for entry in fs::read_dir(&tmp)? {
            let entry = entry?;
            if let Err(e) = fs::remove_file(entry.path()) {
                tracing::warn!(path = %entry.path().display(), error = %e, "cannot remove stale temporary blob");
            }
        }
        Ok(BlobDir {
            dir,
            tmp,
            next_tmp: AtomicU64::new(0),
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
    let mut f = File::create(path)?;
    f.write_all(data)?;
    f.sync_all()
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}
