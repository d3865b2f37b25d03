//! The platform's agency lists a node holds: each bridge's newest signed list
//! ([`ExternalDirectory`]), checked (signed by the node it names), kept on disk, and
//! indexed against the directory in use ([`ExternalIndex`]) so that admission can route a
//! document for an agency on the national platform towards its bridge, and refuse at once
//! an address nobody knows. The lists climb to the root and come down the tree with the
//! directory pull (`services/directory.rs`).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use lienthong_core::NodeId;
use lienthong_core::canonical::external_bytes;
use lienthong_core::directory::DirectoryIndex;
use lienthong_core::external::{ExternalDirectory, ExternalIndex};
use lienthong_pki::{CachedTrust, Identity};
use lienthong_proto::directory::{decode_external, encode_external};

use crate::Error;
use crate::signer::NodeSigner;

/// The lists held and their index.
#[derive(Debug)]
pub struct ExternalLists {
    lists: Mutex<BTreeMap<NodeId, Arc<ExternalDirectory>>>,
    index: Mutex<Arc<ExternalIndex>>,
    /// Where the lists are kept (`<data_dir>/external/`); `None` in memory only.
    dir: Option<PathBuf>,
}

impl ExternalLists {
    /// The lists kept in `dir` (those that fail to decode are skipped with a warning).
    pub fn open(dir: Option<PathBuf>, trust: &CachedTrust) -> Self {
        let mut lists = BTreeMap::new();
        if let Some(dir) = &dir
            && let Ok(entries) = std::fs::read_dir(dir)
        {
            for entry in entries.flatten() {
                let path = entry.path();
                if path.extension().is_none_or(|e| e != "pb") {
                    continue;
                }
                match load(&path).and_then(|list| verify(&list, trust).map(|()| list)) {
                    Ok(list) => {
                        lists.insert(list.bridge.clone(), Arc::new(list));
                    }
                    Err(e) => {
                        tracing::warn!(file = %path.display(), error = %e, "platform agency list skipped")
                    }
                }
            }
        }
        ExternalLists {
            lists: Mutex::new(lists),
            index: Mutex::new(Arc::new(ExternalIndex::default())),
            dir,
        }
    }

    /// The index over the lists, as of the last [`ExternalLists::reindex`].
    pub fn index(&self) -> Arc<ExternalIndex> {
        self.index.lock().expect("external index").clone()
    }

    /// Rebuilds the index against `directory` (after a new directory or a new list).
    pub fn reindex(&self, directory: &DirectoryIndex) {
        let lists: Vec<_> = self
            .lists
            .lock()
            .expect("external lists")
            .values()
            .cloned()
            .collect();
        *self.index.lock().expect("external index") =
            Arc::new(ExternalIndex::new(lists, directory));
    }

    /// bridge → version of every list held.
    pub fn versions(&self) -> HashMap<String, i64> {
        self.lists
            .lock()
            .expect("external lists")
            .iter()
            .map(|(b, l)| (b.to_string(), l.version))
            .collect()
    }

    /// The lists newer than `known` (bridge → version) says the asker holds.
    pub fn newer_than(&self, known: &HashMap<String, i64>) -> Vec<Arc<ExternalDirectory>> {
        self.lists
            .lock()
            .expect("external lists")
            .values()
            .filter(|l| known.get(l.bridge.as_str()).is_none_or(|&v| v < l.version))
            .cloned()
            .collect()
    }

    /// Takes `list` if it is signed by the bridge it names and newer than the one held;
    /// returns whether it was taken (then keep it on disk and reindex against `directory`).
    pub fn offer(
        &self,
        list: ExternalDirectory,
        trust: &CachedTrust,
        directory: &DirectoryIndex,
    ) -> Result<bool, Error> {
        verify(&list, trust)?;
        {
            let mut lists = self.lists.lock().expect("external lists");
            if lists
                .get(&list.bridge)
                .is_some_and(|held| held.version >= list.version)
            {
                return Ok(false);
            }
            if let Some(dir) = &self.dir {
                save(dir, &list)?;
            }
            tracing::info!(bridge = %list.bridge, agencies = list.agencies.len(), "platform agency list updated");
            lists.insert(list.bridge.clone(), Arc::new(list));
        }
        self.reindex(directory);
        Ok(true)
    }
}

/// Signs `list` as its bridge (this node).
pub fn sign(list: &mut ExternalDirectory, signer: &NodeSigner) -> Result<(), Error> {
    list.signature = Some(signer.sign(&external_bytes(list))?);
    Ok(())
}

/// Checks that `list` is signed by the node it names as its bridge.
fn verify(list: &ExternalDirectory, trust: &CachedTrust) -> Result<(), Error> {
    let refused = |why: String| {
        Error::DirectoryRefused(format!("platform agency list of {}: {why}", list.bridge))
    };
    let signature = list
        .signature
        .as_ref()
        .ok_or_else(|| refused("not signed".into()))?;
    let signer = trust
        .verify_signer(signature, &external_bytes(list))
        .map_err(|e| refused(format!("bad signature: {e}")))?;
    if signer != Identity::Node(list.bridge.clone()) {
        return Err(refused(format!("signed by {signer}")));
    }
    Ok(())
}

fn file_of(dir: &Path, bridge: &NodeId) -> PathBuf {
    dir.join(format!("{bridge}.pb"))
}

fn load(path: &Path) -> Result<ExternalDirectory, Error> {
    Ok(decode_external(&std::fs::read(path)?)?)
}

/// Writes a list atomically, readable by the node's account only.
fn save(dir: &Path, list: &ExternalDirectory) -> Result<(), Error> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    crate::directory::write_private(&file_of(dir, &list.bridge), &encode_external(list))
}
