//! Large attachments on their way to a neighbour: before a document whose attachments
//! are too large to travel inline is handed off, each blob the neighbour lacks is pushed
//! on its own stream, in chunks, from the neighbour's durable offset. A broken push fails
//! the link, which retries after its back-off and resumes.

use std::sync::Arc;
use std::time::Duration;

use lienthong_core::{Attachment, NodeId};
use lienthong_store::Digest;
use tokio::sync::mpsc;

use super::window::SLOWEST_BYTES_PER_SEC;
use crate::Error;
use crate::attachments::{chunk_bytes, read_chunks};
use crate::context::Context;
use crate::services::relay::LinkClient;

/// Pushes blob `attachment` to neighbour `hop` unless it holds it already, resuming from
/// its durable offset. Returns the bytes sent.
pub async fn push(ctx: &Arc<Context>, hop: &NodeId, attachment: &Attachment) -> Result<u64, Error> {
    let max = ctx.limits.max_message_bytes;
    let mut client = LinkClient::connect(ctx, hop)?;
    let digest = attachment.sha256;
    let there = client
        .blob_status(digest)
        .await
        .map_err(|s| Error::Transport(format!("blob status at {hop}: {s}")))?;
    if there.complete {
        return Ok(0);
    }
    let from = there.durable_bytes.min(attachment.size);
    if from > 0 {
        tracing::info!(node = %ctx.id, %hop, digest = %hex::encode(digest), from, size = attachment.size, "resuming blob push");
    }
    let mut rx = read_chunks(ctx.clone(), digest, attachment.size, from, chunk_bytes(max));
    let (tx, out) = mpsc::channel(1);
    // Read errors end the stream early; the neighbour then holds what came and reports
    // the blob incomplete, and the error is returned below.
    let reader = tokio::spawn(async move {
        while let Some(next) = rx.recv().await {
            match next {
                Ok(c) => {
                    if tx.send(c).await.is_err() {
                        return Ok(());
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    });
    // A neighbour that stops reading mid-push must not hold the push for ever: allow the
    // link's acknowledgement timeout plus the transfer at the slowest rate a link expects.
    let allowed = Duration::from_millis(ctx.delivery.ack_timeout_ms)
        + Duration::from_secs_f64((attachment.size - from) as f64 / SLOWEST_BYTES_PER_SEC);
    let result = match tokio::time::timeout(allowed, client.push_blob(out)).await {
        Ok(result) => result,
        Err(_) => {
            return Err(Error::Transport(format!(
                "pushing blob {} to {hop} took longer than {allowed:?}",
                hex::encode(digest)
            )));
        }
    };
    let read = reader
        .await
        .map_err(|e| Error::Io(std::io::Error::other(e)))?;
    read?;
    let answer = match result {
        Ok(answer) => answer,
        // The neighbour's bytes do not hash to the digest. Its partial file may have
        // started with bytes from elsewhere (an earlier push, a crash mid-write), so this
        // node's copy is damaged only if it fails the hash here too; otherwise the
        // neighbour dropped its partial file and the next attempt starts over.
        Err(s) if s.code() == tonic::Code::InvalidArgument => {
            return Err(if blob_intact(ctx, &digest, attachment.size).await? {
                Error::Transport(format!(
                    "{hop} refused blob {} ({}); it starts over",
                    hex::encode(digest),
                    s.message()
                ))
            } else {
                Error::Store(lienthong_store::Error::Corrupt(format!(
                    "blob {} as stored here no longer matches its digest ({hop} refused it: {})",
                    hex::encode(digest),
                    s.message()
                )))
            });
        }
        Err(s) => return Err(Error::Transport(format!("pushing blob to {hop}: {s}"))),
    };
    if !answer.complete {
        return Err(Error::Transport(format!(
            "{hop} holds {} of the {} bytes of blob {} after a push",
            answer.durable_bytes,
            attachment.size,
            hex::encode(digest)
        )));
    }
    let sent = attachment.size - from;
    tracing::info!(node = %ctx.id, %hop, digest = %hex::encode(digest), from, sent, "blob pushed");
    Ok(sent)
}

/// Whether this node's copy of blob `digest` still has its `size` bytes and hashes to
/// `digest`; read in chunks, never whole.
async fn blob_intact(ctx: &Context, digest: &Digest, size: u64) -> Result<bool, Error> {
    let mut hash = ring::digest::Context::new(&ring::digest::SHA256);
    let mut at = 0u64;
    while at < size {
        let data = ctx.store.read_blob(*digest, at, 1024 * 1024).await?;
        if data.is_empty() {
            return Ok(false);
        }
        hash.update(&data);
        at += data.len() as u64;
    }
    Ok(at == size && hash.finish().as_ref() == digest)
}
