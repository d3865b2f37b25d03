//! Who signed a document, receipt or trace entry: the signer certificate carried in a
//! [`Signature`] must chain to the trusted CAs, be valid and unrevoked, and its key must
//! verify the signature.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use lienthong_core::Signature;
use lienthong_core::sign::SignatureAlgorithm;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, TrustAnchor, UnixTime};
use webpki::{CertRevocationList, EndEntityCert, KeyUsage, OwnedCertRevocationList};

use crate::cert::{cert_public_key, peer_identity};
use crate::error::{Error, Result};
use crate::files::{load_certs, load_crls};
use crate::identity::Identity;
use crate::tls::TlsFiles;

/// The CA certificates (and optionally CRLs) that signer certificates are checked against.
#[derive(Debug)]
pub struct TrustRoots {
    anchors: Vec<TrustAnchor<'static>>,
    crls: Vec<CertRevocationList<'static>>,
}

impl TrustRoots {
    /// The CA certificates and CRLs of a node's or client's TLS files: signer
    /// certificates are checked against the same roots and revocations as TLS peers.
    /// This is how nodes and clients build their trust.
    pub fn from_files(files: &TlsFiles) -> Result<Self> {
        Self::load(&files.ca)?.with_crls(load_crls(&files.crls)?)
    }

    /// The CA certificates of a PEM bundle, without CRLs; fails when it holds none or an
    /// unusable one. A party that has CRLs uses [`TrustRoots::from_files`].
    pub fn load(ca_path: impl AsRef<Path>) -> Result<Self> {
        let path = ca_path.as_ref();
        Self::from_der(load_certs(path)?.iter().map(|c| c.as_ref())).map_err(|e| match e {
            Error::InvalidCertificate(reason) => Error::InvalidTrustRoots {
                path: path.to_path_buf(),
                reason,
            },
            e => e,
        })
    }

    /// The given DER CA certificates.
    pub fn from_der<'a>(certs: impl IntoIterator<Item = &'a [u8]>) -> Result<Self> {
        let mut anchors = Vec::new();
        for der in certs {
            let der = CertificateDer::from(der);
            let anchor = webpki::anchor_from_trusted_cert(&der)
                .map_err(|e| Error::InvalidCertificate(format!("unusable CA certificate ({e})")))?;
            anchors.push(anchor.to_owned());
        }
        if anchors.is_empty() {
            return Err(Error::InvalidCertificate(
                "no CA certificate given to trust".into(),
            ));
        }
        Ok(TrustRoots {
            anchors,
            crls: Vec::new(),
        })
    }

    /// Also rejects signers revoked by these CRLs (see [`crate::load_crls`]). As for TLS,
    /// once a CRL is given each signer's issuer must have one.
    pub fn with_crls(
        mut self,
        crls: impl IntoIterator<Item = CertificateRevocationListDer<'static>>,
    ) -> Result<Self> {
        for crl in crls {
            let owned = OwnedCertRevocationList::from_der(crl.as_ref())
                .map_err(|e| Error::InvalidCrl(e.to_string()))?;
            self.crls.push(owned.into());
        }
        Ok(self)
    }

    /// Checks `sig` over `message` now and returns who signed; see
    /// [`TrustRoots::verify_signer_at`].
    pub fn verify_signer(&self, sig: &Signature, message: &[u8]) -> Result<Identity> {
        self.verify_signer_at(sig, message, SystemTime::now())
    }

    /// Checks `sig` over `message` as of `at` and returns who signed: the signer
    /// certificate chains to the roots, is valid at `at` and not revoked by the CRLs
    /// given ([`Error::RevokedSigner`] if it is), is usable for client authentication,
    /// holds a key of the algorithm the signature claims, and that key verifies the
    /// signature. Every signature check of documents, status notices, receipts, trace
    /// entries and directories comes through here.
    pub fn verify_signer_at(
        &self,
        sig: &Signature,
        message: &[u8],
        at: SystemTime,
    ) -> Result<Identity> {
        let cert_der = CertificateDer::from(sig.signer_cert.as_slice());
        let cert = EndEntityCert::try_from(&cert_der).map_err(Error::UntrustedSigner)?;
        let crl_refs: Vec<&CertRevocationList<'_>> = self.crls.iter().collect();
        let revocation = match crl_refs.as_slice() {
            [] => None,
            refs => Some(
                webpki::RevocationOptionsBuilder::new(refs)
                    .map_err(|_| Error::InvalidCrl("no CRL given".into()))?
                    .build(),
            ),
        };
        let algorithms = rustls::crypto::ring::default_provider()
            .signature_verification_algorithms
            .all;
        let time = UnixTime::since_unix_epoch(
            at.duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default(),
        );
        cert.verify_for_usage(
            algorithms,
            &self.anchors,
            &[],
            time,
            KeyUsage::client_auth(),
            revocation,
            None,
        )
        .map_err(|e| match e {
            webpki::Error::CertRevoked => Error::RevokedSigner {
                serial: crate::ca::hex_string(
                    &crate::cert::cert_serial(&sig.signer_cert).unwrap_or_default(),
                ),
                signer: peer_identity(&sig.signer_cert)
                    .map(|i| i.to_string())
                    .unwrap_or_else(|_| "no lienthong identity".into()),
            },
            e => Error::UntrustedSigner(e),
        })?;

        let (algorithm, public_key) = cert_public_key(&sig.signer_cert)?;
        if algorithm != sig.algorithm {
            return Err(Error::AlgorithmMismatch {
                declared: sig.algorithm,
                in_cert: algorithm,
            });
        }
        lienthong_core::sign::verify(algorithm, &public_key, message, &sig.value)
            .map_err(Error::BadSignature)?;
        peer_identity(&sig.signer_cert)
    }
}

/// How long a checked signer certificate is trusted without re-checking its chain; this
/// also bounds how long a newly loaded revocation takes to apply to a busy signer.
pub const SIGNER_RECHECK: Duration = Duration::from_secs(300);
/// Most signer certificates remembered at once; the memory is cleared when full.
const SIGNER_CACHE_MAX: usize = 10_000;

/// [`TrustRoots`] that remember signer certificates they have checked, so a busy sender's
/// chain is verified once per [`SIGNER_RECHECK`] instead of for every message; each
/// signature is still verified every time. The revocation check is part of the chain
/// check: a certificate is remembered only once the roots' CRLs, which are fixed for
/// the life of the roots, have not revoked it.
#[derive(Debug)]
pub struct CachedTrust {
    roots: TrustRoots,
    checked: Mutex<HashMap<Vec<u8>, CheckedSigner>>,
}

#[derive(Debug, Clone)]
struct CheckedSigner {
    identity: Identity,
    algorithm: SignatureAlgorithm,
    public_key: Vec<u8>,
    recheck_at: Instant,
}

impl CachedTrust {
    pub fn new(roots: TrustRoots) -> Self {
        CachedTrust {
            roots,
            checked: Mutex::new(HashMap::new()),
        }
    }

    pub fn roots(&self) -> &TrustRoots {
        &self.roots
    }

    /// As [`TrustRoots::verify_signer`], with the chain check remembered.
    pub fn verify_signer(&self, sig: &Signature, message: &[u8]) -> Result<Identity> {
        let now = Instant::now();
        let known = self
            .checked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&sig.signer_cert)
            .filter(|c| c.recheck_at > now)
            .cloned();
        if let Some(c) = known {
            if c.algorithm != sig.algorithm {
                return Err(Error::AlgorithmMismatch {
                    declared: sig.algorithm,
                    in_cert: c.algorithm,
                });
            }
            lienthong_core::sign::verify(c.algorithm, &c.public_key, message, &sig.value)
                .map_err(Error::BadSignature)?;
            return Ok(c.identity);
        }
        let identity = self.roots.verify_signer(sig, message)?;
        let (algorithm, public_key) = cert_public_key(&sig.signer_cert)?;
        let mut checked = self.checked.lock().unwrap_or_else(|p| p.into_inner());
        if checked.len() >= SIGNER_CACHE_MAX {
            checked.clear();
        }
        checked.insert(
            sig.signer_cert.clone(),
            CheckedSigner {
                identity: identity.clone(),
                algorithm,
                public_key,
                recheck_at: now + SIGNER_RECHECK,
            },
        );
        Ok(identity)
    }
}
