//! # lienthong-node
//!
//! A node of the document-exchange bus.
//!
//! ## Layout
//! - [`config`]: the TOML configuration, validated before any port is bound;
//! - [`transport`]: mutual TLS on both ends, peer identity from the certificate;
//! - [`node`]: the rules — who may send what, signature and digest checks, durable
//!   acceptance, inboxes, status routing, tracking;
//! - [`agency`], [`admin`]: the gRPC services, translating the wire to [`node::Node`];
//! - [`server`]: `run(config, listener, shutdown)`;
//! - [`error`]: the one error type and its mapping to gRPC status codes.
#![forbid(unsafe_code)]

pub mod admin;
pub mod agency;
pub mod attachments;
pub mod client;
pub mod config;
pub mod delivery;
pub mod directory;
pub mod error;
pub mod lifecycle;
pub mod node;
pub mod relay;
pub mod server;
pub mod transport;

pub use config::NodeConfig;
pub use error::Error;
pub use node::Node;
pub use server::run;
