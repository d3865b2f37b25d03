//! The directory as a client reads it from its node: every agency, its home node, its
//! aliases and the identifier its system expects in edXML, checked before use (valid,
//! and signed by the directory's own root, the national gateway, with a certificate of
//! the profile's CA); and the copy a client keeps between calls, fetched again only when
//! the node's version moves.

use std::sync::{Arc, Mutex};

use lienthong_core::canonical::directory_bytes;
use lienthong_core::directory::{Directory, DirectoryIndex};
use lienthong_pki::Identity;
use lienthong_proto::pb;
use lienthong_proto::pb::directory_service_client::DirectoryServiceClient;

use crate::{DmsClient, Error};

/// The last directory a client verified, shared by its clones.
#[derive(Clone, Default)]
pub(crate) struct DirectoryCache(Arc<Mutex<Option<Arc<DirectoryIndex>>>>);

impl std::fmt::Debug for DirectoryCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let version = self.get().map(|d| d.version);
        f.debug_struct("DirectoryCache")
            .field("version", &version)
            .finish()
    }
}

impl DirectoryCache {
    fn get(&self) -> Option<Arc<DirectoryIndex>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set(&self, index: Arc<DirectoryIndex>) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(index);
    }
}

impl DmsClient {
    /// The node's current directory, verified.
    pub async fn directory(&self) -> Result<DirectoryIndex, Error> {
        let response = self.get_directory(0).await?;
        let directory = response
            .directory
            .ok_or_else(|| Error::Verification("the node holds no signed directory".into()))?
            .try_into()?;
        self.verified(directory)
    }

    /// The node's directory, verified, for placing and writing agency identifiers: the
    /// copy kept from an earlier call while the node's version is the same (one small
    /// call), else the new one. `None` from a node that serves its agencies from its own
    /// configuration, without a directory: then only QĐ 20/2020 codes name agencies.
    pub async fn current_directory(&self) -> Result<Option<Arc<DirectoryIndex>>, Error> {
        let kept = self.directory_cache.get();
        let known = kept.as_ref().map_or(0, |d| d.version);
        let response = self.get_directory(known).await?;
        match response.directory {
            Some(directory) => {
                let index = Arc::new(self.verified(directory.try_into()?)?);
                self.directory_cache.set(index.clone());
                Ok(Some(index))
            }
            None if response.version == 0 => Ok(None),
            None if kept.is_some() && response.version == known => Ok(kept),
            None => Err(Error::Verification(format!(
                "the node answered version {} without the directory, but the client holds version {known}",
                response.version
            ))),
        }
    }

    /// For a message a bridge imported from the national platform: checks against the
    /// node's directory that its signer is a bridge and its sender not one of our agencies
    /// (the signature itself was checked with the message).
    pub(crate) async fn check_vouched(
        &self,
        sender: &lienthong_core::AgencyCode,
        imported: Option<&lienthong_core::Imported>,
    ) -> Result<(), Error> {
        if imported.is_none() {
            return Ok(());
        }
        let directory = self.current_directory().await?.ok_or_else(|| {
            Error::Verification(
                "an imported message, but the node has no directory that names its bridge".into(),
            )
        })?;
        lienthong_pki::verify::vouched_by(&directory, sender, imported)
            .map_err(|e| Error::Verification(e.to_string()))
    }

    async fn get_directory(&self, known_version: u64) -> Result<pb::GetDirectoryResponse, Error> {
        Ok(DirectoryServiceClient::new(self.channel())
            .max_decoding_message_size(lienthong_proto::DEFAULT_MAX_MESSAGE_BYTES)
            .get_directory(pb::GetDirectoryRequest {
                known_version,
                ..Default::default()
            })
            .await?
            .into_inner())
    }

    /// `directory` indexed, if it is valid and signed by its national gateway.
    fn verified(&self, directory: Directory) -> Result<DirectoryIndex, Error> {
        let version = directory.version;
        let index = DirectoryIndex::new(directory)
            .map_err(|e| Error::Verification(format!("directory version {version}: {e}")))?;
        let signature = index.signature.as_ref().ok_or_else(|| {
            Error::Verification(format!("directory version {version} is not signed"))
        })?;
        let signer = self
            .trust()
            .verify_signer(signature, &directory_bytes(&index))
            .map_err(|e| Error::Verification(format!("directory version {version}: {e}")))?;
        let root = &index.root().id;
        if signer != Identity::Node(root.clone()) {
            return Err(Error::Verification(format!(
                "directory version {version} is signed by {signer}, not by its national gateway {root}"
            )));
        }
        Ok(index)
    }
}
