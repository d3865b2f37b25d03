//! # lienthong-vxp
//!
//! The VXP HTTP protocol of Vietnam's national document-exchange platform, as its Java
//! SDK (VNPT SDKVXP 2.0.1) speaks it, in both directions from one module:
//!
//! - **gateway** ([`gateway`]): an HTTPS server that existing agency DMSs call with the
//!   unchanged SDK. A DMS moves to lienthong by changing its endpoint URL, system id and
//!   secret, nothing else.
//! - **client** ([`client`]): the same protocol from the calling side, for the bridge by
//!   which a lienthong node is one more "system" on the national platform (and for
//!   testing gateways).
//!
//! Both use one implementation of the signed headers ([`headers`]), one of the request
//! shapes ([`ops`]) and one of the responses ([`response`], [`get_edoc`]).
//!
//! ## Where the wire facts come from
//! `vxp-rest.md`, a description of the SDK established by running the unmodified jar
//! against a recording server, reading its bytecode and probing it with canned answers.
//! Each module cites the section it implements. In short: `XroadVnpt-*` headers in Java
//! `HashMap` order, never re-sorted; an HMAC-SHA256 over the received sign-header bytes;
//! `hash-file` in unpadded hex; a sendEdoc body of raw file bytes and one CRLF;
//! responses with `status`/`ErrorCode`/`ErrorDesc` always, `DocId` on sendEdoc even on
//! errors, ASCII-only JSON, never `null`; POSTs re-sent by the SDK, so sendEdoc and
//! updateStatus are idempotent; a timestamp frozen per SDK object, so freshness is off
//! by default.
//!
//! # Layout
//! - [`headers`]: building and verifying the signed headers; Java `HashMap` order; Gson
//!   JSON;
//! - [`hash_file`]: `hash-file` and the sendEdoc body's framing, hashed as a stream;
//! - [`timestamp`]: `ddMMyyyy'T'HHmmss+SSSS`, and an optional freshness check;
//! - [`ops`]: [`Operation`], the typed requests, read from and written to signed sets;
//! - [`response`]: the JSON answers, written ASCII-only, read leniently;
//! - [`get_edoc`]: getEdoc's answer written and read as a stream (base64 inside JSON);
//! - [`body`]: an HTTP body streamed from a reader (raw or base64);
//! - [`gateway`]: configuration, the [`VxpBackend`] trait, the axum router, TLS serving;
//! - [`client`]: [`VxpClient`] over hyper-util and rustls;
//! - [`error`]: [`VxpError`] and the one mapping to [`ErrorCode`].
//!
//! # On the node
//! [`BusBackend`] implements [`VxpBackend`] over the node reached as a DMS (one
//! `lienthong_client::DmsClient` per agency, with its custodial key); the node's `[vxp]`
//! section is a [`GatewayConfig`] and `lienthong_node::vxp` serves it beside the node.
//! The bridge direction (a node as one more system on the national platform) is
//! `lienthong_node::bridge`: a [`VxpClient`] for the node's platform account, the
//! platform's outbox and a loop that pulls its mailbox.
#![forbid(unsafe_code)]

pub mod body;
pub mod client;
pub mod error;
pub mod gateway;
pub mod get_edoc;
pub mod hash_file;
pub mod headers;
pub mod ops;
pub mod response;
pub mod timestamp;

pub use client::{ClientConfig, VxpClient};
pub use error::{BackendError, ErrorCode, Result, VxpError};
pub use gateway::{
    BusBackend, EdocStream, EdocSubmission, Gateway, GatewayConfig, SystemScope, VxpBackend,
};
pub use headers::{Secret, SecretStore, SignedHeaders, VerifiedRequest, verify};
pub use ops::{DeliveryStatus, MessageType, Operation, OperationKind, SendEdoc};
pub use response::{Outcome, to_ascii_json};
