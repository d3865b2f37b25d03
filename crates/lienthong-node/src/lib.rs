//! # lienthong-node
//!
//! A node of the document-exchange bus, split along the path a message takes. Shared
//! handles sit at the bottom ([`context`]); every flow takes a [`context::Context`] and
//! none reaches back into a bigger object; only [`services`] knows the generated
//! protobuf types, and only [`node`] and [`services`] assemble the parts.
//!
//! ## Layout
//! - [`config`]: the TOML configuration, validated before any port is bound;
//! - [`context`]: the shared handles — id, signer, trust, store, directory, limits,
//!   signals, link states, disk guard, upload marks, lifecycle locks, quarantine;
//! - [`admission`]: the one way a document or status notice enters (checks, dedup,
//!   stamp, plan, one durable write), and what a DMS must pass first;
//! - [`lifecycle`]: the lifecycle index and the lookups behind the rules of
//!   `lienthong_core::lifecycle`;
//! - [`mailbox`]: a DMS's side — inbox, fetch, ack, track;
//! - [`attachments`]: large attachments in chunks, received and read back;
//! - [`uploads`]: the marks of what each agency proved it holds;
//! - [`signer`]: this node's own signatures (receipts, trace entries, the directory);
//! - [`events`]: transport events and their way back to the sender's home node;
//! - [`link`]: hand-off towards one neighbour — session, window, blob pushes, health;
//! - [`dead_letters`]: expiry, dead letters and operator actions on them;
//! - [`directory`]: the node's copy of the directory: source, cache, verification;
//! - [`external`]: the national platform's agency lists each bridge publishes;
//! - [`services`]: the gRPC services and the relay client — the edge to the wire;
//! - [`transport`]: mutual TLS of the server, peer identity from the certificate (the
//!   client side is `lienthong_client::transport`);
//! - [`node`]: the node assembled, and its own tasks;
//! - [`server`]: `run(config, listener, shutdown)`;
//! - [`vxp`]: the VXP gateway beside the node, a DMS of it;
//! - [`bridge`]: the bridge to the national platform (`[vxp_upstream]`): its agency
//!   lists, its outbox, its mailbox;
//! - [`error`]: the one error type and its mapping to gRPC status codes.
//!
//! The modules form no cycle: `use crate::` lines point from the flows to `context`
//! and to the flows below them, and from `services`/`node` to the flows.
#![forbid(unsafe_code)]

pub(crate) mod admission;
pub(crate) mod attachments;
pub mod bridge;
pub mod config;
pub(crate) mod context;
pub(crate) mod dead_letters;
pub mod directory;
pub mod error;
pub(crate) mod events;
pub(crate) mod external;
pub(crate) mod lifecycle;
pub mod link;
pub(crate) mod mailbox;
pub mod node;
pub mod server;
pub mod services;
pub(crate) mod signer;
pub mod transport;
pub(crate) mod uploads;
pub mod vxp;

pub use config::NodeConfig;
pub use error::Error;
pub use node::Node;
pub use server::run;
