//! The platform's mailbox, polled every `poll_ms`: each message (`getReceivedEdocList`,
//! documents then statuses) is fetched (`getEdoc`) into a file, imported leniently
//! (platform account ids and legacy codes through the directory's aliases and the
//! platform's own agency list), signed by this bridge as imported from the platform,
//! and admitted — one durable write, routed to the recipient's home node — and only then
//! acknowledged on the platform with `updateStatus done`.
//!
//! A crash between the admission and the acknowledgement redelivers the message: the
//! journal knows it was imported (or gives the same creation time again, so that the
//! re-import is the same message and gets the first receipt). A message that cannot be
//! imported is kept in the quarantine folder with its reason, logged, and answered with
//! `updateStatus fail`; the messages after it go on.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use lienthong_client::edxml::{ImportedEdxml, ImportedMessage};
use lienthong_core::directory::{AgencyEntry, DirectoryIndex};
use lienthong_core::external::ExternalIndex;
use lienthong_core::id::Agency;
use lienthong_core::{AgencyCode, Imported, UnixMillis, canonical, now_millis};
use lienthong_proto::DocumentWithContent;
use lienthong_vxp::{DeliveryStatus, MessageType};
use tokio::sync::watch;

use super::journal::Import;
use super::{Bridge, pause};
use crate::Error;
use crate::admission::{self, Origin};

/// Why a platform message was not imported.
enum NotImported {
    /// It never will be: quarantined with this reason.
    Unusable(String),
    /// Not now (this node cannot store it, the platform did not answer): next poll.
    Later(Error),
}

impl From<Error> for NotImported {
    fn from(e: Error) -> Self {
        NotImported::Later(e)
    }
}

pub async fn run(bridge: Arc<Bridge>, mut stop: watch::Receiver<bool>) {
    let ctx = &bridge.ctx;
    // Rebuilt only when the directory or the platform's lists change (the national list
    // is large), not on every poll.
    let mut placement: Option<(Arc<DirectoryIndex>, Arc<ExternalIndex>, DirectoryIndex)> = None;
    loop {
        let (d, external) = (ctx.directory.current(), ctx.external.index());
        let fresh = placement
            .as_ref()
            .is_some_and(|(pd, pe, _)| Arc::ptr_eq(pd, &d) && Arc::ptr_eq(pe, &external));
        if !fresh {
            let built = placement_directory(ctx, &d, &external);
            placement = Some((d, external, built));
        }
        let placement = &placement.as_ref().expect("built above").2;
        for message_type in [MessageType::Edoc, MessageType::Status] {
            let listed = match bridge.platform.received_edocs(message_type).await {
                Ok(listed) => listed,
                Err(e) => {
                    tracing::warn!(node = %ctx.id, error = %e, "national platform mailbox not read");
                    continue;
                }
            };
            for item in listed {
                if *stop.borrow() {
                    return;
                }
                let Some(doc_id) = item.doc_id.filter(|d| !d.trim().is_empty()) else {
                    continue;
                };
                if let Err(e) = receive(&bridge, placement, &doc_id).await {
                    tracing::warn!(node = %ctx.id, %doc_id, error = %e, "platform message not imported yet");
                }
            }
        }
        if !pause(&mut stop, bridge.config.poll_ms).await {
            return;
        }
    }
}

/// Imports platform message `doc_id` (unless the journal says it was) and acknowledges it.
async fn receive(bridge: &Bridge, placement: &DirectoryIndex, doc_id: &str) -> Result<(), Error> {
    let platform = &bridge.platform;
    let created_at = match bridge.journal.import(doc_id) {
        Import::Imported(_) => return ack(bridge, doc_id, DeliveryStatus::Done).await,
        Import::Quarantined(_) => return ack(bridge, doc_id, DeliveryStatus::Fail).await,
        Import::Started(at) => at,
        Import::New => {
            let at = now_millis();
            bridge.journal.note_importing(doc_id, at)?;
            at
        }
    };
    let file = tempfile::Builder::new()
        .prefix("in-")
        .suffix(".edxml")
        .tempfile_in(&bridge.spool)?
        .into_temp_path();
    let len = {
        let mut out = tokio::fs::File::create(&file).await?;
        let len = platform
            .get_edoc(doc_id, &mut out)
            .await
            .map_err(|e| Error::Transport(e.to_string()))?;
        out.sync_all().await?;
        len
    };
    let dsig = lienthong_vxp::gateway::bus::dms_signature_of(&file, len).await;
    match import(bridge, placement, &file, doc_id, created_at, dsig).await {
        Ok(id) => {
            bridge.journal.note_imported(doc_id, &id)?;
            tracing::info!(node = %bridge.ctx.id, %doc_id, %id, "imported from the national platform");
            ack(bridge, doc_id, DeliveryStatus::Done).await
        }
        Err(NotImported::Unusable(reason)) => {
            let kept = bridge
                .quarantine
                .join(format!("{}.edxml", file_safe(doc_id)));
            std::fs::copy(&file, &kept)?;
            std::fs::write(kept.with_extension("reason"), format!("{reason}\n"))?;
            bridge.journal.note_quarantined(doc_id, &reason)?;
            tracing::error!(node = %bridge.ctx.id, %doc_id, %reason, kept = %kept.display(), "platform message quarantined; answered fail");
            ack(bridge, doc_id, DeliveryStatus::Fail).await
        }
        Err(NotImported::Later(e)) => Err(e),
    }
}

async fn ack(bridge: &Bridge, doc_id: &str, status: DeliveryStatus) -> Result<(), Error> {
    bridge
        .platform
        .update_status(doc_id, status)
        .await
        .map_err(|e| Error::Transport(e.to_string()))
}

/// Imports the edXML at `path` and admits it; returns its message id.
async fn import(
    bridge: &Bridge,
    placement: &DirectoryIndex,
    path: &Path,
    doc_id: &str,
    created_at: UnixMillis,
    dsig: String,
) -> Result<String, NotImported> {
    let ctx = &bridge.ctx;
    let input = std::fs::File::open(path).map_err(Error::from)?;
    let staging = bridge.spool.clone();
    let placement_for_read = placement.clone();
    let imported = tokio::task::spawn_blocking(move || {
        ImportedEdxml::read(input, Some(&staging), Some(&placement_for_read))
    })
    .await
    .map_err(|e| Error::Io(std::io::Error::other(e)))?
    .map_err(|e| NotImported::Unusable(format!("it cannot be imported: {e}")))?;
    let d = ctx.directory.current();
    let stamp = Imported {
        bridge: ctx.id.clone(),
        platform_id: doc_id.to_string(),
        dsig,
    };
    let ours = |sender: &AgencyCode| -> Result<(), NotImported> {
        if d.agency(sender).is_some() {
            return Err(NotImported::Unusable(format!(
                "it is from {sender}, an agency of this deployment's directory; the bridge \
                 never speaks for one of ours"
            )));
        }
        Ok(())
    };
    let admitted = match &imported.message {
        ImportedMessage::Document {
            document,
            inline,
            uploads,
        } => {
            let mut document = document.clone();
            let sender = document.sender().map_err(Error::from)?.clone();
            ours(&sender)?;
            let recipients: Vec<AgencyCode> = document
                .recipients()
                .map_err(Error::from)?
                .into_iter()
                .filter(|r| d.home_of(r).is_some())
                .collect();
            if recipients.is_empty() {
                return Err(NotImported::Unusable(
                    "it is addressed to no agency of this deployment".into(),
                ));
            }
            let mut files = uploads.iter();
            let mut contents = Vec::with_capacity(inline.len());
            for (a, content) in document.attachments.iter().zip(inline) {
                if content.is_empty() && a.size > 0 {
                    let file = files.next().ok_or_else(|| {
                        NotImported::Unusable(format!("attachment {:?} has no content", a.name))
                    })?;
                    contents.push(Bytes::from(std::fs::read(&file.path).map_err(Error::from)?));
                } else {
                    contents.push(content.clone());
                }
            }
            document.created_at = created_at;
            document.imported = Some(stamp);
            document.signature = Some(ctx.signer.sign(&canonical::document_bytes(&document))?);
            let id = document.id.to_string();
            let message = Box::new(DocumentWithContent { document, contents });
            admission::admit(
                ctx,
                admission::Incoming::Document {
                    message,
                    recipients,
                },
                Origin::Agency(sender),
            )
            .await
            .map(|_| id)
        }
        ImportedMessage::Status(notice) => {
            let mut notice = notice.clone();
            let sender = notice.sender().map_err(Error::from)?.clone();
            ours(&sender)?;
            if d.home_of(&notice.to).is_none() {
                return Err(NotImported::Unusable(format!(
                    "the status is for {}, which is no agency of this deployment",
                    notice.to
                )));
            }
            notice.imported = Some(stamp);
            notice.signature = Some(ctx.signer.sign(&canonical::status_bytes(&notice))?);
            let id = notice.id.to_string();
            admission::admit(
                ctx,
                admission::Incoming::Status(Box::new(notice)),
                Origin::Agency(sender),
            )
            .await
            .map(|_| id)
        }
    };
    admitted.map_err(|e| match e.code() {
        tonic::Code::Unavailable | tonic::Code::Internal | tonic::Code::ResourceExhausted => {
            NotImported::Later(e)
        }
        _ => NotImported::Unusable(format!("the node refused it: {e}")),
    })
}

/// The directory an imported message's identifiers are placed with: ours, plus every
/// agency the platform's lists hold (homed, for placement only, at this bridge), with
/// the aliases that name them and no agency of ours.
fn placement_directory(
    ctx: &crate::context::Context,
    d: &DirectoryIndex,
    external: &ExternalIndex,
) -> DirectoryIndex {
    if external.is_empty() {
        return d.clone();
    }
    let mut directory = (**d).clone();
    directory.signature = None;
    for list in external.lists() {
        for a in &list.agencies {
            if external.resolve(a.code.as_str()).as_ref() != Some(&a.code)
                || directory.agencies.iter().any(|e| e.agency.code == a.code)
            {
                continue;
            }
            let aliases = a
                .aliases
                .iter()
                .filter(|alias| external.resolve(alias).as_ref() == Some(&a.code))
                .filter(|alias| AgencyCode::parse(alias.trim()).is_err())
                .cloned()
                .collect();
            directory.agencies.push(AgencyEntry {
                agency: Agency {
                    code: a.code.clone(),
                    name: a.name.clone(),
                    aliases,
                    edxml_id: None,
                },
                home: ctx.id.clone(),
            });
        }
    }
    DirectoryIndex::new(directory).unwrap_or_else(|e| {
        tracing::warn!(error = %e, "platform agencies left out of placement");
        d.clone()
    })
}

/// A platform id as a file name: anything but letters, digits, `-`, `_` and `.` becomes `_`.
fn file_safe(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}
