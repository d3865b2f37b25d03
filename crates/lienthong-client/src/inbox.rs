//! A DMS's inbox as the client sees it: [`InboxItem`]s listed page by page or pushed on a
//! subscription.

use lienthong_proto::pb;
use tokio_stream::{Stream, StreamExt};

use crate::{DmsClient, Error};

/// What an inbox entry holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InboxKind {
    Document,
    /// A status notice (business status, or a transport event for the sender).
    Status,
}

/// One message waiting in the inbox, described without its content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxItem {
    /// Its place in the inbox: page and resume with the last one seen.
    pub cursor: u64,
    pub id: String,
    pub kind: InboxKind,
    /// 0 normal, higher more urgent.
    pub priority: u32,
    /// The sending agency.
    pub from: String,
    /// Documents: the subject (trích yếu); statuses: the code and the document id.
    pub subject: String,
    pub received_at_unix_ms: i64,
    /// On a subscription: probably shown before but never acknowledged (a hint; the DMS
    /// deduplicates on `id`).
    pub redelivered: bool,
    /// Documents: "revoked", "replaced" or "updated" once the node has admitted such a
    /// business message about it; empty otherwise.
    pub business_state: String,
    /// The id of that revoke, replacement or latest update.
    pub superseded_by: String,
    /// Documents: the business type (0 new, 1 revoke, 2 update, 3 replace).
    pub business_type: u32,
    /// For business types 1–3, the documents it refers to.
    pub references: Vec<String>,
}

impl From<pb::InboxEntry> for InboxItem {
    fn from(e: pb::InboxEntry) -> Self {
        InboxItem {
            cursor: e.cursor,
            kind: match e.kind() {
                pb::MessageKind::Status => InboxKind::Status,
                _ => InboxKind::Document,
            },
            id: e.id,
            priority: e.priority,
            from: e.from,
            subject: e.subject,
            received_at_unix_ms: e.received_at_unix_ms,
            redelivered: e.redelivered,
            business_state: e.business_state,
            superseded_by: e.superseded_by,
            business_type: e.business_type,
            references: e.references,
        }
    }
}

impl DmsClient {
    /// The most urgent entries first, at most `limit` (0: the node's default): the head
    /// of the queue, for a loop that lists, fetches, acknowledges and lists again.
    pub async fn list_inbox(&self, after_cursor: u64, limit: u32) -> Result<Vec<InboxItem>, Error> {
        self.list(after_cursor, limit, false).await
    }

    /// Lists the inbox in order of arrival after `after_cursor`: page with the last
    /// cursor of the previous page.
    pub async fn list_inbox_by_arrival(
        &self,
        after_cursor: u64,
        limit: u32,
    ) -> Result<Vec<InboxItem>, Error> {
        self.list(after_cursor, limit, true).await
    }

    async fn list(
        &self,
        after_cursor: u64,
        limit: u32,
        arrival_order: bool,
    ) -> Result<Vec<InboxItem>, Error> {
        Ok(self
            .rpc
            .clone()
            .list_inbox(pb::ListInboxRequest {
                after_cursor,
                limit,
                arrival_order,
            })
            .await?
            .into_inner()
            .entries
            .into_iter()
            .map(InboxItem::from)
            .collect())
    }

    /// Every entry after `after_cursor` (0: all), then each new one as it arrives, until
    /// the connection ends.
    pub async fn subscribe(
        &self,
        after_cursor: u64,
    ) -> Result<impl Stream<Item = Result<InboxItem, Error>> + Send + Unpin + 'static, Error> {
        let stream = self
            .rpc
            .clone()
            .subscribe(pb::SubscribeRequest { after_cursor })
            .await?
            .into_inner();
        Ok(stream.map(|entry| entry.map(InboxItem::from).map_err(Error::from)))
    }
}
