//! What travels on a hand-off stream, as the link sees it: items one way, answers the
//! other. The relay service turns them into the wire's messages and back.

use lienthong_core::{AgencyCode, Receipt, RelayedEvent, StatusNotice};
use lienthong_proto::DocumentWithContent;

/// What one hand-off item carries.
#[derive(Debug)]
pub enum Handed {
    Document(Box<DocumentWithContent>),
    Status(Box<StatusNotice>),
    /// Transport events on their way back to their senders' home nodes.
    Events(Vec<RelayedEvent>),
}

/// One item of the hand-off stream.
#[derive(Debug)]
pub struct HandoffItem {
    /// Numbered per connection when sent; the answer names it.
    pub seq: u64,
    /// The message's id, for logs and the answer.
    pub id: String,
    pub message: Handed,
    /// The recipients reached through the neighbour (none for events, which name where
    /// they go themselves).
    pub recipients: Vec<AgencyCode>,
    /// The origin node's receipt of a document or status notice.
    pub origin_receipt: Option<Receipt>,
    /// About its size on the wire, for the window's byte budget.
    pub bytes: usize,
}

/// The neighbour's answer to one item: durable there, or refused.
#[derive(Debug, Clone)]
pub struct HandoffAck {
    pub seq: u64,
    pub id: String,
    pub duplicate: bool,
    /// Why the neighbour refused the item, with the gRPC code of the refusal.
    pub refused: Option<(tonic::Code, String)>,
}
