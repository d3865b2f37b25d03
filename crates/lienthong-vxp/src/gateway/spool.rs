//! Receiving a sendEdoc body: written to a temporary file as it arrives and hashed on the
//! way ([`EdocHasher`]), within a size limit, so that a message of any size costs a
//! buffer of memory. The file is kept only when the body matches its signed `hash-file`.

use std::path::Path;

use http_body_util::BodyExt;
use tokio::io::AsyncWriteExt;

use crate::error::{Result, VxpError};
use crate::gateway::backend::SpooledEdoc;
use crate::hash_file::{EdocHasher, hash_file_hex};

/// Reads `body` into a temporary file in `dir`, refusing more than `max` bytes of file
/// (the SDK's trailing CRLF is not counted), and checks it against `hash_file`.
pub async fn spool_body(
    body: axum::body::Body,
    dir: &Path,
    max: u64,
    hash_file: &str,
) -> Result<SpooledEdoc> {
    let unreadable = |reason: String| VxpError::BodyUnreadable { reason };
    let (file, path) = tempfile::Builder::new()
        .prefix("vxp-edoc-")
        .tempfile_in(dir)
        .map_err(|e| unreadable(format!("cannot create a file in {}: {e}", dir.display())))?
        .into_parts();
    let write_err = |e: std::io::Error| unreadable(format!("cannot write {}: {e}", path.display()));
    let mut out = tokio::io::BufWriter::with_capacity(256 * 1024, tokio::fs::File::from_std(file));
    let mut hasher = EdocHasher::new();
    let mut body = body;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| unreadable(e.to_string()))?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        // `max` plus the CRLF the SDK appends.
        if hasher.body_len() + data.len() as u64 > max.saturating_add(2) {
            return Err(VxpError::BodyTooLarge { limit: max });
        }
        let ready = hasher.update(&data);
        out.write_all(&ready).await.map_err(write_err)?;
    }
    let digest = hasher
        .finish(hash_file)
        .map_err(|computed| VxpError::HashFileMismatch {
            signed: hash_file.to_string(),
            computed: hash_file_hex(&computed),
        })?;
    if digest.len > max {
        return Err(VxpError::BodyTooLarge { limit: max });
    }
    out.write_all(&digest.tail).await.map_err(write_err)?;
    out.flush().await.map_err(write_err)?;
    Ok(SpooledEdoc {
        path,
        len: digest.len,
        sha256: digest.sha256,
    })
}
