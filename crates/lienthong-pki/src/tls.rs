//! Mutual-TLS configurations for nodes and agency clients: rustls with the ring provider
//! only, client certificates required, CRLs honoured, ALPN `h2`, and the server's lienthong
//! identity checked by clients that know whom they dial.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, OtherError, RootCertStore, ServerConfig,
    SignatureScheme,
};

use crate::cert::peer_identity;
use crate::error::{Error, Result};
use crate::files::{load_certs, load_crls, load_private_key};
use crate::identity::Identity;

/// The one ALPN protocol lienthong speaks: gRPC over HTTP/2.
pub const ALPN_H2: &[u8] = b"h2";

/// Where a node's or agency client's TLS material lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM bundle of the CA certificates trusted to issue peer certificates.
    pub ca: PathBuf,
    /// PEM chain of this party's certificate (leaf first).
    pub cert: PathBuf,
    /// PEM private key of `cert`, readable by its owner only.
    pub key: PathBuf,
    /// PEM CRLs. When any is given, every peer certificate must be covered by a CRL of its
    /// issuer (fail closed): give the CRL of each CA in `ca`.
    pub crls: Vec<PathBuf>,
}

/// The crypto provider of every lienthong TLS config: ring, never the process default, so
/// that a second provider elsewhere in the graph cannot change what is used.
pub fn crypto_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The trust roots of `path`, failing when the file holds no certificate or one that
/// cannot serve as a trust anchor (tonic would skip it silently).
fn root_store(path: &Path) -> Result<Arc<RootCertStore>> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs(path)? {
        roots.add(cert).map_err(|e| Error::InvalidTrustRoots {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    }
    Ok(Arc::new(roots))
}

/// A client config for an HTTPS server outside lienthong (the national platform): the
/// server's certificate checked against the PEM roots in `ca` and its host name, as for
/// any web server; no client certificate.
pub fn web_client_config(ca: &Path) -> Result<ClientConfig> {
    let config = ClientConfig::builder_with_provider(crypto_provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::InvalidTrustRoots {
            path: ca.to_path_buf(),
            reason: e.to_string(),
        })?
        .with_root_certificates(root_store(ca)?)
        .with_no_client_auth();
    Ok(config)
}

/// This party's certificate chain and key, checked to carry a lienthong identity.
fn own_cert(files: &TlsFiles) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
    let chain = load_certs(&files.cert)?;
    peer_identity(&chain[0])
        .map_err(|e| Error::InvalidCertificate(format!("{}: {e}", files.cert.display())))?;
    let key = load_private_key(&files.key)?;
    Ok((chain, key))
}

fn key_mismatch(files: &TlsFiles) -> impl Fn(rustls::Error) -> Error + '_ {
    |e| match e {
        rustls::Error::InconsistentKeys(_) => Error::KeyMismatch {
            path: files.key.clone(),
            cert: files.cert.clone(),
        },
        e => Error::Tls(e),
    }
}

/// A server config that requires a client certificate issued by one of the CAs in
/// `files.ca` and not revoked by `files.crls`, and offers ALPN `h2` only.
///
/// The config proves the chain only; who the client is comes from
/// [`crate::peer_identity`] on `server_conn.peer_certificates()`.
pub fn server_config(files: &TlsFiles) -> Result<Arc<ServerConfig>> {
    let provider = crypto_provider();
    let roots = root_store(&files.ca)?;
    let crls = load_crls(&files.crls)?;
    let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider.clone())
        .with_crls(crls)
        .build()?;
    let (chain, key) = own_cert(files)?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(key_mismatch(files))?;
    config.alpn_protocols = vec![ALPN_H2.to_vec()];
    Ok(Arc::new(config))
}

/// A client config that presents `files.cert`, verifies the server's chain against
/// `files.ca` and `files.crls`, and offers ALPN `h2`.
///
/// With `expected_server`, the server certificate must carry exactly that identity, and
/// this check replaces the DNS-name/IP check: a node may then be dialled by any address,
/// since the CA-signed identity, not the address, says who it is. Without it, the server
/// name given to the connector must match a DNS or IP SAN of the certificate.
pub fn client_config(
    files: &TlsFiles,
    expected_server: Option<Identity>,
) -> Result<Arc<ClientConfig>> {
    let provider = crypto_provider();
    let roots = root_store(&files.ca)?;
    let crls = load_crls(&files.crls)?;
    let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
        .with_crls(crls)
        .build()?;
    let verifier: Arc<dyn ServerCertVerifier> = match expected_server {
        Some(expected) => Arc::new(IdentityVerifier {
            inner: webpki,
            expected,
        }),
        None => webpki,
    };
    let (chain, key) = own_cert(files)?;
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_auth_cert(chain, key)
        .map_err(key_mismatch(files))?;
    config.alpn_protocols = vec![ALPN_H2.to_vec()];
    Ok(Arc::new(config))
}

/// Verifies the server chain with webpki, then that the server is the expected lienthong
/// identity. Handshake signatures are webpki's.
#[derive(Debug)]
struct IdentityVerifier {
    inner: Arc<WebPkiServerVerifier>,
    expected: Identity,
}

fn other(e: Error) -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(e))))
}

impl ServerCertVerifier for IdentityVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            // webpki checks the name last, after chain, validity and revocation have
            // passed; the identity check below takes its place.
            Ok(_)
            | Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => {}
            Err(e) => return Err(e),
        }
        let actual = peer_identity(end_entity).map_err(other)?;
        if actual != self.expected {
            return Err(other(Error::WrongPeer {
                expected: self.expected.clone(),
                actual,
            }));
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }

    fn root_hint_subjects(&self) -> Option<&[rustls::DistinguishedName]> {
        self.inner.root_hint_subjects()
    }
}
