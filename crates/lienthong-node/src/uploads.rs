//! The marks of what each agency proved it holds: an agency may name in a document only
//! the blobs whose every byte it streamed itself.

use std::path::PathBuf;

use lienthong_core::{AgencyCode, Digest};

/// What each agency proved it holds here: `<dir>/<agency code>/<sha256 hex>`, a file
/// holding the blob's size, written once the agency streamed every byte of the blob and
/// they hashed to the digest — renamed `<hex>.sent` once a document of the agency names
/// it. A DMS may name in a document, or ask about, only blobs its agency proved it holds,
/// so a digest learnt elsewhere opens nothing and tells nothing. Marks not yet sent count
/// against the agency's upload quota. A mark lost in a crash costs one re-upload.
#[derive(Debug)]
pub struct Uploads {
    dir: PathBuf,
}

impl Uploads {
    /// Opens (creating) `dir`, readable by the node's user only.
    pub fn open(dir: PathBuf) -> std::io::Result<Self> {
        create_private_dir(&dir)?;
        Ok(Uploads { dir })
    }

    fn agency_dir(&self, agency: &AgencyCode) -> PathBuf {
        self.dir.join(agency.as_str())
    }

    fn mark(&self, digest: &Digest, agency: &AgencyCode) -> PathBuf {
        self.agency_dir(agency).join(hex::encode(digest))
    }

    fn sent_mark(&self, digest: &Digest, agency: &AgencyCode) -> PathBuf {
        self.agency_dir(agency)
            .join(format!("{}.sent", hex::encode(digest)))
    }

    /// Whether `agency` proved here that it holds blob `digest`.
    pub fn proven(&self, digest: &Digest, agency: &AgencyCode) -> bool {
        self.mark(digest, agency).exists() || self.sent_mark(digest, agency).exists()
    }

    /// Notes, durably, that `agency` streamed all `size` bytes of blob `digest` and they
    /// hashed to it.
    pub fn note_proven(
        &self,
        digest: &Digest,
        agency: &AgencyCode,
        size: u64,
    ) -> std::io::Result<()> {
        if self.proven(digest, agency) {
            return Ok(());
        }
        let dir = self.agency_dir(agency);
        create_private_dir(&dir)?;
        let mut f = private_file(&self.mark(digest, agency))?;
        std::io::Write::write_all(&mut f, size.to_string().as_bytes())?;
        f.sync_all()?;
        std::fs::File::open(&dir)?.sync_all()
    }

    /// Notes that a document of `agency` names blob `digest`: it no longer counts
    /// against the agency's quota.
    pub fn note_sent(&self, digest: &Digest, agency: &AgencyCode) -> std::io::Result<()> {
        match std::fs::rename(self.mark(digest, agency), self.sent_mark(digest, agency)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Bytes of the blobs `agency` proved it holds that no document of its names yet.
    pub fn unsent_bytes(&self, agency: &AgencyCode) -> std::io::Result<u64> {
        let entries = match std::fs::read_dir(self.agency_dir(agency)) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e),
        };
        let mut total = 0u64;
        for entry in entries {
            let entry = entry?;
            if entry.file_name().to_string_lossy().ends_with(".sent") {
                continue;
            }
            let size = std::fs::read_to_string(entry.path())?;
            total = total.saturating_add(size.trim().parse().unwrap_or(0));
        }
        Ok(total)
    }
}

/// Creates `dir` (and its parents) with mode 0700, and makes an existing one 0700.
fn create_private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

/// Creates (truncating) a file with mode 0600.
fn private_file(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
}
