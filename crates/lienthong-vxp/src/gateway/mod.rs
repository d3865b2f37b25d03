//! The gateway direction: an HTTPS server existing DMSs call with the unchanged VXP SDK,
//! in front of a [`VxpBackend`]: [`BusBackend`], the lienthong node reached as a DMS.
//!
//! - [`config`]: systems, the agencies each may act for, the secrets file, limits;
//! - [`backend`]: the trait the bus implements, and the verified inputs it gets;
//! - [`bus`]: the backend over the node, through custodial DMS clients;
//! - [`spool`]: sendEdoc bodies streamed to a temporary file while hashed;
//! - [`router`]: the axum router: verify, authorize, dispatch, answer;
//! - [`serve`](mod@serve): TLS (ring) over a given listener until a shutdown future.

pub mod backend;
pub mod bus;
pub mod config;
pub mod router;
pub mod serve;
pub mod spool;

pub use backend::{EdocStream, EdocSubmission, SpooledEdoc, VxpBackend, idempotency_key};
pub use bus::BusBackend;
pub use config::{GatewayConfig, SystemConfig, SystemScope, Systems, read_secrets_file};
pub use router::{Gateway, GatewaySettings};
pub use serve::{HANDSHAKE_TIMEOUT, serve, server_tls_config};
