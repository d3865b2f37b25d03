//! The node's copy of the directory: where it comes from (a TOML source signed by the
//! national gateway, the parent, or the on-disk cache), how it is checked (signed by the
//! configured national gateway, never older than the copy in use), and where it is kept.
//! The `DirectoryService` that hands it down the tree, and the pull from the parent, are
//! services (`services/directory.rs`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use lienthong_core::canonical::directory_bytes;
use lienthong_core::directory::{AgencyEntry, BridgeEntry, Directory, DirectoryIndex, NodeEntry};
use lienthong_core::id::Agency;
use lienthong_core::sign::{Signature, SigningKey};
use lienthong_core::{AgencyCode, NodeId, now_millis};
use lienthong_pki::{CachedTrust, Identity};
use serde::Deserialize;
use tokio::sync::watch;

use crate::Error;
use crate::config::{NetworkConfig, NodeConfig};
use crate::signer::NodeSigner;

/// The directory source file the national gateway loads (TOML).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectorySource {
    /// Must increase with every change; nodes refuse an older version.
    pub version: u64,
    pub nodes: Vec<NodeSource>,
    #[serde(default)]
    pub agencies: Vec<AgencySource>,
    /// The nodes that bridge to the national platform.
    #[serde(default)]
    pub bridges: Vec<BridgeSource>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BridgeSource {
    pub node: String,
    /// The agencies its platform account was registered for (default: every agency no
    /// other bridge lists).
    #[serde(default)]
    pub agencies: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSource {
    pub id: String,
    /// Free text ("national", "province", "district", "commune"): the depth is data.
    pub level: String,
    #[serde(default)]
    pub parent: Option<String>,
    pub endpoint: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgencySource {
    pub code: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub aliases: Vec<String>,
    /// What edXML written for this agency's DMS calls it: one of `aliases` (default: the
    /// code).
    #[serde(default)]
    pub edxml_id: Option<String>,
    pub home: String,
}

/// Reads and validates a directory source; the result is not signed yet.
pub fn load_source(path: &Path) -> Result<Directory, Error> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Config(format!("cannot read directory {}: {e}", path.display())))?;
    let src: DirectorySource =
        toml::from_str(&text).map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
    let bad = |e: lienthong_core::Error| Error::Config(format!("{}: {e}", path.display()));
    let node = |s: &str| NodeId::parse(s).map_err(bad);
    let mut nodes = Vec::with_capacity(src.nodes.len());
    for n in src.nodes {
        nodes.push(NodeEntry {
            id: node(&n.id)?,
            level: n.level,
            parent: n.parent.as_deref().map(node).transpose()?,
            endpoint: n.endpoint,
        });
    }
    let mut agencies = Vec::with_capacity(src.agencies.len());
    for a in src.agencies {
        agencies.push(AgencyEntry {
            agency: Agency {
                code: AgencyCode::parse(&a.code).map_err(bad)?,
                name: a.name,
                aliases: a.aliases,
                edxml_id: a.edxml_id,
            },
            home: node(&a.home)?,
        });
    }
    let mut bridges = Vec::with_capacity(src.bridges.len());
    for b in src.bridges {
        bridges.push(BridgeEntry {
            node: node(&b.node)?,
            agencies: b
                .agencies
                .iter()
                .map(|a| AgencyCode::parse(a).map_err(bad))
                .collect::<Result<_, _>>()?,
        });
    }
    let directory = Directory {
        version: src.version,
        issued_at: now_millis(),
        nodes,
        agencies,
        bridges,
        signature: None,
    };
    directory.validate().map_err(bad)?;
    Ok(directory)
}

/// Signs `directory` as the national gateway.
pub fn sign(directory: &mut Directory, key: &SigningKey, cert_der: &[u8]) -> Result<(), Error> {
    directory.signature = None;
    let value = key.sign(&directory_bytes(directory))?;
    directory.signature = Some(Signature {
        algorithm: key.algorithm(),
        signer_cert: cert_der.to_vec(),
        value,
    });
    Ok(())
}

/// Checks that `directory` is valid and signed by the national gateway `national`.
pub fn verify(directory: &Directory, trust: &CachedTrust, national: &NodeId) -> Result<(), Error> {
    directory.validate().map_err(|e| {
        Error::DirectoryRefused(format!("directory version {}: {e}", directory.version))
    })?;
    let signature = directory.signature.as_ref().ok_or_else(|| {
        Error::DirectoryRefused(format!(
            "directory version {} is not signed",
            directory.version
        ))
    })?;
    let signer = trust
        .verify_signer(signature, &directory_bytes(directory))
        .map_err(|e| {
            Error::DirectoryRefused(format!(
                "directory version {} has a bad signature: {e}",
                directory.version
            ))
        })?;
    if signer != Identity::Node(national.clone()) {
        return Err(Error::DirectoryRefused(format!(
            "directory version {} is signed by {signer}, not by the national gateway {national}",
            directory.version
        )));
    }
    let index = DirectoryIndex::new(directory.clone()).map_err(|e| {
        Error::DirectoryRefused(format!("directory version {}: {e}", directory.version))
    })?;
    if index.root().id != *national {
        return Err(Error::DirectoryRefused(format!(
            "directory version {} has another root than the national gateway {national}",
            directory.version
        )));
    }
    Ok(())
}

/// Where a node caches its directory.
pub fn cache_path(data_dir: &Path) -> PathBuf {
    data_dir.join("directory.pb")
}

/// Writes the cache atomically (temporary file, fsync, rename).
pub fn save_cache(path: &Path, directory: &Directory) -> Result<(), Error> {
    write_private(
        path,
        &lienthong_proto::directory::encode_directory(directory),
    )
}

/// Writes `bytes` to `path` atomically (`<path>.pb.tmp`, fsync, rename, fsync of the
/// folder), readable by the node's account only.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let tmp = path.with_extension("pb.tmp");
    {
        use std::io::Write;
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        // Readable by the node's account only, like everything in its data_dir; a file
        // left by a crash keeps the mode it was created with, hence the second step.
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

pub fn load_cache(path: &Path) -> Result<Option<Directory>, Error> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(lienthong_proto::directory::decode_directory(&bytes)?)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The directory in use, shared by every part of the node.
#[derive(Debug)]
pub struct DirectoryHolder {
    current: watch::Sender<Arc<DirectoryIndex>>,
    /// Only directories signed by this node are taken (absent for a stand-alone node).
    national: Option<NodeId>,
    cache: Option<PathBuf>,
}

impl DirectoryHolder {
    pub fn new(
        initial: Directory,
        national: Option<NodeId>,
        cache: Option<PathBuf>,
    ) -> Result<Self, Error> {
        let index =
            DirectoryIndex::new(initial).map_err(|e| Error::Config(format!("directory: {e}")))?;
        Ok(DirectoryHolder {
            current: watch::channel(Arc::new(index)).0,
            national,
            cache,
        })
    }

    pub fn current(&self) -> Arc<DirectoryIndex> {
        self.current.borrow().clone()
    }

    pub fn subscribe(&self) -> watch::Receiver<Arc<DirectoryIndex>> {
        self.current.subscribe()
    }

    /// Takes `candidate` if it is verified and newer than the copy in use; returns whether
    /// it was taken. An older version is refused with an error; the same version is
    /// ignored.
    pub fn offer(&self, candidate: Directory, trust: &CachedTrust) -> Result<bool, Error> {
        let Some(national) = &self.national else {
            return Err(Error::DirectoryRefused(
                "a stand-alone node takes no directory".into(),
            ));
        };
        verify(&candidate, trust, national)?;
        let current = self.current();
        if candidate.version < current.version {
            return Err(Error::InvalidArgument(format!(
                "directory version {} is older than version {} in use; refused",
                candidate.version, current.version
            )));
        }
        if candidate.version == current.version {
            return Ok(false);
        }
        if let Some(path) = &self.cache {
            save_cache(path, &candidate)?;
        }
        tracing::info!(version = candidate.version, "directory updated");
        let index = DirectoryIndex::new(candidate)
            .map_err(|e| Error::DirectoryRefused(format!("directory: {e}")))?;
        self.current.send_replace(Arc::new(index));
        Ok(true)
    }
}

/// The directory a node starts with: a stand-alone node's own (itself and the agencies of
/// its config); at the national gateway, its source file, signed now (never an older
/// version than the one published before); below it, the cache, or before the first
/// directory a placeholder naming the parent so that the node can ask it.
pub fn initial(
    config: &NodeConfig,
    id: &NodeId,
    signer: &NodeSigner,
    trust: &CachedTrust,
) -> Result<DirectoryHolder, Error> {
    let Some(net) = &config.network else {
        return DirectoryHolder::new(standalone(config, id)?, None, None);
    };
    let national = NodeId::parse(&net.national)
        .map_err(|e| Error::Config(format!("network.national: {e}")))?;
    let cache = cache_path(&config.data_dir);
    let initial = if let Some(source) = &net.directory_file {
        let mut d = load_source(source)?;
        sign(&mut d, signer.key(), &signer.cert_der)?;
        if let Some(cached) = load_cache(&cache)?
            && cached.version > d.version
        {
            return Err(Error::Config(format!(
                "{} has version {} but version {} was published before; raise the version",
                source.display(),
                d.version,
                cached.version
            )));
        }
        save_cache(&cache, &d)?;
        d
    } else {
        match load_cache(&cache)? {
            Some(d) => {
                verify(&d, trust, &national)?;
                d
            }
            None => placeholder(id, net)?,
        }
    };
    DirectoryHolder::new(initial, Some(national), Some(cache))
}

/// The directory of a stand-alone node: itself, serving the agencies of its config.
fn standalone(config: &NodeConfig, id: &NodeId) -> Result<Directory, Error> {
    Ok(Directory {
        version: 0,
        issued_at: now_millis(),
        nodes: vec![NodeEntry {
            id: id.clone(),
            level: "standalone".into(),
            parent: None,
            endpoint: format!("https://{}", config.listen),
        }],
        agencies: config
            .agencies()?
            .into_iter()
            .map(|agency| AgencyEntry {
                agency,
                home: id.clone(),
            })
            .collect(),
        bridges: Vec::new(),
        signature: None,
    })
}

/// What a node below the national gateway knows before its first directory: itself and
/// its parent, so that it can ask the parent.
fn placeholder(id: &NodeId, net: &NetworkConfig) -> Result<Directory, Error> {
    let parent = NodeId::parse(net.parent.as_deref().unwrap_or_default())
        .map_err(|e| Error::Config(format!("network.parent: {e}")))?;
    Ok(Directory {
        version: 0,
        issued_at: 0,
        nodes: vec![
            NodeEntry {
                id: parent.clone(),
                level: String::new(),
                parent: None,
                endpoint: net.parent_endpoint.clone().unwrap_or_default(),
            },
            NodeEntry {
                id: id.clone(),
                level: String::new(),
                parent: Some(parent),
                endpoint: String::new(),
            },
        ],
        agencies: Vec::new(),
        bridges: Vec::new(),
        signature: None,
    })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    /// The cache lies in the node's data_dir, whose files only the node's account reads.
    #[test]
    fn the_directory_cache_is_readable_by_its_owner_only() {
        let dir = tempfile::TempDir::new().unwrap();
        let path = cache_path(dir.path());
        // A temporary file left by a crash, with a wider mode.
        std::fs::write(path.with_extension("pb.tmp"), b"stale").unwrap();
        std::fs::set_permissions(
            path.with_extension("pb.tmp"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        let directory = Directory {
            version: 3,
            issued_at: 0,
            nodes: Vec::new(),
            agencies: Vec::new(),
            bridges: Vec::new(),
            signature: None,
        };
        save_cache(&path, &directory).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o600, "{mode:o}");
        assert_eq!(
            std::fs::read(&path).unwrap(),
            lienthong_proto::directory::encode_directory(&directory)
        );
    }
}
