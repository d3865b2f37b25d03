//! Who may read the store's files: only the account that runs the node. Every file the
//! store creates is made mode 0600 and every directory 0700, whatever the umask: the
//! store holds whole documents, receipts and attachments of state agencies.
//!
//! sled creates its own files with the default mode; its directory is made 0700 before
//! sled opens it, and what sled created is narrowed after it opened and after each
//! checkpoint (sled adds files for large pages later).

use std::fs::{self, DirBuilder, OpenOptions, Permissions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Mode of every file of the store.
pub(crate) const FILE_MODE: u32 = 0o600;
/// Mode of every directory of the store.
pub(crate) const DIR_MODE: u32 = 0o700;

/// Creates `dir` and its missing parents with [`DIR_MODE`], and gives `dir` that mode if
/// it existed with another.
pub(crate) fn create_dir(dir: &Path) -> io::Result<()> {
    DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)?;
    narrow(dir, DIR_MODE)
}

/// Options that create a file with [`FILE_MODE`].
pub(crate) fn options() -> OpenOptions {
    let mut o = OpenOptions::new();
    o.mode(FILE_MODE);
    o
}

/// Gives `path` mode `mode` unless it has it (bits beyond the permissions are left).
fn narrow(path: &Path, mode: u32) -> io::Result<()> {
    let current = fs::symlink_metadata(path)?.permissions().mode();
    if current & 0o7777 != mode {
        fs::set_permissions(path, Permissions::from_mode(mode))?;
    }
    Ok(())
}

/// Gives every file under `dir` [`FILE_MODE`] and every directory [`DIR_MODE`], `dir`
/// included (for the files sled creates itself). A file removed meanwhile is skipped.
pub(crate) fn narrow_tree(dir: &Path) -> io::Result<()> {
    narrow(dir, DIR_MODE)?;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let kind = match entry.file_type() {
            Ok(kind) => kind,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let narrowed = if kind.is_dir() {
            narrow_tree(&entry.path())
        } else if kind.is_file() {
            narrow(&entry.path(), FILE_MODE)
        } else {
            Ok(())
        };
        match narrowed {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            other => other?,
        }
    }
    Ok(())
}
