//! # lienthong-pki
//!
//! Everything about certificates and keys, and nothing else: the certificate authority
//! that mints node and agency certificates and CRLs, private-key files (refused when group
//! or others can read them), the mutual-TLS configurations of nodes and agency clients
//! (rustls with the ring provider only), the lienthong identity a certificate speaks for,
//! and the check that a document signature was made by a certificate the CAs vouch for.
//!
//! # Layout
//! - [`identity`]: [`Identity`] — `urn:lienthong:node:<id>` / `urn:lienthong:agency:<code>`;
//! - [`cert`]: facts read from a DER certificate ([`peer_identity`], [`cert_public_key`],
//!   [`cert_not_after`], [`cert_serial`]);
//! - [`ca`]: [`CertificateAuthority`] — generate, save, load, issue, sign CRLs;
//! - [`revocation`]: the CA's revocation database (`revoked.toml`) every CRL is issued
//!   from, so that revocations accumulate ([`revocation::revoke`]);
//! - [`files`]: loading keys, certificates and CRLs from PEM files;
//! - [`tls`]: [`server_config`] and [`client_config`] from [`TlsFiles`];
//! - [`signer`]: [`TrustRoots::verify_signer`] for document signatures, against the same
//!   CAs and CRLs as TLS ([`TrustRoots::from_files`]);
//! - [`verify`]: the one check of each signed message (document, status notice, receipt,
//!   trace entry), shared by nodes and clients;
//! - [`error`]: the crate's one [`Error`].
#![forbid(unsafe_code)]

pub mod ca;
pub mod cert;
pub mod error;
pub mod files;
pub mod identity;
pub mod revocation;
pub mod signer;
pub mod tls;
pub mod verify;

pub use ca::{CertificateAuthority, IssuedCert, KeyKind};
pub use cert::{cert_not_after, cert_public_key, cert_serial, peer_identity};
pub use error::{Error, Result};
pub use files::{load_certs, load_crls, load_private_key, load_signing_key};
pub use identity::Identity;
pub use signer::{CachedTrust, TrustRoots};
pub use tls::{
    ALPN_H2, TlsFiles, client_config, crypto_provider, server_config, web_client_config,
};
