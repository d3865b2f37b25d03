//! The platform's outbox at the bridge, kept like a link: entries leave it only once the
//! platform answered `sendEdoc` with a DocId (recorded in the journal first), in priority
//! order; a platform that cannot be reached is retried with back-off and a circuit; an
//! expired message is dead-lettered; a message the platform refuses (it answered FAIL)
//! is dead-lettered with the platform's reason, and an operator may retry it.
//!
//! Each message goes out as edXML: an imported one as it came in (from its preserved
//! part, the bus's hops appended to the trace unless its DMS signed it), a native one written by the strict
//! writer; from the sending agency's identifier as its directory entry gives it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use lienthong_client::{Incoming, VerifiedDocument};
use lienthong_core::external::platform_hop;
use lienthong_core::{AgencyCode, NodeId, TransportEventKind, now_millis};
use lienthong_proto::stored;
use lienthong_store::{Handed, MessageKind, OutboxEntry};
use lienthong_vxp::{MessageType, VxpError};
use tokio::sync::watch;

use super::Bridge;
use crate::Error;
use crate::dead_letters::{self, Undeliverable};
use crate::link::{LinkHealth, LinkPhase};

/// Outbox entries read at once.
const BATCH: usize = 16;

/// Why one entry did not leave.
enum Failure {
    /// The platform answered FAIL: the message itself is refused.
    Refused(String),
    /// The platform (or this node) could not do it now: try again later.
    Down(String),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Down(e.to_string())
    }
}

/// Keeps the platform's outbox moving until `stop` turns true.
pub async fn run(bridge: Arc<Bridge>, mut stop: watch::Receiver<bool>) {
    let ctx = &bridge.ctx;
    let hop = platform_hop();
    let mut grew = ctx.signals.watch_outbox(&hop);
    let mut health = LinkHealth::new(ctx.delivery.clone());
    loop {
        if *stop.borrow() {
            return;
        }
        let entries = match ctx.store.outbox(&hop, BATCH) {
            Ok(entries) => entries,
            Err(e) => {
                tracing::error!(node = %ctx.id, error = %e, "platform outbox unreadable");
                Vec::new()
            }
        };
        if entries.is_empty() {
            tokio::select! {
                _ = grew.changed() => {}
                _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            continue;
        }
        let mut down = None;
        for entry in &entries {
            match send_one(&bridge, &hop, entry).await {
                Ok(()) => {}
                Err(Failure::Refused(reason)) => {
                    let why = Undeliverable::Refused {
                        by: hop.clone(),
                        reason,
                    };
                    if let Err(e) = dead_letters::dead_letter(ctx, &hop, entry, why).await {
                        down = Some(e.to_string());
                        break;
                    }
                }
                Err(Failure::Down(error)) => {
                    down = Some(error);
                    break;
                }
            }
        }
        match down {
            None => {
                health.succeeded();
                ctx.links.set(&hop, |s| {
                    s.phase = LinkPhase::Up;
                    s.consecutive_failures = 0;
                    s.retry_at = None;
                });
            }
            Some(error) => {
                let (wait, _) = ctx.links.failed(&hop, &mut health, &error);
                let failures = health.failures();
                tracing::warn!(node = %ctx.id, %error, failures, wait_ms = wait.as_millis() as u64, "national platform unreachable; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
            }
        }
    }
}

/// Sends one outbox entry to the platform (once: see the journal) and removes it.
async fn send_one(bridge: &Bridge, hop: &NodeId, entry: &OutboxEntry) -> Result<(), Failure> {
    let ctx = &bridge.ctx;
    let message = entry.message.to_string();
    if let Some(platform_id) = bridge.journal.sent(&message) {
        // Sent before a crash cut the removal short.
        return Ok(handed(bridge, hop, entry, &platform_id, None).await?);
    }
    let Some(stored_message) = ctx.store.message(&entry.message).map_err(Error::from)? else {
        return Err(Failure::Down(format!(
            "{message} is missing from the store"
        )));
    };
    if let Ok(Some(deadline)) = dead_letters::expires_at(&stored_message, &ctx.delivery)
        && deadline <= now_millis()
    {
        dead_letters::dead_letter(ctx, hop, entry, Undeliverable::Expired(deadline)).await?;
        return Ok(());
    }
    let receipt = stored::decode_receipt(&stored_message.receipt).map_err(Error::from)?;
    let envelope = &stored_message.envelope;
    let (incoming, message_type, sender) = match envelope.kind {
        MessageKind::Document => {
            let document = stored::decode_document(&envelope.encoded).map_err(Error::from)?;
            let mut contents = Vec::with_capacity(document.attachments.len());
            for a in &document.attachments {
                contents.push(ctx.store.blob(a.sha256).await.map_err(Error::from)?);
            }
            let sender = document.sender().map_err(Error::from)?.clone();
            (
                Incoming::Document(VerifiedDocument {
                    document,
                    contents,
                    receipt,
                }),
                MessageType::Edoc,
                sender,
            )
        }
        MessageKind::Status => {
            let notice = stored::decode_status(&envelope.encoded).map_err(Error::from)?;
            let sender = notice.sender().map_err(Error::from)?.clone();
            (
                Incoming::Status { notice, receipt },
                MessageType::Status,
                sender,
            )
        }
        // Transport events name nodes of the tree; none is for the platform.
        MessageKind::Event => return Ok(remove(bridge, hop, entry, &[]).await?),
    };
    let directory = ctx.directory.current();
    let from = directory
        .edxml_id(&sender)
        .map(str::to_string)
        .unwrap_or_else(|| sender.to_string());
    let file = tempfile::Builder::new()
        .prefix("out-")
        .suffix(".edxml")
        .tempfile_in(&bridge.spool)
        .map_err(Error::from)?
        .into_temp_path();
    let path: PathBuf = file.to_path_buf();
    let written = {
        let path = path.clone();
        let directory = directory.clone();
        tokio::task::spawn_blocking(move || {
            lienthong_client::edxml::export_edxml(
                &path,
                &incoming,
                &|_, _| PathBuf::new(),
                Some(&directory),
            )
            .map(|()| incoming)
        })
        .await
        .map_err(|e| Failure::Down(e.to_string()))?
    };
    let incoming = match written {
        Ok(incoming) => incoming,
        // A message that cannot be written as edXML never will be.
        Err(e) => {
            return Err(Failure::Refused(format!(
                "it cannot be written as edXML: {e}"
            )));
        }
    };
    let timestamp = bridge
        .journal
        .attempt(&message, || bridge.platform.timestamp())?;
    match bridge
        .platform
        .send_edoc_at(&from, message_type, None, &path, &timestamp)
        .await
    {
        Ok(platform_id) => {
            bridge.journal.note_sent(&message, &platform_id)?;
            tracing::info!(node = %ctx.id, id = %entry.message, %platform_id, "sent to the national platform");
            let trace = match &incoming {
                Incoming::Document(v) => Some((sender, v.document.trace.clone())),
                Incoming::Status { .. } => None,
            };
            Ok(handed(bridge, hop, entry, &platform_id, trace).await?)
        }
        Err(e @ VxpError::Remote { .. }) => Err(Failure::Refused(format!(
            "the national platform refused it: {e}"
        ))),
        Err(e) => Err(Failure::Down(e.to_string())),
    }
}

/// Removes a sent entry from the outbox with one event per recipient, and for a document
/// tells its sender's home node it reached the platform.
async fn handed(
    bridge: &Bridge,
    hop: &NodeId,
    entry: &OutboxEntry,
    platform_id: &str,
    document: Option<(AgencyCode, Vec<lienthong_core::TraceEntry>)>,
) -> Result<(), Error> {
    let ctx = &bridge.ctx;
    let detail = format!(
        "to the national platform ({} as system {}), its DocId {platform_id}",
        bridge.config.endpoint, bridge.config.system_id
    );
    let events: Vec<_> = entry
        .recipients
        .iter()
        .map(|r| ctx.event(TransportEventKind::Delivered, Some(r), detail.clone()))
        .collect();
    remove(bridge, hop, entry, &events).await?;
    if let Some((sender, trace)) = document {
        let d = ctx.directory.current();
        if ctx.towards_sender(&d, &sender).is_some() {
            for e in events {
                crate::events::forward(ctx, &d, &entry.message, &sender, e, &trace).await?;
            }
        }
    }
    Ok(())
}

/// Takes `entry` out of the platform's outbox, appending `events` to its message's log.
async fn remove(
    bridge: &Bridge,
    hop: &NodeId,
    entry: &OutboxEntry,
    events: &[lienthong_core::TransportEvent],
) -> Result<(), Error> {
    let handed = Handed {
        key: entry.key.clone(),
        message: entry.message.clone(),
        events: events
            .iter()
            .map(|e| stored::encode_event(e).into())
            .collect(),
    };
    Ok(bridge.ctx.store.outbox_remove(hop, vec![handed]).await?)
}
