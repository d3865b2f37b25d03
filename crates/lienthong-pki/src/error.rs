//! The one error type of the PKI crate.

use std::path::PathBuf;

/// Everything that can go wrong with certificates, keys and TLS configuration. Each message
/// says what was wrong and, where there is one, what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}; check that the directory exists and is writable")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{path} already exists; refusing to overwrite a CA key (move it away first if you really mean to replace the CA)"
    )]
    AlreadyExists { path: PathBuf },
    #[error("private key {} is readable by group or others (mode {mode:04o}); run chmod 600 {}", path.display(), path.display())]
    KeyFileTooOpen { path: PathBuf, mode: u32 },
    #[error("{path} is not valid PEM: {reason}")]
    Pem { path: PathBuf, reason: String },
    #[error(
        "no private key found in {path}; expected a PEM file with a PKCS#8 'PRIVATE KEY' (or 'EC PRIVATE KEY' / 'RSA PRIVATE KEY') block"
    )]
    NoPrivateKey { path: PathBuf },
    #[error(
        "no certificate found in {path}; expected a PEM file with at least one 'CERTIFICATE' block"
    )]
    NoCertificate { path: PathBuf },
    #[error(
        "no certificate revocation list found in {path}; expected a PEM file with an 'X509 CRL' block"
    )]
    NoCrl { path: PathBuf },
    #[error("invalid certificate: {0}")]
    InvalidCertificate(String),
    #[error("the trusted CA certificates in {path} could not be used: {reason}")]
    InvalidTrustRoots { path: PathBuf, reason: String },
    #[error(
        "the certificate has no SAN URI starting with urn:lienthong:; issue it from the lienthong CA for a node id or an agency code"
    )]
    NoIdentity,
    #[error("the certificate has several lienthong identities ({}); a certificate must name exactly one node or agency", .0.join(", "))]
    SeveralIdentities(Vec<String>),
    #[error(
        "malformed lienthong identity {uri:?}: {reason} (expected urn:lienthong:node:<node id> or urn:lienthong:agency:<agency code>)"
    )]
    MalformedIdentity { uri: String, reason: String },
    #[error(
        "the private key in {path} does not belong to the certificate {cert}; use the key the certificate was issued for"
    )]
    KeyMismatch { path: PathBuf, cert: PathBuf },
    #[error(
        "the peer is {actual} but {expected} was expected; check the peer's address in the directory"
    )]
    WrongPeer {
        expected: crate::Identity,
        actual: crate::Identity,
    },
    #[error(
        "unsupported public key in certificate: {0}; lienthong accepts Ed25519, ECDSA P-256 and RSA keys"
    )]
    UnsupportedKey(String),
    #[error(
        "the signature claims algorithm {declared} but the signer certificate holds a {in_cert} key"
    )]
    AlgorithmMismatch {
        declared: lienthong_core::SignatureAlgorithm,
        in_cert: lienthong_core::SignatureAlgorithm,
    },
    #[error(
        "the signer certificate is not trusted: {0}; it must be issued by a trusted CA, be within its validity period and not be revoked"
    )]
    UntrustedSigner(webpki::Error),
    #[error(
        "the signer certificate with serial {serial} ({signer}) was revoked by its CA; nothing it signs is accepted: the signer needs a new certificate"
    )]
    RevokedSigner { serial: String, signer: String },
    #[error("the signature does not verify: {0}")]
    BadSignature(#[source] lienthong_core::Error),
    #[error("invalid signing key in {path}: {source}")]
    InvalidSigningKey {
        path: PathBuf,
        #[source]
        source: lienthong_core::Error,
    },
    #[error("invalid certificate revocation list: {0}")]
    InvalidCrl(String),
    #[error(
        "{path} holds a CRL that this CA did not sign; write this CA's CRL to another file (each CA needs its own)"
    )]
    ForeignCrl { path: PathBuf },
    #[error("the revocation database {path} is damaged: {reason}; restore it from the CA's backup")]
    InvalidRevocationDb { path: PathBuf, reason: String },
    #[error("cannot generate a certificate or key: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("cannot build the TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    #[error("cannot build the TLS certificate verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
}

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
