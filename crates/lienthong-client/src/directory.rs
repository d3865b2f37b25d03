//! The directory as a client reads it from its node: every agency, its home node and its
//! aliases, checked before use (valid, and signed by the directory's own root, the
//! national gateway, with a certificate of the profile's CA).

use lienthong_core::canonical::directory_bytes;
use lienthong_core::directory::DirectoryIndex;
use lienthong_pki::Identity;
use lienthong_proto::pb;
use lienthong_proto::pb::directory_service_client::DirectoryServiceClient;

use crate::{DmsClient, Error};

impl DmsClient {
    /// The node's current directory, verified.
    pub async fn directory(&self) -> Result<DirectoryIndex, Error> {
        let response = DirectoryServiceClient::new(self.channel())
            .max_decoding_message_size(lienthong_proto::DEFAULT_MAX_MESSAGE_BYTES)
            .get_directory(pb::GetDirectoryRequest { known_version: 0 })
            .await?
            .into_inner();
        let directory: lienthong_core::directory::Directory = response
            .directory
            .ok_or_else(|| Error::Verification("the node holds no signed directory".into()))?
            .try_into()?;
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
