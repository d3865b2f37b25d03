//! This node's own signatures: receipts, trace entries and, at the national gateway, the
//! directory, each made with the node's key and carrying its certificate.

use lienthong_core::sign::{Signature, SigningKey};
use lienthong_core::{DocumentId, NodeId, Receipt, TraceEntry, canonical, now_millis};
use lienthong_pki::Identity;

use crate::Error;
use crate::config::NodeConfig;

/// This node's signing key and the DER of its certificate, which goes with every
/// signature it makes so that anyone holding the CA roots can check it.
#[derive(Debug)]
pub struct NodeSigner {
    node: NodeId,
    key: SigningKey,
    pub cert_der: Vec<u8>,
}

impl NodeSigner {
    /// Loads the key and certificate of `config.tls`, refusing a certificate that does
    /// not name node `id`.
    pub fn load(config: &NodeConfig, id: &NodeId) -> Result<Self, Error> {
        let key = lienthong_pki::load_signing_key(&config.tls.key)?;
        let cert_der = lienthong_pki::load_certs(&config.tls.cert)?
            .into_iter()
            .next()
            .ok_or_else(|| {
                Error::Config(format!(
                    "{} holds no certificate",
                    config.tls.cert.display()
                ))
            })?
            .to_vec();
        let cert_identity = lienthong_pki::peer_identity(&cert_der)?;
        if cert_identity != Identity::Node(id.clone()) {
            return Err(Error::Config(format!(
                "certificate {} is for {cert_identity}, not for node {id}; issue one with \
                 `lienthong pki issue node {id}`",
                config.tls.cert.display()
            )));
        }
        Ok(NodeSigner {
            node: id.clone(),
            key,
            cert_der,
        })
    }

    pub fn sign(&self, bytes: &[u8]) -> Result<Signature, Error> {
        Ok(Signature {
            algorithm: self.key.algorithm(),
            signer_cert: self.cert_der.clone(),
            value: self.key.sign(bytes)?,
        })
    }

    pub fn key(&self) -> &SigningKey {
        &self.key
    }

    /// This node's signed receipt for message `id` with `content_digest`, now.
    pub fn receipt(&self, id: &DocumentId, content_digest: [u8; 32]) -> Result<Receipt, Error> {
        let mut receipt = Receipt {
            document_id: id.clone(),
            content_digest,
            node: self.node.clone(),
            accepted_at: now_millis(),
            signature: None,
        };
        receipt.signature = Some(self.sign(&canonical::receipt_bytes(&receipt))?);
        Ok(receipt)
    }

    /// This node's signed trace entry for message `id` with `digest`, now.
    pub fn trace_entry(&self, id: &DocumentId, digest: &[u8; 32]) -> Result<TraceEntry, Error> {
        let at = now_millis();
        Ok(TraceEntry {
            node: self.node.clone(),
            at,
            signature: Some(self.sign(&canonical::trace_entry_bytes(id, digest, &self.node, at))?),
        })
    }
}
